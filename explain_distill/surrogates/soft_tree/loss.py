"""The soft tree's loss for one batch and the kernels that compute it.

:class:`_TreeLoss` is the paper's loss (path-weighted cross-entropy plus the balance penalty) as an
autograd function with a hand-derived backward pass; :func:`_train_step_loss` applies it to a
:class:`~.module._SoftTreeModule`.  Its forward and backward run either eagerly in torch (the CPU
path, and the reference) or through the fused Triton kernels of :mod:`.triton_kernels`, which
:func:`_fused_kernels` imports only on CUDA (or under ``TRITON_INTERPRET=1``).  :class:`_Workspace`
keeps the step's large buffers from one step to the next.  :func:`_paths_torch` and
:func:`_greedy_torch` are the eager kernels of inference (heap order).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

from .module import _level_slices, _SoftTreeModule, _training_layout

logger = logging.getLogger(__name__)

#: Rough number of (batch, n_nodes) float32 buffers alive during a training step
#: (path probabilities per level, cross-entropies, their gradients, autograd saves).
_BUFFERS_PER_NODE = 12
#: Use the fused Triton kernels on CUDA when Triton is installed (False: the eager step).
_TRITON = True


class _Workspace:
    """Buffers reused from one training step to the next (views of the first ``rows`` rows).

    A fresh multi-megabyte tensor per step costs page faults and cold caches; reusing the same
    memory keeps the step near the cost of its two matrix products on a CPU.  Tensors saved for
    the backward pass are views of these buffers: a second forward before the first backward
    bumps their version counters and autograd refuses the stale backward instead of computing
    a wrong gradient.
    """

    def __init__(self) -> None:
        self._bufs: dict[str, torch.Tensor] = {}

    def get(self, name: str, rows: int, cols: int, like: torch.Tensor) -> torch.Tensor:
        buf = self._bufs.get(name)
        if buf is None or buf.shape[0] < rows or buf.shape[1] != cols or buf.dtype != like.dtype or buf.device != like.device:
            buf = self._bufs[name] = like.new_empty(rows, cols)
        return buf[:rows]


class _TreeLoss(torch.autograd.Function):
    """The paper's loss for one batch, with a hand-derived backward pass.

    Autograd over the level-by-level construction keeps every level's path probabilities, their
    stacked copies and the products of the penalty alive and replays them elementwise; on a CPU
    that bookkeeping cost as much as the two matrix products.  Here the forward writes the path
    probabilities of all nodes into one buffer ``R`` and the backward runs one bottom-up sweep of
    "cost to go":

    ``V_leaf = ce_leaf / B + a_leaf``,  ``V_i = a_i + (1 - p_i) V_left + p_i V_right``,
    ``dloss/dp_i = R_i (V_right - V_left)``,

    where ``ce`` is each leaf's cross-entropy against the target and ``a_j`` the derivative of the
    balance penalty with respect to node j's path probability: one constant per node, because the
    penalty depends on the path probabilities only through their sums over the batch.  (Adding
    ``a_j`` at the leaves below j instead would be exact in real arithmetic, but a node that almost
    no sample reaches has a huge ``a_j``, which would swamp the cross-entropies below it in float32.)
    For the same reason the sweep uses the convex combination, not ``V_left + p_i (V_right -
    V_left)``, and ``1 - p`` is computed once and kept (not ``mu - mu p``): once beta has grown,
    splits saturate and those shortcuts cancel catastrophically in float32.  Gradients equal
    autograd's on the plain formulation (tested in float64, and in float32 with saturated splits).

    Nodes and leaves are in the order of :func:`~.module._training_layout` and the node dimension
    is padded to ``2**depth`` (one zero filter): GEMM kernels run ~1.6x faster on 256 columns than
    on 255.  ``low_precision`` runs the two large matrix products in bfloat16 (float32 accumulate),
    for GPUs.  ``ws`` (a :class:`_Workspace`, or None for fresh tensors) holds the large
    intermediates.
    """

    @staticmethod
    def forward(ctx, x, pb, weight, bias, log_beta, leaf_logits, alpha_run, decay, penalty_w, low_precision, ws, kernels=None):  # noqa: D102
        n_inner, n_feat = weight.shape
        depth = n_inner.bit_length()
        L = n_inner + 1
        B = x.shape[0]
        dtype = weight.dtype
        mm = torch.bfloat16 if low_precision else dtype
        right = _training_layout(depth, x.device)[2]
        beta = log_beta.exp()
        # beta folded into the filters, padded with one zero filter
        wb = weight.new_zeros(L, n_feat)
        torch.mul(weight, beta[:, None], out=wb[:n_inner])
        bb = bias.new_zeros(L)
        torch.mul(bias, beta, out=bb[:n_inner])
        ws = ws if ws is not None else _Workspace()
        ctx.ws = ws
        ctx.kernels = kernels
        xm = x.to(mm)
        pbd = pb.to(dtype)
        if kernels is not None:
            p, q, R, S, Mt = _forward_fused(kernels, xm, wb, bb, pbd, weight, ws)
        else:
            p, q, R, S, Mt = _forward_eager(xm, wb, bb, pbd, weight, ws)
        log_q = torch.log_softmax(leaf_logits.to(dtype), dim=1)  # (L, K)
        data = -(Mt * log_q.T).sum() / B
        penalty, a = _balance_penalty(S, right, alpha_run, decay, penalty_w, dtype)
        ctx.save_for_backward(xm, pbd, weight, bias, beta, leaf_logits, p, q, R, a, Mt, log_q)
        return data + penalty

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        xm, pb, weight, bias, beta, leaf_logits, p, q, R, a, Mt, log_q = ctx.saved_tensors
        B = xm.shape[0]
        if ctx.kernels is not None:
            G, gsum = _backward_fused(ctx.kernels, xm, pb, p, R, log_q, a, weight.dtype, ctx.ws)
        else:
            G, gsum = _backward_eager(xm, pb, p, q, R, log_q, a, weight.dtype, ctx.ws)
        d_weight = G.mul_((g * beta)[:, None])
        d_bias = gsum * (g * beta)
        d_log_beta = None
        if ctx.needs_input_grad[4]:
            d_log_beta = (d_weight * weight).sum(dim=1) + bias * d_bias
        g_log_q = Mt.T * (-g / B)  # (L, K)
        d_leaf = g_log_q - log_q.exp() * g_log_q.sum(dim=1, keepdim=True)  # softmax backward
        return None, None, d_weight, d_bias, d_log_beta, d_leaf.to(leaf_logits.dtype), None, None, None, None, None, None


def _forward_fused(
    kernels: Any, xm: torch.Tensor, wb: torch.Tensor, bb: torch.Tensor, pb: torch.Tensor, weight: torch.Tensor, ws: _Workspace
) -> tuple[torch.Tensor, ...]:
    """The forward through the fused kernels: ``(p, q, R, S, Mt)`` as :class:`_TreeLoss` saves them.

    The responses ``z`` stay in the matrix product's dtype; one kernel builds every level's path
    probabilities in registers and returns their column sums ``S`` and ``Mt = T^T R_leaf``.  ``p``
    and ``q`` are both ``z`` (the backward kernel recomputes the sigmoids) and ``R`` holds the inner
    nodes only.
    """
    B, L = xm.shape[0], wb.shape[0]
    depth = int(weight.shape[0]).bit_length()
    mm = xm.dtype
    z = ws.get("z", B, L, xm)
    torch.addmm(bb.to(mm), xm, wb.to(mm).T, out=z)
    R = ws.get("R_inner", B, L, weight)
    S, Mt = kernels.tree_forward(z, pb, depth, weight.dtype, R)
    return z, z, R, S, Mt


def _forward_eager(
    xm: torch.Tensor, wb: torch.Tensor, bb: torch.Tensor, pb: torch.Tensor, weight: torch.Tensor, ws: _Workspace
) -> tuple[torch.Tensor, ...]:
    """The forward in torch: ``(p, q, R, S, Mt)`` with ``R`` the path probabilities of every node
    (inner then leaves, one spare column), ``S`` their column sums and ``Mt = T^T R_leaf``."""
    n_inner = weight.shape[0]
    depth = n_inner.bit_length()
    L = n_inner + 1
    B = xm.shape[0]
    dtype = weight.dtype
    mm = xm.dtype
    p = ws.get("p", B, L, weight)  # (B, L); the last column is unused
    if mm == dtype:
        torch.addmm(bb, xm, wb.T, out=p)
    else:
        p.copy_(torch.addmm(bb.to(mm), xm, wb.to(mm).T))
    p.sigmoid_()
    q = torch.sub(1.0, p, out=ws.get("q", B, L, weight))  # 1 - p, kept: see _TreeLoss
    # path probabilities of every node (inner then leaves), level by level, contiguous halves
    R = ws.get("R", B, 2 * L, weight)  # one spare column: column sums run faster on 2^k
    R[:, 0] = 1.0
    R[:, -1] = 0.0
    for d in range(depth):
        w = 2**d
        mu = R[:, w - 1 : 2 * w - 1]
        torch.mul(mu, p[:, w - 1 : 2 * w - 1], out=R[:, 3 * w - 1 : 4 * w - 1])
        torch.mul(mu, q[:, w - 1 : 2 * w - 1], out=R[:, 2 * w - 1 : 3 * w - 1])
    Mt = pb.T @ R[:, n_inner : n_inner + L]  # (K, L): sum_x T_k(x) P^l(x)
    # alpha_i = sum_x P^i p_i / sum_x P^i = S_right(i) / S_i, for all nodes at once
    S = R.sum(dim=0)
    return p, q, R, S, Mt


def _balance_penalty(
    S: torch.Tensor, right: torch.Tensor, alpha_run: torch.Tensor, decay: torch.Tensor, penalty_w: torch.Tensor,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The balance penalty from the column sums ``S`` of the path probabilities, and ``a``: its
    derivative with respect to every node's path probability.  Updates ``alpha_run`` in place."""
    n_inner = right.shape[0]
    S_inner = S[:n_inner]
    S_right = S[right]
    alpha_b = S_right / S_inner.clamp_min(1e-12)
    with torch.no_grad():
        alpha_run.mul_(decay).add_((1 - decay) * alpha_b)
    # value: the running average; gradient: the batch estimate (straight-through)
    alpha = alpha_run.to(dtype).clamp(1e-6, 1 - 1e-6)
    penalty = -(penalty_w * 0.5 * (torch.log(alpha) + torch.log1p(-alpha))).sum()
    # d penalty / d alpha_b, then / d S (the clamps pass no gradient outside their range)
    inside = (alpha_run >= 1e-6) & (alpha_run <= 1 - 1e-6)
    c = torch.where(inside, -penalty_w * 0.5 * (1 / alpha - 1 / (1 - alpha)), 0.0)
    Sc = S_inner.clamp_min(1e-12)
    a = torch.zeros_like(S)
    a[:n_inner] = torch.where(S_inner >= 1e-12, -c * S_right / (Sc * Sc), 0.0)
    a[right] += c / Sc
    return penalty, a


def _backward_fused(
    kernels: Any, xm: torch.Tensor, pb: torch.Tensor, z: torch.Tensor, R: torch.Tensor, log_q: torch.Tensor,
    a: torch.Tensor, dtype: torch.dtype, ws: _Workspace,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The sweep through the fused kernel: ``(d loss / d filters, d loss / d biases)`` before the
    beta factor.  The sweep runs in registers and writes only d loss / d z, in the GEMM's dtype."""
    B, L = z.shape
    n_inner = L - 1
    depth = n_inner.bit_length()
    gpre = ws.get("dz", B, L, xm)
    gpre[:, n_inner:] = 0.0
    gsum = kernels.tree_backward(z, pb, R, log_q, a, depth, gpre)[:n_inner]
    G = (gpre.T @ xm).to(dtype)[:n_inner]
    return G, gsum


def _backward_eager(
    xm: torch.Tensor, pb: torch.Tensor, p: torch.Tensor, q: torch.Tensor, R: torch.Tensor, log_q: torch.Tensor,
    a: torch.Tensor, dtype: torch.dtype, ws: _Workspace,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The sweep in torch: cost to go at the leaves, then one sweep up the tree (two buffers, used
    in turn); returns ``(d loss / d filters, d loss / d biases)`` before the beta factor."""
    B, L = p.shape
    n_inner = L - 1
    depth = n_inner.bit_length()
    V = torch.addmm(a[n_inner : n_inner + L], pb, log_q.T, alpha=-1.0 / B, out=ws.get("V0", B, L, p))
    spare = ws.get("V1", B, L, p)
    diff_buf = ws.get("diff", B, L // 2, p)
    gp = ws.get("gp", B, L, p)
    gp[:, n_inner:] = 0.0
    for d in reversed(range(depth)):
        w = 2**d
        v_left = V[:, :w]
        diff = torch.sub(V[:, w:], v_left, out=diff_buf[:, :w])
        torch.mul(R[:, w - 1 : 2 * w - 1], diff, out=gp[:, w - 1 : 2 * w - 1])
        if d > 0:
            v_new = torch.mul(V[:, w:], p[:, w - 1 : 2 * w - 1], out=spare[:, :w])
            V, spare = v_new.addcmul_(v_left, q[:, w - 1 : 2 * w - 1]).add_(a[w - 1 : 2 * w - 1]), V
    gpre = torch.ops.aten.sigmoid_backward.grad_input(gp, p, grad_input=gp)
    G = (gpre.to(xm.dtype).T @ xm).to(dtype)[:n_inner]  # (n_inner, D)
    gsum = gpre.sum(dim=0)[:n_inner]
    return G, gsum


def _train_step_loss(
    module: _SoftTreeModule,
    xb: torch.Tensor,
    pb: torch.Tensor,
    alpha_run: torch.Tensor,
    decay: torch.Tensor,
    penalty_w: torch.Tensor,
    low_precision: bool = False,
    workspace: _Workspace | None = None,
    kernels: Any = None,
) -> torch.Tensor:
    """The paper's loss for one batch (see SoftDecisionTree's Notes); updates ``alpha_run`` in place.

    ``kernels`` is the fused Triton module (:func:`_fused_kernels`) or None for the eager step.
    """
    return _TreeLoss.apply(
        xb, pb, module.weight, module.bias, module.log_beta, module.leaf_logits, alpha_run, decay, penalty_w,
        low_precision, workspace, kernels,
    )


def _fused_kernels(depth: int, n_classes: int, dtype: torch.dtype, device: torch.device) -> Any:
    """The fused Triton module when it handles this step on this device, else None (eager step).

    Imported only here, on CUDA (or under ``TRITON_INTERPRET=1``): a CPU fit never loads Triton.
    """
    if not _TRITON:
        return None
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET", "0") != "1":
        return None
    try:
        from . import triton_kernels
    except Exception as exc:  # noqa: BLE001 - no Triton (or a broken one): the eager step is always there
        logger.debug("fused soft-tree kernels unavailable (%s: %s); eager step", type(exc).__name__, exc)
        return None
    return triton_kernels if triton_kernels.supported(depth, n_classes, dtype, device) else None


def _paths_torch(X: torch.Tensor, W: torch.Tensor, b: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Leaf path probabilities (n, n_inner + 1), heap order, for filters in heap order."""
    n = X.shape[0]
    p = torch.sigmoid(torch.addmm(b, X, W.T).mul_(beta))
    q = 1 - p
    mu = X.new_ones(n, 1)
    for lo, hi in _level_slices(int(W.shape[0]).bit_length()):
        # children interleaved (heap order): written in place, no stacked copies
        nxt = X.new_empty(n, hi - lo, 2)
        torch.mul(mu, q[:, lo:hi], out=nxt[:, :, 0])
        torch.mul(mu, p[:, lo:hi], out=nxt[:, :, 1])
        mu = nxt.view(n, -1)
    return mu


def _greedy_torch(X: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Heap id of the leaf reached by following the more probable branch at every node."""
    R = torch.addmm(b, X, W.T)
    node = torch.zeros(X.shape[0], dtype=torch.long, device=X.device)
    for _ in range(int(W.shape[0]).bit_length()):
        node = 2 * node + 1 + (R.gather(1, node[:, None]).squeeze(1) > 0).long()
    return node
