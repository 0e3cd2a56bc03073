"""Attributions: the batched path equals plain Captum; agreement scores; attention maps; bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

import explain_distill as ed
from explain_distill.analysis import AttributionReport, attribution_report, run_analyses
from explain_distill.analysis.attribution import (
    METHODS,
    attention_map,
    attribute,
    attribution_agreement,
    feature_ablation,
    gradcam,
)


@pytest.fixture(scope="module")
def examples(digits, digits_teacher):
    X = digits.X_test[:4]
    return X, digits_teacher.predict(X)


@pytest.mark.parametrize("method", METHODS)
def test_batched_equals_plain_captum_cnn(digits_teacher, examples, method):
    X, t = examples
    kw = dict(method=method, n_steps=6, batch_size=3, seed=4)
    fast = attribute(digits_teacher, X, t, batched=True, **kw)
    naive = attribute(digits_teacher, X, t, batched=False, **kw)
    assert fast.shape == X.shape and fast.dtype == np.float32
    assert np.abs(fast).max() > 0
    np.testing.assert_allclose(fast, naive, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["IntegratedGradients", "DeepLift"])
def test_batched_equals_plain_captum_mlp_and_chunks_do_not_matter(iris, iris_teacher, method):
    X = iris.X_test[:12]
    t = iris_teacher.predict(X)
    naive = attribute(iris_teacher, X, t, method=method, n_steps=16, batched=False, batch_size=100)
    for bs in (1, 5, 100):
        np.testing.assert_allclose(attribute(iris_teacher, X, t, method=method, n_steps=16, batch_size=bs), naive, rtol=1e-4, atol=1e-6)


def test_integrated_gradients_completeness(iris, iris_teacher):
    # sum_i IG_i(x) ~= f_t(x) - f_t(baseline) (Sundararajan et al. 2017): a check that no step was lost.
    X = iris.X_test[:6]
    t = iris_teacher.predict(X)
    ig = attribute(iris_teacher, X, t, method="IntegratedGradients", n_steps=200)
    z = iris_teacher.logits(X)[np.arange(len(X)), t]
    z0 = iris_teacher.logits(np.zeros_like(X))[0, t]
    np.testing.assert_allclose(ig.sum(axis=1), z - z0, atol=2e-2 * max(1.0, np.abs(z - z0).max()))


def test_feature_ablation_equals_a_hand_ablation(digits_run, examples):
    X, t = examples
    est = digits_run.surrogates["logistic"]
    fa = feature_ablation(est, X, t)
    np.testing.assert_allclose(feature_ablation(est, X, t, batch_size=1, perturbations_per_eval=3), fa, atol=1e-6)
    p = est.predict_proba(X)[np.arange(len(X)), t]
    for j in (0, 20, 37):
        Xa = X.copy()
        Xa[:, j] = 0.0
        np.testing.assert_allclose(fa[:, j], p - est.predict_proba(Xa)[np.arange(len(X)), t], atol=1e-5)


def test_agreement_scores():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(6, 30))
    same = attribution_agreement(A, A, top_k=5)
    assert same["spearman"] == pytest.approx(1.0) and same["top_k"] == 1.0 and same["sign"] == 1.0
    neg = attribution_agreement(A, -A, top_k=5)
    assert neg["spearman"] == pytest.approx(-1.0) and neg["top_k"] == 1.0 and neg["sign"] == 0.0
    B = rng.normal(size=(6, 30))
    got = attribution_agreement(A, B, top_k=5, classes=np.array([0, 0, 1, 1, 1, 2]), class_names=["a", "b", "c"])
    ref = [spearmanr(a, b).statistic for a, b in zip(A, B)]
    np.testing.assert_allclose(got["per_sample"]["spearman"], ref)
    assert got["spearman"] == pytest.approx(np.mean(ref))
    assert got["per_class"]["b"]["spearman"] == pytest.approx(np.mean(ref[2:5]))
    assert got["per_class"]["c"]["n"] == 1
    const = attribution_agreement(A, np.zeros_like(A))
    assert np.isnan(const["spearman"]) and const["n_defined"] == 0
    with pytest.raises(ValueError, match="same shape"):
        attribution_agreement(A, B[:, :3])


def test_attention_maps_cnn(digits_teacher, examples):
    X, t = examples
    cam = gradcam(digits_teacher, X, t)
    att = attention_map(digits_teacher, X)
    assert cam.shape == X.shape and att.shape == X.shape
    assert (cam >= 0).all() and (att >= 0).all() and att.max() > 0
    np.testing.assert_allclose(gradcam(digits_teacher, X, t, batch_size=1), cam, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(attention_map(digits_teacher, X, batch_size=3), att, rtol=1e-5, atol=1e-6)
    # Same map as the one the AT loss uses (Teacher.attention_maps), before upsampling.
    np.testing.assert_allclose(attention_map(digits_teacher, X, upsample=False), digits_teacher.attention_maps(X), rtol=1e-5, atol=1e-6)
    assert np.linalg.norm(attention_map(digits_teacher, X, upsample=False), axis=1) == pytest.approx(np.ones(len(X)))


def test_attention_maps_signal_and_mlp(iris_teacher, iris):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool1d(2), nn.Conv1d(4, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(40, 3))
    signal_teacher = ed.Teacher(net, class_names=["a", "b", "c"], input_shape=(2, 20), device="cpu")
    X = np.random.default_rng(0).normal(size=(4, 40)).astype(np.float32)
    t = signal_teacher.predict(X)
    cam = gradcam(signal_teacher, X, t)
    assert cam.shape == (4, 40)
    np.testing.assert_allclose(cam[:, :20], cam[:, 20:])  # one map per position, shared by both channels
    assert attention_map(signal_teacher, X).shape == (4, 40)
    assert gradcam(iris_teacher, iris.X_test[:3], [0, 1, 2]) is None


def test_bad_input_rejected_before_captum(digits_teacher, examples, digits_run):
    X, t = examples
    with pytest.raises(ValueError, match="target out of range"):
        attribute(digits_teacher, X, np.full(len(X), 10))
    with pytest.raises(ValueError, match="target out of range"):
        attribute(digits_teacher, X, -1)
    with pytest.raises(ValueError, match="baselines have shape"):
        attribute(digits_teacher, X, t, baselines=np.zeros(10))
    with pytest.raises(ValueError, match="baselines have 2 rows"):
        attribute(digits_teacher, X, t, baselines=np.zeros((2, 64)))
    with pytest.raises(ValueError, match="not differentiable"):
        attribute(digits_run.surrogates["tree"], X, t)
    with pytest.raises(ValueError, match="Unknown method"):
        attribute(digits_teacher, X, t, method="LIME")
    other = ed.SURROGATES["logistic"]().fit(X[:, :10], np.eye(10)[[0, 1, 2, 3]] * 0.9 + 0.01)
    with pytest.raises(ValueError, match="surrogate 'other'"):
        attribution_report(digits_teacher, {"other": other}, X)
    with pytest.raises(ValueError, match="expecting 10 features"):
        feature_ablation(other, X, t)


class _NaNStudent:
    """A differentiable surrogate whose network returns NaN: must be reported, never averaged in."""

    n_features_in_ = 64

    def torch_module(self):
        torch.manual_seed(0)
        lin = nn.Linear(64, 10)

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = lin

            def forward(self, x):
                return self.lin(x) * torch.tensor(float("nan"))

        return M()

    def predict(self, X):
        return np.zeros(len(X), dtype=int)


def test_nan_attributions_are_reported(digits_teacher, examples):
    X, _ = examples
    with pytest.warns(RuntimeWarning, match="NaN"):
        rep = attribution_report(digits_teacher, {"nan": _NaNStudent()}, X, n_steps=4)
    assert rep.nan_count["nan"] == X.size and rep.nan_count["teacher"] == 0
    assert rep.agreement["nan"]["nan_rows"] == len(X) and np.isnan(rep.agreement["nan"]["spearman"])
    assert rep.to_json()["spearman"]["nan"] is None


def test_run_analyses_on_digits_run(digits_run):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        an = run_analyses(digits_run, n_examples=4, sigmas=(0.0, 0.5), epsilons=(0.0, 0.1), n_steps=8)
    assert set(an.fidelity) == {"tree", "logistic"}
    att = an.attribution
    assert isinstance(att, AttributionReport)
    assert len(att.indices) == 4 and len(set(att.targets.tolist())) == 4  # spread over classes
    np.testing.assert_allclose(att.inputs, digits_run.dataset.X_test[att.indices])
    assert att.methods["tree"] == "FeatureAblation" and att.agreement["tree"]["against"] == "teacher:FeatureAblation"
    assert set(att.gradcam) == {"teacher"} and att.gradcam["teacher"].shape == (4, 64)
    doc = an.to_json()
    text = json.dumps(doc, allow_nan=False)
    assert json.loads(text)["fidelity"]["tree"]["agreement"] == pytest.approx(digits_run.metrics["surrogates"]["tree"]["fidelity"])
    for key in ("noise", "fgsm"):
        assert key in doc["robustness"]
    for key in ("spearman", "top_k", "sign", "gradcam"):
        assert set(doc["attribution"][key]) >= ({"teacher"} if key == "gradcam" else {"tree", "logistic"})
    assert an.fidelity["tree"].leaves  # TreeView wired in for the tree surrogate


def test_feature_ablation_over_patches_when_inputs_are_many():
    from explain_distill.analysis.attribution import ABLATION_GROUPS_ABOVE, ablation_groups

    assert ablation_groups(64, (1, 8, 8)) == (None, None)  # few inputs: one at a time
    mask, info = ablation_groups(784, (1, 28, 28))
    assert info == {"kind": "patches", "side": 2, "groups": 196, "features": 784} and 196 <= ABLATION_GROUPS_ABOVE
    img = mask.reshape(28, 28)
    assert img[0, 0] == img[1, 1] != img[0, 2] and img[2, 0] == img[3, 1] != img[0, 0]
    mask3, info3 = ablation_groups(3 * 32 * 32, (3, 32, 32))  # every channel of a patch together
    assert info3["side"] == 2 and (mask3.reshape(3, 32, 32)[0] == mask3.reshape(3, 32, 32)[2]).all()
    assert ablation_groups(1000)[1] == {"kind": "runs", "length": 4, "groups": 250, "features": 1000}

    class Linear:  # p(target) = sigmoid(w . x): the drop of removing a patch is the drop of all its pixels together
        n_features_in_ = 784

        def __init__(self):
            self.w = np.random.default_rng(0).normal(size=784).astype(np.float32) / 10

        def predict_proba(self, X):
            p = 1 / (1 + np.exp(-(np.asarray(X) @ self.w)))
            return np.stack([1 - p, p], axis=1)

    m = Linear()
    X = np.random.default_rng(1).normal(size=(3, 784)).astype(np.float32)
    fa = feature_ablation(m, X, np.ones(3, dtype=np.int64), feature_mask=mask)
    Xa = X.copy()
    Xa[:, mask == 5] = 0.0
    drop = m.predict_proba(X)[:, 1] - m.predict_proba(Xa)[:, 1]
    np.testing.assert_allclose(fa[:, mask == 5], np.repeat(drop[:, None], 4, axis=1), atol=1e-5)
    with pytest.raises(ValueError, match="feature_mask has 10 entries"):
        feature_ablation(m, X, np.ones(3, dtype=np.int64), feature_mask=np.zeros(10))
