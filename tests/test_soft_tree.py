"""SoftDecisionTree: estimator contract, the paper's maths against hand computations, inspection,
persistence, streaming from memmaps and the messages for bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from explain_distill.analysis.tree_view import TreeView
from explain_distill.surrogates import SURROGATES, load_surrogate, save_surrogate
from explain_distill.surrogates.soft_tree import SoftDecisionTree, _SoftTreeModule, _train_step_loss

# small and quick for the ~50 estimator checks (the defaults are tuned for 1000s of samples at depth 8)
FAST = dict(depth=3, epochs=30, learning_rate=0.05, weight_decay=1.0, device="cpu", random_state=0)

EXPECTED_FAILED = {
    "check_supervised_y_2d": "a 2-D y is read as soft labels (n, K) by design; a (n, 1) column is taken as hard "
    "labels without a DataConversionWarning",
}


@parametrize_with_checks([SoftDecisionTree(**FAST)], expected_failed_checks=lambda est: EXPECTED_FAILED)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=240, centers=4, n_features=5, cluster_std=2.0, random_state=0)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def fitted(blobs):
    X, y = blobs
    return SoftDecisionTree(**FAST).fit(X, y)


def test_registry_and_fitted_attributes(fitted, blobs):
    X, y = blobs
    assert SURROGATES["soft_tree"] is SoftDecisionTree
    m = fitted
    assert (m.n_inner_, m.n_leaves_) == (7, 8)
    assert m.inner_weight_.shape == (7, 5) and m.inner_weight_.dtype == np.float32
    assert m.inner_bias_.shape == (7,) and m.beta_.shape == (7,) and (m.beta_ > 0).all()
    assert m.leaf_logits_.shape == (8, 4)
    np.testing.assert_allclose(m.leaf_distributions_.sum(axis=1), 1.0)
    assert m.n_params_ == 7 * 5 + 7 + 7 + 8 * 4
    np.testing.assert_allclose(m.leaf_mass_.sum(), 1.0, rtol=1e-9)
    assert (m.predict(X) == y).mean() > 0.8


def test_predictions_are_the_two_mixtures(fitted, blobs):
    X, _ = blobs
    m = fitted
    pp = m.path_probabilities(X)
    assert pp.shape == (len(X), 8)
    np.testing.assert_allclose(pp.sum(axis=1), 1.0, rtol=1e-9)
    np.testing.assert_allclose(m.predict_proba(X), pp @ m.leaf_distributions_, rtol=1e-9)
    np.testing.assert_array_equal(m.predict(X), m.classes_[m.predict_proba(X).argmax(1)])
    leaves = m.apply(X)
    assert ((leaves >= 7) & (leaves < 15)).all()
    np.testing.assert_allclose(m.predict_proba_max_path(X), m.leaf_distributions_[leaves - 7])
    np.testing.assert_array_equal(m.apply(X, how="argmax"), pp.argmax(1) + 7)
    with pytest.raises(ValueError, match="Unknown how"):
        m.apply(X, how="best")


def _reference_path_probabilities(m: SoftDecisionTree, x: np.ndarray) -> np.ndarray:
    """A recursive, per-node computation of the leaf path probabilities of one sample."""
    out = np.zeros(m.n_leaves_)

    def walk(node: int, prob: float) -> None:
        if node >= m.n_inner_:
            out[node - m.n_inner_] = prob
            return
        z = m.beta_[node] * (float(np.dot(x, m.inner_weight_[node].astype(np.float64))) + m.inner_bias_[node])
        p = 1.0 / (1.0 + math.exp(-z))
        walk(2 * node + 1, prob * (1 - p))
        walk(2 * node + 2, prob * p)

    walk(0, 1.0)
    return out


def test_vectorised_paths_match_per_node_reference(fitted, blobs):
    X, _ = blobs
    pp = fitted.path_probabilities(X[:10])
    ref = np.stack([_reference_path_probabilities(fitted, x.astype(np.float64)) for x in X[:10]])
    np.testing.assert_allclose(pp, ref, rtol=1e-6, atol=1e-12)


def test_max_path_and_tree_view_agree(fitted, blobs):
    X, _ = blobs
    m = fitted
    view = TreeView.of(m, input_shape=(5,))
    assert view.kind == "oblique" and view.depth == 3 and len(view.nodes) == 15
    assert view.leaves() == list(range(7, 15))
    np.testing.assert_array_equal(view.leaf_of(X), m.apply(X))
    for i in (0, 3, 11):
        steps = m.max_path(X[i])
        assert len(steps) == 3 and steps[0][0] == 0
        nodes = [n for n, _, _ in steps]
        assert view.path(X[i]) == nodes + [int(m.apply(X[i : i + 1])[0])]
        for (node, resp, direction), nxt in zip(steps, nodes[1:] + [view.path(X[i])[-1]]):
            assert direction == ("right" if resp > 0 else "left")
            assert nxt == (2 * node + 2 if direction == "right" else 2 * node + 1)
            expected = float(X[i].astype(np.float64) @ m.inner_weight_[node] + m.inner_bias_[node])
            assert resp == pytest.approx(expected, rel=1e-5, abs=1e-6)
        rule = view.rule(view.path(X[i])[-1])
        assert rule.count("filter@") == 3 and rule.startswith("filter@0 ")
    # leaf values of the view are the leaf distributions; inner values are distributions too
    np.testing.assert_allclose(view.nodes[7].value, m.leaf_distributions_[0])
    np.testing.assert_allclose(view.nodes[0].value.sum(), 1.0)
    assert view.nodes[0].weights.shape == (5,) and view.nodes[0].beta == pytest.approx(m.beta_[0])


def test_loss_matches_hand_computation():
    gen = torch.Generator().manual_seed(0)
    mod = _SoftTreeModule(3, 2, 2, beta=1.5, learn_beta=True, gen=gen)
    x = torch.randn(4, 3, generator=gen)
    t = torch.softmax(torch.randn(4, 2, generator=gen), dim=1)
    lam = 0.3
    depth = mod.node_depth
    decay = 1 - 1 / 2.0**depth
    alpha_run = torch.full((3,), 0.5)
    loss = _train_step_loss(mod, x, t, alpha_run.clone(), decay, lam * 2.0**-depth)

    W, b = mod.weight.detach().double().numpy(), mod.bias.detach().double().numpy()
    beta = mod.log_beta.detach().exp().double().numpy()
    Q = torch.softmax(mod.leaf_logits.detach().double(), 1).numpy()
    X, T = x.double().numpy(), t.double().numpy()
    p = 1 / (1 + np.exp(-(X @ W.T + b) * beta))  # (4, 3)
    P = np.stack([(1 - p[:, 0]) * (1 - p[:, 1]), (1 - p[:, 0]) * p[:, 1], p[:, 0] * (1 - p[:, 2]), p[:, 0] * p[:, 2]], 1)
    data = np.mean(np.sum(P * -(T @ np.log(Q).T), axis=1))
    reach = np.stack([np.ones(4), 1 - p[:, 0], p[:, 0]], 1)
    a_batch = (reach * p).sum(0) / reach.sum(0)
    dec = np.array([0.0, 0.5, 0.5])
    a = dec * 0.5 + (1 - dec) * a_batch
    pen = -lam * np.sum(np.array([1, 0.5, 0.5]) * 0.5 * (np.log(a) + np.log(1 - a)))
    assert float(loss.detach()) == pytest.approx(data + pen, rel=1e-5)


def test_save_load_roundtrip(fitted, blobs, tmp_path):
    X, _ = blobs
    save_surrogate(fitted, tmp_path / "st", name="soft_tree")
    back = load_surrogate(tmp_path / "st")
    assert isinstance(back, SoftDecisionTree) and back.depth == fitted.depth
    np.testing.assert_allclose(back.predict_proba(X), fitted.predict_proba(X), rtol=1e-12)
    np.testing.assert_array_equal(back.apply(X), fitted.apply(X))
    np.testing.assert_array_equal(back.classes_, fitted.classes_)


def test_filters_as_images(blobs):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 12)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    m = SoftDecisionTree(depth=2, epochs=5, input_shape=(3, 4), device="cpu", random_state=0).fit(X, y)
    f = m.filters_()
    assert f.shape == (3, 3, 4)
    np.testing.assert_array_equal(f[1].ravel(), m.inner_weight_[1])
    assert m.filters_((1, 12)).shape == (3, 1, 12)
    with pytest.raises(ValueError, match="holds 10 values"):
        m.filters_((2, 5))


def test_soft_labels_and_memmap_streaming(blobs, tmp_path, monkeypatch):
    X, y = blobs
    P = np.full((len(y), 4), 0.05, dtype=np.float32)
    P[np.arange(len(y)), y] = 0.85
    mem = dict(depth=2, epochs=8, batch_size=32, device="cpu", random_state=1)
    in_memory = SoftDecisionTree(**mem).fit(X, P)
    assert in_memory.soft_fit_ and list(in_memory.classes_) == [0, 1, 2, 3]

    Xm = np.memmap(tmp_path / "X.dat", dtype=np.float32, mode="w+", shape=X.shape)
    Xm[:] = X
    Pm = np.memmap(tmp_path / "P.dat", dtype=np.float32, mode="w+", shape=P.shape)
    Pm[:] = P
    Xm.flush(), Pm.flush()
    Xr = np.memmap(tmp_path / "X.dat", dtype=np.float32, mode="r", shape=X.shape)
    Pr = np.memmap(tmp_path / "P.dat", dtype=np.float32, mode="r", shape=P.shape)
    sizes: list[int] = []
    real = torch.from_numpy

    def spy(a):
        sizes.append(len(a) if a.ndim else 0)
        return real(a)

    monkeypatch.setattr(torch, "from_numpy", spy)
    streamed = SoftDecisionTree(**mem).fit(Xr, Pr)
    monkeypatch.undo()
    rows = [s for s in sizes if s > 4]  # batch tensors (skip the per-feature statistics vectors)
    assert rows and max(rows) <= 32, "the memmap was copied whole instead of batch by batch"
    # same seed, same batches: the same tree up to float summation order
    np.testing.assert_allclose(streamed.predict_proba(X), in_memory.predict_proba(X), atol=1e-4)


def test_bad_input_messages(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match=r"depth must be in \[1, 30\]"):
        SoftDecisionTree(depth=0).fit(X, y)
    with pytest.raises(ValueError, match="needs about .* GiB"):
        SoftDecisionTree(depth=26, device="cpu").fit(X, y)
    logits = np.random.default_rng(0).normal(size=(len(X), 4))
    with pytest.raises(ValueError, match="Did you pass logits"):
        SoftDecisionTree(**FAST).fit(X, logits)
    Xn = X.copy()
    Xn[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SoftDecisionTree(**FAST).fit(Xn, y)
    with pytest.raises(NotFittedError):
        SoftDecisionTree().predict(X)
    m = SoftDecisionTree(depth=1, epochs=2, device="cpu").fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but SoftDecisionTree is expecting 5"):
        m.predict(X[:, :3])
    with pytest.raises(TypeError, match="device"):
        SoftDecisionTree(device=3).fit(X, y)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            SoftDecisionTree(device="cuda").fit(X, y)


def test_digits_soft_labels_are_faithful(digits, digits_teacher):
    """On held-out digits the tree distilled from soft labels agrees with the teacher."""
    P = digits_teacher.predict_proba(digits.X_train, temperature=4.0)
    teacher_test = digits_teacher.predict(digits.X_test)
    m = SoftDecisionTree(depth=5, epochs=40, device="cpu", random_state=0).fit(digits.X_train, P)
    fid = np.mean(m.predict(digits.X_test) == teacher_test)
    assert fid > 0.9
    assert m.filters_((8, 8)).shape == (31, 8, 8)


def test_fixed_beta_and_param_types(blobs):
    X, y = blobs
    m = SoftDecisionTree(depth=2, epochs=3, beta=2.5, learn_beta=False, device="cpu", random_state=0).fit(X, y)
    np.testing.assert_allclose(m.beta_, 2.5, rtol=1e-6)
    with pytest.raises(TypeError, match="compile must be True or False"):
        SoftDecisionTree(compile="yes").fit(X, y)
    with pytest.raises(TypeError, match="learn_beta"):
        SoftDecisionTree(learn_beta=1).fit(X, y)
    with pytest.raises(ValueError, match="lam must be >= 0"):
        SoftDecisionTree(lam=-1.0).fit(X, y)


def test_same_seed_same_tree(blobs):
    X, y = blobs
    a = SoftDecisionTree(depth=2, epochs=4, device="cpu", random_state=3).fit(X, y)
    b = SoftDecisionTree(depth=2, epochs=4, device="cpu", random_state=3).fit(X, y)
    c = SoftDecisionTree(depth=2, epochs=4, device="cpu", random_state=4).fit(X, y)
    np.testing.assert_array_equal(a.inner_weight_, b.inner_weight_)
    assert not np.array_equal(a.inner_weight_, c.inner_weight_)
