# Frozen copy of explain_distill/surrogates/soft_tree.py at commit 8d8999f (before issue 16), the
# baseline that benchmarks/bench_gpu_fit.py and bench_soft_tree.py time side by side with the current code.
# Loaded by benchmarks/_baseline.py as a module of explain_distill.surrogates; never imported by the library.
# ruff: noqa
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
from ._base import SoftTargetMixin

logger = logging.getLogger(__name__)

__all__ = ["SoftDecisionTree"]

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
    def forward(ctx, x, pb, weight, bias, log_beta, leaf_logits, alpha_run, decay, penalty_w, low_precision, ws):  # noqa: D102
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
        xm = x.to(mm)
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
        pbd = pb.to(dtype)
        Mt = pbd.T @ R[:, n_inner : n_inner + L]  # (K, L): sum_x T_k(x) P^l(x)
        log_q = torch.log_softmax(leaf_logits.to(dtype), dim=1)  # (L, K)
        data = -(Mt * log_q.T).sum() / B
        # alpha_i = sum_x P^i p_i / sum_x P^i = S_right(i) / S_i, for all nodes at once
        S = R.sum(dim=0)
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
        return None, None, d_weight, d_bias, d_log_beta, d_leaf.to(leaf_logits.dtype), None, None, None, None, None


def _train_step_loss(
    module: _SoftTreeModule,
    xb: torch.Tensor,
    pb: torch.Tensor,
    alpha_run: torch.Tensor,
    decay: torch.Tensor,
    penalty_w: torch.Tensor,
    low_precision: bool = False,
    workspace: _Workspace | None = None,
) -> torch.Tensor:
    """The paper's loss for one batch (see SoftDecisionTree's Notes); updates ``alpha_run`` in place."""
    return _TreeLoss.apply(
        xb, pb, module.weight, module.bias, module.log_beta, module.leaf_logits, alpha_run, decay, penalty_w,
        low_precision, workspace,
    )


class SoftDecisionTree(SoftTargetMixin, ClassifierMixin, BaseEstimator):
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
        Where to train (``"auto"``: CUDA when available).  Prediction runs in numpy.
    compile : bool, default=False
        Wrap the training step in ``torch.compile`` (worth it on GPU for long runs).
    input_shape : tuple of int or None, default=None
        Shape of one sample, for :meth:`filters_` (``distill`` fills it from the data set).
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
        random_state: int | None = None,
    ) -> None:
        self.depth = depth
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
            ``np.memmap`` inputs (and any larger than 1 GiB) are streamed: each batch is read
            by index, the whole array is never copied.
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
        stream = isinstance(X, np.memmap) or isinstance(y, np.memmap) or getattr(X, "nbytes", 0) > _STREAM_BYTES
        if stream:
            X, P = self._validate_stream(X, y)
        else:
            X, P = self._validate_fit(X, y, dtype=np.float32)
        n, d = X.shape
        K = P.shape[1]
        batch = min(int(self.batch_size), n)
        self._check_memory(d, K, batch, device)

        # standardisation statistics (chunked, float64), folded into the filters after training
        s1 = np.zeros(d)
        s2 = np.zeros(d)
        for s in range(0, n, _CHUNK):
            c = np.asarray(X[s : s + _CHUNK], dtype=np.float64)
            s1 += c.sum(axis=0)
            s2 += (c * c).sum(axis=0)
        mean = s1 / n
        std = np.sqrt(np.maximum(s2 / n - mean**2, 0.0))
        std = np.where(std > 1e-8 * np.maximum(1.0, np.abs(mean)), std, 1.0)
        mean32 = mean.astype(np.float32)
        inv32 = (1.0 / std).astype(np.float32)

        seed = self.random_state
        if seed is None:
            seed = int(np.random.default_rng().integers(2**31 - 1))
        elif not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise TypeError(f"random_state must be an int or None; received {seed!r}.")
        gen = torch.Generator().manual_seed(int(seed))
        module = _SoftTreeModule(d, int(self.depth), K, float(self.beta), bool(self.learn_beta), gen).to(device)
        groups = [{"params": [module.weight], "weight_decay": float(self.weight_decay)}]
        groups.append({"params": [p for p in (module.bias, module.log_beta, module.leaf_logits) if p.requires_grad], "weight_decay": 0.0})
        opt = torch.optim.AdamW(groups, lr=float(self.learning_rate), fused=device.type in ("cpu", "cuda"))
        steps_per_epoch = math.ceil(n / batch)
        total = steps_per_epoch * int(self.epochs)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, total) / total)))

        node_depth = module.node_depth
        decay = (1.0 - 1.0 / (2.0**node_depth)).to(device)
        penalty_w = (float(self.lam) * 2.0 ** (-node_depth)).to(device)
        alpha_run = torch.full((module.weight.shape[0],), 0.5, device=device)

        on_cuda = device.type == "cuda"
        step = _train_step_loss
        workspace = _Workspace()
        if self.compile:
            step = torch.compile(_train_step_loss)

        if stream:
            Xt = Pt = None
        else:
            Xt = torch.from_numpy(np.ascontiguousarray((X - mean32) * inv32, dtype=np.float32)).to(device)
            Pt = torch.from_numpy(np.ascontiguousarray(P, dtype=np.float32)).to(device)
        mean_t = torch.from_numpy(mean32).to(device)
        inv_t = torch.from_numpy(inv32).to(device)

        def batches(perm: torch.Tensor):
            for s in range(0, n, batch):
                idx = perm[s : s + batch]
                if not stream:
                    yield Xt[idx], Pt[idx]
                    continue
                ix = idx.numpy()
                xb = torch.from_numpy(np.asarray(X[ix], dtype=np.float32))
                pb = torch.from_numpy(np.asarray(P[ix], dtype=np.float32))
                if on_cuda:
                    xb = xb.pin_memory().to(device, non_blocking=True)
                    pb = pb.pin_memory().to(device, non_blocking=True)
                yield (xb - mean_t) * inv_t, pb

        from tqdm.auto import tqdm

        epochs = range(int(self.epochs))
        long_run = n * int(self.epochs) * (2**self.depth) > 5e9
        bar = tqdm(epochs, desc="soft tree", unit="epoch", disable=None if long_run else True, leave=False)
        debug = logger.isEnabledFor(logging.DEBUG)
        module.train()
        small = device.type == "cpu" and batch * (2**self.depth) * (d + K) < 2e7
        with _matmul_precision(on_cuda), _threads(1 if small else None):
            for epoch in bar:
                perm = torch.randperm(n, generator=gen)
                if not stream:
                    perm = perm.to(device)
                running = torch.zeros((), device=device)
                for xb, pb in batches(perm):
                    loss = step(module, xb, pb, alpha_run, decay, penalty_w, on_cuda, workspace)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    running += loss.detach()
                if debug:  # one host sync per epoch, only when someone listens
                    logger.debug("epoch %d: loss %.5f", epoch, float(running) / steps_per_epoch)

        weight, bias, log_beta, leaf_logits = module.heap_order()
        W = weight.double().cpu().numpy()
        b = bias.double().cpu().numpy()
        self.beta_ = log_beta.exp().double().cpu().numpy()
        self.leaf_logits_ = leaf_logits.double().cpu().numpy()
        W_raw = W * (1.0 / std)[None, :]
        self.inner_weight_ = W_raw.astype(np.float32)
        self.inner_bias_ = b - W_raw @ mean
        self._set_derived()
        mass = np.zeros(self.n_leaves_)
        rows = self._rows_per_chunk()
        for s in range(0, n, rows):
            mass += self._path_probabilities(np.asarray(X[s : s + rows], dtype=np.float64)).sum(axis=0)
        self.leaf_mass_ = mass / n
        return self

    def _set_derived(self) -> None:
        self.n_inner_ = int(self.inner_weight_.shape[0])
        self.n_leaves_ = self.n_inner_ + 1
        z = self.leaf_logits_ - self.leaf_logits_.max(axis=1, keepdims=True)
        e = np.exp(z)
        self.leaf_distributions_ = e / e.sum(axis=1, keepdims=True)

    @property
    def n_params_(self) -> int:
        """Model size: filters, biases, betas and leaf logits."""
        check_is_fitted(self)
        return int(self.inner_weight_.size + self.inner_bias_.size + self.beta_.size + self.leaf_logits_.size)

    # ------------------------------------------------------------------ inference (numpy)
    def _responses(self, X: np.ndarray) -> np.ndarray:
        return X @ self.inner_weight_.astype(np.float64).T + self.inner_bias_

    def _path_probabilities(self, X: np.ndarray) -> np.ndarray:
        z = self._responses(X) * self.beta_
        p = 0.5 * (1.0 + np.tanh(0.5 * z))  # a sigmoid that never overflows
        mu = np.ones((len(X), 1))
        for lo, hi in _level_slices(self.n_inner_.bit_length()):
            pd = p[:, lo:hi]
            mu = np.stack((mu * (1 - pd), mu * pd), axis=2).reshape(len(X), -1)
        return mu

    def torch_module(self) -> torch.nn.Module:
        """The fitted tree as a differentiable ``nn.Module``: flat (n, d) float32 -> log mixture probabilities.

        What Captum attributes through and FGSM differentiates (``analysis``); the forward is the
        same mixture ``log sum_l P(l | x) Q^l`` as :meth:`predict_proba`, in float32.
        """
        check_is_fitted(self)
        return _FittedSoftTree(self.inner_weight_, self.inner_bias_, self.beta_, self.leaf_distributions_)

    def _chunks(self, X: np.ndarray, fn: Any) -> np.ndarray:
        rows = self._rows_per_chunk()
        return np.concatenate([fn(np.asarray(X[s : s + rows], dtype=np.float64)) for s in range(0, len(X), rows)])

    def _rows_per_chunk(self) -> int:
        """Rows per inference chunk: ~128 MiB of float64 path probabilities, whatever the depth."""
        return int(max(256, min(_CHUNK, (1 << 24) // max(1, 2 * self.n_leaves_))))

    def path_probabilities(self, X: Any) -> np.ndarray:
        """Probability of reaching each leaf, shape (n_samples, n_leaves_); rows sum to 1."""
        X = self._validate_predict(X)
        return self._chunks(X, self._path_probabilities)

    def predict_proba(self, X: Any) -> np.ndarray:
        """The paper's mixture: leaf distributions weighted by their path probabilities."""
        X = self._validate_predict(X)
        return self._chunks(X, lambda c: self._path_probabilities(c) @ self.leaf_distributions_)

    def _greedy_leaf(self, X: np.ndarray) -> np.ndarray:
        R = self._responses(X)
        node = np.zeros(len(X), dtype=np.intp)
        rows = np.arange(len(X))
        for _ in range(self.n_inner_.bit_length()):
            node = 2 * node + 1 + (R[rows, node] > 0)
        return node

    def apply(self, X: Any, *, how: Literal["greedy", "argmax"] = "greedy") -> np.ndarray:
        """Heap id of the max-path leaf of every sample (``n_inner_ .. 2*n_inner_``).

        ``how="greedy"`` follows the more probable branch at every node; ``how="argmax"`` takes
        the leaf with the largest path probability (the paper's wording).
        """
        check_choice(how, "how", ["greedy", "argmax"])
        X = self._validate_predict(X)
        if how == "greedy":
            return self._chunks(X, self._greedy_leaf)
        return self._chunks(X, lambda c: np.argmax(self._path_probabilities(c), axis=1) + self.n_inner_)

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
        R = self._responses(x)[0]
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
