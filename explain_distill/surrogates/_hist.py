"""Binned inputs and split histograms shared by the greedy readable surrogates (figs, rules, gam).

A :class:`Binner` turns each feature into at most ``max_bins`` ordered bins whose edges are
thresholds in the input space (midpoints between distinct values, so a rule ``x <= t`` reads the
same on the raw data and on the bins).  A :class:`Histograms` object holds the one-hot bin matrix of
the rows (a CSR matrix, one non-zero per row and feature) and sums any per-row channels (gradients,
class masses, counts) into every bin of every feature of a subset of rows with one sparse product.
The split searches read left/right sums off per-feature cumulative sums of those histograms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["Binner", "Histograms", "best_newton_split", "newton_gain", "Split", "weighted_quantile", "midpoint_edges"]

#: Rows used to place the bin edges of one feature (a random subset beyond this many rows).
_EDGE_SAMPLE = 200_000


def weighted_quantile(x: np.ndarray, w: np.ndarray | None, qs: np.ndarray) -> np.ndarray:
    """Quantiles of ``x`` under weights ``w`` by the inverted CDF (the smallest value whose cumulative
    weight reaches ``q`` of the total): integer weights give exactly the quantiles of repeated rows."""
    x = np.asarray(x, dtype=np.float64)
    if w is None:
        w = np.ones(len(x))
    order = np.argsort(x, kind="stable")
    xs, cw = x[order], np.cumsum(np.asarray(w, dtype=np.float64)[order])
    total = cw[-1]
    idx = np.searchsorted(cw, np.asarray(qs, dtype=np.float64) * total - 1e-12 * total, side="left")
    return xs[np.clip(idx, 0, len(xs) - 1)]


def float32_cut(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A threshold between each pair of neighbouring values ``lo < hi``, exactly representable in float32
    and with ``lo <= t < hi`` in float32 too, so a rule ``x <= t`` reads the same on float32 inputs
    (as the views compare) and on float64 ones."""
    t = ((np.asarray(lo, dtype=np.float64) + np.asarray(hi, dtype=np.float64)) / 2.0).astype(np.float32).astype(np.float64)
    bad = (t >= np.asarray(hi, dtype=np.float32).astype(np.float64)) | (t < np.asarray(lo, dtype=np.float32).astype(np.float64))
    return np.where(bad, np.asarray(lo, dtype=np.float32).astype(np.float64), t)


def one_hot(codes: np.ndarray, size: int) -> sp.csr_matrix:
    """(n, size) indicators of one code per row."""
    n = len(codes)
    return sp.csr_matrix((np.ones(n), codes, np.arange(n + 1)), shape=(n, size))


def midpoint_edges(col: np.ndarray, w: np.ndarray | None, n_bins: int) -> np.ndarray:
    """Inner edges cutting ``col`` into at most ``n_bins`` bins: between every two distinct values when
    there are few, else between the values at (weighted) equal-mass quantiles.  Rows of weight 0 place
    no edge, so integer weights and repeated rows give the same edges."""
    col = np.asarray(col, dtype=np.float64)
    if w is not None:
        keep = np.asarray(w) > 0
        col, w = col[keep], np.asarray(w, dtype=np.float64)[keep]
    u = np.unique(col)
    if len(u) <= 1:
        return np.empty(0)
    if len(u) <= n_bins:
        return np.unique(float32_cut(u[:-1], u[1:]))
    q = weighted_quantile(col, w, np.linspace(0.0, 1.0, n_bins + 1)[1:-1])
    k = np.clip(np.searchsorted(u, q, side="right"), 1, len(u) - 1)
    return np.unique(float32_cut(u[k - 1], u[k]))


class Binner:
    """Per-feature thresholds that cut each feature into at most ``max_bins`` bins.

    A feature with at most ``max_bins`` distinct values gets the midpoints between them; otherwise
    the midpoints at (about) equal-count quantiles.  ``transform`` gives bin codes: code ``c`` of
    feature ``j`` means ``thresholds_[j][c-1] < x <= thresholds_[j][c]``, so ``x <= thresholds_[j][k]``
    holds exactly when the code is ``<= k``.
    """

    def __init__(self, max_bins: int = 64, random_state: int | None = 0) -> None:
        if not 2 <= int(max_bins) <= 256:
            raise ValueError(f"max_bins must be between 2 and 256; received {max_bins}.")
        self.max_bins = int(max_bins)
        self.random_state = random_state

    def fit(self, X: np.ndarray, sample_weight: np.ndarray | None = None) -> "Binner":
        """Place the edges (weighted quantiles; rows of weight 0 place none)."""
        X = np.asarray(X)
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        rng = np.random.default_rng(self.random_state)
        if len(X) > _EDGE_SAMPLE:
            pick = rng.choice(len(X), _EDGE_SAMPLE, replace=False)
            X, w = X[pick], (None if w is None else w[pick])
        self.thresholds_: list[np.ndarray] = [midpoint_edges(X[:, j], w, self.max_bins) for j in range(X.shape[1])]
        self.n_bins_ = np.array([len(t) + 1 for t in self.thresholds_], dtype=np.int64)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Bin codes (n, d), uint8."""
        X = np.asarray(X)
        out = np.empty(X.shape, dtype=np.uint8)
        for j, thr in enumerate(self.thresholds_):
            out[:, j] = np.searchsorted(thr, np.asarray(X[:, j], dtype=np.float64), side="left")
        return out


class Histograms:
    """Sums of per-row channels over the bins of every feature, for any subset of rows.

    ``codes`` (n, d) are bin codes and ``n_bins`` (d,) the bins per feature.  ``sums(rows, V)``
    returns a (total_bins, c) matrix: row ``offsets[j] + b`` holds the sum of the channels ``V``
    (one row per entry of ``rows``) over the rows whose feature ``j`` falls in bin ``b``.
    """

    def __init__(self, codes: np.ndarray, n_bins: np.ndarray) -> None:
        self.n_bins = np.asarray(n_bins, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.n_bins)[:-1]]).astype(np.int64)
        self.total = int(self.n_bins.sum())
        self.d = len(self.n_bins)
        self.codes = np.ascontiguousarray(codes)
        self._matrix = self._onehot(self.codes)

    def _onehot(self, codes: np.ndarray) -> sp.csr_matrix:
        n, d = codes.shape
        flat = (codes.astype(np.int64) + self.offsets[None, :]).ravel()
        return sp.csr_matrix(
            (np.ones(flat.size, dtype=np.float32), flat, np.arange(0, flat.size + 1, d, dtype=np.int64)), shape=(n, self.total)
        )

    @property
    def n_rows(self) -> int:
        return self._matrix.shape[0]

    def append(self, codes: np.ndarray) -> None:
        """Add rows (their bin codes) at the end."""
        if len(codes):
            self.codes = np.concatenate([self.codes, codes])
            self._matrix = sp.vstack([self._matrix, self._onehot(codes)], format="csr")

    def sums(self, rows: np.ndarray | None, V: np.ndarray) -> np.ndarray:
        """Channel sums per bin of ``rows`` (all rows when None); ``V`` holds those rows' channels, in order.

        The sums run in float32 (twice as fast as float64; a bin sums at most n rows) and come back
        as float64.
        """
        M = self._matrix if rows is None else self._matrix[rows]
        return np.asarray(M.T @ np.asarray(V, dtype=np.float32), dtype=np.float64)

    def cumulative(self, H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(left sums for every threshold, valid mask): ``left[offsets[j] + k]`` sums bins ``0..k`` of feature ``j``.

        The last bin of each feature is no threshold (everything would go left): ``valid`` is False there.
        """
        C = np.cumsum(H, axis=0)
        # what precedes each feature's first bin, repeated over its bins (a copy, not a gather per bin)
        before = np.zeros((self.d, C.shape[1]), dtype=C.dtype)
        before[1:] = C[self.offsets[1:] - 1]
        C -= np.repeat(before, self.n_bins, axis=0)
        if getattr(self, "_valid", None) is None or len(self._valid) != self.total:
            self._valid = np.ones(self.total, dtype=bool)
            self._valid[self.offsets + self.n_bins - 1] = False
        return C, self._valid.copy()

    def locate(self, flat: int) -> tuple[int, int]:
        """(feature, bin) of a flat bin index."""
        j = int(np.searchsorted(self.offsets, flat, side="right") - 1)
        return j, int(flat - self.offsets[j])


@dataclass
class Split:
    """The best split of a set of rows: feature, bin (``code <= bin`` goes left) and its gain."""

    gain: float
    feature: int = -1
    bin: int = -1


def newton_gain(G: np.ndarray, H: np.ndarray, l2: float) -> np.ndarray:
    """Second-order loss decrease of a Newton step on a leaf, summed over classes: 0.5 sum_k G_k^2 / (H_k + l2)."""
    return 0.5 * np.sum(G * G / (H + l2), axis=-1)


def best_newton_split(hist: Histograms, S: np.ndarray, K: int, *, l2: float, min_leaf: float) -> Split:
    """Best split of rows whose channel sums over the bins are ``S`` = [G (K) | H (K) | count].

    The gain of giving each side its own Newton step instead of one for the whole node; sides
    with fewer than ``min_leaf`` rows (in ``count``) are not allowed.
    """
    left, valid = hist.cumulative(S)
    total = S[hist.offsets[0] : hist.offsets[0] + hist.n_bins[0]].sum(axis=0)
    right = total[None, :] - left
    nl, nr = left[:, 2 * K], right[:, 2 * K]
    ok = valid & (nl >= min_leaf) & (nr >= min_leaf)
    if not ok.any():
        return Split(gain=0.0)
    parent = newton_gain(total[:K], total[K : 2 * K], l2)
    gain = newton_gain(left[:, :K], left[:, K : 2 * K], l2) + newton_gain(right[:, :K], right[:, K : 2 * K], l2) - parent
    gain = np.where(ok, gain, -np.inf)
    flat = int(np.argmax(gain))
    if not np.isfinite(gain[flat]) or gain[flat] <= 0:
        return Split(gain=0.0)
    j, b = hist.locate(flat)
    return Split(gain=float(gain[flat]), feature=j, bin=b)
