"""Shallow surrogates: scikit-learn conventions (estimator checks) and soft-label behaviour."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.naive_bayes import GaussianNB
from sklearn.utils.estimator_checks import parametrize_with_checks

from explain_distill.surrogates import (
    SURROGATES,
    SoftLabelGaussianNB,
    SoftLabelLogisticRegression,
    SoftLabelTreeClassifier,
    load_surrogate,
    save_surrogate,
)

SHALLOW = [SoftLabelTreeClassifier, SoftLabelLogisticRegression, SoftLabelGaussianNB]



def test_every_registered_shallow_surrogate_is_checked():
    shallow_names = {"tree", "logistic", "naive_bayes"}
    assert {SURROGATES[n] for n in shallow_names} == set(SHALLOW)


@parametrize_with_checks([cls(random_state=0) if "random_state" in cls().get_params() else cls() for cls in SHALLOW])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _soft(rng, n, K, absent=None):
    Z = rng.normal(size=(n, K)) * 2
    if absent is not None:
        Z[:, absent] = -50
    P = np.exp(Z - Z.max(1, keepdims=True))
    return P / P.sum(1, keepdims=True)


@pytest.mark.parametrize("cls", SHALLOW)
def test_soft_labels_with_an_absent_class_keep_its_column(cls, rng):
    X = rng.normal(size=(80, 5))
    P = _soft(rng, 80, 4, absent=2)
    est = cls().fit(X, P)
    proba = est.predict_proba(X)
    assert proba.shape == (80, 4)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    assert proba[:, 2].max() < 0.05
    np.testing.assert_array_equal(est.classes_, np.arange(4))


def test_tree_leaves_are_mean_distributions(rng):
    X = rng.normal(size=(200, 3))
    P = _soft(rng, 200, 3)
    est = SoftLabelTreeClassifier(max_depth=2, criterion="squared_error").fit(X, P)
    leaf = est.apply(X)
    proba = est.predict_proba(X)
    for lf in np.unique(leaf):
        np.testing.assert_allclose(proba[leaf == lf][0], P[leaf == lf].mean(0), atol=1e-6)


def test_entropy_criterion_splits_on_the_informative_feature(rng):
    X = rng.normal(size=(300, 4))
    p1 = 1 / (1 + np.exp(-4 * X[:, 2]))
    P = np.stack([1 - p1, p1], 1)
    est = SoftLabelTreeClassifier(max_depth=1, criterion="entropy").fit(X, P)
    assert est.tree_.feature[0] == 2
    assert abs(est.tree_.threshold[0]) < 0.3


def test_gaussian_nb_matches_sklearn_on_hard_labels(rng):
    X = rng.normal(size=(120, 4)) + np.repeat(np.arange(3), 40)[:, None]
    y = np.repeat(np.arange(3), 40)
    ours = SoftLabelGaussianNB().fit(X, y)
    ref = GaussianNB().fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.theta_, ref.theta_)


def test_gaussian_nb_soft_counts(rng):
    X = rng.normal(size=(50, 2))
    P = _soft(rng, 50, 2)
    nb = SoftLabelGaussianNB(var_smoothing=0.0).fit(X, P)
    np.testing.assert_allclose(nb.class_prior_, P.mean(0))
    mu = (P[:, 1:2] * X).sum(0) / P[:, 1].sum()
    np.testing.assert_allclose(nb.theta_[1], mu)
    var = (P[:, 1:2] * (X - mu) ** 2).sum(0) / P[:, 1].sum()
    np.testing.assert_allclose(nb.var_[1], var)


@pytest.mark.parametrize("cls", SHALLOW)
def test_bad_hyper_parameters_are_rejected_with_the_value(cls, rng):
    X, y = rng.normal(size=(20, 2)), np.arange(20) % 2
    bad = {
        SoftLabelTreeClassifier: {"criterion": "gini"},
        SoftLabelLogisticRegression: {"C": -1.0},
        SoftLabelGaussianNB: {"var_smoothing": -1.0},
    }[cls]
    with pytest.raises(ValueError, match=str(list(bad.values())[0]).replace("-", "\\-")):
        cls(**bad).fit(X, y)


def test_not_distributions_are_rejected(rng):
    X = rng.normal(size=(10, 2))
    with pytest.raises(ValueError, match="not probability distributions"):
        SoftLabelGaussianNB().fit(X, rng.normal(size=(10, 3)))


@pytest.mark.parametrize("name", ["tree", "naive_bayes", "rules", "logistic", "figs", "gam"])
def test_save_load_soft_fit(tmp_path, name, rng):
    X = rng.normal(size=(60, 3))
    P = _soft(rng, 60, 3)
    est = SURROGATES[name]().fit(X, P)
    save_surrogate(est, tmp_path / name, name=name)
    back = load_surrogate(tmp_path / name)
    np.testing.assert_allclose(back.predict_proba(X), est.predict_proba(X))
    assert back.n_params_ == est.n_params_


@pytest.mark.parametrize("K", [2, 3, 5])
def test_soft_logistic_equals_sklearn_on_replicated_rows(K):
    # Differential test: our direct L-BFGS on the soft cross-entropy must give the model
    # scikit-learn fits when every sample enters once per class with weight P_ik.
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(K)
    X = rng.normal(size=(150, 4))
    Z = X @ rng.normal(size=(4, K))
    P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    ours = SoftLabelLogisticRegression(tol=1e-8, max_iter=5000).fit(X, P)
    ref = LogisticRegression(tol=1e-10, max_iter=5000).fit(
        np.repeat(X, K, axis=0), np.tile(np.arange(K), len(X)), sample_weight=P.ravel()
    )
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-4)


def test_large_logistic_warm_starts_from_a_subsample_and_reports_its_budget():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 30))
    Z = X @ rng.normal(size=(30, 4))
    P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    cold = SoftLabelLogisticRegression(tol=1e-8, max_iter=5000, warm_start_cells=None).fit(X, P)
    assert cold.warm_start_ is None and cold.converged_
    warm = SoftLabelLogisticRegression(tol=1e-8, max_iter=5000, warm_start_cells=20000, refine_iter=2000).fit(X, P)
    # 60,000 cells over a budget of 20,000: every 3rd row first, then all rows from there
    assert warm.warm_start_["rows"] == 667 and warm.warm_start_["of"] == 2000 and warm.converged_
    assert warm.n_iter_[0] == warm.warm_start_["iterations"] + warm.warm_start_["refine_iterations"]
    np.testing.assert_allclose(warm.predict_proba(X), cold.predict_proba(X), atol=1e-3)  # the same minimiser
    capped = SoftLabelLogisticRegression(tol=1e-12, max_iter=5000, warm_start_cells=20000, refine_iter=1).fit(X, P)
    assert not capped.converged_ and capped.warm_start_["refine_iterations"] == 1  # the budget, stated, no warning
