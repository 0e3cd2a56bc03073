"""Fidelity curves: the one-fit size curve equals separate fits; the KD comparison reuses the run's student."""

import numpy as np
import pytest

import explain_distill as ed
from explain_distill.analysis.curves import kd_vs_hard, size_curve, temperature_curve
from explain_distill.surrogates import SoftLabelTreeClassifier


@pytest.fixture(scope="module")
def blob_run():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6))
    y = (X[:, 0] + 0.5 * X[:, 1] ** 2 > 0.3).astype(int) + (X[:, 2] > 0.8)
    data = ed.Dataset.from_arrays(X, y, seed=0)
    teacher = ed.train_teacher(data, device="cpu", seed=0, epochs=20, progress=False)
    return ed.distill(teacher, data, surrogates=["tree"], queries={"jitter": 300}, seed=0)


def test_size_curve_equals_separate_fits(blob_run):
    # Continuous features, so no tied splits: cutting the deepest tree must give every depth's tree.
    curve = size_curve(blob_run, depths=(1, 2, 3, 5), hard_baseline=False)
    t_pred = blob_run.teacher.predict(blob_run.dataset.X_test)
    ts = blob_run.transfer
    for i, k in enumerate(curve["depths"]):
        tree = SoftLabelTreeClassifier(max_depth=k, random_state=blob_run.seed).fit(ts.X, ts.P)
        assert curve["surrogates"]["tree"]["params"][i] == tree.n_params_
        assert curve["surrogates"]["tree"]["fidelity"][i] == pytest.approx(np.mean(tree.predict(blob_run.dataset.X_test) == t_pred))


def test_size_curve_hard_baselines_grow_with_depth(blob_run):
    curve = size_curve(blob_run, depths=(1, 4))
    for name in ("tree", "tree_hard", "tree_hard_gini"):
        sizes = curve["surrogates"][name]["params"]
        assert sizes[0] == 3 and sizes[1] > sizes[0]


def test_temperature_curve_has_one_point_per_temperature(blob_run):
    curve = temperature_curve(blob_run, temperatures=(1, 4), surrogates=("tree",))
    assert curve["temperatures"] == [1, 4]
    assert len(curve["surrogates"]["tree"]["fidelity"]) == 2
    assert all(0.0 <= f <= 1.0 for f in curve["surrogates"]["tree"]["fidelity"])


def test_kd_vs_hard_reuses_the_runs_student(blob_run):
    run = ed.distill(blob_run.teacher, blob_run.dataset, surrogates=["student"], queries=None,
                     params={"student": {"epochs": 5}}, seed=0)
    res = kd_vs_hard(run)
    t_pred = run.teacher.predict(run.dataset.X_test)
    own = float(np.mean(run.surrogates["student"].predict(run.dataset.X_test) == t_pred))
    assert res["soft"]["fidelity"] == pytest.approx(own)
    assert res["hard"]["params"] == res["soft"]["params"]


def test_truncations_equal_the_tree_cut_row_by_row(digits):
    from sklearn.tree import DecisionTreeClassifier

    from explain_distill.analysis.curves import _truncations

    est = DecisionTreeClassifier(max_depth=6, random_state=0).fit(digits.X_train, digits.y_train)
    t = est.tree_
    path = est.decision_path(digits.X_test).tocsr()
    depth = np.zeros(t.node_count, dtype=int)
    for i in range(t.node_count):
        for c in (t.children_left[i], t.children_right[i]):
            if c >= 0:
                depth[c] = depth[i] + 1
    for k, pred, n_nodes in _truncations(est, digits.X_test, [1, 3, 6]):
        expected = []
        for r in range(len(digits.X_test)):  # the deepest node of the row's path at depth <= k
            nodes = path.indices[path.indptr[r]:path.indptr[r + 1]]
            node = nodes[depth[nodes] <= k][-1]
            expected.append(est.classes_[np.argmax(t.value[node])])
        np.testing.assert_array_equal(pred, expected)
        assert n_nodes == int(np.sum(depth <= k))


def test_curves_refit_on_a_recorded_sample_of_large_splits(monkeypatch, iris, iris_teacher):
    import explain_distill as ed
    from explain_distill.analysis import curves

    monkeypatch.setattr(curves, "MAX_ROWS", 50)
    run = ed.distill(iris_teacher, iris, surrogates=["tree"], queries=None, frontier=False)
    t = curves.temperature_curve(run, temperatures=(1, 4), surrogates=["tree"])
    assert t["rows_used"] == 50 and t["rows_total"] == len(iris.X_train)
    s = curves.size_curve(run, depths=(2, 3))
    assert s["rows_used"] == 50 and s["rows_total"] == len(run.transfer)
