"""Cyclic gradient boosting of piecewise-constant shape functions, the way InterpretML's EBM fits its terms.

Every term is a step function over one feature's quantile bins.  Round after round, each term in turn
takes one small Newton step on the softmax cross-entropy against the current residual of every row: a
stump over its ordered bins, the one cut whose two sides, with their own Newton values per class, lower
the loss most (the multiclass gain summed over classes).  Each step is shrunk by ``learning_rate``
and the next term sees the residual the step left (cyclic, not all terms at once: neighbouring
features of a signal are correlated, and simultaneous steps on them overshoot).  The rounds stop when the loss on held-out rows has not improved for ``patience`` rounds;
the terms of the best round are kept.  Many small stumps on fine bins with early stopping regularise the
shapes the way EBM's do, which a maximum-likelihood fit of the same step functions does not: on
mnist1d's raw inputs a spline GAM fitted to the optimum agrees with the teacher on 0.40 of the test
rows, these shapes on 0.45 (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ._hist import midpoint_edges, newton_gain, one_hot

__all__ = ["StepMain", "boost_terms"]

#: Ridge on a leaf's Newton value, in units of summed row weight (XGBoost's ``reg_lambda``): a leaf of
#: thousands of rows barely feels it; a small leaf where the model gives a class almost no probability,
#: yet rows of that class sit, would otherwise take a step of (rows / tiny hessian).
L2 = 1.0
#: A validation loss counts as better when it drops by more than this.
TOLERANCE = 1e-6
#: Histogram slots (rows x classes x terms) up to which every term's slots are computed once per fit
#: (int32: 128 MiB) rather than at every step.
_FLAT_CODES_CACHED = 1 << 25


class StepMain:
    """One feature's shape, constant on each bin: ``edges`` cut it (a value on an edge goes below)."""

    form = "step"

    def __init__(self, feature: int, edges: np.ndarray, bounds: tuple[float, float]) -> None:
        self.features = (int(feature),)
        self.edges = np.asarray(edges, dtype=np.float64)
        self.bounds = (float(bounds[0]), float(bounds[1]))
        self.size = len(self.edges) + 1

    @classmethod
    def binned(cls, feature: int, x: np.ndarray, w: np.ndarray, max_bins: int) -> "StepMain | None":
        """Quantile bins of the rows of weight > 0; None when the feature is constant there."""
        edges = midpoint_edges(x, w, max_bins)
        if len(edges) == 0:
            return None
        live = x[w > 0]
        return cls(feature, edges, (float(live.min()), float(live.max())))

    def codes(self, X: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.edges, X[:, self.features[0]], side="left")

    def basis(self, X: np.ndarray) -> sp.csr_matrix:
        return one_hot(self.codes(X), self.size)

    def contrib(self, block: np.ndarray, X: np.ndarray) -> np.ndarray:
        return block[self.codes(X)]

    @property
    def grid(self) -> np.ndarray:
        """The bin boundaries, the outer ones at the fitted rows' range: (size + 1,)."""
        lo, hi = self.bounds
        return np.concatenate([[min(lo, self.edges[0])], self.edges, [max(hi, self.edges[-1])]])


def _stump(G: np.ndarray, H: np.ndarray, N: np.ndarray, min_samples_leaf: int) -> np.ndarray | None:
    """Newton values per bin of the best single cut of the ordered bins (None when no cut is allowed)."""
    GL, HL, NL = np.cumsum(G, axis=0)[:-1], np.cumsum(H, axis=0)[:-1], np.cumsum(N)[:-1]
    GR, HR, NR = G.sum(axis=0) - GL, H.sum(axis=0) - HL, N.sum() - NL
    ok = (NL >= min_samples_leaf) & (NR >= min_samples_leaf)
    if not ok.any():
        return None
    gain = newton_gain(GL, HL, L2) + newton_gain(GR, HR, L2)
    gain[~ok] = -np.inf
    b = int(np.argmax(gain))
    u = np.empty_like(G)
    u[: b + 1] = -GL[b] / (HL[b] + L2)
    u[b + 1 :] = -GR[b] / (HR[b] + L2)
    return u


def _flat_codes(codes: np.ndarray, K: int) -> np.ndarray:
    """Row i's bin b as K slots b*K .. b*K+K-1 of a (bins, K) histogram, flattened row by row."""
    return (codes.astype(np.int32)[:, None] * np.int32(K) + np.arange(K, dtype=np.int32)).ravel()


def _cross_entropy(Z: np.ndarray, Y: np.ndarray, w: np.ndarray) -> float:
    Z = Z - Z.max(axis=1, keepdims=True)
    logp = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
    return float(-(w @ (Y * logp).sum(axis=1)) / max(float(w.sum()), 1e-12))


def boost_terms(
    terms: list[Any],
    blocks: list[np.ndarray],
    intercept: np.ndarray,
    active: list[int],
    data: tuple[np.ndarray, np.ndarray, np.ndarray],
    stop: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    *,
    learning_rate: float,
    max_rounds: int,
    patience: int,
    min_samples_leaf: int,
) -> tuple[list[np.ndarray], int]:
    """Boost the ``active`` terms' blocks (each a :class:`StepMain`) on ``data = (X, Y, w)``; the other
    terms (any with ``contrib(block, X)``) stay as they are.

    ``stop = (X_val, Y_val, w_val)``: early stopping on their cross-entropy (the blocks of the best
    round come back); None stops on the training loss instead.  Returns (blocks, rounds kept).
    """
    X, Y, w = data
    n, K = Y.shape
    blocks = [np.array(b, dtype=np.float64, copy=True) for b in blocks]

    def logits(A: np.ndarray) -> np.ndarray:
        return np.tile(intercept, (len(A), 1)) + sum((terms[i].contrib(blocks[i], A) for i in range(len(terms))),
                                                     np.zeros((len(A), K)))

    codes = {i: terms[i].codes(X) for i in active}
    Z = logits(X)
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    counts = {i: np.bincount(codes[i], weights=w, minlength=terms[i].size) for i in active}  # weight counts as rows
    if stop is not None:
        Xv, Yv, wv = stop
        vcodes = {i: terms[i].codes(Xv) for i in active}
        Zv = logits(Xv)

    def loss() -> float:  # held out, else on the training rows (E: their softmax numerators, rescaled)
        return _cross_entropy(Zv, Yv, wv) if stop is not None else _cross_entropy(np.log(np.maximum(E, 1e-300)), Y, w)

    best = loss()
    kept, best_round = [b.copy() for b in blocks], 0
    unit = bool(np.all(w == 1.0))
    flat = {i: _flat_codes(codes[i], K) for i in active} if n * K * len(active) <= _FLAT_CODES_CACHED else {}
    for r in range(1, int(max_rounds) + 1):
        for i in active:
            p = E * (1.0 / E.sum(axis=1))[:, None]
            g = p - Y
            h = p * (1.0 - p)
            if not unit:
                g *= w[:, None]
                h *= w[:, None]
            at = flat[i] if i in flat else _flat_codes(codes[i], K)
            size = terms[i].size
            G = np.bincount(at, g.ravel(), size * K).reshape(size, K)
            H = np.bincount(at, h.ravel(), size * K).reshape(size, K)
            step = _stump(G, H, counts[i], min_samples_leaf)
            if step is None:
                continue
            step *= learning_rate
            blocks[i] += step
            E *= np.exp(step)[codes[i]]
            if stop is not None:
                Zv += step[vcodes[i]]
        E /= E.max(axis=1, keepdims=True)
        now = loss()
        if now < best - TOLERANCE:
            best, best_round, kept = now, r, [b.copy() for b in blocks]
        elif r - best_round >= patience:
            break
    return kept, best_round
