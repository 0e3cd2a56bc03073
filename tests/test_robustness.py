"""Robustness: noise and FGSM measured on the real teacher and surrogates (small subsets, few strengths)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from explain_distill.analysis import RobustnessReport, robustness_report
from explain_distill.analysis.robustness import differentiable_module, fgsm


class _TorchEcho:
    """A differentiable 'surrogate' exposing torch_module(): the teacher's own network (white-box)."""

    def __init__(self, teacher):
        self.teacher = teacher
        self.n_features_in_ = teacher.n_features
        self.calls = 0

    def torch_module(self):
        self.calls += 1
        return self.teacher.flat_module()

    def predict(self, X):
        return self.teacher.predict(X)


@pytest.fixture(scope="module")
def subset(digits):
    idx = np.random.default_rng(0).choice(len(digits.X_test), 120, replace=False)
    return digits.X_test[idx], digits.y_test[idx]


@pytest.fixture(scope="module")
def report(digits_run, subset):
    X, y = subset
    sur = dict(digits_run.surrogates)
    sur["echo"] = _TorchEcho(digits_run.teacher)
    return robustness_report(digits_run.teacher, sur, X, y, sigmas=(0.0, 1.0), epsilons=(0.0, 0.3), seed=3)


def test_clean_columns_equal_plain_accuracy_and_fidelity(report, digits_run, subset):
    X, y = subset
    t = digits_run.teacher.predict(X)
    assert isinstance(report, RobustnessReport)
    assert report.sigmas == [0.0, 1.0] and report.epsilons == [0.0, 0.3] and report.n == len(X)
    assert set(report.noise) == {"teacher", "tree", "logistic", "echo"}
    for name, est in digits_run.surrogates.items():
        s = est.predict(X)
        assert report.noise[name]["accuracy"][0] == pytest.approx(np.mean(s == y))
        assert report.noise[name]["fidelity"][0] == pytest.approx(np.mean(s == t))
    assert report.noise["teacher"]["accuracy"][0] == pytest.approx(np.mean(t == y))
    assert report.noise["teacher"]["fidelity"] == [1.0, 1.0]
    # The copy of the teacher agrees with it on the same noisy inputs: shared inputs, not re-drawn noise.
    assert report.noise["echo"]["fidelity"] == [1.0, 1.0]


def test_fgsm_only_for_differentiable_models_and_it_hurts(report):
    assert set(report.fgsm) == {"teacher", "echo"}
    assert "tree" in report.notes and "logistic" in report.notes
    acc0, acc1 = report.fgsm["teacher"]["accuracy"]
    assert acc0 == report.noise["teacher"]["accuracy"][0]
    assert acc1 < acc0  # a white-box attack of eps 0.3 (standardised pixels) must lower accuracy
    assert report.fgsm["echo"]["accuracy"] == report.fgsm["teacher"]["accuracy"]
    assert report.fgsm["echo"]["fidelity"] == [1.0, 1.0]
    json.dumps(report.to_json(), allow_nan=False)


def test_noise_is_reproducible_and_seed_dependent(digits_run, subset):
    X, y = subset
    kw = dict(sigmas=(1.5,), epsilons=())
    a = robustness_report(digits_run.teacher, digits_run.surrogates, X, y, seed=1, **kw)
    b = robustness_report(digits_run.teacher, digits_run.surrogates, X, y, seed=1, **kw)
    assert a.noise == b.noise
    runs = [robustness_report(digits_run.teacher, digits_run.surrogates, X, y, seed=s, **kw).noise for s in range(2, 6)]
    assert any(r != a.noise for r in runs)


def test_fgsm_matches_a_hand_computation(digits_teacher, subset):
    X, y = subset
    X, y = X[:16], y[:16]
    module = digits_teacher.flat_module()
    x = torch.tensor(X, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(module(x), torch.tensor(y), reduction="sum")
    (g,) = torch.autograd.grad(loss, x)
    expected = (x + 0.1 * g.sign()).detach().numpy()
    np.testing.assert_allclose(fgsm(module, X, y, 0.1, batch_size=5), expected, atol=1e-6)


def test_differentiable_hook(digits_teacher, digits_run):
    assert differentiable_module(digits_teacher) is not None
    assert differentiable_module(digits_run.surrogates["tree"]) is None

    class Wrong:
        def torch_module(self):
            return "not a module"

    with pytest.raises(TypeError, match="torch_module"):
        differentiable_module(Wrong())


def test_bad_inputs(digits_run, subset):
    X, y = subset
    with pytest.raises(ValueError, match="expecting 64 features"):
        robustness_report(digits_run.teacher, {}, X[:, :8], y)
    with pytest.raises(ValueError, match=">= 0"):
        robustness_report(digits_run.teacher, {}, X, y, sigmas=(-1.0,))
    with pytest.raises(ValueError, match="Inconsistent numbers of samples"):
        robustness_report(digits_run.teacher, {}, X, y[:5])
    other = type("S", (), {"n_features_in_": 10, "predict": lambda self, X: np.zeros(len(X))})()
    with pytest.raises(ValueError, match="surrogate 'other'"):
        robustness_report(digits_run.teacher, {"other": other}, X, y)
