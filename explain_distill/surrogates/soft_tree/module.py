"""The soft tree as torch modules, and the order its nodes are stored in.

:class:`_SoftTreeModule` holds the trainable parameters (all inner filters as one matrix, the leaf
logits, one log-beta per node) in the *training layout* of :func:`_training_layout`: level by
level, each level bit-reversed, so a node's children sit at the same position in the two halves of
the next level.  :class:`_FittedSoftTree` is a fitted tree (heap order) as a differentiable module,
for attributions and gradient attacks.  :func:`_level_slices` and :func:`_bit_reverse` are the
index arithmetic both use.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _level_slices(depth: int) -> list[tuple[int, int]]:
    return [(2**d - 1, 2 ** (d + 1) - 1) for d in range(depth)]


def _bit_reverse(j: int, bits: int) -> int:
    return int(format(j, f"0{bits}b")[::-1], 2) if bits else 0


_LAYOUTS: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def _training_layout(depth: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Column orders for :class:`~.loss._TreeLoss` (cached per depth and device).

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
