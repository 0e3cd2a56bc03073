"""SoftDecisionTree: estimator contract, the paper's maths against hand computations, inspection,
persistence, streaming from memmaps and the messages for bad input."""

from __future__ import annotations

import copy

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from explain_distill.analysis.tree_view import TreeView
from explain_distill.surrogates import SURROGATES, load_surrogate, save_surrogate, soft_tree
from explain_distill.surrogates.soft_tree import (
    SoftDecisionTree,
    _level_slices,
    _SoftTreeModule,
    _train_step_loss,
    _training_layout,
    _Workspace,
)

# small and quick for the ~50 estimator checks (the defaults are tuned for 1000s of samples at depth 8)
FAST = dict(depth=3, epochs=30, learning_rate=0.05, weight_decay=1.0, device="cpu", random_state=0)


@parametrize_with_checks([SoftDecisionTree(**FAST)])
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

    weight, bias, log_beta, leaf_logits = mod.heap_order()
    W, b = weight.double().numpy(), bias.double().numpy()
    beta = log_beta.exp().double().numpy()
    Q = torch.softmax(leaf_logits.double(), 1).numpy()
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


def _autograd_loss(mod, x, pb, alpha_run, decay, penalty_w):
    """The plain formulation in heap order, differentiated by autograd: the reference for _TreeLoss."""
    perm, leaf_perm, _ = _training_layout(mod.depth, x.device)
    W, b, log_beta, leaves = mod.weight[perm], mod.bias[perm], mod.log_beta[perm], mod.leaf_logits[leaf_perm]
    p = torch.sigmoid(torch.nn.functional.linear(x, W, b) * log_beta.exp())
    mu = torch.ones(x.shape[0], 1, dtype=x.dtype)
    reach = []
    for lo, hi in _level_slices(mod.depth):
        reach.append(mu)
        mu = torch.stack((mu * (1 - p[:, lo:hi]), mu * p[:, lo:hi]), 2).reshape(x.shape[0], -1)
    reach = torch.cat(reach, 1)
    data = (mu * -(pb @ torch.log_softmax(leaves, 1).T)).sum(1).mean()
    alpha_b = (reach * p).sum(0) / reach.sum(0).clamp_min(1e-12)
    run = alpha_run[perm]
    with torch.no_grad():
        run.mul_(decay).add_((1 - decay) * alpha_b)
        alpha_run.copy_(run[perm])  # the layout permutation is its own inverse
    alpha = (alpha_b + (run - alpha_b).detach()).clamp(1e-6, 1 - 1e-6)
    return data - (penalty_w * 0.5 * (torch.log(alpha) + torch.log1p(-alpha))).sum()


@pytest.mark.parametrize("depth", [1, 2, 3, 6])
def test_hand_derived_backward_equals_autograd(depth):
    gen = torch.Generator().manual_seed(depth)
    mod = _SoftTreeModule(7, depth, 4, beta=1.3, learn_beta=True, gen=gen).double()
    x = torch.randn(33, 7, generator=gen, dtype=torch.float64) * 2
    pb = torch.softmax(torch.randn(33, 4, generator=gen, dtype=torch.float64), dim=1)
    nd = mod.node_depth
    decay, penalty_w = 1 - 1 / 2.0**nd, 0.3 * 2.0**-nd
    run0 = torch.rand(2**depth - 1, generator=gen, dtype=torch.float64) * 0.8 + 0.1
    out = []
    for loss_fn in (_autograd_loss, _train_step_loss):
        mod.zero_grad()
        run = run0.clone()
        loss = loss_fn(mod, x, pb, run, decay, penalty_w)
        loss.backward()
        out.append((loss.detach(), run, [q.grad.clone() for q in mod.parameters()]))
    (l_ref, run_ref, g_ref), (l_fast, run_fast, g_fast) = out
    torch.testing.assert_close(l_fast, l_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(run_fast, run_ref, rtol=1e-12, atol=1e-12)
    assert len(g_fast) == 4
    for gf, gr in zip(g_fast, g_ref):
        torch.testing.assert_close(gf, gr, rtol=1e-10, atol=1e-12)
    assert all(float(g.abs().max()) > 0 for g in g_ref)  # every parameter really gets a gradient


def test_float32_backward_as_accurate_as_autograd_with_saturated_splits():
    """Late in training splits saturate and some nodes are reached by almost no sample, so their
    penalty gradients are huge.  The hand-derived float32 backward must lose no more accuracy than
    autograd does in float32 (a V_left + p (V_right - V_left) sweep loses 6x more here)."""
    gen = torch.Generator().manual_seed(0)
    mod = _SoftTreeModule(4, 3, 3, beta=1.0, learn_beta=True, gen=gen)
    perm, _, _ = _training_layout(3, torch.device("cpu"))
    W, b = torch.zeros(7, 4), torch.zeros(7)
    W[0, 0] = 1.0  # the root splits on feature 0
    W[2, 1], b[2] = 0.1, 16.0  # node 2 sends (almost) everyone right: p ~ 1 - 1e-7
    W[5, 2] = 1.0  # node 5, its left child, is reached by almost no sample
    W[1, 3], W[3, 1], W[4, 2], W[6, 3] = 1.0, 1.0, 1.0, 1.0
    run_heap = torch.full((7,), 0.5)
    run_heap[5] = 1e-5
    with torch.no_grad():
        mod.weight.copy_(W[perm])
        mod.bias.copy_(b[perm])
        mod.leaf_logits.normal_(0, 1, generator=gen)
    x = torch.randn(512, 4, generator=gen)
    pb = torch.softmax(torch.randn(512, 3, generator=gen), dim=1)
    nd = mod.node_depth
    decay, penalty_w = 1 - 1 / 2.0**nd, 0.1 * 2.0**-nd
    run0 = run_heap[perm]
    ref64 = copy.deepcopy(mod).double()
    _autograd_loss(ref64, x.double(), pb.double(), run0.double(), decay.double(), penalty_w.double()).backward()
    ref32 = copy.deepcopy(mod)
    _autograd_loss(ref32, x, pb, run0.clone(), decay, penalty_w).backward()
    _train_step_loss(mod, x, pb, run0.clone(), decay, penalty_w).backward()
    for ours, auto32, exact in zip(mod.parameters(), ref32.parameters(), ref64.parameters()):
        scale = exact.grad.abs().max()
        err_ours = float((ours.grad.double() - exact.grad).abs().max() / scale)
        err_auto = float((auto32.grad.double() - exact.grad).abs().max() / scale)
        assert err_ours <= 1.5 * err_auto + 1e-6, (err_ours, err_auto)


def _random_step(n_features: int, depth: int, n_classes: int, n: int):
    """A fresh module, a batch of inputs and soft targets, and the penalty arguments of a step."""
    gen = torch.Generator().manual_seed(0)
    mod = _SoftTreeModule(n_features, depth, n_classes, beta=1.0, learn_beta=True, gen=gen)
    x = torch.randn(n, n_features, generator=gen)
    pb = torch.softmax(torch.randn(n, n_classes, generator=gen), dim=1)
    nd = mod.node_depth
    return mod, x, pb, (torch.full((2**depth - 1,), 0.5), 1 - 1 / 2.0**nd, 0.1 * 2.0**-nd)


def test_low_precision_step_close_to_float32():
    mod, x, pb, penalty_args = _random_step(20, 4, 3, 64)
    grads = []
    for low in (False, True):
        mod.zero_grad()
        loss = _train_step_loss(mod, x, pb, *penalty_args, low)
        loss.backward()
        grads.append((loss.detach(), mod.weight.grad.clone()))
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=2e-2, atol=1e-3)
    cos = torch.nn.functional.cosine_similarity(grads[1][1].flatten(), grads[0][1].flatten(), dim=0)
    assert float(cos) > 0.99


def test_workspace_reuse_refuses_a_stale_backward():
    mod, x, pb, penalty_args = _random_step(5, 3, 2, 16)
    ws = _Workspace()
    first = _train_step_loss(mod, x, pb, *penalty_args, False, ws)
    _train_step_loss(mod, x[:8], pb[:8], *penalty_args, False, ws)  # overwrites the buffers the first saved
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        first.backward()


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


def _memmaps(tmp_path, X, P):
    for name, a in (("X", X), ("P", P)):
        m = np.memmap(tmp_path / f"{name}.dat", dtype=np.float32, mode="w+", shape=a.shape)
        m[:] = a
        m.flush()
    return tuple(np.memmap(tmp_path / f"{n}.dat", dtype=np.float32, mode="r", shape=a.shape) for n, a in (("X", X), ("P", P)))


def test_soft_labels_and_memmap_streaming(blobs, tmp_path, monkeypatch):
    """A memmap is streamed in contiguous blocks, never copied whole; with one block covering every
    row the streamed fit visits the rows in the in-memory order and trains the same tree."""
    X, y = blobs
    P = np.full((len(y), 4), 0.05, dtype=np.float32)
    P[np.arange(len(y)), y] = 0.85
    mem = dict(depth=2, epochs=8, batch_size=32, device="cpu", random_state=1)
    in_memory = SoftDecisionTree(**mem).fit(X, P)
    assert in_memory.soft_fit_ and list(in_memory.classes_) == [0, 1, 2, 3]
    assert in_memory._fit_info["in_memory"]
    Xr, Pr = _memmaps(tmp_path, X, P)

    monkeypatch.setattr(soft_tree, "_STREAM_BLOCKS", {"block_rows": len(X), "unit_blocks": 1})
    same = SoftDecisionTree(**mem).fit(Xr, Pr)
    assert not same._fit_info["in_memory"]
    np.testing.assert_allclose(same.inner_weight_, in_memory.inner_weight_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(same.predict_proba(X), in_memory.predict_proba(X), atol=1e-6)

    # small blocks: reads bounded by the chunk sizes (statistics, leaf masses) and by a unit (batches)
    monkeypatch.setattr(soft_tree, "_STREAM_BLOCKS", {"block_rows": 4, "unit_blocks": 8})
    monkeypatch.setattr(soft_tree, "_CHUNK", 48)
    monkeypatch.setattr(SoftDecisionTree, "_rows_per_chunk", lambda self, *a: 48)
    sizes: list[int] = []
    real = torch.from_numpy

    def spy(a):
        sizes.append(len(a) if a.ndim else 0)
        return real(a)

    monkeypatch.setattr(torch, "from_numpy", spy)
    streamed = SoftDecisionTree(**{**FAST, "batch_size": 32}).fit(Xr, Pr)
    monkeypatch.setattr(torch, "from_numpy", real)
    rows = [s for s in sizes if s > 5]  # row chunks (skip the per-feature statistics vectors)
    assert rows and max(rows) <= 48, f"the memmap was copied in chunks of up to {max(rows)} rows"
    # another order of the same rows: a different tree, as good as the in-memory one (0.99 on these blobs)
    assert (streamed.predict(X) == y).mean() > 0.95


def test_epoch_plan_covers_every_row_once():
    gen = torch.Generator().manual_seed(0)
    plan = soft_tree._epoch_plan(53, 5, 3, gen)
    assert len(plan) == 4  # 11 blocks (the last of 3 rows), 3 per unit
    rows = np.concatenate([np.concatenate([np.arange(lo, hi) for lo, hi in ranges])[perm.numpy()] for ranges, perm in plan])
    np.testing.assert_array_equal(np.sort(rows), np.arange(53))
    starts = sorted(lo for ranges, _ in plan for lo, _ in ranges)
    assert starts == list(range(0, 53, 5))  # contiguous blocks, each once
    assert [lo for lo, _ in plan[0][0]] != [0, 5, 10]  # blocks in a shuffled order
    # one block covering all rows: the in-memory order, randperm(n)
    one = soft_tree._epoch_plan(53, 53, 1, torch.Generator().manual_seed(7))
    np.testing.assert_array_equal(one[0][1].numpy(), torch.randperm(53, generator=torch.Generator().manual_seed(7)).numpy())


@pytest.mark.parametrize("batch", [7, 16, 53])
def test_block_stream_visits_every_row_once_per_epoch(batch):
    """Batches run on across units (two buffers); every row once per epoch, rows shuffled within units."""
    n = 53
    X = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), dtype=np.float32)
    P = np.eye(4, dtype=np.float32)[np.arange(n) % 4]
    stream = soft_tree._BlockStream(
        X, P, batch=batch, device=torch.device("cpu"), x_dtype=torch.float32, mean=np.zeros(3), std=np.ones(3),
        block_rows=5, unit_blocks=3,
    )
    xs, ps = torch.empty(batch, 3), torch.empty(batch, 4)
    gen = torch.Generator().manual_seed(0)
    orders = []
    for _ in range(2):
        seen, sizes = [], []
        for r in stream.epoch(gen, batch, xs, ps):
            sizes.append(r)
            ids = xs[:r, 0].numpy().astype(int)
            np.testing.assert_array_equal(xs[:r].numpy(), X[ids])  # whole rows, standardised (mean 0, std 1)
            np.testing.assert_array_equal(ps[:r].numpy(), P[ids])  # labels travel with their rows
            seen.append(ids)
        order = np.concatenate(seen)
        np.testing.assert_array_equal(np.sort(order), np.arange(n))
        assert sizes == [batch] * (n // batch) + ([n % batch] if n % batch else [])
        orders.append(order)
    assert not np.array_equal(orders[0], orders[1])  # a fresh order each epoch
    assert not np.array_equal(orders[0][:15], np.sort(orders[0][:15]))  # rows shuffled within the first unit
    stream.close()


def test_a_knob_set_on_the_package_reaches_the_module_that_reads_it(monkeypatch):
    """soft_tree is a package of modules: tests and benchmarks still set its knobs on the package
    (``soft_tree._CHUNK = 48``, ``soft_tree._TRITON = False``), and the modules that read them see it."""
    from explain_distill.surrogates.soft_tree import estimators, feeds, loss, trainer

    def never_fits(*args, **kwargs):
        return False

    for name, value, readers in (
        ("_CHUNK", 48, (feeds, estimators)),
        ("_STREAM_BLOCKS", {"block_rows": 4}, (feeds,)),
        ("_STREAM_BYTES", 1, (estimators,)),
        ("_TRITON", False, (loss,)),
        ("_CUDA_GRAPHS", False, (trainer,)),
        ("_fits_on_device", never_fits, (feeds,)),
    ):
        old = getattr(soft_tree, name)
        monkeypatch.setattr(soft_tree, name, value)
        assert all(getattr(m, name) is value for m in readers), name
        monkeypatch.undo()
        assert getattr(soft_tree, name) is old and all(getattr(m, name) is old for m in readers), name


def _old_numpy_paths(m: SoftDecisionTree, X: np.ndarray) -> np.ndarray:
    """The numpy float64 inference of the code before prediction moved to torch (the reference)."""
    z = (X.astype(np.float64) @ m.inner_weight_.astype(np.float64).T + m.inner_bias_) * m.beta_
    p = 0.5 * (1.0 + np.tanh(0.5 * z))
    mu = np.ones((len(X), 1))
    for lo, hi in _level_slices(m.n_inner_.bit_length()):
        pd = p[:, lo:hi]
        mu = np.stack((mu * (1 - pd), mu * pd), axis=2).reshape(len(X), -1)
    return mu


def test_torch_inference_equals_the_numpy_reference(fitted, blobs):
    X, _ = blobs
    Xs = X * 3  # push some splits into saturation
    ref = _old_numpy_paths(fitted, Xs)
    pp = fitted.path_probabilities(Xs)
    assert pp.dtype == np.float64 and pp.shape == ref.shape
    np.testing.assert_allclose(pp, ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(fitted.predict_proba(Xs), ref @ fitted.leaf_distributions_, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(fitted.predict_proba(Xs.astype(np.float64)), fitted.predict_proba(Xs), rtol=1e-12)
    R = Xs.astype(np.float64) @ fitted.inner_weight_.astype(np.float64).T + fitted.inner_bias_
    node = np.zeros(len(X), dtype=np.intp)
    for _ in range(3):
        node = 2 * node + 1 + (R[np.arange(len(X)), node] > 0)
    np.testing.assert_array_equal(fitted.apply(Xs), node)
    np.testing.assert_array_equal(fitted.apply(Xs, how="argmax"), ref.argmax(1) + fitted.n_inner_)
    # float32 inference (the GPU default) where asked, and chunking does not change the result
    f32 = SoftDecisionTree(**{**fitted.get_params(), "inference_dtype": "float32"})
    f32.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
    np.testing.assert_allclose(f32.predict_proba(Xs), ref @ fitted.leaf_distributions_, atol=1e-5)
    small = copy.deepcopy(fitted)
    small._rows_per_chunk = lambda *a: 7
    np.testing.assert_allclose(small.predict_proba(Xs), fitted.predict_proba(Xs), rtol=1e-12)
    with pytest.raises(ValueError, match="inference_dtype"):
        SoftDecisionTree(**{**FAST, "inference_dtype": "half"}).fit(X, _)


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


def test_compile_option_trains_the_same_tree(blobs):
    X, y = blobs
    kw = dict(depth=2, epochs=3, device="cpu", random_state=0)
    eager = SoftDecisionTree(**kw).fit(X, y)
    compiled = SoftDecisionTree(**kw, compile=True).fit(X, y)
    np.testing.assert_allclose(compiled.predict_proba(X), eager.predict_proba(X), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(compiled.inner_weight_, eager.inner_weight_, rtol=1e-4, atol=1e-6)
