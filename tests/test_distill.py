"""distill(): teacher meets surrogates; metrics checked against sklearn; save/load without pickle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score
from torch import nn

import explain_distill as ed


@pytest.fixture(scope="module")
def run(iris, iris_teacher):
    return ed.distill(iris_teacher, iris, surrogates="tree, logistic", temperature=3.0, seed=0)


class Lin(nn.Module):
    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.lin = nn.Linear(4, 3)

    def forward(self, x):
        return self.lin(x)


def test_surrogates_fitted_on_the_teachers_soft_labels(run, iris, iris_teacher):
    assert list(run.surrogates) == ["tree", "logistic"]
    assert run.temperature == 3.0
    train = run.transfer.source == run.transfer.source_names.index("train")
    # the training split minus the validation rows held out to choose sizes (tree is a readable family)
    fit_rows = np.setdiff1d(np.arange(len(iris.X_train)), run.frontier["validation"]["rows"])
    assert 0 < len(run.frontier["validation"]["rows"]) < len(iris.X_train)
    np.testing.assert_array_equal(run.transfer.X[train], iris.X_train[fit_rows])  # plus any synthesized queries
    np.testing.assert_array_equal(run.transfer.y[train], iris.y_train[fit_rows])
    np.testing.assert_allclose(run.transfer.P, iris_teacher.predict_proba(run.transfer.X, temperature=3.0), atol=1e-6)
    np.testing.assert_allclose(run.transfer.P.sum(1), 1, atol=1e-5)
    for est in run.surrogates.values():
        assert est.soft_fit_ and list(est.classes_) == [0, 1, 2] and est.n_features_in_ == 4


def test_metrics_agree_with_sklearn(run, iris, iris_teacher):
    t_pred = iris_teacher.predict(iris.X_test)
    m = run.metrics
    assert m["teacher"]["accuracy"] == pytest.approx(accuracy_score(iris.y_test, t_pred))
    assert m["teacher"]["params"] == sum(p.numel() for p in iris_teacher.module.parameters())
    for name, est in run.surrogates.items():
        s_pred = est.predict(iris.X_test)
        row = m["surrogates"][name]
        assert row["accuracy"] == pytest.approx(accuracy_score(iris.y_test, s_pred))
        assert row["fidelity"] == pytest.approx(accuracy_score(t_pred, s_pred))
        lo, hi = row["fidelity_interval"]
        assert 0 <= lo <= row["fidelity"] <= hi + 1e-12 and hi <= 1
        assert row["params"] > 0 and row["n_test"] == len(iris.X_test)
    rows = run.fidelity()
    assert [r["surrogate"] for r in rows] == ["tree", "logistic"]
    assert rows[0]["fidelity"] == m["surrogates"]["tree"]["fidelity"]


def test_provenance_is_recorded(run, iris, iris_teacher):
    info = run.info
    assert info["data_sha256"] == iris.fingerprint()
    assert info["teacher_sha256"] == iris_teacher.fingerprint()
    assert {"explain_distill", "torch", "numpy", "sklearn", "python"} <= set(info["versions"])
    assert info["transfer_set"]["train"] + info["transfer_set"]["validation (held out)"] == len(iris.X_train)


def test_params_reach_the_surrogate(iris, iris_teacher):
    r = ed.distill(iris_teacher, iris, surrogates=["tree"], params={"tree": {"max_depth": 1}}, seed=0)
    tree = r.surrogates["tree"]
    assert tree.max_depth == 1 and tree.random_state == 0
    assert tree.estimator_.get_depth() == 1
    with pytest.raises(ValueError, match="not among the requested surrogates"):
        ed.distill(iris_teacher, iris, surrogates=["tree"], params={"logistic": {"C": 1.0}})


@pytest.mark.parametrize(
    "surrogates,needle",
    [([], "No surrogates requested"), (["tree", "tree"], "repeat"), ("tree,bogus", "Unknown surrogate")],
)
def test_bad_surrogate_lists(iris, iris_teacher, surrogates, needle):
    with pytest.raises(ValueError, match=needle):
        ed.distill(iris_teacher, iris, surrogates=surrogates)


def test_default_surrogates_are_the_registered_ones():
    from explain_distill.distill import resolve_surrogates

    names = resolve_surrogates(None)
    assert names and set(names) <= set(ed.SURROGATES) and set(names) <= set(ed.DEFAULT_SURROGATES)
    assert {"tree", "logistic"} <= set(names)


def test_several_teachers_are_averaged(iris):
    a = ed.Teacher(Lin(1), class_names=list(iris.class_names), device="cpu")
    b = ed.Teacher(Lin(2), class_names=list(iris.class_names), device="cpu")
    r = ed.distill([a, b], iris, surrogates=["tree"], weights=[3, 1], temperature=2.0)
    X = r.transfer.X
    expected = 0.75 * a.predict_proba(X, 2.0) + 0.25 * b.predict_proba(X, 2.0)
    np.testing.assert_allclose(r.transfer.P, expected, atol=1e-6)
    assert r.teacher is a  # the first teacher is the reference
    assert r.info["n_teachers"] == 2 and r.info["teacher_weights"] == [0.75, 0.25]
    with pytest.raises(ValueError, match="one weight per teacher"):
        ed.distill([a, b], iris, surrogates=["tree"], weights=[1])
    c = ed.Teacher(Lin(3), class_names=["x", "y", "z"], device="cpu")
    with pytest.raises(ValueError, match="class order"):
        ed.distill([a, c], iris, surrogates=["tree"])


def test_wrong_argument_types(iris, iris_teacher):
    with pytest.raises(TypeError, match="Dataset"):
        ed.distill(iris_teacher, (iris.X_train, iris.y_train))
    with pytest.raises(TypeError, match="Wrap your module first"):
        ed.distill(iris_teacher.module, iris)


def test_save_load_round_trip(tmp_path, run, iris):
    run.save(tmp_path / "run")
    again = ed.load(tmp_path / "run", device="cpu")
    assert again.metrics == run.metrics and again.seed == run.seed and again.temperature == run.temperature
    assert list(again.surrogates) == list(run.surrogates)
    for name, est in run.surrogates.items():
        np.testing.assert_array_equal(again.surrogates[name].predict(iris.X_test), est.predict(iris.X_test))
    np.testing.assert_array_equal(again.teacher.logits(iris.X_test), run.teacher.logits(iris.X_test))
    assert again.dataset.fingerprint() == iris.fingerprint()
    assert again.evaluate()["surrogates"] == run.metrics["surrogates"]
    # the saved run holds only JSON and safetensors
    suffixes = {p.suffix for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert suffixes <= {".json", ".safetensors"}


def test_load_accepts_a_report_directory(tmp_path, run):
    run.save(tmp_path / "report" / "model")
    assert list(ed.load(tmp_path / "report", device="cpu").surrogates) == ["tree", "logistic"]
