"""Transfer set: query synthesis, several teachers, and the checks at the door."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import explain_distill as ed
from explain_distill.transfer import (
    QUERY_KINDS,
    QueryMemoryError,
    QuerySpec,
    TransferSet,
    build_transfer_set,
    estimate_bytes,
    soft_labels,
    synthesize_queries,
)


def test_queries_of_every_kind_are_labelled_and_tagged(iris, iris_teacher):
    q = {"jitter": 30, "mixup": 20, "class": 10, "boundary": 25}
    ts = build_transfer_set(iris_teacher, iris.X_train, iris.y_train, temperature=2.0, queries=q, seed=3)
    n = len(iris.X_train)
    assert len(ts) == n + 85
    assert ts.counts() == {"train": n, "jitter": 30, "mixup": 20, "class": 10, "boundary": 25}
    assert ts.n_real == n and (ts.y[n:] == -1).all()
    np.testing.assert_array_equal(ts.y[:n], iris.y_train)
    # Every row is labelled by the teacher at the run's temperature.
    np.testing.assert_allclose(ts.P, iris_teacher.predict_proba(ts.X, temperature=2.0), atol=1e-6)
    # Queries stay inside the training range (clip=True).
    assert (ts.X[n:] >= iris.X_train.min(0) - 1e-6).all() and (ts.X[n:] <= iris.X_train.max(0) + 1e-6).all()


def test_synthesis_is_seeded(iris):
    spec = QuerySpec(jitter=10, mixup=10, class_=10, seed=5)
    a, _ = synthesize_queries(iris.X_train, spec=spec, labels=iris.y_train)
    b, _ = synthesize_queries(iris.X_train, spec=spec, labels=iris.y_train)
    c, _ = synthesize_queries(iris.X_train, spec=QuerySpec(jitter=10, mixup=10, class_=10, seed=6), labels=iris.y_train)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_mixup_lies_on_segments_between_training_points(iris):
    X = iris.X_train[:2]
    Q, codes = synthesize_queries(X, spec=QuerySpec(mixup=50, clip=False))
    assert (codes == QUERY_KINDS.index("mixup") + 1).all()
    d = X[1] - X[0]
    lam = (Q - X[0]) @ d / (d @ d)
    np.testing.assert_allclose(Q, X[0] + lam[:, None] * d, atol=1e-5)
    assert ((lam >= -1e-6) & (lam <= 1 + 1e-6)).all()


def test_boundary_queries_sit_on_split_thresholds(iris, iris_teacher):
    from sklearn.tree import DecisionTreeRegressor

    P = iris_teacher.predict_proba(iris.X_train)
    spec = QuerySpec(boundary=200, boundary_scale=0.0, boundary_depth=3, clip=False)
    Q, _ = synthesize_queries(iris.X_train, spec=spec, P=P)
    tree = DecisionTreeRegressor(max_depth=3, random_state=0).fit(iris.X_train, P).tree_
    thresholds = {(int(f), np.float32(t)) for f, t in zip(tree.feature, tree.threshold) if f >= 0}
    # Each query differs from some training point in one feature, set exactly to a threshold.
    hits = 0
    for q in Q:
        diff = np.abs(iris.X_train - q)
        row = np.argmin((diff > 1e-6).sum(1))
        changed = np.nonzero(diff[row] > 1e-6)[0]
        assert len(changed) <= 1
        if len(changed) == 1:
            hits += (int(changed[0]), np.float32(q[changed[0]])) in thresholds
    assert hits > 100


def test_class_conditional_queries_follow_the_class_means(iris):
    spec = QuerySpec(class_=3000, clip=False, seed=1)
    Q, _ = synthesize_queries(iris.X_train, spec=spec, labels=iris.y_train)
    np.testing.assert_allclose(Q.mean(0), iris.X_train.mean(0), atol=0.1)


def test_too_many_queries_fail_before_any_work(iris, iris_teacher, monkeypatch):
    import explain_distill.transfer as tr

    calls = []
    monkeypatch.setattr(tr, "synthesize_queries", lambda *a, **k: calls.append(1))
    with pytest.raises(QueryMemoryError, match="GiB") as err:
        build_transfer_set(iris_teacher, iris.X_train, queries={"jitter": 10**9, "max_bytes": 10**9})
    assert isinstance(err.value, ValueError) and "fewer queries" in str(err.value)
    assert calls == []
    assert estimate_bytes(10, 4, 3) > 10 * 4 * 4


@pytest.mark.parametrize(
    "queries, match",
    [({"jiter": 10}, "Unknown query option"), ({"jitter": -1}, "jitter"), ("jitter", "dict"), ({"mixup_alpha": 0}, "mixup_alpha")],
)
def test_bad_queries_are_rejected(iris, iris_teacher, queries, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build_transfer_set(iris_teacher, iris.X_train, queries=queries)


@pytest.mark.parametrize("T", [0, -1.0])
def test_temperature_must_be_positive(iris, iris_teacher, T):
    with pytest.raises(ValueError, match="temperature"):
        build_transfer_set(iris_teacher, iris.X_train, temperature=T)


def _linear_teacher(n_features, n_classes, seed, names=None):
    torch.manual_seed(seed)
    names = names or [f"c{i}" for i in range(n_classes)]
    return ed.Teacher(torch.nn.Linear(n_features, n_classes), class_names=names, device="cpu")


def test_several_teachers_are_averaged_with_weights(iris):
    t1, t2 = _linear_teacher(4, 3, 1), _linear_teacher(4, 3, 2)
    X = iris.X_train
    P = soft_labels([t1, t2], X, temperature=3.0, weights=[3, 1])
    ref = 0.75 * t1.predict_proba(X, temperature=3.0) + 0.25 * t2.predict_proba(X, temperature=3.0)
    np.testing.assert_allclose(P, ref, atol=1e-6)
    np.testing.assert_allclose(P.sum(1), 1.0, atol=1e-5)


def test_teachers_disagreeing_on_classes_are_named(iris):
    with pytest.raises(ValueError, match=r"teachers\[0\] has 3.*teachers\[1\] has 2"):
        soft_labels([_linear_teacher(4, 3, 1), _linear_teacher(4, 2, 2)], iris.X_train)


def test_transfer_set_rejects_non_distributions(rng):
    X = rng.normal(size=(5, 2)).astype(np.float32)
    with pytest.raises(ValueError, match="not probability distributions"):
        TransferSet(X=X, P=rng.normal(size=(5, 3)), temperature=1.0, y=np.zeros(5), source=np.zeros(5))


def test_distill_with_two_teachers_and_a_precomputed_transfer_set(iris, iris_teacher):
    other = _linear_teacher(4, 3, 0, names=iris_teacher.class_names)
    res = ed.distill([iris_teacher, other], iris, surrogates=["tree"], weights=[0.7, 0.3], temperature=2.0,
                     queries={"jitter": 50})
    assert res.info["teacher_weights"] == pytest.approx([0.7, 0.3])
    assert res.info["transfer_set"]["jitter"] == 50
    ref = soft_labels([iris_teacher, other], res.transfer.X, temperature=2.0, weights=[0.7, 0.3])
    np.testing.assert_allclose(res.transfer.P, ref, atol=1e-6)
    # Passing that transfer set back fits the same tree.
    again = ed.distill(iris_teacher, iris, surrogates=["tree"], temperature=2.0, transfer=res.transfer)
    np.testing.assert_array_equal(again.surrogates["tree"].predict(iris.X_test), res.surrogates["tree"].predict(iris.X_test))
    with pytest.raises(ValueError, match="temperature 2.0"):
        ed.distill(iris_teacher, iris, surrogates=["tree"], temperature=4.0, transfer=res.transfer)
    with pytest.raises(ValueError, match="alpha"):
        ed.distill(iris_teacher, iris, surrogates=["student"], params={"student": {"alpha": 1.5, "epochs": 1}}, queries=None)


@pytest.fixture(scope="module")
def iris_run(iris, iris_teacher):
    return ed.distill(iris_teacher, iris, surrogates=["tree"], temperature=2.0, queries={"jitter": 200})


def test_temperature_curve(iris_run):
    from explain_distill.analysis.curves import temperature_curve

    tc = temperature_curve(iris_run, temperatures=(1, 4), surrogates=("tree", "logistic"))
    assert tc["temperatures"] == [1.0, 4.0]
    for name in ("tree", "logistic"):
        assert len(tc["surrogates"][name]["fidelity"]) == 2
        assert all(0 <= f <= 1 for f in tc["surrogates"][name]["fidelity"])
    with pytest.raises(ValueError, match="temperatures"):
        temperature_curve(iris_run, temperatures=(0,))


def test_size_curve_grows_trees_and_has_a_hard_baseline(iris_run, iris):
    from explain_distill.analysis.curves import size_curve

    sc = size_curve(iris_run, depths=(1, 3))
    tree = sc["surrogates"]["tree"]
    assert tree["params"][0] == 3 and tree["params"][1] > tree["params"][0]
    assert set(sc["surrogates"]) == {"tree", "tree_hard", "tree_hard_gini"}
    assert sc["transfer_set"]["jitter"] == 200
    # The hard baseline is a tree on the true labels: its accuracy matches a direct fit.
    from explain_distill.surrogates import SoftLabelTreeClassifier

    ref = SoftLabelTreeClassifier(max_depth=3, random_state=0).fit(iris.X_train, iris.y_train)
    assert sc["surrogates"]["tree_hard"]["accuracy"][1] == pytest.approx(ref.score(iris.X_test, iris.y_test))


def test_kd_vs_hard_reports_both_students(iris_run):
    from explain_distill.analysis.curves import kd_vs_hard

    r = kd_vs_hard(iris_run, params={"epochs": 2, "hidden": (8,)})
    assert r["soft"]["params"] == r["hard"]["params"]
    assert r["soft"]["n_train"] == len(iris_run.transfer) and r["hard"]["n_train"] == len(iris_run.dataset.X_train)
    assert 0 <= r["soft"]["fidelity"] <= 1 and 0 <= r["hard"]["accuracy"] <= 1


class _Const(torch.nn.Module):
    """Logits that are a fixed function of the input: NaN for rows whose first feature is > 100."""

    def forward(self, x):
        z = torch.stack([x[:, 0], -x[:, 0], x[:, 1]], dim=1)
        return torch.where(x[:, :1] > 100, torch.full_like(z, float("nan")), z)


def test_soft_labels_scan_for_nan_on_the_device_with_the_host_messages(rng):
    from explain_distill.teacher import Teacher
    from explain_distill.transfer import soft_labels

    t = Teacher(_Const(), class_names=["a", "b", "c"], device="cpu", batch_size=4)
    X = rng.normal(size=(10, 2)).astype(np.float32)
    P = soft_labels([t, t], X, temperature=2.0, weights=[0.25, 0.75])
    np.testing.assert_allclose(P, t.predict_proba(X, temperature=2.0), rtol=1e-6)
    assert P.dtype == np.float32
    Xn = X.copy()
    Xn[6, 1] = np.nan  # a NaN input: the host check's own message, naming the place
    with pytest.raises(ValueError, match="NaN") as err:
        soft_labels(t, Xn)
    with pytest.raises(ValueError) as host:
        ed._validation.check_finite(Xn, name="X")
    assert str(err.value) == str(host.value)
    Xb = X.copy()
    Xb[[3, 8], 0] = 1000.0  # the module returns NaN for these rows: the output message names them
    for teachers in (t, [t, t]):
        with pytest.raises(ValueError, match=r"NaN or infinite outputs for rows \[3, 8\]"):
            soft_labels(teachers, Xb)
