"""The fused Triton kernels of the soft tree's step against the eager ``_TreeLoss`` (the reference).

On a machine without a GPU they run in Triton's interpreter (``TRITON_INTERPRET=1``) on small
shapes; the last test compiles them for an H100 (sm_90) without one, which catches what the
interpreter does not (constexpr rules, register spills).  Triton is declared in the ``test`` extra
for Linux x86_64, so the tests only skip where no Triton wheel exists.
"""

from __future__ import annotations

import copy
import importlib
import os
import platform
import sys

import numpy as np
import pytest
import torch

from explain_distill.surrogates import soft_tree
from explain_distill.surrogates.soft_tree import SoftDecisionTree, _SoftTreeModule, _train_step_loss, _training_layout

if sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64"):
    import triton  # noqa: F401 - declared for this platform: a missing wheel is an error, not a skip
else:  # pragma: no cover - macOS / Windows / ARM: no Triton wheel
    pytest.importorskip("triton", reason="Triton has no wheel for this platform; the fused kernels are CUDA-only")


#: where the kernels run: the GPU when there is one, else the interpreter on CPU tensors (conftest sets it)
DEV = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


@pytest.fixture(scope="module")
def K():
    if DEV.type == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":  # pragma: no cover - conftest sets it
        pytest.fail("TRITON_INTERPRET=1 must be set before triton is imported (tests/conftest.py does it)")
    return importlib.import_module("explain_distill.surrogates.soft_tree.triton_kernels")


def _problem(depth, n, n_features=7, n_classes=3, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    mod = _SoftTreeModule(n_features, depth, n_classes, beta=1.3, learn_beta=True, gen=gen).to(dtype)
    x = torch.randn(n, n_features, generator=gen, dtype=dtype) * 2
    pb = torch.softmax(torch.randn(n, n_classes, generator=gen, dtype=dtype), dim=1)
    nd = mod.node_depth.to(dtype)
    decay, penalty_w = 1 - 1 / 2.0**nd, 0.3 * 2.0**-nd
    run0 = torch.rand(2**depth - 1, generator=gen, dtype=dtype) * 0.8 + 0.1
    return mod.to(DEV), x.to(DEV), pb.to(DEV), decay.to(DEV), penalty_w.to(DEV), run0.to(DEV)


def _step(mod, x, pb, run, decay, penalty_w, kernels, low=False):
    mod.zero_grad()
    loss = _train_step_loss(mod, x, pb, run, decay, penalty_w, low, None, kernels)
    loss.backward()
    return loss.detach(), run, [p.grad.clone() for p in mod.parameters()]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("depth,n", [(4, 37), (5, 16), (6, 50)])
def test_fused_step_equals_eager(K, dtype, depth, n):
    """Loss, running averages and every gradient, with a last tile of padding rows (37, 50 rows)."""
    if DEV.type == "cuda" and dtype == torch.float64:
        pytest.skip("float64 steps stay eager on a GPU (supported() says so); float64 is checked in the interpreter")
    mod, x, pb, decay, penalty_w, run0 = _problem(depth, n, dtype=dtype, seed=depth)
    ref = _step(mod, x, pb, run0.clone(), decay, penalty_w, None)
    got = _step(mod, x, pb, run0.clone(), decay, penalty_w, K)
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == torch.float64 else dict(rtol=2e-5, atol=1e-7)
    torch.testing.assert_close(got[0], ref[0], **tol)
    torch.testing.assert_close(got[1], ref[1], **tol)
    assert len(got[2]) == 4
    for g, r in zip(got[2], ref[2]):
        scale = float(r.abs().max())
        assert scale > 0
        assert float((g - r).abs().max()) <= (1e-12 if dtype == torch.float64 else 2e-5) * scale


def test_fused_kernels_outputs_are_the_eager_intermediates(K):
    """The forward's column sums and T^T R_leaf, and the backward's dz, against their eager definitions."""
    depth, n = 5, 29
    f64 = torch.float64 if DEV.type == "cpu" else torch.float32  # the GPU path is float32
    tol = dict(rtol=1e-10, atol=1e-14) if f64 == torch.float64 else dict(rtol=1e-4, atol=1e-6)
    gen = torch.Generator().manual_seed(1)
    L = 2**depth
    z = (torch.randn(n, L, generator=gen, dtype=torch.float64) * 3).to(DEV, f64)
    pb = torch.softmax(torch.randn(n, 4, generator=gen, dtype=torch.float64), dim=1).to(DEV, f64)
    R_in = torch.full((n, L), -7.0, dtype=f64, device=DEV)
    S, Mt = K.tree_forward(z, pb, depth, f64, R_in)
    p = torch.sigmoid(z)
    R = torch.zeros(n, 2 * L, dtype=f64, device=DEV)
    R[:, 0] = 1.0
    for d in range(depth):
        w = 2**d
        R[:, 3 * w - 1 : 4 * w - 1] = R[:, w - 1 : 2 * w - 1] * p[:, w - 1 : 2 * w - 1]
        R[:, 2 * w - 1 : 3 * w - 1] = R[:, w - 1 : 2 * w - 1] * (1 - p[:, w - 1 : 2 * w - 1])
    torch.testing.assert_close(S, R.sum(0), **tol)
    torch.testing.assert_close(Mt, pb.T @ R[:, L - 1 : 2 * L - 1], **tol)
    torch.testing.assert_close(R_in[:, : L - 1], R[:, : L - 1], **tol)
    assert (R_in[:, L - 1] == -7.0).all()  # the padding column is left alone
    log_q = torch.log_softmax(torch.randn(L, 4, generator=gen, dtype=torch.float64), dim=1).to(DEV, f64)
    a = (torch.randn(2 * L, generator=gen, dtype=torch.float64) * 0.1).to(DEV, f64)
    dz = torch.full((n, L), 5.0, dtype=f64, device=DEV)
    gsum = K.tree_backward(z, pb, R_in, log_q, a, depth, dz)
    V = a[L - 1 : 2 * L - 1] - pb @ log_q.T / n
    ref = torch.zeros(n, L, dtype=f64, device=DEV)
    for d in reversed(range(depth)):
        w = 2**d
        pd = p[:, w - 1 : 2 * w - 1]
        ref[:, w - 1 : 2 * w - 1] = R[:, w - 1 : 2 * w - 1] * (V[:, w:] - V[:, :w]) * pd * (1 - pd)
        V = a[w - 1 : 2 * w - 1] + (1 - pd) * V[:, :w] + pd * V[:, w:]
    torch.testing.assert_close(dz[:, : L - 1], ref[:, : L - 1], **tol)
    assert (dz[:, L - 1] == 5.0).all()
    torch.testing.assert_close(gsum[: L - 1], ref[:, : L - 1].sum(0), **tol)


def test_fused_float32_as_accurate_as_eager_with_saturated_splits(K):
    """Saturated splits and a node reached by almost no sample (huge penalty gradient): in float32
    the fused step loses no more accuracy than the eager one (it computes 1 - p as sigmoid(-z))."""
    depth = 4
    gen = torch.Generator().manual_seed(0)
    mod = _SoftTreeModule(4, depth, 3, beta=1.0, learn_beta=True, gen=gen)
    perm, _, _ = _training_layout(depth, torch.device("cpu"))
    n_inner = 2**depth - 1
    W, b = torch.randn(n_inner, 4, generator=gen), torch.zeros(n_inner)
    W[2], b[2] = torch.tensor([0.0, 0.1, 0.0, 0.0]), 16.0  # node 2 sends (almost) everyone right
    W[0] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    run_heap = torch.full((n_inner,), 0.5)
    run_heap[5] = 1e-5  # node 5, node 2's left child, is reached by almost no sample
    with torch.no_grad():
        mod.weight.copy_(W[perm])
        mod.bias.copy_(b[perm])
        mod.leaf_logits.normal_(0, 1, generator=gen)
    x = torch.randn(512, 4, generator=gen).to(DEV)
    pb = torch.softmax(torch.randn(512, 3, generator=gen), dim=1).to(DEV)
    mod = mod.to(DEV)
    nd = mod.node_depth
    decay, penalty_w = 1 - 1 / 2.0**nd, 0.1 * 2.0**-nd
    run0 = run_heap.to(DEV)[perm.to(DEV)]
    exact = _step(copy.deepcopy(mod).double(), x.double(), pb.double(), run0.double(), decay.double(), penalty_w.double(), None)
    eager = _step(copy.deepcopy(mod), x, pb, run0.clone(), decay, penalty_w, None)
    fused = _step(copy.deepcopy(mod), x, pb, run0.clone(), decay, penalty_w, K)
    for g_f, g_e, g_x in zip(fused[2], eager[2], exact[2]):
        scale = g_x.abs().max()
        err_fused = float((g_f.double() - g_x).abs().max() / scale)
        err_eager = float((g_e.double() - g_x).abs().max() / scale)
        assert err_fused <= 1.5 * err_eager + 1e-6, (err_fused, err_eager)


def test_fused_low_precision_step_close_to_eager(K):
    """bf16 responses and bf16 dz (the GPU's configuration) against the eager bf16 step."""
    mod, x, pb, decay, penalty_w, run0 = _problem(4, 64, n_features=20, dtype=torch.float32)
    ref = _step(mod, x, pb, run0.clone(), decay, penalty_w, None, low=True)
    got = _step(mod, x, pb, run0.clone(), decay, penalty_w, K, low=True)
    torch.testing.assert_close(got[0], ref[0], rtol=1e-2, atol=1e-3)
    for g, r in zip(got[2], ref[2]):
        cos = torch.nn.functional.cosine_similarity(g.flatten(), r.flatten(), dim=0)
        assert float(cos) > 0.99


def test_supported_shapes(K, monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # CPU tensors go through the interpreter (a GPU host has it unset)
    assert K.supported(8, 10, torch.float32, cpu) and K.supported(4, 64, torch.float64, cpu)
    assert not K.supported(3, 10, torch.float32, cpu)  # fewer than 16 leaves: tl.dot cannot take it
    assert not K.supported(10, 10, torch.float32, cpu)  # spills registers: eager
    assert not K.supported(8, 65, torch.float32, cpu)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert not K.supported(8, 10, torch.float32, cpu)  # no interpreter: CPU tensors stay eager
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        assert K.supported(8, 10, torch.float32, gpu) and not K.supported(8, 10, torch.float64, gpu)


def test_a_fit_through_the_fused_step_trains_the_same_tree(K, monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    kw = dict(depth=4, epochs=3, batch_size=64, device=str(DEV), random_state=0)
    monkeypatch.setattr(soft_tree, "_TRITON", False)
    eager = SoftDecisionTree(**kw).fit(X, y)
    monkeypatch.setattr(soft_tree, "_TRITON", True)
    # the CPU fit asks for kernels only on CUDA: route it through them as a CUDA fit would
    orig = soft_tree._Trainer.__init__

    def init(self, *a, **k):
        k["kernels"] = K
        orig(self, *a, **k)

    monkeypatch.setattr(soft_tree._Trainer, "__init__", init)
    fused = SoftDecisionTree(**kw).fit(X, y)
    if DEV.type == "cpu":  # float32 throughout: the same tree up to summation order
        np.testing.assert_allclose(fused.inner_weight_, eager.inner_weight_, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(fused.predict_proba(X), eager.predict_proba(X), atol=1e-5)
    else:  # bf16 matrix products on a GPU: close, not equal
        np.testing.assert_allclose(fused.predict_proba(X), eager.predict_proba(X), atol=3e-2)


_COMPILE = r"""
import sys, torch, triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from explain_distill.surrogates.soft_tree import triton_kernels as K
for depth in (8, K.MAX_DEPTH):
    cfg = K.launch_config(depth, 65536, torch.device("cpu"))
    common = {"n_rows": "i32", "n_classes": "i32", "rows_per_program": "i32"}
    const = {"DEPTH": depth, "L": 2**depth, "KP": 16, "BM": cfg["BM"]}
    for zt in ("*bf16", "*fp32"):  # z in bf16 (the fit's bf16 products) and in float32
        fwd = {"Z": zt, "PB": "*fp32", "R": "*fp32", "S_PART": "*fp32", "M_PART": "*fp32", **common,
               "stride_z": "i32", "stride_pb": "i32", "stride_r": "i32", **{k: "constexpr" for k in const}}
        bwd = {"Z": zt, "PB": "*fp32", "R": "*fp32", "C": "*fp32", "A": "*fp32", "DZ": zt, "G_PART": "*fp32",
               **common, "stride_z": "i32", "stride_pb": "i32", "stride_r": "i32", "stride_dz": "i32",
               **{k: "constexpr" for k in const}}
        for fn, sig, opts in ((K._tree_fwd_kernel, fwd, {"num_stages": cfg["fwd_num_stages"]}), (K._tree_bwd_kernel, bwd, {})):
            c = triton.compile(ASTSource(fn, sig, const), target=GPUTarget("cuda", 90, 32),
                               options={"num_warps": cfg["num_warps"], **opts})
            print(f"{fn.__name__}:{depth}:{zt}", len(c.asm["cubin"]), ".entry " + fn.__name__ in c.asm["ptx"], c.metadata.shared)
"""

#: Shared memory one block may use on an H100 (sm_90: 227 KiB); a kernel asking for more fails at launch.
H100_SHARED = 232448


def test_kernels_compile_for_an_h100():
    """Compile both kernels for sm_90 with the launch configurations of depth 8 and the deepest
    supported tree, z in bf16 and float32, no GPU needed: this catches what the interpreter lets
    through (constexpr rules, unsupported ops) and a kernel that asks for more shared memory than
    an H100 has (the float32 forward did, 280 KB at depth 8, until its row loop stopped pipelining)."""
    import subprocess
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    proc = subprocess.run([sys.executable, "-c", _COMPILE], env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.strip().splitlines())
    assert len(lines) == 8, lines
    for name, rest in lines.items():
        size, entry, shared = rest.split()
        assert int(size) > 1000 and entry == "True", name
        assert int(shared) <= H100_SHARED, f"{name} needs {shared} bytes of shared memory; an H100 block has {H100_SHARED}"
