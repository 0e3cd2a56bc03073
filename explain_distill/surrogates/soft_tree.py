"""The soft decision tree of Frosst & Hinton (2017), "Distilling a Neural Network Into a Soft
Decision Tree" (arXiv:1711.09784): torch inside, a scikit-learn classifier outside.

Every inner node ``i`` holds a learned filter ``w_i``, bias ``b_i`` and inverse temperature
``beta_i``, and sends a sample right with probability ``p_i(x) = sigmoid(beta_i (x . w_i + b_i))``.
Leaves hold learned class distributions ``Q^l = softmax(phi^l)``.  The probability of reaching leaf
``l`` is the product of the branch probabilities on its path.

Layout (heap numbering): inner nodes ``0 .. n_inner_-1``, node ``i`` has children ``2i+1`` (left)
and ``2i+2`` (right); leaf ``j`` is heap node ``n_inner_ + j``.

Vectorised: all inner filters are one ``(n_inner_, n_features)`` matrix product; path
probabilities are built level by level (``depth`` steps of two tensor ops each, written into one
buffer); the balance penalty is computed for every node at once; the backward pass is derived by
hand (:class:`_TreeLoss`) as one bottom-up sweep instead of autograd's replay of every level.
There is no per-node Python loop, and the training loop never synchronises with the device (no
``.item()``) except for one optional debug log per epoch.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any, Literal

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .._device import resolve_device as _resolve_device
from .._validation import (
    check_choice,
    check_consistent_length,
    check_int,
    check_min_classes,
    check_positive,
    check_soft_labels,
    check_targets,
)
from ._base import SoftTargetMixin, TreeDisplayMixin

logger = logging.getLogger(__name__)

__all__ = ["SoftDecisionTree", "SparseSoftDecisionTree"]

#: Inputs larger than this are streamed batch by batch instead of copied to one tensor.
_STREAM_BYTES = 1 << 30
#: Rows per chunk for inference and for statistics over streamed inputs.
_CHUNK = 65536
#: Rough number of (batch, n_nodes) float32 buffers alive during a training step
#: (path probabilities per level, cross-entropies, their gradients, autograd saves).
_BUFFERS_PER_NODE = 12


def _memory_limit(device: torch.device) -> int:
    """Bytes a fit may plan to use: half the host RAM on CPU, 80% of the GPU's memory on CUDA."""
    if device.type == "cuda":
        return int(0.8 * torch.cuda.get_device_properties(device).total_memory)
    try:
        return int(0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


def _level_slices(depth: int) -> list[tuple[int, int]]:
    return [(2**d - 1, 2 ** (d + 1) - 1) for d in range(depth)]


class _SoftTreeModule(torch.nn.Module):
    """The trainable parameters: all inner filters as one matrix, leaf logits, per-node log-beta.

    Nodes are stored in the training layout of :func:`_training_layout` (level by level, each level
    bit-reversed), not in heap order: :meth:`heap_order` converts.
    """

    def __init__(self, n_features: int, depth: int, n_classes: int, beta: float, learn_beta: bool, gen: torch.Generator):
        super().__init__()
        self.depth = depth
        n_inner = 2**depth - 1
        bound = 1.0 / math.sqrt(n_features)
        self.weight = torch.nn.Parameter((torch.rand(n_inner, n_features, generator=gen) * 2 - 1) * bound)
        self.bias = torch.nn.Parameter((torch.rand(n_inner, generator=gen) * 2 - 1) * bound)
        self.log_beta = torch.nn.Parameter(torch.full((n_inner,), math.log(beta)), requires_grad=learn_beta)
        self.leaf_logits = torch.nn.Parameter(torch.randn(2**depth, n_classes, generator=gen) * 0.01)
        # depth of each inner node, for the 2^-d decay of the penalty and the running-average window
        d = torch.cat([torch.full((hi - lo,), float(k)) for k, (lo, hi) in enumerate(_level_slices(depth))])
        self.register_buffer("node_depth", d)

    def heap_order(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(weight, bias, log_beta, leaf_logits), detached, with nodes and leaves in heap order."""
        perm, leaf_perm, _ = _training_layout(self.depth, self.weight.device)
        with torch.no_grad():
            return self.weight[perm], self.bias[perm], self.log_beta[perm], self.leaf_logits[leaf_perm]


class _FittedSoftTree(torch.nn.Module):
    """A fitted soft tree for gradients: x -> log(sum_l mu_l(x) Q^l), all nodes in one matrix product."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, beta: np.ndarray, leaves: np.ndarray):
        super().__init__()
        self.register_buffer("weight", torch.as_tensor(np.asarray(weight, dtype=np.float32)))
        self.register_buffer("bias", torch.as_tensor(np.asarray(bias, dtype=np.float32)))
        self.register_buffer("beta", torch.as_tensor(np.asarray(beta, dtype=np.float32)))
        self.register_buffer("leaves", torch.as_tensor(np.asarray(leaves, dtype=np.float32)))
        self.slices = _level_slices(int(self.weight.shape[0]).bit_length())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(torch.nn.functional.linear(x.flatten(1), self.weight, self.bias) * self.beta)
        mu = torch.ones(x.shape[0], 1, device=x.device, dtype=p.dtype)
        for lo, hi in self.slices:
            pd = p[:, lo:hi]
            mu = torch.stack((mu * (1 - pd), mu * pd), dim=2).reshape(x.shape[0], -1)
        return torch.log((mu @ self.leaves).clamp_min(1e-12))


def _bit_reverse(j: int, bits: int) -> int:
    return int(format(j, f"0{bits}b")[::-1], 2) if bits else 0


_LAYOUTS: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def _training_layout(depth: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Column orders for :class:`_TreeLoss` (cached per depth and device).

    In the training layout every level is ordered so that a node's children sit at the same
    position in the left and in the right half of the next level (bit-reversed heap order): each
    level is then built with contiguous writes instead of interleaved ones.  Returns ``perm``
    (layout column -> heap node, for inner nodes; its own inverse), ``leaf_perm`` (the same for
    leaves) and ``right`` (the layout column, in the all-node buffer, of each inner node's right
    child).
    """
    key = (depth, str(device))
    if key not in _LAYOUTS:
        perm, right = [], []
        for d in range(depth):
            w = 2**d
            perm += [w - 1 + _bit_reverse(j, d) for j in range(w)]
            right += [2 * w - 1 + w + j for j in range(w)]
        leaf_perm = [_bit_reverse(j, depth) for j in range(2**depth)]
        _LAYOUTS[key] = tuple(torch.tensor(v, dtype=torch.long, device=device) for v in (perm, leaf_perm, right))
    return _LAYOUTS[key]


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

    Nodes and leaves are in the order of :func:`_training_layout` and the node dimension is padded
    to ``2**depth`` (one zero filter): GEMM kernels run ~1.6x faster on 256 columns than on 255.
    ``low_precision`` runs the two large matrix products in bfloat16 (float32 accumulate), for GPUs.
    ``ws`` (a :class:`_Workspace`, or None for fresh tensors) holds the large intermediates.
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
            # fused: the responses z stay in the matrix product's dtype; one kernel builds every
            # level's path probabilities in registers and returns their column sums and T^T R_leaf
            z = ws.get("z", B, L, xm)
            torch.addmm(bb.to(mm), xm, wb.to(mm).T, out=z)
            R = ws.get("R_inner", B, L, weight)
            S, Mt = kernels.tree_forward(z, pbd, depth, dtype, R)
            p = q = z
        else:
            p = ws.get("p", B, L, weight)  # (B, L); the last column is unused
            if mm == dtype:
                torch.addmm(bb, xm, wb.T, out=p)
            else:
                p.copy_(torch.addmm(bb.to(mm), xm, wb.to(mm).T))
            p.sigmoid_()
            q = torch.sub(1.0, p, out=ws.get("q", B, L, weight))  # 1 - p, kept: see the class notes
            # path probabilities of every node (inner then leaves), level by level, contiguous halves
            R = ws.get("R", B, 2 * L, weight)  # one spare column: column sums run faster on 2^k
            R[:, 0] = 1.0
            R[:, -1] = 0.0
            for d in range(depth):
                w = 2**d
                mu = R[:, w - 1 : 2 * w - 1]
                torch.mul(mu, p[:, w - 1 : 2 * w - 1], out=R[:, 3 * w - 1 : 4 * w - 1])
                torch.mul(mu, q[:, w - 1 : 2 * w - 1], out=R[:, 2 * w - 1 : 3 * w - 1])
            Mt = pbd.T @ R[:, n_inner : n_inner + L]  # (K, L): sum_x T_k(x) P^l(x)
            # alpha_i = sum_x P^i p_i / sum_x P^i = S_right(i) / S_i, for all nodes at once
            S = R.sum(dim=0)
        log_q = torch.log_softmax(leaf_logits.to(dtype), dim=1)  # (L, K)
        data = -(Mt * log_q.T).sum() / B
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
        ctx.save_for_backward(xm, pbd, weight, bias, beta, leaf_logits, p, q, R, a, Mt, log_q)
        return data + penalty

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        xm, pb, weight, bias, beta, leaf_logits, p, q, R, a, Mt, log_q = ctx.saved_tensors
        n_inner = weight.shape[0]
        depth = n_inner.bit_length()
        B = xm.shape[0]
        dtype = weight.dtype
        ws = ctx.ws
        L = n_inner + 1
        if ctx.kernels is not None:
            # fused: the sweep runs in registers and writes only d loss / d z, in the GEMM's dtype
            gpre = ws.get("dz", B, L, xm)
            gpre[:, n_inner:] = 0.0
            gsum = ctx.kernels.tree_backward(p, pb, R, log_q, a, depth, gpre)[:n_inner]
            G = (gpre.T @ xm).to(dtype)[:n_inner]
        else:
            # cost to go at the leaves, then one sweep up the tree (two buffers, used in turn)
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
        d_weight = G.mul_((g * beta)[:, None])
        d_bias = gsum * (g * beta)
        d_log_beta = None
        if ctx.needs_input_grad[4]:
            d_log_beta = (d_weight * weight).sum(dim=1) + bias * d_bias
        g_log_q = Mt.T * (-g / B)  # (L, K)
        d_leaf = g_log_q - log_q.exp() * g_log_q.sum(dim=1, keepdim=True)  # softmax backward
        return None, None, d_weight, d_bias, d_log_beta, d_leaf.to(leaf_logits.dtype), None, None, None, None, None, None


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


# ---------------------------------------------------------------------------- the fit's machinery
#: Capture the whole training step in a CUDA graph on CUDA (False: eager steps; for comparisons).
_CUDA_GRAPHS = True
#: Use the fused Triton kernels on CUDA when Triton is installed (False: the eager step).
_TRITON = True
#: Block layout of streamed fits (``block_rows``/``unit_blocks`` of :class:`_BlockStream`); tests shrink it.
_STREAM_BLOCKS: dict[str, int] = {}


def _fused_kernels(depth: int, n_classes: int, dtype: torch.dtype, device: torch.device) -> Any:
    """The fused Triton module when it handles this step on this device, else None (eager step).

    Imported only here, on CUDA (or under ``TRITON_INTERPRET=1``): a CPU fit never loads Triton.
    """
    if not _TRITON:
        return None
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET", "0") != "1":
        return None
    try:
        from . import _triton_tree
    except Exception as exc:  # noqa: BLE001 - no Triton (or a broken one): the eager step is always there
        logger.debug("fused soft-tree kernels unavailable (%s: %s); eager step", type(exc).__name__, exc)
        return None
    return _triton_tree if _triton_tree.supported(depth, n_classes, dtype, device) else None


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


def _host_tensor(a: np.ndarray, dtype: Any = np.float32) -> torch.Tensor:
    """A CPU tensor over ``a`` (no copy when it is already contiguous, writable and of ``dtype``)."""
    a = np.ascontiguousarray(a, dtype=dtype)
    if not a.flags.writeable:  # a read-only memmap: torch only wraps writable memory
        a = a.copy()
    return torch.from_numpy(a)


def _statistics(chunks: Any, n: int, d: int, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std (float64 sums on the device) from float32 row chunks."""
    s1 = torch.zeros(d, dtype=torch.float64, device=device)
    s2 = torch.zeros(d, dtype=torch.float64, device=device)
    for c in chunks:
        c = c.double()
        s1 += c.sum(dim=0)
        s2 += (c * c).sum(dim=0)
    mean = (s1 / n).cpu().numpy()
    std = np.sqrt(np.maximum((s2 / n).cpu().numpy() - mean**2, 0.0))
    std = np.where(std > 1e-8 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    return mean, std


def _device_statistics(X: np.ndarray, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Standardisation statistics of host rows, computed on the device chunk by chunk."""
    n, d = X.shape
    chunks = (_host_tensor(X[s : s + _CHUNK]).to(device) for s in range(0, n, _CHUNK))
    return _statistics(chunks, n, d, device)


def _standardize(src: torch.Tensor, mean: torch.Tensor, inv: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``(src - mean) * inv`` in float32 (``src`` is overwritten), written to ``out`` (whose dtype may
    be bfloat16): the same two operations as for data copied once, so both give the same bits."""
    torch.sub(src, mean, out=src)
    return torch.mul(src, inv, out=out)


def _fits_on_device(n: int, d: int, K: int, x_dtype: torch.dtype, batch: int, depth: int, device: torch.device) -> bool:
    """Whether the transfer set, its float32 staging copy and the step's buffers fit in the GPU's free memory."""
    free, _ = torch.cuda.mem_get_info(device)
    xb = torch.empty((), dtype=x_dtype).element_size()
    work = 4 * _BUFFERS_PER_NODE * batch * (2 ** (depth + 1)) + batch * d * (4 + xb)
    need = n * K * 4 + max(n * d * (4 + xb), n * d * xb + work)
    return need < 0.8 * free


def _epoch_plan(n: int, block_rows: int, unit_blocks: int, gen: torch.Generator) -> list[tuple[list[tuple[int, int]], torch.Tensor]]:
    """One epoch's order of the rows ``0..n-1``, in contiguous blocks.

    The ``ceil(n / block_rows)`` blocks are taken in a random order and grouped ``unit_blocks`` at a
    time into units (what one pinned buffer holds); the rows of each unit are shuffled.  Returns, per
    unit in order, its blocks' row ranges and the permutation of its rows.  One block covering all
    rows gives ``torch.randperm(n, generator=gen)``: the order of a fit whose data sit in memory.
    """
    n_blocks = math.ceil(n / block_rows)
    order = torch.randperm(n_blocks, generator=gen).tolist() if n_blocks > 1 else [0]
    plan = []
    for u in range(0, n_blocks, unit_blocks):
        ranges = [(b * block_rows, min(n, (b + 1) * block_rows)) for b in order[u : u + unit_blocks]]
        rows = sum(hi - lo for lo, hi in ranges)
        plan.append((ranges, torch.randperm(rows, generator=gen)))
    return plan


def _kept_weights(epoch: int, epochs: int, d: int, k: int) -> int:
    """Weights kept per node at the start of ``epoch``: all of them at first, down to ``k`` by half
    the run on a cubic schedule (gradual magnitude pruning, Zhu & Gupta 2017), ``k`` after."""
    ramp = max(1, epochs // 2)
    if epoch >= ramp:
        return k
    return max(k, int(round(k + (d - k) * (1.0 - epoch / ramp) ** 3)))


class _InMemoryFeed:
    """The transfer set copied once to the device (the GPU, or kept on the host for a CPU fit),
    standardised there and stored in the step's input dtype; batches are gathered by index."""

    def __init__(self, X: np.ndarray, P: np.ndarray, *, device: torch.device, x_dtype: torch.dtype) -> None:
        n, d = X.shape
        self.n = n
        if device.type == "cpu":
            raw = _host_tensor(X)  # the caller's memory when it is float32: never written
            self.mean, self.std = _statistics((raw[s : s + _CHUNK] for s in range(0, n, _CHUNK)), n, d, device)
            mean_t, inv_t = self._constants(device)
            self.X = torch.empty(n, d, dtype=x_dtype)
            torch.sub(raw, mean_t, out=self.X)
            self.X.mul_(inv_t)
        else:
            raw = torch.empty(n, d, dtype=torch.float32, device=device)
            for s in range(0, n, _CHUNK):
                raw[s : s + _CHUNK].copy_(_host_tensor(X[s : s + _CHUNK]))
            self.mean, self.std = _statistics((raw[s : s + _CHUNK] for s in range(0, n, _CHUNK)), n, d, device)
            mean_t, inv_t = self._constants(device)
            raw.sub_(mean_t)
            if x_dtype == torch.float32:
                self.X = raw.mul_(inv_t)
            else:
                self.X = torch.empty(n, d, dtype=x_dtype, device=device)
                torch.mul(raw, inv_t, out=self.X)
            del raw
        self.P = _host_tensor(P).to(device)
        self.device = device

    def _constants(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        mean32 = torch.from_numpy(self.mean.astype(np.float32)).to(device)
        inv32 = torch.from_numpy((1.0 / self.std).astype(np.float32)).to(device)
        return mean32, inv32

    def epoch(self, gen: torch.Generator, batch: int, xs: torch.Tensor, ps: torch.Tensor):
        """Write each batch of a fresh random order into ``xs``/``ps`` and yield its row count."""
        perm = torch.randperm(self.n, generator=gen).to(self.device)
        for s in range(0, self.n, batch):
            idx = perm[s : s + batch]
            r = len(idx)
            torch.index_select(self.X, 0, idx, out=xs[:r])
            torch.index_select(self.P, 0, idx, out=ps[:r])
            yield r

    def close(self) -> None:
        pass


class _BlockStream:
    """Streams a transfer set that stays on the host through the step in contiguous blocks.

    Each epoch follows :func:`_epoch_plan`: blocks of ``block_rows`` consecutive rows in a random
    order, ``unit_blocks`` of them per unit, rows shuffled within each unit.  A unit is read block
    by block (sequential reads, kind to memory maps) into one of two host buffers and copied to the
    device as a whole; batches are gathered from the unit on the device, and a batch may run on
    into the next unit.  On CUDA the host buffers are pinned and a unit is read (a few threads)
    and copied (a side stream) while the step works on the one before; events order the reuse of
    every buffer.  On a CPU the same code runs without pinned memory, threads or streams.
    """

    def __init__(
        self, X: np.ndarray, P: np.ndarray, *, batch: int, device: torch.device, x_dtype: torch.dtype,
        mean: np.ndarray, std: np.ndarray, block_rows: int | None = None, unit_blocks: int = 8,
    ) -> None:
        self.X, self.P = X, P
        n, d = X.shape
        K = P.shape[1]
        self.n, self.device = n, device
        self.unit_blocks = int(unit_blocks)
        self.block_rows = int(block_rows) if block_rows is not None else max(1, math.ceil(batch / self.unit_blocks))
        unit_rows = min(n, self.block_rows * self.unit_blocks)
        self.cuda = device.type == "cuda"
        self.host_x = [torch.empty(unit_rows, d, pin_memory=self.cuda) for _ in range(2)]
        self.host_p = [torch.empty(unit_rows, K, pin_memory=self.cuda) for _ in range(2)]
        if self.cuda:
            self.dev_x = [torch.empty(unit_rows, d, device=device) for _ in range(2)]
            self.dev_p = [torch.empty(unit_rows, K, device=device) for _ in range(2)]
            self.copy_stream = torch.cuda.Stream(device)
            self.ready = [torch.cuda.Event() for _ in range(2)]
            self.host_free = [torch.cuda.Event() for _ in range(2)]
            self.dev_free = [torch.cuda.Event() for _ in range(2)]
            from concurrent.futures import ThreadPoolExecutor

            self.stager = ThreadPoolExecutor(max_workers=1, thread_name_prefix="soft-tree-stage")
            self.readers = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="soft-tree-read")
        else:
            self.dev_x, self.dev_p = self.host_x, self.host_p
        self.tmp = torch.empty(batch, d, device=device)
        self.mean_t = torch.from_numpy(np.asarray(mean, dtype=np.float32)).to(device)
        self.inv_t = torch.from_numpy((1.0 / np.asarray(std, dtype=np.float64)).astype(np.float32)).to(device)

    def _read(self, ranges: list[tuple[int, int]], slot: int) -> int:
        hx, hp = self.host_x[slot].numpy(), self.host_p[slot].numpy()
        jobs, o = [], 0
        for lo, hi in ranges:
            jobs.append((o, lo, hi))
            o += hi - lo

        def copy(job: tuple[int, int, int]) -> None:
            off, lo, hi = job
            hx[off : off + hi - lo] = self.X[lo:hi]
            hp[off : off + hi - lo] = self.P[lo:hi]

        if self.cuda:
            list(self.readers.map(copy, jobs))
        else:
            for job in jobs:
                copy(job)
        return o

    def _stage(self, ranges: list[tuple[int, int]], perm: torch.Tensor, slot: int) -> torch.Tensor:
        """Read a unit into host buffer ``slot`` and (on CUDA) copy it to the device on the side stream."""
        if not self.cuda:
            self._read(ranges, slot)
            return perm
        self.host_free[slot].synchronize()  # the last copy out of this host buffer is done
        rows = self._read(ranges, slot)
        with torch.cuda.stream(self.copy_stream):
            self.copy_stream.wait_event(self.dev_free[slot])  # the step is done with this device buffer
            self.dev_x[slot][:rows].copy_(self.host_x[slot][:rows], non_blocking=True)
            self.dev_p[slot][:rows].copy_(self.host_p[slot][:rows], non_blocking=True)
            perm_dev = perm.pin_memory().to(self.device, non_blocking=True)
            self.ready[slot].record(self.copy_stream)
            self.host_free[slot].record(self.copy_stream)
        return perm_dev

    def _submit(self, plan: list, u: int) -> Any:
        ranges, perm = plan[u]
        if self.cuda:
            return self.stager.submit(self._stage, ranges, perm, u % 2)
        return self._stage(ranges, perm, u % 2)

    def _wait(self, staged: Any, slot: int) -> torch.Tensor:
        if not self.cuda:
            return staged
        perm = staged.result()
        torch.cuda.current_stream().wait_event(self.ready[slot])
        perm.record_stream(torch.cuda.current_stream())
        return perm

    def epoch(self, gen: torch.Generator, batch: int, xs: torch.Tensor, ps: torch.Tensor):
        """Write each batch of this epoch's order into ``xs``/``ps`` (standardised) and yield its row count."""
        plan = _epoch_plan(self.n, self.block_rows, self.unit_blocks, gen)
        staged = {u: self._submit(plan, u) for u in range(min(2, len(plan)))}
        perms: dict[int, torch.Tensor] = {}
        u, off = 0, 0
        while u < len(plan):
            r = 0
            while r < batch and u < len(plan):
                if u not in perms:
                    perms[u] = self._wait(staged.pop(u), u % 2)
                perm = perms[u]
                take = min(batch - r, len(perm) - off)
                idx = perm[off : off + take]
                torch.index_select(self.dev_x[u % 2], 0, idx, out=self.tmp[r : r + take])
                torch.index_select(self.dev_p[u % 2], 0, idx, out=ps[r : r + take])
                r += take
                off += take
                if off == len(perm):  # unit u is used up: free its buffers for unit u + 2
                    if self.cuda:
                        self.dev_free[u % 2].record(torch.cuda.current_stream())
                    del perms[u]
                    if u + 2 < len(plan):
                        staged[u + 2] = self._submit(plan, u + 2)
                    u, off = u + 1, 0
            _standardize(self.tmp[:r], self.mean_t, self.inv_t, xs[:r])
            yield r

    def close(self) -> None:
        if self.cuda:
            self.stager.shutdown(wait=True)
            self.readers.shutdown(wait=True)


class _Trainer:
    """The optimisation of one fit: fused AdamW with the cosine-annealed step size, the balance
    penalty's running averages, and the step on static input buffers ``xs``/``ps``.

    On CUDA the whole step (forward, hand-written backward, AdamW with ``capturable=True``) is
    captured in one CUDA graph after three warm-up steps on a side stream, and replayed for every
    full batch; the step size lives in a device tensor the schedule fills before each replay.  A
    short last batch runs eagerly; when capture fails (or with ``compile=True``) every step does.
    """

    WARMUP = 3

    def __init__(
        self, module: _SoftTreeModule, est: "SoftDecisionTree", *, steps_total: int, batch: int, n_features: int,
        n_classes: int, device: torch.device, x_dtype: torch.dtype, kernels: Any,
    ) -> None:
        self.module, self.device, self.batch, self.kernels = module, device, batch, kernels
        self.cuda = device.type == "cuda"
        self.graphs = self.cuda and _CUDA_GRAPHS and not est.compile and steps_total > self.WARMUP + 2
        self.base_lr = float(est.learning_rate)
        self.total = steps_total
        lr: Any = torch.tensor(self.base_lr, device=device) if self.graphs else self.base_lr
        groups = [{"params": [module.weight], "weight_decay": float(est.weight_decay)}]
        groups.append({"params": [p for p in (module.bias, module.log_beta, module.leaf_logits) if p.requires_grad], "weight_decay": 0.0})
        self.opt = torch.optim.AdamW(groups, lr=lr, fused=device.type in ("cpu", "cuda"), capturable=self.graphs)
        self.lr_t = lr if self.graphs else None
        node_depth = module.node_depth
        self.decay = (1.0 - 1.0 / (2.0**node_depth)).to(device)
        self.penalty_w = (float(est.lam) * 2.0 ** (-node_depth)).to(device)
        self.alpha_run = torch.full((module.weight.shape[0],), 0.5, device=device)
        self.fn = torch.compile(_train_step_loss) if est.compile else _train_step_loss
        if est.compile:
            self.kernels = None
        self.ws = _Workspace()
        self.xs = torch.empty(batch, n_features, dtype=x_dtype, device=device)
        self.ps = torch.empty(batch, n_classes, device=device)
        self.t = 0
        self.warm = 0
        self.graph: Any = None
        self.static_loss: torch.Tensor | None = None
        self.side = torch.cuda.Stream(device) if self.graphs else None
        # sparse filters: a 0/1 mask over the weights, applied after every step (inside the graph too)
        self.mask = torch.ones_like(module.weight) if est.max_weights is not None else None

    def prune(self, keep: int) -> None:
        """Keep the ``keep`` largest weights of every node (by magnitude), zero the rest from now on."""
        if self.mask is None:
            return
        w = self.module.weight.detach()
        keep = max(1, min(int(keep), w.shape[1]))
        idx = w.abs().topk(keep, dim=1).indices
        new = torch.zeros_like(self.mask)
        new.scatter_(1, idx, 1.0)
        self.mask.copy_(new)  # in place: a captured graph reads the same buffer
        with torch.no_grad():
            self.module.weight.mul_(self.mask)

    def _apply_mask(self) -> None:
        if self.mask is not None:
            with torch.no_grad():
                self.module.weight.mul_(self.mask)

    def _lr(self) -> None:
        # LambdaLR's arithmetic, so eager fits train exactly as before: base * lambda(t)
        lr = self.base_lr * (0.5 * (1 + math.cos(math.pi * min(self.t, self.total) / self.total)))
        if self.lr_t is not None:
            self.lr_t.fill_(lr)
        else:
            for g in self.opt.param_groups:
                g["lr"] = lr

    def _loss(self, rows: int) -> torch.Tensor:
        return self.fn(
            self.module, self.xs[:rows], self.ps[:rows], self.alpha_run, self.decay, self.penalty_w, self.cuda,
            self.ws, self.kernels,
        )

    def _eager(self, rows: int) -> torch.Tensor:
        loss = self._loss(rows)
        # after a capture the gradients are the graph's static buffers: zero them, never drop them
        self.opt.zero_grad(set_to_none=self.graph is None)
        loss.backward()
        self.opt.step()
        self._apply_mask()
        return loss.detach()

    def _capture(self) -> None:
        try:
            self.opt.zero_grad(set_to_none=True)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                loss = self._loss(self.batch)
                loss.backward()
                self.opt.step()
                self._apply_mask()
            self.graph, self.static_loss = graph, loss.detach()
        except Exception as exc:  # noqa: BLE001 - any capture failure: keep training eagerly
            torch.cuda.synchronize(self.device)
            self.graphs = False
            self.opt.zero_grad(set_to_none=True)
            logger.info("CUDA graph capture of the soft-tree step failed (%s: %s); training eagerly", type(exc).__name__, exc)

    def step(self, rows: int) -> torch.Tensor:
        """One optimisation step on ``xs[:rows]``, ``ps[:rows]``; returns the (device) loss."""
        self._lr()
        self.t += 1
        if self.graph is not None and rows == self.batch:
            self.graph.replay()
            return self.static_loss
        if self.graphs and self.graph is None and rows == self.batch:
            self.side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side):
                loss = self._eager(rows)
            torch.cuda.current_stream().wait_stream(self.side)
            self.warm += 1
            if self.warm == self.WARMUP:
                self._capture()
            return loss
        return self._eager(rows)


class SoftDecisionTree(TreeDisplayMixin, SoftTargetMixin, ClassifierMixin, BaseEstimator):
    """Soft decision tree (Frosst & Hinton 2017) trained on hard or soft labels.

    A complete binary tree of ``depth`` levels of oblique, sigmoid-gated splits with a learned
    class distribution at each of its ``2**depth`` leaves, trained end to end with Adam.

    Parameters
    ----------
    depth : int, default=8
        Number of split levels: ``2**depth - 1`` inner nodes and ``2**depth`` leaves.
    beta : float, default=1.0
        Initial inverse temperature of every node's sigmoid.
    learn_beta : bool, default=True
        Learn a per-node inverse temperature (kept positive as ``exp(log beta)``); fixed otherwise.
    lam : float, default=0.1
        Strength lambda of the balance penalty; a node at depth d gets ``lam * 2**-d``.
    learning_rate : float, default=0.01
        Adam's step size (annealed to 0 by a cosine schedule over the run).
    weight_decay : float, default=10.0
        Decoupled decay of the filters (AdamW: each step shrinks them by ``learning_rate *
        weight_decay``), against overfitting small transfer sets.  As beta is learned and not
        decayed, this bounds the filters' size while beta sets the sharpness of the split.
    epochs : int, default=40
    batch_size : int, default=256
        256 is right for small data on CPU; on a GPU use thousands.
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        Where to train and predict (``"auto"``: CUDA when available).  On CUDA the training step is
        captured in a CUDA graph and uses fused Triton kernels when Triton is installed; prediction
        runs in torch, batched, on this device (on the CPU when the machine has no GPU).
    compile : bool, default=False
        Wrap the training step in ``torch.compile`` instead (no CUDA graph, no fused kernels).
    input_shape : tuple of int or None, default=None
        Shape of one sample, for :meth:`filters_` (``distill`` fills it from the data set).
    max_weights : int or None, default=None
        Sparse filters: each inner node keeps at most this many nonzero weights, so a person can
        read a split as "these few pixels / features against those".  Pruned by magnitude (in the
        standardised space) on a cubic schedule over the first half of the epochs, then the
        survivors are fine-tuned with the others held at zero.  ``nonzero_per_node_`` reports the
        count.  None keeps dense filters.
    inference_dtype : {"auto", "float32", "float64"}, default="auto"
        Precision of :meth:`predict_proba`, :meth:`path_probabilities` and :meth:`apply`:
        ``"auto"`` is float64 on the CPU and float32 on CUDA.
    random_state : int or None, default=None
        Seeds the initialisation and the batch order.

    Attributes
    ----------
    classes_ : ndarray (K,)
    n_features_in_ : int
    n_inner_, n_leaves_ : int
    inner_weight_ : ndarray (n_inner_, n_features_in_), float32
        Filters in the space of the inputs given to ``fit`` (the internal standardisation is folded in).
    inner_bias_ : ndarray (n_inner_,)
    beta_ : ndarray (n_inner_,)
    leaf_logits_ : ndarray (n_leaves_, K)
    leaf_distributions_ : ndarray (n_leaves_, K)
        ``softmax(leaf_logits_)``.
    leaf_mass_ : ndarray (n_leaves_,)
        Mean path probability of each leaf over the training inputs.
    n_params_ : int

    Notes
    -----
    Where this follows the paper:

    - Branching ``p_i(x) = sigmoid(beta (x w_i + b_i))`` with a learned inverse temperature, leaf
      distributions ``softmax(phi^l)``, and both ways of predicting: the mixture over all leaves
      weighted by their path probabilities (:meth:`predict_proba`) and a single max path
      (:meth:`predict_proba_max_path`).
    - The loss is the path-probability-weighted cross-entropy between the target distribution T
      (one-hot labels or the teacher's soft labels) and each leaf's distribution,
      ``L(x) = -sum_l P^l(x) sum_k T_k log Q^l_k``, averaged over the batch.
    - The balance penalty ``C = -lam sum_i 2^-d(i) 0.5 (log alpha_i + log(1 - alpha_i))`` with
      ``alpha_i = sum_x P^i(x) p_i(x) / sum_x P^i(x)``, computed with an exponentially decaying
      running average whose window grows exponentially with depth (``2**d`` batches), as the
      paper describes.

    Where it deviates, and why:

    - The paper prints ``L(x) = -log sum_l P^l(x) sum_k T_k log Q^l_k``: the outer log is of a
      negative number.  Like the public reproductions we drop it and minimise the expected
      cross-entropy under the path distribution.
    - The running average of alpha gives the penalty's *value*, but its gradient flows through the
      current batch's alpha (a straight-through estimate); differentiating the running average
      itself would scale the gradient of deep nodes down by their window.
    - beta is one learned value per inner node (the paper uses a single learned scalar) and is kept
      positive, so "right" always means ``x w_i + b_i > 0``.
    - Inputs are standardised internally and the scaling folded back into ``inner_weight_`` and
      ``inner_bias_``, so the filters read in the caller's input space.
    - Max path: by default (``how="greedy"``) the path follows the more probable branch at every
      node, so the leaf reached is described exactly by the conjunction of its ``filter > 0``
      conditions (what :class:`~explain_distill.analysis.tree_view.TreeView` shows).  The paper's
      "leaf with the greatest path probability" is ``how="argmax"``; the two rarely differ once
      beta has grown.
    - Adam with a cosine-annealed step size instead of the paper's unspecified schedule.
    """

    #: The frontier protocol: the size is the number of leaves, set by ``depth``; smaller trees are
    #: the fitted one cut at a shallower depth (:meth:`ladder_`), not separate fits.
    size_unit = "leaves"
    size_param = "depth"
    size_ladder = (2, 3, 4, 5, 6, 7, 8)
    ladder_params: dict[str, Any] = {}

    def __init__(
        self,
        *,
        depth: int = 8,
        beta: float = 1.0,
        learn_beta: bool = True,
        lam: float = 0.1,
        learning_rate: float = 0.01,
        weight_decay: float = 10.0,
        epochs: int = 40,
        batch_size: int = 256,
        device: str = "auto",
        compile: bool = False,
        input_shape: tuple[int, ...] | None = None,
        max_weights: int | None = None,
        inference_dtype: Literal["auto", "float32", "float64"] = "auto",
        random_state: int | None = None,
    ) -> None:
        self.depth = depth
        self.max_weights = max_weights
        self.beta = beta
        self.learn_beta = learn_beta
        self.lam = lam
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.device = device
        self.compile = compile
        self.input_shape = input_shape
        self.inference_dtype = inference_dtype
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def _check_params(self) -> torch.device:
        depth = check_int(self.depth, "depth", low=1, high=30, hint="A soft tree has 2**depth leaves; 4 to 10 is usual.")
        check_positive(self.beta, "beta")
        if not isinstance(self.learn_beta, (bool, np.bool_)):
            raise TypeError(f"learn_beta must be True or False; received {self.learn_beta!r}.")
        if not isinstance(self.compile, (bool, np.bool_)):
            raise TypeError(f"compile must be True or False; received {self.compile!r}.")
        check_positive(self.lam, "lam", strict=False)
        check_positive(self.learning_rate, "learning_rate")
        check_positive(self.weight_decay, "weight_decay", strict=False)
        check_int(self.epochs, "epochs", low=1)
        batch = check_int(self.batch_size, "batch_size", low=1)
        check_choice(self.inference_dtype, "inference_dtype", ["auto", "float32", "float64"])
        if self.max_weights is not None:
            check_int(self.max_weights, "max_weights", low=1, hint="None keeps dense filters.")
        device = _resolve_device(self.device)
        return device

    def _check_memory(self, n_features: int, n_classes: int, batch: int, device: torch.device) -> None:
        n_nodes = 2 ** (self.depth + 1) - 1
        need = 4 * (_BUFFERS_PER_NODE * batch * n_nodes + 4 * (2**self.depth) * (n_features + 2 + n_classes))
        limit = _memory_limit(device)
        if need > limit:
            raise ValueError(
                f"depth={self.depth} with batch_size={batch} and {n_features} features needs about "
                f"{need / 2**30:.1f} GiB to train (2**depth={2 ** self.depth} leaves times the batch, plus the "
                f"filters), more than the {limit / 2**30:.1f} GiB this fit may use on {device.type}. "
                f"Lower depth (each level doubles the cost) or batch_size."
            )

    def _validate_stream(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Validation for memory-mapped / very large inputs without copying X (chunked checks)."""
        X = validate_data(self, X, dtype=[np.float32, np.float64], ensure_all_finite=False, copy=False)
        for s in range(0, len(X), _CHUNK):
            chunk = X[s : s + _CHUNK]
            if not np.isfinite(chunk).all():
                r, c = np.argwhere(~np.isfinite(chunk))[0]
                raise ValueError(
                    f"X contains NaN or infinity: row {s + r}, column {c} = {chunk[r, c]}. "
                    f"Drop or impute these values before calling (e.g. sklearn.impute.SimpleImputer)."
                )
        hard, soft = check_targets(y) if not isinstance(y, np.memmap) or y.ndim == 1 else (None, None)
        if isinstance(y, np.memmap) and y.ndim == 2:
            for s in range(0, len(y), _CHUNK):
                check_soft_labels(y[s : s + _CHUNK], name="y")
            soft = y
        if soft is not None:
            check_consistent_length(X=X, y=soft)
            self.classes_ = np.arange(soft.shape[1])
            self.soft_fit_ = True
            return X, soft
        from sklearn.utils.multiclass import check_classification_targets

        check_consistent_length(X=X, y=hard)
        check_classification_targets(hard)
        check_min_classes(hard, name="y")
        self.classes_, idx = np.unique(hard, return_inverse=True)
        self.soft_fit_ = False
        P = np.zeros((len(hard), len(self.classes_)), dtype=np.float32)
        P[np.arange(len(hard)), idx] = 1.0
        return X, P

    def fit(self, X: Any, y: Any) -> "SoftDecisionTree":
        """Train the tree.

        Parameters
        ----------
        X : array-like (n_samples, n_features)
            ``np.memmap`` inputs (and any larger than 1 GiB) are never copied whole on a CPU: they
            are streamed in contiguous blocks.  On CUDA the inputs are copied to the GPU once when
            they fit in its free memory, and streamed in blocks (two pinned buffers, a side
            stream) when they do not.
        y : array-like (n_samples,) or (n_samples, K)
            Hard labels, or soft labels whose rows are probability distributions.

        Returns
        -------
        self
        """
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None. "
                f"Pass hard labels (n_samples,) or soft labels (n_samples, n_classes)."
            )
        device = self._check_params()
        large = isinstance(X, np.memmap) or isinstance(y, np.memmap) or getattr(X, "nbytes", 0) > _STREAM_BYTES
        if large:
            X, P = self._validate_stream(X, y)
        else:
            X, P = self._validate_fit(X, y, dtype=np.float32)
        n, d = X.shape
        K = P.shape[1]
        batch = min(int(self.batch_size), n)
        self._check_memory(d, K, batch, device)
        on_cuda = device.type == "cuda"

        seed = self.random_state
        if seed is None:
            seed = int(np.random.default_rng().integers(2**31 - 1))
        elif not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise TypeError(f"random_state must be an int or None; received {seed!r}.")
        gen = torch.Generator().manual_seed(int(seed))
        module = _SoftTreeModule(d, int(self.depth), K, float(self.beta), bool(self.learn_beta), gen).to(device)
        kernels = _fused_kernels(int(self.depth), K, module.weight.dtype, device) if on_cuda else None
        x_dtype = torch.bfloat16 if on_cuda else torch.float32  # the step's matrix products run in bf16 on CUDA

        # where the data live: copied once (to the GPU when it fits there), or streamed in blocks
        if on_cuda:
            in_memory = _fits_on_device(n, d, K, x_dtype, batch, int(self.depth), device)
        else:
            in_memory = not large
        # small CPU fits: one torch thread (hand-offs cost more than they gain, and far more on a busy machine)
        small = device.type == "cpu" and batch * (2**self.depth) * (d + K) < 2e7
        with _threads(1 if small else None):
            if in_memory:
                feed: _InMemoryFeed | _BlockStream = _InMemoryFeed(X, P, device=device, x_dtype=x_dtype)
                mean, std = feed.mean, feed.std
            else:
                mean, std = _device_statistics(X, device)
                feed = _BlockStream(X, P, batch=batch, device=device, x_dtype=x_dtype, mean=mean, std=std, **_STREAM_BLOCKS)
        logger.debug(
            "soft tree fit: %d rows on %s (%s), fused kernels %s", n, device, "in memory" if in_memory else "streamed",
            kernels is not None,
        )

        trainer = _Trainer(
            module, self, steps_total=math.ceil(n / batch) * int(self.epochs), batch=batch, n_features=d, n_classes=K,
            device=device, x_dtype=x_dtype, kernels=kernels,
        )
        from tqdm.auto import tqdm

        epochs = range(int(self.epochs))
        long_run = n * int(self.epochs) * (2**self.depth) > 5e9
        bar = tqdm(epochs, desc="soft tree", unit="epoch", disable=None if long_run else True, leave=False)
        debug = logger.isEnabledFor(logging.DEBUG)
        module.train()
        try:
            with _matmul_precision(on_cuda), _threads(1 if small else None):
                for epoch in bar:
                    if self.max_weights is not None:
                        trainer.prune(_kept_weights(epoch, int(self.epochs), d, int(self.max_weights)))
                    running = torch.zeros((), device=device)
                    for rows in feed.epoch(gen, batch, trainer.xs, trainer.ps):
                        running += trainer.step(rows)
                    if debug:  # one host sync per epoch, only when someone listens
                        logger.debug("epoch %d: loss %.5f", epoch, float(running) / math.ceil(n / batch))
        finally:
            feed.close()
        # how this fit ran (for benchmarks and logs; not part of the fitted model)
        self._fit_info = {"in_memory": in_memory, "cuda_graph": trainer.graph is not None, "fused_kernels": kernels is not None}

        weight, bias, log_beta, leaf_logits = module.heap_order()
        W = weight.double().cpu().numpy()
        b = bias.double().cpu().numpy()
        self.beta_ = log_beta.exp().double().cpu().numpy()
        self.leaf_logits_ = leaf_logits.double().cpu().numpy()
        if self.max_weights is not None:  # exactly the kept weights, whatever the last step's rounding
            keep = min(int(self.max_weights), d)
            small_idx = np.argsort(-np.abs(W), axis=1, kind="stable")[:, keep:]
            np.put_along_axis(W, small_idx, 0.0, axis=1)
        W_raw = W * (1.0 / std)[None, :]
        self.inner_weight_ = W_raw.astype(np.float32)
        self.inner_bias_ = b - W_raw @ mean
        self._set_derived()
        del feed, trainer, module
        # leaf masses: mean path probabilities over the training inputs, on the device
        dev, dtype = device, (torch.float32 if on_cuda else torch.float64)
        tensors = self._tree_tensors(dev, dtype)
        mass = torch.zeros(self.n_leaves_, device=dev, dtype=torch.float64)
        with torch.no_grad(), _threads(1 if small else None):
            for chunk in self._device_chunks(X, dev, dtype):
                mass += _paths_torch(chunk, *tensors[:3]).sum(dim=0, dtype=torch.float64)
        self.leaf_mass_ = (mass / n).cpu().numpy()
        return self

    def _set_derived(self) -> None:
        self.n_inner_ = int(self.inner_weight_.shape[0])
        self.n_leaves_ = self.n_inner_ + 1
        z = self.leaf_logits_ - self.leaf_logits_.max(axis=1, keepdims=True)
        e = np.exp(z)
        self.leaf_distributions_ = e / e.sum(axis=1, keepdims=True)

    @property
    def n_params_(self) -> int:
        """Model size: nonzero filter weights, biases, betas and leaf logits."""
        check_is_fitted(self)
        return int(np.count_nonzero(self.inner_weight_) + self.inner_bias_.size + self.beta_.size + self.leaf_logits_.size)

    @property
    def nonzero_per_node_(self) -> np.ndarray:
        """Nonzero filter weights of every inner node (heap order): the readability of its split."""
        check_is_fitted(self)
        return np.count_nonzero(self.inner_weight_, axis=1)

    # ------------------------------------------------------------------ inference (torch, on the device)
    def _inference_setup(self) -> tuple[torch.device, torch.dtype]:
        """Where and in which precision the fitted tree runs: the estimator's device when it is
        there (a tree fitted on a GPU still predicts on a machine without one), float64 on the CPU
        and float32 on CUDA unless ``inference_dtype`` asks otherwise."""
        check_choice(self.inference_dtype, "inference_dtype", ["auto", "float32", "float64"])
        wanted = self.device if isinstance(self.device, (str, torch.device)) else "cpu"
        cuda = str(wanted) == "auto" or str(wanted).startswith("cuda")
        device = _resolve_device(wanted) if cuda and torch.cuda.is_available() else torch.device("cpu")
        if self.inference_dtype == "auto":
            dtype = torch.float32 if device.type == "cuda" else torch.float64
        else:
            dtype = getattr(torch, self.inference_dtype)
        return device, dtype

    def _tree_tensors(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """(filters, biases, betas, leaf distributions) as tensors on ``device`` in ``dtype``."""
        return tuple(
            torch.as_tensor(np.asarray(a, dtype=np.float64)).to(device=device, dtype=dtype)
            for a in (self.inner_weight_, self.inner_bias_, self.beta_, self.leaf_distributions_)
        )

    def _rows_per_chunk(self, device: torch.device | None = None, dtype: torch.dtype = torch.float64) -> int:
        """Rows per inference chunk: ~128 MiB of path probabilities on a CPU, ~1 GiB on a GPU."""
        budget = (1 << 30) if device is not None and device.type == "cuda" else (1 << 27)
        per_row = 2 * self.n_leaves_ * torch.empty((), dtype=dtype).element_size()
        return int(max(256, min(1 << 20 if budget > (1 << 27) else _CHUNK, budget // max(1, per_row))))

    def _device_chunks(self, X: np.ndarray, device: torch.device, dtype: torch.dtype):
        """``X`` in row chunks as tensors on ``device`` (one host-to-device copy per chunk)."""
        rows = self._rows_per_chunk(device, dtype)
        for s in range(0, len(X), rows):
            chunk = np.asarray(X[s : s + rows])
            if not chunk.flags.writeable:
                chunk = chunk.copy()
            yield torch.from_numpy(chunk).to(device=device, dtype=dtype, non_blocking=False)

    def _map(self, X: np.ndarray, fn: Any, cols: int, dtype_out: Any) -> np.ndarray:
        """``fn(chunk, W, b, beta, Q)`` over the chunks of ``X`` on the inference device, into one array."""
        device, dtype = self._inference_setup()
        tensors = self._tree_tensors(device, dtype)
        out = np.empty((len(X), cols) if cols else (len(X),), dtype=dtype_out)
        s = 0
        small = device.type == "cpu" and len(X) * (X.shape[1] + 2 * self.n_leaves_) < 2e7
        with torch.no_grad(), _threads(1 if small else None):
            for chunk in self._device_chunks(X, device, dtype):
                res = fn(chunk, *tensors)
                out[s : s + len(chunk)] = res.cpu().numpy()
                s += len(chunk)
        return out

    def _path_probabilities(self, X: np.ndarray) -> np.ndarray:
        """Path probabilities of every leaf for a validated array (float64 result)."""
        return self._map(X, lambda c, W, b, beta, Q: _paths_torch(c, W, b, beta), self.n_leaves_, np.float64)

    def torch_module(self) -> torch.nn.Module:
        """The fitted tree as a differentiable ``nn.Module``: flat (n, d) float32 -> log mixture probabilities.

        What Captum attributes through and FGSM differentiates (``analysis``); the forward is the
        same mixture ``log sum_l P(l | x) Q^l`` as :meth:`predict_proba`, in float32.
        """
        check_is_fitted(self)
        return _FittedSoftTree(self.inner_weight_, self.inner_bias_, self.beta_, self.leaf_distributions_)

    def _validate_inference(self, X: Any) -> np.ndarray:
        # float32 inputs stay float32 (each chunk is cast on the device); others become float64
        return self._validate_predict(X, dtype=[np.float64, np.float32])

    def path_probabilities(self, X: Any) -> np.ndarray:
        """Probability of reaching each leaf, shape (n_samples, n_leaves_); rows sum to 1."""
        return self._path_probabilities(self._validate_inference(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """The paper's mixture: leaf distributions weighted by their path probabilities.

        Runs in torch on the estimator's device (batched; float64 on the CPU, float32 on CUDA, see
        ``inference_dtype``) and returns float64.
        """
        X = self._validate_inference(X)
        K = self.leaf_distributions_.shape[1]
        return self._map(X, lambda c, W, b, beta, Q: _paths_torch(c, W, b, beta) @ Q, K, np.float64)

    def _greedy_leaf(self, X: np.ndarray) -> np.ndarray:
        return self._map(X, lambda c, W, b, beta, Q: _greedy_torch(c, W, b), 0, np.intp)

    def apply(self, X: Any, *, how: Literal["greedy", "argmax"] = "greedy") -> np.ndarray:
        """Heap id of the max-path leaf of every sample (``n_inner_ .. 2*n_inner_``).

        ``how="greedy"`` follows the more probable branch at every node; ``how="argmax"`` takes
        the leaf with the largest path probability (the paper's wording).
        """
        check_choice(how, "how", ["greedy", "argmax"])
        X = self._validate_inference(X)
        if how == "greedy":
            return self._greedy_leaf(X)
        n_inner = self.n_inner_
        return self._map(X, lambda c, W, b, beta, Q: _paths_torch(c, W, b, beta).argmax(dim=1) + n_inner, 0, np.intp)

    def predict_proba_max_path(self, X: Any, *, how: Literal["greedy", "argmax"] = "greedy") -> np.ndarray:
        """The distribution of the single max-path leaf of every sample (one readable path each)."""
        return self.leaf_distributions_[self.apply(X, how=how) - self.n_inner_]

    def predict_max_path(self, X: Any, *, how: Literal["greedy", "argmax"] = "greedy") -> np.ndarray:
        """Class of the max-path leaf."""
        return self.classes_[np.argmax(self.predict_proba_max_path(X, how=how), axis=1)]

    def max_path(self, x: Any) -> list[tuple[int, float, str]]:
        """The greedy max path of one sample: ``(inner node, filter response x.w+b, "left"/"right")``."""
        x = np.asarray(x)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if x.ndim != 2 or x.shape[0] != 1:
            raise ValueError(f"max_path takes one sample; received an array of shape {np.shape(x)}. Use apply(X) for many.")
        x = self._validate_predict(x)
        R = x @ self.inner_weight_.astype(np.float64).T + self.inner_bias_
        R = R[0]
        node, out = 0, []
        while node < self.n_inner_:
            right = bool(R[node] > 0)
            out.append((node, float(R[node]), "right" if right else "left"))
            node = 2 * node + 2 if right else 2 * node + 1
        return out

    def filters_(self, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """Inner-node filters shaped like one input, ``(n_inner_, *shape)`` (e.g. to show as images).

        ``shape`` defaults to ``input_shape`` (then to ``(n_features,)``).
        """
        check_is_fitted(self)
        shape = shape if shape is not None else self.input_shape
        if shape is None or (isinstance(shape, (tuple, list)) and len(shape) == 0):
            shape = (self.n_features_in_,)
        try:
            shape = tuple(int(s) for s in shape)
        except TypeError as exc:
            raise TypeError(f"shape must be a tuple of ints; received {shape!r}.") from exc
        if math.prod(shape) != self.n_features_in_:
            raise ValueError(
                f"shape {shape} holds {math.prod(shape)} values but the tree has {self.n_features_in_} features; "
                f"pass the shape of one sample, e.g. (8, 8) for 64 pixels."
            )
        return self.inner_weight_.reshape(self.n_inner_, *shape)

    # ------------------------------------------------------------------ the frontier
    @property
    def size_(self) -> int:
        """Number of leaves."""
        check_is_fitted(self)
        return int(self.n_leaves_)

    def ladder_(self, sizes: Any) -> list["SoftDecisionTree"]:
        """This tree cut at each depth in ``sizes`` (no refit).

        The cut keeps the top ``2**d - 1`` filters; each new leaf predicts the mixture of the leaf
        distributions below it, weighted by the training mass that reached them (``leaf_mass_``),
        which is what the fitted tree predicts for inputs that reach that node on average.
        """
        check_is_fitted(self)
        fitted = int(self.n_inner_.bit_length())
        out = []
        mass = np.asarray(self.leaf_mass_, dtype=np.float64)
        for d in sizes:
            d = check_int(d, "depth", low=1, high=fitted, hint=f"The fitted tree has depth {fitted}.")
            n_inner = 2**d - 1
            block = 2 ** (fitted - d)
            m = mass.reshape(2**d, block)
            dist = self.leaf_distributions_.reshape(2**d, block, -1)
            w = np.where(m.sum(axis=1, keepdims=True) > 0, m, 1.0)
            mix = (w[:, :, None] * dist).sum(axis=1) / w.sum(axis=1)[:, None]
            est = type(self)(**{**self.get_params(), "depth": int(d)})
            est.classes_ = self.classes_
            est.n_features_in_ = self.n_features_in_
            for attr in ("feature_names_in_", "class_names_"):
                if hasattr(self, attr):
                    setattr(est, attr, getattr(self, attr))
            est._set_state(
                {
                    "inner_weight": self.inner_weight_[:n_inner],
                    "inner_bias": self.inner_bias_[:n_inner],
                    "beta": self.beta_[:n_inner],
                    "leaf_logits": np.log(np.clip(mix, 1e-300, None)),
                    "leaf_mass": m.sum(axis=1),
                },
                {"soft_fit": bool(getattr(self, "soft_fit_", True))},
            )
            out.append(est)
        return out

    # ------------------------------------------------------------------ persistence (no pickle)
    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {
            "inner_weight": self.inner_weight_,
            "inner_bias": self.inner_bias_,
            "beta": self.beta_,
            "leaf_logits": self.leaf_logits_,
            "leaf_mass": self.leaf_mass_,
        }
        return arrays, {"depth_fitted": int(self.n_inner_.bit_length()), "soft_fit": bool(getattr(self, "soft_fit_", True))}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.inner_weight_ = np.asarray(arrays["inner_weight"], dtype=np.float32)
        self.inner_bias_ = np.asarray(arrays["inner_bias"], dtype=np.float64)
        self.beta_ = np.asarray(arrays["beta"], dtype=np.float64)
        self.leaf_logits_ = np.asarray(arrays["leaf_logits"], dtype=np.float64)
        self.leaf_mass_ = np.asarray(arrays["leaf_mass"], dtype=np.float64)
        self._set_derived()
        if self.inner_weight_.shape[1] != self.n_features_in_ or self.leaf_logits_.shape[0] != self.n_leaves_:
            raise ValueError("the saved soft tree's arrays do not fit together; re-save the surrogate.")
        self.soft_fit_ = bool(meta.get("soft_fit", True))


class SparseSoftDecisionTree(SoftDecisionTree):
    """The soft decision tree with sparse filters: at most ``max_weights`` (default 8) nonzero
    weights per inner node, so each split reads as a handful of pixels or features.

    The same model and training as :class:`SoftDecisionTree` (see there), registered as its own
    family (``soft_tree_sparse``) so the frontier shows what sparsity costs in fidelity.
    """

    def __init__(
        self,
        *,
        depth: int = 8,
        beta: float = 1.0,
        learn_beta: bool = True,
        lam: float = 0.1,
        learning_rate: float = 0.01,
        weight_decay: float = 10.0,
        epochs: int = 40,
        batch_size: int = 256,
        device: str = "auto",
        compile: bool = False,
        input_shape: tuple[int, ...] | None = None,
        max_weights: int | None = 8,
        inference_dtype: Literal["auto", "float32", "float64"] = "auto",
        random_state: int | None = None,
    ) -> None:
        super().__init__(
            depth=depth, beta=beta, learn_beta=learn_beta, lam=lam, learning_rate=learning_rate,
            weight_decay=weight_decay, epochs=epochs, batch_size=batch_size, device=device, compile=compile,
            input_shape=input_shape, max_weights=max_weights, inference_dtype=inference_dtype,
            random_state=random_state,
        )


class _threads:
    """Cap torch's CPU threads during a fit of small steps (restored afterwards).

    Steps of a few microseconds of work lose more to thread hand-offs than they gain, and
    on a shared, busy machine several threads per step can be ten times slower than one.
    """

    def __init__(self, n: int | None) -> None:
        self.n = n

    def __enter__(self) -> None:
        if self.n is not None:
            self._old = torch.get_num_threads()
            torch.set_num_threads(self.n)

    def __exit__(self, *exc: Any) -> None:
        if self.n is not None:
            torch.set_num_threads(self._old)


class _matmul_precision:
    """TF32 matmuls on CUDA for the duration of a fit, restored afterwards."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __enter__(self) -> None:
        if self.enabled:
            self._old = torch.get_float32_matmul_precision()
            torch.set_float32_matmul_precision("high")

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            torch.set_float32_matmul_precision(self._old)
