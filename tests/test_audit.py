"""The audit gate: the Wilson lower bound decides; the CLI maps it to exit codes 0 / 1 / 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explain_distill._stats import wilson_interval
from explain_distill.analysis import AuditResult, audit
from explain_distill.cli import main


class _Echo:
    """A 'surrogate' that copies the teacher (agreement 1 by construction)."""

    def __init__(self, teacher):
        self.teacher = teacher
        self.n_features_in_ = teacher.n_features

    def predict(self, X):
        return self.teacher.predict(X)

    def predict_proba(self, X):
        return self.teacher.predict_proba(X)


class _Constant:
    def __init__(self, k, n_classes, n_features):
        self.k, self.K, self.n_features_in_ = k, n_classes, n_features

    def predict(self, X):
        return np.full(len(X), self.k)


def test_audit_metrics_and_interval(digits_run):
    X = digits_run.dataset.X_test
    res = audit(digits_run.teacher, digits_run.surrogates["logistic"], X, min_agreement=0.5, name="logistic")
    assert isinstance(res, AuditResult)
    m = digits_run.metrics["surrogates"]["logistic"]
    assert res.metrics["agreement"] == pytest.approx(m["fidelity"])
    k = round(res.metrics["agreement"] * res.n)
    assert res.intervals["agreement"] == pytest.approx(wilson_interval(k, len(X)))
    for key in ("kl", "js", "tv", "brier"):
        assert key in res.metrics and np.isfinite(res.metrics[key]) and res.metrics[key] >= 0
    assert res.passed == (res.intervals["agreement"][0] >= 0.5)
    json.dumps(res.to_dict(), allow_nan=False)


def test_gate_uses_the_lower_bound_not_the_point_estimate(digits_teacher, digits):
    echo = _Echo(digits_teacher)
    X = digits.X_test
    full = audit(digits_teacher, echo, X, min_agreement=0.95)
    assert full.metrics["agreement"] == 1.0 and full.passed
    assert full.metrics["kl"] == pytest.approx(0.0, abs=1e-6)
    # 10 samples all agreeing: point estimate 1.0, but the Wilson lower bound is ~0.72 -> fail at 0.95.
    few = audit(digits_teacher, echo, X[:10], min_agreement=0.95)
    assert few.metrics["agreement"] == 1.0
    assert few.intervals["agreement"][0] < 0.95 and not few.passed
    const = _Constant(0, 10, X.shape[1])
    bad = audit(digits_teacher, const, X, min_agreement=0.2)
    assert not bad.passed and "kl" not in bad.metrics  # no predict_proba: agreement only


def test_audit_rejects_bad_input(digits_teacher, digits):
    X = digits.X_test
    with pytest.raises(ValueError, match=r"min_agreement must be in \[0, 1\]"):
        audit(digits_teacher, _Echo(digits_teacher), X, min_agreement=1.5)
    with pytest.raises(ValueError, match="expecting 64 features"):
        audit(digits_teacher, _Constant(0, 10, 64), X[:, :10])
    wrong = _Constant(0, 10, 10)
    with pytest.raises(ValueError, match="expecting 10 features"):
        audit(digits_teacher, wrong, X)
    with pytest.raises(TypeError, match="Teacher"):
        audit(object(), wrong, X)


@pytest.fixture(scope="module")
def run_dir(digits_run, tmp_path_factory):
    return digits_run.save(tmp_path_factory.mktemp("run") / "digits")


def test_cli_audit_exit_codes(run_dir, capsys):
    assert main(["-q", "audit", str(run_dir), "--min-agreement", "0.0"]) == 0
    out = capsys.readouterr().out
    assert "logistic" in out and "tree" in out and "PASS" in out
    assert main(["-q", "audit", str(run_dir), "--min-agreement", "1.0"]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert main(["-q", "audit", str(run_dir), "--min-agreement", "1.5"]) == 2
    assert "min-agreement" in capsys.readouterr().err
    assert main(["-q", "audit", str(run_dir), "--min-agreement", "0.5", "--surrogate", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["-q", "audit", str(run_dir / "missing"), "--min-agreement", "0.5"]) == 2


def test_cli_audit_json(run_dir, capsys, digits_run):
    code = main(["-q", "audit", str(run_dir), "--min-agreement", "0.5", "--surrogate", "logistic", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert [r["surrogate"] for r in doc["results"]] == ["logistic"]
    r = doc["results"][0]
    assert r["metrics"]["agreement"] == pytest.approx(digits_run.metrics["surrogates"]["logistic"]["fidelity"])
    assert set(r["metrics"]) >= {"agreement", "kl", "js", "tv", "brier"}
    assert doc["passed"] == r["passed"] == (r["intervals"]["agreement"][0] >= 0.5)
    assert code == (0 if doc["passed"] else 1)


def test_audit_in_batches_equals_one_pass(digits_run):
    # Memory is bounded by batch_size: a small batch must give the same verdict and metrics.
    X = digits_run.dataset.X_test
    tree = digits_run.surrogates["tree"]
    whole = audit(digits_run.teacher, tree, X, min_agreement=0.5)
    small = audit(digits_run.teacher, tree, np.asarray(X), min_agreement=0.5, batch_size=7)
    assert small.metrics["agreement"] == whole.metrics["agreement"]
    assert small.passed == whole.passed
    for key in ("kl", "js", "tv", "brier"):
        assert small.metrics[key] == pytest.approx(whole.metrics[key], rel=1e-6)
    with pytest.raises(ValueError, match="batch_size"):
        audit(digits_run.teacher, tree, X, batch_size=0)
