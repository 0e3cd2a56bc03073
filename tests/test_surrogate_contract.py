"""One contract over the whole surrogate registry (imodels' model_api_test style).

For every name in SURROGATES: fit returns self; predict/predict_proba shapes; hard and soft
labels; a class absent from the soft labels keeps its column; clone; inside a Pipeline; and a
pickle-free save/load round trip that predicts identically; scikit-learn's check_estimator at
default parameters; names attached by ``set_names`` (what ``distill`` does).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import DataConversionWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from explain_distill.surrogates import SURROGATES, load_surrogate, save_surrogate
from explain_distill.surrogates._base import set_names

# Small settings so the whole registry fits in a few seconds (set_params, as distill would).
FAST = {
    "student": {"epochs": 40, "batch_size": 64, "random_state": 0, "progress": False, "device": "cpu"},
    "soft_tree": {"depth": 3, "epochs": 40, "learning_rate": 0.05, "weight_decay": 0.0, "random_state": 0, "device": "cpu"},
    "soft_tree_sparse": {"depth": 3, "epochs": 40, "learning_rate": 0.05, "weight_decay": 0.0, "random_state": 0,
                         "device": "cpu"},
    "tree": {"max_depth": 4, "random_state": 0},
    "rules": {"max_rules": 5, "random_state": 0},
}
K = 4


def _make(name):
    est = SURROGATES[name]()
    params = {k: v for k, v in FAST.get(name, {}).items() if k in est.get_params()}
    return est.set_params(**params)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(160, 6)).astype(np.float32)
    W = rng.normal(size=(6, K))
    Z = X @ W * 1.5
    Z[:, 3] = -30.0  # class 3 never has any mass
    P = np.exp(Z - Z.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    y = (X @ W).argmax(1)
    return X, P, y


@pytest.fixture(params=sorted(SURROGATES))
def name(request):
    return request.param


def test_fit_returns_self_and_shapes_with_soft_labels(name, data):
    X, P, _ = data
    est = _make(name)
    assert est.fit(X, P) is est
    proba = est.predict_proba(X[:17])
    assert proba.shape == (17, K)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    assert (proba >= 0).all()
    pred = est.predict(X[:17])
    assert pred.shape == (17,)
    np.testing.assert_array_equal(pred, est.classes_[proba.argmax(1)])
    np.testing.assert_array_equal(est.classes_, np.arange(K))
    assert est.n_features_in_ == X.shape[1]
    assert isinstance(est.n_params_, int) and est.n_params_ > 0


def test_absent_class_keeps_its_column(name, data):
    X, P, _ = data
    est = _make(name).fit(X, P)
    proba = est.predict_proba(X)
    assert proba.shape[1] == K
    # The teacher never gives class 3 mass: the surrogate keeps it well under uniform (1/K) and never predicts it.
    assert proba[:, 3].mean() < 0.5 / K
    assert (est.predict(X) != 3).all()


def test_hard_labels_and_learns_something(name, data):
    X, _, y = data
    est = _make(name).fit(X, y)
    np.testing.assert_array_equal(est.classes_, np.unique(y))
    assert est.predict_proba(X).shape == (len(X), len(np.unique(y)))
    assert set(np.unique(est.predict(X))) <= set(np.unique(y))
    # Better than the majority class: every surrogate learns from the labels.
    assert np.mean(est.predict(X) == y) > np.bincount(y).max() / len(y)


def test_string_hard_labels_come_back_as_strings(name, data):
    X, _, y = data
    labels = np.array(["a", "b", "c", "d"])[y]
    est = _make(name).fit(X, labels)
    assert set(est.predict(X[:20])) <= set(labels)


def test_clone_is_unfitted_with_same_params(name, data):
    X, P, _ = data
    est = _make(name).fit(X, P)
    c = clone(est)
    assert c.get_params() == est.get_params()
    assert not any(k.endswith("_") and not k.startswith("_") and k in vars(c) for k in vars(est))


def test_inside_a_pipeline(name, data):
    X, P, _ = data
    pipe = make_pipeline(StandardScaler(), _make(name))
    assert pipe.fit(X, P) is pipe
    assert pipe.predict_proba(X[:5]).shape == (5, K)
    assert pipe.predict(X[:5]).shape == (5,)


def test_save_load_round_trip(name, data, tmp_path):
    X, P, _ = data
    est = _make(name).fit(X, P)
    save_surrogate(est, tmp_path / name, name=name)
    assert (tmp_path / f"{name}.safetensors").is_file() and (tmp_path / f"{name}.json").is_file()
    back = load_surrogate(tmp_path / name)
    assert type(back) is type(est)
    np.testing.assert_allclose(back.predict_proba(X), est.predict_proba(X), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    assert back.n_params_ == est.n_params_


def test_predict_before_fit_raises(name, data):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        _make(name).predict(data[0])


def test_wrong_number_of_features_is_named(name, data):
    X, P, _ = data
    est = _make(name).fit(X, P)
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :3])


# ---------------------------------------------------------------------------- scikit-learn's own checks
# Every registered surrogate at its default parameters, with no expected failures: a (n, 1) y warns
# (DataConversionWarning) and is ravelled, integer sample weights equal repeated rows.
@parametrize_with_checks([SURROGATES[n]() for n in sorted(SURROGATES)])
def test_check_estimator_at_default_parameters(estimator, check):
    check(estimator)


def test_a_column_vector_y_warns_and_is_read_as_hard_labels(name, data):
    X, _, y = data
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        est = _make(name).fit(X, y[:, None])
    np.testing.assert_array_equal(est.classes_, np.unique(y))


# ---------------------------------------------------------------------------- names
def test_set_names_gives_names_without_changing_predictions(name, data, tmp_path):
    X, P, _ = data
    est = _make(name).fit(X, P)
    before = est.predict_proba(X)
    features = [f"f<{j}>" for j in range(X.shape[1])]
    set_names(est, feature_names=features, class_names=["a", "b", "c", "d"])
    assert list(est.feature_names_in_) == features and list(est.class_names_) == ["a", "b", "c", "d"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a plain array is read by position: no "X does not have valid feature names"
        np.testing.assert_array_equal(est.predict_proba(X), before)
    save_surrogate(est, tmp_path / name, name=name)
    back = load_surrogate(tmp_path / name)
    assert list(back.feature_names_in_) == features and list(back.class_names_) == ["a", "b", "c", "d"]
    # refitting on unnamed arrays drops the names, as scikit-learn does
    est.fit(X, P)
    assert not hasattr(est, "feature_names_in_") and not hasattr(est, "class_names_")


def test_set_names_rejects_the_wrong_count(data):
    X, P, _ = data
    est = _make("tree").fit(X, P)
    with pytest.raises(ValueError, match="feature_names has 2 entries but the data has 6"):
        set_names(est, feature_names=["a", "b"])
    with pytest.raises(ValueError, match="class_names has 3 entries but the data has 4"):
        set_names(est, class_names=["a", "b", "c"])


def test_a_data_frame_is_still_checked_by_name(data):
    pd = pytest.importorskip("pandas")
    X, P, _ = data
    cols = [f"c{j}" for j in range(X.shape[1])]
    est = _make("tree").fit(pd.DataFrame(X, columns=cols), P)
    assert list(est.feature_names_in_) == cols
    assert est.export_text().splitlines()[0].startswith("|--- c")
    with pytest.raises(ValueError, match="feature names should match"):
        est.predict(pd.DataFrame(X, columns=cols[::-1]))
