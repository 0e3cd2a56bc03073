"""Tree alternating optimisation (TAO): better thresholds for a tree of fixed shape.

Greedy growth picks each split for the impurity it removes at that moment, never for the tree's
final agreement with the teacher.  TAO (Carreira-Perpinan & Tavallali, NeurIPS 2018) keeps the
tree's shape and revisits every split, deepest first: with the rest of the tree fixed, the rows that
reach a node are decided by its left or its right subtree, and for a row the two subtrees label
differently (a "care" row) only the side it is sent to matters.  The node's best split is then a
weighted 0/1 problem over the care rows: send each row to the side whose subtree agrees with the
teacher.  Every such step can only raise the agreement on the fitting rows; a few passes over the
tree converge.

Here the split search runs over binned thresholds (:class:`~._hist.Binner`, the midpoints that figs
and the rule list search too) with one sparse histogram product per node, a split is changed only
when it agrees on strictly more (weighted) rows, and never so that a node of the tree is left
without rows.  The leaves are then refitted: each leaf holds the mean target of the rows reaching it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.tree import DecisionTreeRegressor

from .._stats import paired_difference
from ._hist import Binner, Histograms
from ._sktree import NODE_FIELDS, make_regressor, node_depths
from ._target import hard_targets

__all__ = ["refine_splits", "Refinement", "bin_rows", "TreeRefiner"]


@dataclass
class Refinement:
    """What :func:`refine_splits` did: passes run, splits changed, agreement on the fitting rows before and after."""

    passes: int
    changed: int
    agreement_before: float
    agreement_after: float


class _Shape:
    """The fixed shape of a tree: children, depths, and routing of rows through any subtree."""

    def __init__(self, reg: DecisionTreeRegressor) -> None:
        t = reg.tree_
        self.left = np.asarray(t.children_left, dtype=np.int64).copy()
        self.right = np.asarray(t.children_right, dtype=np.int64).copy()
        self.feature = np.asarray(t.feature, dtype=np.int64).copy()
        self.threshold = np.asarray(t.threshold, dtype=np.float64).copy()
        self.depth = node_depths(self.left, self.right)
        self.inner = self.left >= 0

    def child(self, X: np.ndarray, rows: np.ndarray, node: np.ndarray) -> np.ndarray:
        """The child of inner ``node`` (one per row) that each of ``rows`` goes to."""
        return np.where(X[rows, self.feature[node]] <= self.threshold[node], self.left[node], self.right[node])

    def route(self, X: np.ndarray, rows: np.ndarray, start: int, *, visits: np.ndarray | None = None) -> np.ndarray:
        """The leaf each of ``rows`` reaches from node ``start``; ``visits`` (n_nodes,) counts rows per node passed."""
        node = np.full(len(rows), start, dtype=np.int64)
        active = np.arange(len(rows))
        while len(active):
            n = node[active]
            if visits is not None:
                visits += np.bincount(n, minlength=len(self.left))
            inner = self.inner[n]
            active, n = active[inner], n[inner]
            node[active] = self.child(X, rows[active], n)
        return node


def refine_splits(reg: DecisionTreeRegressor, X: np.ndarray, T: np.ndarray, w: np.ndarray, *, passes: int = 3,
                  max_bins: int = 256, min_samples_leaf: int = 1, random_state: int | None = 0,
                  bins: tuple[Histograms, list[np.ndarray]] | None = None) -> tuple[DecisionTreeRegressor, Refinement]:
    """``reg`` with its thresholds (and split features) re-chosen by TAO on rows ``X`` with targets ``T``.

    ``T`` (n, K) are the targets the tree was fitted to (soft distributions or one-hot rows); the
    objective is the weighted share of rows whose leaf's top class is ``argmax T``.  ``X`` should be
    float32 (scikit-learn's trees compare float32 inputs with their thresholds).  Returns a new
    regressor of the same shape and the :class:`Refinement` it made.  ``bins``: the rows' histograms and
    the thresholds of their bins (:func:`bin_rows`), when several trees are refined on the same rows.
    """
    X = np.asarray(X, dtype=np.float32)
    T = np.asarray(T, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    y = np.argmax(T, axis=1)
    K = T.shape[1]
    shape = _Shape(reg)
    rows = np.arange(len(X))
    before = _agreement(_node_sums(shape, X, T, w), y, w)
    if len(shape.left) == 0 or not shape.inner[0]:
        return reg, Refinement(0, 0, before, before)
    hist, edges = bins if bins is not None else bin_rows(X, w, max_bins=max_bins, random_state=random_state)
    changed = done = 0
    for done in range(1, passes + 1):
        step = 0
        leaf = shape.route(X, rows, 0)
        label = _leaf_labels(shape, leaf, y, w, K)
        for d in range(int(shape.depth[shape.inner].max()), -1, -1):
            reach = _reach_at_depth(shape, X, d)
            for i in np.flatnonzero((shape.depth == d) & shape.inner):
                S = np.flatnonzero(reach == i)
                if len(S) >= 2:
                    step += _refine_node(shape, i, S, X, y, w, label, hist, edges, min_samples_leaf)
        changed += step
        if step == 0:
            break
    sums = _node_sums(shape, X, T, w)
    return _rebuild(reg, shape, sums), Refinement(done, changed, before, _agreement(sums, y, w))


def bin_rows(X: np.ndarray, w: np.ndarray, *, max_bins: int = 256, random_state: int | None = 0) -> tuple[Histograms, list[np.ndarray]]:
    """The histograms of rows ``X`` over at most ``max_bins`` bins per feature, and each feature's thresholds."""
    binner = Binner(max_bins=max_bins, random_state=random_state).fit(X, w)
    return Histograms(binner.transform(X), binner.n_bins_), binner.thresholds_


def _refine_node(shape: _Shape, i: int, S: np.ndarray, X: np.ndarray, y: np.ndarray, w: np.ndarray, label: np.ndarray,
                 hist: Histograms, edges: list[np.ndarray], min_leaf: int) -> int:
    """Re-choose node ``i``'s split for the rows ``S`` reaching it; 1 when it changed."""
    ok_left = label[shape.route(X, S, int(shape.left[i]))] == y[S]
    ok_right = label[shape.route(X, S, int(shape.right[i]))] == y[S]
    care = ok_left != ok_right
    if not care.any():
        return 0
    ws = w[S]
    # channels per row: weight agreeing if sent left, if sent right, and the row count
    V = np.stack([np.where(care & ok_left, ws, 0.0), np.where(care & ok_right, ws, 0.0), np.ones(len(S))], axis=1)
    left, valid = hist.cumulative(hist.sums(S, V))
    total_right = float(V[:, 1].sum())
    score = left[:, 0] + (total_right - left[:, 1])
    n = float(len(S))
    valid &= (left[:, 2] >= min_leaf) & (n - left[:, 2] >= min_leaf)
    go = X[S, shape.feature[i]] <= shape.threshold[i]
    current = float(np.sum(V[go, 0]) + np.sum(V[~go, 1]))
    score = np.where(valid, score, -np.inf)
    for flat in np.argsort(-score)[:4]:  # the best few, in case the best would empty a node below
        if not score[flat] > current + 1e-9 * max(1.0, abs(current)):
            return 0
        j, b = hist.locate(int(flat))
        old = shape.feature[i], shape.threshold[i]
        shape.feature[i], shape.threshold[i] = j, float(edges[j][b])
        visits = np.zeros(len(shape.left), dtype=np.int64)
        shape.route(X, S, i, visits=visits)
        below = _subtree(shape, i)
        if np.all(visits[below] >= min_leaf):
            return 1
        shape.feature[i], shape.threshold[i] = old
    return 0


def _subtree(shape: _Shape, i: int) -> np.ndarray:
    out, stack = [], [i]
    while stack:
        j = stack.pop()
        out.append(j)
        if shape.inner[j]:
            stack += [int(shape.left[j]), int(shape.right[j])]
    return np.asarray(out, dtype=np.int64)


def _reach_at_depth(shape: _Shape, X: np.ndarray, d: int) -> np.ndarray:
    """The node at depth ``d`` each row passes (or the leaf it stopped in above)."""
    node = np.zeros(len(X), dtype=np.int64)
    for _ in range(d):
        idx = np.flatnonzero(shape.inner[node])
        n = node[idx]
        node[idx] = shape.child(X, idx, n)
    return node


def _leaf_labels(shape: _Shape, leaf: np.ndarray, y: np.ndarray, w: np.ndarray, K: int) -> np.ndarray:
    """Each leaf's weighted majority class among the rows reaching it (0 for a leaf no row reaches)."""
    M = np.zeros((len(shape.left), K))
    np.add.at(M, (leaf, y), w)
    return np.argmax(M, axis=1)


@dataclass
class _NodeSums:
    """Per node: weighted mean target, weighted sum of squared targets, weight and row count; per row: its leaf."""

    mean: np.ndarray
    sq: np.ndarray
    weight: np.ndarray
    count: np.ndarray
    leaf: np.ndarray


def _agreement(sums: _NodeSums, y: np.ndarray, w: np.ndarray) -> float:
    """Weighted share of rows whose leaf's mean target has ``y``'s class on top."""
    hit = np.argmax(sums.mean[sums.leaf], axis=1) == y
    return float(np.sum(w * hit) / max(float(w.sum()), 1e-12))


def _node_sums(shape: _Shape, X: np.ndarray, T: np.ndarray, w: np.ndarray) -> _NodeSums:
    """Every node's statistics over the rows passing it, and the leaf each row ends in (one descent)."""
    n_nodes, K = len(shape.left), T.shape[1]
    S1, S2 = np.zeros((n_nodes, K)), np.zeros((n_nodes, K))
    W, N = np.zeros(n_nodes), np.zeros(n_nodes, dtype=np.int64)
    node = np.zeros(len(X), dtype=np.int64)
    active = np.arange(len(X))
    while len(active):
        n = node[active]
        np.add.at(S1, n, w[active, None] * T[active])
        np.add.at(S2, n, w[active, None] * T[active] ** 2)
        W += np.bincount(n, weights=w[active], minlength=n_nodes)
        N += np.bincount(n, minlength=n_nodes)
        inner = shape.inner[n]
        active, n = active[inner], n[inner]
        node[active] = shape.child(X, active, n)
    return _NodeSums(S1 / np.maximum(W, 1e-12)[:, None], S2, W, N, node)


def _rebuild(reg: DecisionTreeRegressor, shape: _Shape, sums: _NodeSums) -> DecisionTreeRegressor:
    """The regressor with the new splits and every node's statistics (``sums``, recomputed on the rows)."""
    mean, S2, W, N = sums.mean, sums.sq, sums.weight, sums.count
    old = reg.tree_.__getstate__()
    values = np.asarray(old["values"], dtype=np.float64)[:, :, 0].copy()
    seen = W > 0
    values[seen] = mean[seen]
    # impurity: the mean over outputs of the weighted variance (what best-first growth compares; a
    # cut of this tree replays its order from these)
    var = np.where(seen[:, None], S2 / np.maximum(W, 1e-12)[:, None] - mean**2, 0.0)
    nodes = old["nodes"]
    fields = {f: np.asarray(nodes[f]) for f in NODE_FIELDS if f in nodes.dtype.names}
    fields["feature"] = np.where(shape.inner, shape.feature, -2)
    fields["threshold"] = np.where(shape.inner, shape.threshold, -2.0)
    fields["impurity"] = np.maximum(var, 0.0).mean(axis=1)
    fields["n_node_samples"] = N
    fields["weighted_n_node_samples"] = W
    return make_regressor(reg.n_features_in_, fields, values, **reg.get_params())


#: Most cells (rows x features) a :class:`TreeRefiner` keeps: a random subset of the rows beyond it.
MAX_CELLS = 4_000_000


class TreeRefiner:
    """Refines trees on the rows a tree surrogate was fitted on, each kept only when it holds up on validation.

    Keeps (a random subset of, beyond :data:`MAX_CELLS` cells) the fitting rows ``X`` (float32), their
    soft labels ``P`` and weights ``w``, and the validation rows ``(X_val, P_val, w_val)`` (or None).
    :meth:`refine` returns the refined tree unless the validation rows say it agrees with the teacher
    less than the unrefined one beyond chance (the paired 95% interval of the difference below 0;
    without validation rows it is always kept), and a plain record of what it did.  Results are cached by ``key``.
    """

    def __init__(self, X: np.ndarray, P: np.ndarray, w: np.ndarray, validation: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
                 *, min_samples_leaf: int = 1, random_state: int | None = 0) -> None:
        n, d = X.shape
        cap = max(1000, MAX_CELLS // max(d, 1))
        rows = np.sort(np.random.default_rng(random_state).choice(n, cap, replace=False)) if n > cap else np.arange(n)
        self.X = np.asarray(X[rows], dtype=np.float32)
        self.P = np.asarray(P[rows], dtype=np.float64)
        self.w = np.asarray(w[rows], dtype=np.float64)
        self.n_rows = len(rows)
        self.validation = validation
        self.min_samples_leaf = int(min_samples_leaf)
        self.random_state = random_state
        self._bins: tuple[Histograms, list[np.ndarray]] | None = None
        self._cache: dict = {}

    def refine(self, reg: DecisionTreeRegressor, target: str, key: object) -> tuple[DecisionTreeRegressor, dict]:
        """(the tree to keep, its record) for ``reg`` fitted to ``target`` ("soft" or "hard") labels."""
        if key in self._cache:
            return self._cache[key]
        if self._bins is None:
            self._bins = bin_rows(self.X, self.w, random_state=self.random_state)
        T = self.P if target == "soft" else hard_targets(self.P)
        new, info = refine_splits(reg, self.X, T, self.w, min_samples_leaf=self.min_samples_leaf, bins=self._bins)
        record = {"changed": info.changed, "passes": info.passes, "fit_rows": self.n_rows,
                  "fit_before": info.agreement_before, "fit_after": info.agreement_after}
        kept = info.changed > 0
        if kept and self.validation is not None:
            Xv, Pv, wv = self.validation
            Xv = np.asarray(Xv, dtype=np.float32)
            ok_before, ok_after = (_agrees(m, Xv, Pv) for m in (reg, new))
            # worse beyond chance: the paired 95% interval of the difference lies below 0
            diff, _, upper = paired_difference(ok_after, ok_before, wv)
            before = float(np.average(ok_before, weights=wv))
            record.update(validation_before=before, validation_after=before + diff, validation_upper=upper)
            kept = upper >= 0.0
        record["kept"] = bool(kept)
        out = (new if kept else reg, record)
        self._cache[key] = out
        return out


def _agrees(reg: DecisionTreeRegressor, X: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Per row: 1.0 where the tree's top class is the teacher's."""
    pred = np.argmax(reg.predict(X).reshape(len(X), -1), axis=1)
    return (pred == np.argmax(P, axis=1)).astype(np.float64)
