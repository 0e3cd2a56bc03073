"""``figs``: a sum of small trees fitted greedily to the teacher's soft labels (FIGS-style).

Fast Interpretable Greedy-tree Sums (Tan et al. 2022) grow several shallow trees at once: every
step takes the single split, among all leaves of all trees and the root of a new tree, that lowers
the loss most.  Here the trees add up to class logits (a multinomial link, as in gradient
boosting): the prediction is ``softmax(bias + sum_t value_t[leaf_t(x)])`` and the loss is the soft
cross-entropy to the teacher's distribution.  Splits are scored by the second-order (Newton) gain
on binned inputs; a leaf's values are set by a Newton step when it is made, and once the structure
is chosen all leaf values are refitted jointly (``refit=True``: the soft-label multinomial logistic
regression on the leaf indicators, the same exact L-BFGS fit as the ``logistic`` surrogate).

Each step's gain is computed from the gradients of the model as it stands; a leaf whose cached
gain is older than the last step is re-scored only when it reaches the top of the queue (lazy
greedy), so each step costs a few histograms rather than one per tree.

Size: ``size_`` counts the leaves of all trees (``size_unit = "leaves"``), the budget is
``max_leaves``.  The splits are recorded in the order they were made, so a smaller budget is a
prefix of one fit: :meth:`SumOfTreesClassifier.ladder_` returns those smaller models, their leaf
values refitted on the training rows.  Each rung is the model a fit at that budget gives: where the
prefix stops one leaf short (the larger fit's next split started a new tree, which a fit at the
smaller budget has no room for, so it takes a leaf split instead), the growth is rerun at that budget.
"""

from __future__ import annotations

import copy
import heapq
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from .._validation import check_choice, check_fraction, check_int, check_positive
from ._base import SoftTargetMixin, TreeDisplayMixin
from ._hist import Binner, Histograms, Split, best_newton_split
from ._target import TARGETS, agreement, best_candidate, check_validation, hard_targets, split_validation
from .shallow import _fit_soft_multinomial

logger = logging.getLogger(__name__)

__all__ = ["SumOfTreesClassifier"]

#: L-BFGS iterations of the joint leaf-value refit, warm-started at the greedy Newton values.  On
#: digits (256 leaves) the refit adds 0.5 point of fidelity at 30 iterations and nothing more at 300.
_REFIT_ITER = 50

#: The queue is an exact lazy greedy: a candidate whose rows moved since it was scored is re-scored on all
#: its rows when it reaches the top, and taken only if it still beats every other queued gain, as FIGS,
#: which re-scores every candidate after every split, would take it.  (Until 2026-12-02 a re-scored
#: candidate within 20% of the top was taken at once and stale candidates were ranked on 2048 of their rows:
#: on mnist1d's patterns that grew 4 trees where FIGS grows 2 at 16 leaves, 0.870 test fidelity against
#: FIGS's 0.904; exact, 0.895, and the same fit time: benchmarks/RESULTS.md.)

#: Floor on the diagonal Hessian q(1 - q) of each row and class.  Where a class the teacher gives
#: mass has q near 0 the plain Newton step and gain blow up (a split of 7k digits rows asked for
#: 8 logits and the loss exploded); the floor keeps both bounded by 1 / 0.05 = 20 per unit gradient.
_MIN_HESSIAN = 0.05


#: The losses a sum of trees is grown with; "auto" chooses on validation.
LOSSES = ("logistic", "squared_error", "auto")


def _key(cfg: tuple[str, str, int | None]) -> str:
    return f"{cfg[0]}/{cfg[1]}/depth {cfg[2]}"


def _softmax(F: np.ndarray) -> np.ndarray:
    Z = F - F.max(axis=1, keepdims=True)
    np.exp(Z, out=Z)
    Z /= Z.sum(axis=1, keepdims=True)
    return Z


@dataclass
class _Tree:
    """A tree under construction: parallel node lists (children -1 at leaves)."""

    feature: list[int] = field(default_factory=list)
    bin: list[int] = field(default_factory=list)
    left: list[int] = field(default_factory=list)
    right: list[int] = field(default_factory=list)
    depth: list[int] = field(default_factory=list)
    value: list[np.ndarray] = field(default_factory=list)

    def add(self, depth: int, value: np.ndarray) -> int:
        self.feature.append(-1)
        self.bin.append(-1)
        self.left.append(-1)
        self.right.append(-1)
        self.depth.append(depth)
        self.value.append(value)
        return len(self.feature) - 1


@dataclass
class _Candidate:
    rows: np.ndarray
    tree: int  # -1: the root of a new tree
    node: int
    depth: int
    split: Split
    step: int  # the step whose gradients scored it


@dataclass
class _Growth:
    """What one greedy run made: the trees (full) and the order of its splits."""

    trees: list[_Tree]
    steps: list[tuple[int, int]]  # (tree, node) split at each step, in order
    bias: np.ndarray


def _channels(F: np.ndarray, P: np.ndarray, w: np.ndarray, loss: str = "logistic") -> np.ndarray:
    """[gradient (K) | hessian diagonal (K) | weight] of the soft cross-entropy at logits F (``loss="logistic"``),
    or of half the squared error of scores F to the targets (``"squared_error"``, FIGS's loss: hessian 1)."""
    out = np.empty((len(F), 2 * P.shape[1] + 1))
    K = P.shape[1]
    if loss == "squared_error":
        out[:, :K] = (F - P) * w[:, None]
        out[:, K : 2 * K] = w[:, None]
        out[:, 2 * K] = w
        return out
    Q = _softmax(F)
    out[:, :K] = (Q - P) * w[:, None]
    out[:, K : 2 * K] = np.maximum(Q * (1.0 - Q), _MIN_HESSIAN) * w[:, None]
    out[:, 2 * K] = w  # a leaf's size is its weight (integer weights act as repeated rows)
    return out


def _loss(F: np.ndarray, P: np.ndarray, w: np.ndarray) -> float:
    """Weighted soft cross-entropy of logits F to targets P."""
    Z = F - F.max(axis=1, keepdims=True)
    log_q = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
    return float(-np.sum(w[:, None] * P * log_q))


def _damped(F: np.ndarray, P: np.ndarray, w: np.ndarray, step: np.ndarray, G: np.ndarray) -> np.ndarray:
    """The Newton ``step`` of a leaf, halved until the loss of its rows drops (Armijo, at most 10 halvings).

    The diagonal Newton step ignores how the classes' probabilities pull on each other; where the
    teacher gives mass to a class the model has all but ruled out it overshoots, and successive
    leaves then swing back and forth.
    """
    base = _loss(F, P, w)
    slope = float(G @ step)  # directional derivative (negative)
    alpha = 1.0
    for _ in range(10):
        if _loss(F + alpha * step, P, w) <= base + 1e-4 * alpha * slope:
            return alpha * step
        alpha *= 0.5
    return np.zeros_like(step)


class _Grower:
    """The state of one greedy growth: every row's logits and channels, the trees so far, and the queue
    of candidate splits (each open leaf of each tree, and the root of a new tree) by gain."""

    def __init__(self, hist: Histograms, P: np.ndarray, w: np.ndarray, *, max_depth: int | None, min_leaf: int,
                 l2: float, loss: str) -> None:
        self.hist, self.P, self.w = hist, P, w
        self.max_depth, self.min_leaf, self.l2, self.loss = max_depth, min_leaf, l2, loss
        self.n, self.K = P.shape
        mass = (w[:, None] * P).sum(axis=0) / max(float(w.sum()), 1e-12)
        if loss == "squared_error":  # FIGS: scores start at the class shares, each leaf adds its mean residual
            self.bias = mass.copy()
        else:
            self.bias = np.log(np.clip(mass, 1e-6, None))
            self.bias -= self.bias.mean()
        self.F = np.tile(self.bias, (self.n, 1))
        # The channels of every row at the current logits, and their sums over the bins of all rows
        # (the root of a new tree): kept current by adding the change of the rows each step moves.
        self.V = _channels(self.F, P, w, loss)
        self.root_sums = hist.sums(None, self.V)
        self.trees: list[_Tree] = []
        self.steps: list[tuple[int, int]] = []
        self.cands: dict[tuple[int, int], _Candidate] = {}
        self.heap: list[tuple[float, int, tuple[int, int]]] = []
        self.counter = 0
        self.step = 0
        self.all_rows = np.arange(self.n)
        self.moved_at = np.full(self.n, -1, dtype=np.int64)  # the last step that changed each row's logits
        self.fresh_sums: dict[tuple[int, int], np.ndarray] = {}  # exact sums of candidates scored at this step
        self.push((-1, 0), _Candidate(self.all_rows, -1, 0, 0, self.score((-1, 0), self.all_rows), self.step))

    def split_of(self, S: np.ndarray) -> Split:
        return best_newton_split(self.hist, S, self.K, l2=self.l2, min_leaf=self.min_leaf)

    def score(self, key: tuple[int, int], rows: np.ndarray) -> Split:
        """The best split of ``rows`` at the current gradients (its bin sums kept for the step that takes it)."""
        if len(rows) == self.n:
            return self.split_of(self.root_sums)
        S = self.hist.sums(rows, self.V[rows])
        self.fresh_sums[key] = S
        return self.split_of(S)

    def push(self, key: tuple[int, int], cand: _Candidate) -> None:
        self.cands[key] = cand
        heapq.heappush(self.heap, (-cand.split.gain, self.counter, key))
        self.counter += 1

    def pop_fresh(self) -> tuple[tuple[int, int], _Candidate | None]:
        """The top of the queue scored at the current gradients; None when it was gone or went back."""
        _, _, key = heapq.heappop(self.heap)
        cand = self.cands.pop(key, None)
        if cand is None:
            return key, None
        stale = cand.step < self.step and self.moved_at[cand.rows].max() >= cand.step
        if stale:  # its rows moved since it was scored: re-score it, and take it only if it still leads
            cand.split = self.score(key, cand.rows)
            cand.step = self.step
            if self.heap and cand.split.gain < -self.heap[0][0]:
                self.push(key, cand)
                return key, None
        return key, cand

    def take(self, key: tuple[int, int], cand: _Candidate, max_trees: int | None) -> None:
        """Make the split ``cand`` holds: each side takes its own Newton step, the sums follow, the
        children (and, after a new tree, the next tree's root) join the queue."""
        f, b, rows = cand.split.feature, cand.split.bin, cand.rows
        go_left = self.hist.codes[rows, f] <= b
        new_tree = cand.tree < 0
        if new_tree:
            tree = _Tree()
            node = tree.add(0, np.zeros(self.K))
            self.trees.append(tree)
            t = len(self.trees) - 1
        else:
            t, node = cand.tree, cand.node
            tree = self.trees[t]
        before = self._sums_before(key, cand)
        old_V = self.V[rows]
        kids = [(tree.add(tree.depth[node] + 1, tree.value[node] + self._newton_step(part)), part)
                for part in (rows[go_left], rows[~go_left])]
        sums = self._children_sums(rows, before, old_V, kids)
        (left, _), (right, _) = kids
        tree.feature[node], tree.bin[node], tree.left[node], tree.right[node] = f, b, left, right
        self.steps.append((t, node))
        self.moved_at[rows] = self.step
        self.step += 1
        self.fresh_sums.clear()
        for (child, part), S in zip(kids, sums):
            if (self.max_depth is None or tree.depth[child] < self.max_depth) and float(self.w[part].sum()) >= 2 * self.min_leaf:
                self.fresh_sums[(t, child)] = S
                self.push((t, child), _Candidate(part, t, child, tree.depth[child], self.split_of(S), self.step))
        if new_tree and (max_trees is None or len(self.trees) < max_trees):
            self.push((-1, len(self.trees)), _Candidate(self.all_rows, -1, 0, 0, cand.split, -1))

    def _sums_before(self, key: tuple[int, int], cand: _Candidate) -> np.ndarray:
        """The bin sums of the candidate's rows at the current gradients (reused where already taken)."""
        if len(cand.rows) == self.n:
            return self.root_sums
        before = self.fresh_sums.get(key) if cand.step == self.step else None
        return self.hist.sums(cand.rows, self.V[cand.rows]) if before is None else before

    def _newton_step(self, part: np.ndarray) -> np.ndarray:
        """Move the rows of one side by its Newton step (exact for the squared error); returns the step."""
        P, w, K = self.P, self.w, self.K
        G, H = self.V[part, :K].sum(axis=0), self.V[part, K : 2 * K].sum(axis=0)
        delta = -G / (H + self.l2)
        if self.loss != "squared_error":
            delta = _damped(self.F[part], P[part], w[part], delta, G)
        self.F[part] += delta
        self.V[part] = _channels(self.F[part], P[part], w[part], self.loss)
        return delta

    def _children_sums(self, rows: np.ndarray, before: np.ndarray, old_V: np.ndarray,
                       kids: list[tuple[int, np.ndarray]]) -> list[np.ndarray]:
        """The bin sums of the moved rows, before and after: the parent's and the root's change by
        the same amount; the smaller child is summed, the larger one is the difference."""
        change = self.hist.sums(rows, self.V[rows] - old_V)
        after = before + change
        self.root_sums = after if len(rows) == self.n else self.root_sums + change
        small = 0 if len(kids[0][1]) <= len(kids[1][1]) else 1
        S_small = self.hist.sums(kids[small][1], self.V[kids[small][1]])
        return [S_small, after - S_small] if small == 0 else [after - S_small, S_small]


def _grow(
    hist: Histograms,
    P: np.ndarray,
    w: np.ndarray,
    *,
    max_leaves: int,
    max_depth: int | None,
    max_trees: int | None,
    min_leaf: int,
    l2: float,
    loss: str = "logistic",
) -> _Growth:
    """Greedy growth to ``max_leaves``: take the queue's best fresh candidate until none gains or the
    budget is spent (a new tree needs room for its two leaves and, with ``max_trees``, a free slot)."""
    g = _Grower(hist, P, w, max_depth=max_depth, min_leaf=min_leaf, l2=l2, loss=loss)
    leaves = 0
    while g.heap and leaves < max_leaves:
        key, cand = g.pop_fresh()
        if cand is None:
            continue
        if cand.split.gain <= 0:
            break  # the best fresh candidate gains nothing: done
        new_tree = cand.tree < 0
        if new_tree and (leaves + 2 > max_leaves or (max_trees is not None and len(g.trees) >= max_trees)):
            continue  # no room for another tree; the leaf candidates stay queued
        g.take(key, cand, max_trees)
        leaves += 2 if new_tree else 1
    return _Growth(trees=g.trees, steps=g.steps, bias=g.bias)


@dataclass
class _Model:
    """A sum of trees as flat node arrays (all trees' nodes one after the other, children global ids)."""

    roots: np.ndarray  # (T,)
    feature: np.ndarray  # (N,) -1 at leaves
    bin: np.ndarray  # (N,)
    left: np.ndarray  # (N,) -1 at leaves
    right: np.ndarray  # (N,)
    value: np.ndarray  # (N, K) leaf values (zeros at internal nodes)
    bias: np.ndarray  # (K,)

    @property
    def leaves(self) -> np.ndarray:
        return np.flatnonzero(self.left < 0)


def _prefix(growth: _Growth, n_steps: int) -> _Model:
    """The model after the first ``n_steps`` splits, with the values its leaves had then."""
    made: dict[tuple[int, int], int] = {key: s for s, key in enumerate(growth.steps[:n_steps])}
    roots, feature, bins, left, right, value = [], [], [], [], [], []
    for t, tree in enumerate(growth.trees):
        if (t, 0) not in made:
            continue
        ids: dict[int, int] = {}
        stack = [0]
        order = []
        while stack:  # pre-order over the nodes that exist after n_steps
            node = stack.pop()
            ids[node] = len(feature) + len(order)
            order.append(node)
            if (t, node) in made:
                stack.append(tree.right[node])
                stack.append(tree.left[node])
        roots.append(ids[0])
        for node in order:
            split = (t, node) in made
            feature.append(tree.feature[node] if split else -1)
            bins.append(tree.bin[node] if split else -1)
            left.append(ids[tree.left[node]] if split else -1)
            right.append(ids[tree.right[node]] if split else -1)
            value.append(np.zeros_like(tree.value[node]) if split else tree.value[node])
    K = len(growth.bias)
    return _Model(
        roots=np.asarray(roots, dtype=np.int64),
        feature=np.asarray(feature, dtype=np.int64),
        bin=np.asarray(bins, dtype=np.int64),
        left=np.asarray(left, dtype=np.int64),
        right=np.asarray(right, dtype=np.int64),
        value=np.asarray(value, dtype=np.float64).reshape(-1, K),
        bias=growth.bias.copy(),
    )


def _steps_for(growth: _Growth, max_leaves: int) -> int:
    """The longest prefix of the growth whose trees have at most ``max_leaves`` leaves in all."""
    leaves, started = 0, set()
    for s, (t, node) in enumerate(growth.steps):
        add = 2 if t not in started else 1
        if leaves + add > max_leaves:
            return s
        started.add(t)
        leaves += add
    return len(growth.steps)


def _route(model: _Model, Xs: np.ndarray, thresholds: np.ndarray | None) -> np.ndarray:
    """Leaf (global node id) of every row in every tree, (n, T).

    ``thresholds`` None: ``Xs`` are bin codes compared with ``bin``; else raw inputs compared with
    ``thresholds`` (one per node).
    """
    n, T = len(Xs), len(model.roots)
    node = np.broadcast_to(model.roots, (n, T)).copy()
    cut = model.bin if thresholds is None else thresholds
    while True:
        inner = model.left[node] >= 0
        if not inner.any():
            return node
        r, c = np.nonzero(inner)
        at = node[r, c]
        go_left = Xs[r, model.feature[at]] <= cut[at]
        node[r, c] = np.where(go_left, model.left[at], model.right[at])


def _indicators(model: _Model, leaf_of: np.ndarray) -> sp.csr_matrix:
    """Sparse (n, n_leaves) matrix: 1 where a row falls in a leaf."""
    col = np.full(len(model.left), -1, dtype=np.int64)
    leaves = model.leaves
    col[leaves] = np.arange(len(leaves))
    n, T = leaf_of.shape
    return sp.csr_matrix(
        (np.ones(n * T), col[leaf_of].ravel(), np.arange(0, n * T + 1, T, dtype=np.int64)), shape=(n, len(leaves))
    )


def _refit(model: _Model, leaf_of: np.ndarray, P: np.ndarray, w: np.ndarray, *, l2: float, max_iter: int) -> _Model:
    """All leaf values and the bias refitted jointly: the soft-label multinomial logistic on leaf indicators."""
    if not len(model.roots):
        return model
    # Rows that fall in the same leaf of every tree share their logits, so the loss is the same summed
    # over one row per leaf combination, weighted by the rows' total weight, with their weighted mean
    # target: the same optimum on fewer rows (digits, 21k rows: 16 combinations at 8 leaves, 5k at 32).
    combos, inverse = np.unique(leaf_of, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    wc = np.bincount(inverse, weights=w, minlength=len(combos))
    Pc = np.zeros((len(combos), P.shape[1]))
    np.add.at(Pc, inverse, w[:, None] * P)
    Pc /= np.maximum(wc, 1e-300)[:, None]
    A = _indicators(model, combos)
    leaves = model.leaves
    with warnings.catch_warnings():  # a capped polish from the greedy values, not a fit to convergence
        warnings.simplefilter("ignore", ConvergenceWarning)
        W, b, _, _ = _fit_soft_multinomial(
            A, Pc, C=1.0 / l2, max_iter=max_iter, tol=1e-5, sample_weight=wc, init=(model.value[leaves].T, model.bias)
        )
    out = copy.copy(model)
    out.value = model.value.copy()
    out.value[leaves] = W.T
    out.bias = np.asarray(b, dtype=np.float64)
    return out


def _decision(model: _Model, leaf_of: np.ndarray) -> np.ndarray:
    return model.bias[None, :] + model.value[leaf_of].sum(axis=1)


class SumOfTreesClassifier(TreeDisplayMixin, SoftTargetMixin, ClassifierMixin, BaseEstimator):
    """A sum of small trees whose leaves add up to class logits (FIGS-style, greedy, soft labels).

    Parameters
    ----------
    max_leaves : int, default=32
        Budget of leaves over all trees (the size on the fidelity frontier).
    max_depth : int or None, default=3
        Deepest a single tree may grow.
    max_trees : int or None, default=None
        Most trees in the sum (None: as many as the budget allows).
    min_samples_leaf : int, default=5
    l2 : float, default=1.0
        Ridge penalty on leaf values (in units of summed rows: a leaf of m rows barely feels 1.0).
    max_bins : int, default=128
        Bins per feature the splits are searched over (thresholds are midpoints between values).
        A feature with fewer distinct values uses all of them.  On mnist1d's raw inputs, as
        ``distill`` fits it, 128 bins against 64 gave 0.293 / 0.461 / 0.638 test fidelity at 16 / 64 /
        256 leaves against 0.263 / 0.450 / 0.617 in the same fit time (imodels FIGS, on exact
        thresholds: 0.298 / 0.470); on digits (whose jittered and mixed queries make the pixels
        continuous) 0.773 / 0.938 / 0.971 against 0.778 / 0.938 / 0.971, the fit 11.4 s against 8.8 s
        (measured before the queue became an exact lazy greedy: with it, 128 bins give 0.301 / 0.469 /
        0.625 on mnist1d and 0.773 / 0.949 / 0.969 on digits).
    refit : bool, default=True
        Refit all leaf values jointly (exact soft-label multinomial fit) once the splits are chosen.
    target : {"soft", "hard", "auto"}, default="soft"
        Fit the teacher's distribution, its top class, or whichever is more faithful on validation.
    loss : {"logistic", "squared_error", "auto"}, default="logistic"
        What the splits lower: the soft cross-entropy of the summed logits (second-order gain), or,
        as imodels' FIGS does, the squared error of summed scores to the targets (each leaf adds its
        mean residual; the leaf values are then refitted as logits when ``refit``).  "auto" adds
        FIGS's own model as a candidate: squared error on the teacher's hard labels, trees of any
        depth (on mnist1d's raw inputs it leads at 16 and 64 leaves, where the logistic sum leads on
        digits).  With "auto" (``target`` or ``loss``) every candidate is grown and, at each size of
        :meth:`ladder_` (and at ``max_leaves``), the one most faithful on validation is kept (ties:
        the configured model): ``fit(..., validation=(X_val, P_val))`` when given (``distill``
        passes its held-out real rows; the candidates fit on every row), else
        ``validation_fraction`` of the rows, held out of the fit.
    validation_fraction : float, default=0.2
    random_state : int or None

    Attributes
    ----------
    trees_ : list of dict
        One table per tree: ``feature``, ``threshold`` (go left when ``x[feature] <= threshold``),
        ``left``, ``right`` (-1 at leaves, indices within the tree) and ``value`` (n_nodes, K): each
        leaf's contribution to the class logits (zeros at inner nodes).
    bias_ : ndarray (K,)
    size_ : int
        Leaves over all trees.
    target_, loss_, depth_ : str, str, int or None
        The target, loss and depth limit of the candidate fitted.
    validation_ : dict or None
        With "auto": ``{"sizes", "source", "n", "scores"}``, ``scores`` mapping each candidate
        ("target/loss/depth d") to its validation fidelity at each of ``sizes``.
    """

    size_unit = "leaves"
    size_param = "max_leaves"
    _view_kind = "figs"  # view(), draw(), export_text(), to_dict() show the bias and the trees
    #: Up to 128 leaves by default (digits: 0.96 there; 256 leaves double the fit for 1-2 points).
    size_ladder = (4, 8, 16, 32, 64, 128)
    #: A rung of :meth:`ladder_` is the model a fit at that size gives, so ``distill`` fits the family
    #: once, at the top of its ladder, and reads the configured size off it too.
    ladder_prefix = True
    #: ``distill`` passes ``validation=(X_val, P_val)`` (its held-out real rows) to a fit that asks for it.
    _fit_extra = ("validation",)

    def __init__(
        self,
        *,
        max_leaves: int = 32,
        max_depth: int | None = 3,
        max_trees: int | None = None,
        min_samples_leaf: int = 5,
        l2: float = 1.0,
        max_bins: int = 128,
        refit: bool = True,
        target: Literal["soft", "hard", "auto"] = "soft",
        loss: Literal["logistic", "squared_error", "auto"] = "logistic",
        validation_fraction: float = 0.2,
        random_state: int | None = None,
    ) -> None:
        self.max_leaves = max_leaves
        self.max_depth = max_depth
        self.max_trees = max_trees
        self.min_samples_leaf = min_samples_leaf
        self.l2 = l2
        self.max_bins = max_bins
        self.refit = refit
        self.target = target
        self.loss = loss
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def _check_params(self) -> None:
        check_int(self.max_leaves, "max_leaves", low=2, high=100_000)
        if self.max_depth is not None:
            check_int(self.max_depth, "max_depth", low=1, high=32)
        if self.max_trees is not None:
            check_int(self.max_trees, "max_trees", low=1)
        check_int(self.min_samples_leaf, "min_samples_leaf", low=1)
        check_positive(self.l2, "l2")
        check_int(self.max_bins, "max_bins", low=2, high=256)
        if not isinstance(self.refit, (bool, np.bool_)):
            raise TypeError(f"refit must be True or False; received {self.refit!r}.")
        check_choice(self.target, "target", TARGETS)
        check_choice(self.loss, "loss", LOSSES)
        check_fraction(self.validation_fraction, "validation_fraction", inclusive=False)

    def fit(self, X: Any, y: Any, sample_weight: Any = None, validation: Any = None) -> "SumOfTreesClassifier":
        """Fit on hard labels (n,) or soft labels (n, K); returns self.

        ``validation``: held-out rows ``(X_val, P_val)`` on which ``target="auto"`` / ``loss="auto"``
        choose (``distill`` passes the real training rows it holds out); the candidates then fit on
        every row.  Without it, "auto" holds out ``validation_fraction`` of the rows.
        """
        self._check_params()
        X, P = self._validate_fit(X, y)
        w = np.ones(len(X)) if sample_weight is None else _check_sample_weight(sample_weight, X, dtype=np.float64)
        binner = Binner(self.max_bins, random_state=self.random_state).fit(X, w)
        self.binner_thresholds_ = binner.thresholds_
        codes = binner.transform(X)
        self.validation_ = None
        self._regrown, self._models = {}, {}
        configs = self._configs()
        val = check_validation(validation, X.shape[1], P.shape[1]) if len(configs) > 1 else None
        split = None
        if len(configs) > 1 and val is None:
            split = split_validation(P, self.validation_fraction, self.random_state)
            if split is None:
                configs = configs[:1]
        tr = split[0] if split is not None else np.arange(len(X))
        self._growths = {}
        for cfg in configs:
            T = hard_targets(P[tr]) if cfg[0] == "hard" else P[tr]
            self._growths[cfg] = (self._grow(codes[tr], T, w[tr], cfg), codes[tr], T, w[tr])
        self.target_, self.loss_, self.depth_ = configs[0]
        if len(configs) > 1:
            if val is not None:
                codes_va, P_va, w_va = binner.transform(val[0]), val[1], val[2]
            else:
                va = split[1]
                codes_va, P_va, w_va = codes[va], P[va], w[va]
            self.validation_ = self._validate(codes_va, P_va, w_va)
            self.validation_.update(source="given" if val is not None else "carved", n=int(len(P_va)))
            self.target_, self.loss_, self.depth_ = self._best(int(self.max_leaves))
        self._set_model(self._model_at((self.target_, self.loss_, self.depth_), self.max_leaves))
        return self

    def _configs(self) -> list[tuple[str, str, int | None]]:
        """The (target, loss, max_depth) candidates, the configured model first (it wins ties).

        ``loss="auto"`` adds FIGS's own choice: the squared error on the teacher's hard labels, trees
        of any depth; ``target="auto"`` adds the hard target to each logistic candidate.
        """
        first = "hard" if self.target == "hard" else "soft"
        losses = ("logistic", "squared_error") if self.loss == "auto" else (self.loss,)
        out: list[tuple[str, str, int | None]] = []
        for loss in losses:
            if loss == "squared_error" and self.loss == "auto":
                out.append(("hard", "squared_error", None))
                continue
            out.append((first, loss, self.max_depth))
            if self.target == "auto":
                out.append(("hard", loss, self.max_depth))
        return list(dict.fromkeys(out))

    def _size_cap(self) -> int:
        return int(self.max_leaves)

    def _grow(self, codes: np.ndarray, P: np.ndarray, w: np.ndarray, cfg: tuple[str, str, int | None],
              max_leaves: int | None = None) -> _Growth:
        hist = Histograms(codes, np.array([len(t) + 1 for t in self.binner_thresholds_]))
        return _grow(hist, P, w, max_leaves=int(max_leaves or self.max_leaves), max_depth=cfg[2], max_trees=self.max_trees,
                     min_leaf=int(self.min_samples_leaf), l2=float(self.l2), loss=cfg[1])

    def _model_at(self, cfg: tuple[str, str, int | None], max_leaves: int) -> _Model:
        """The model a fit with budget ``max_leaves`` gives: a prefix of the growth, or, where the prefix stops
        short of the budget because the next split of the larger fit started a tree with no room left for it
        (a fit at this budget takes a leaf split instead), the growth rerun at this budget."""
        done = self._models.get((cfg, int(max_leaves)))
        if done is not None:
            return done
        growth, codes, P, w = self._growths[cfg]
        steps = _steps_for(growth, max_leaves)
        model = _prefix(growth, steps)
        leaves = int(np.sum(model.left < 0)) if len(model.roots) else 0
        if steps < len(growth.steps) and leaves < max_leaves:
            key = (cfg, int(max_leaves))
            if key not in self._regrown:
                self._regrown[key] = self._grow(codes, P, w, cfg, max_leaves=max_leaves)
            growth = self._regrown[key]
            model = _prefix(growth, len(growth.steps))
        if self.refit and len(model.roots):
            model = _refit(model, _route(model, codes, None), P, w, l2=float(self.l2), max_iter=_REFIT_ITER)
        self._models[(cfg, int(max_leaves))] = model  # validation and the ladder read the same models
        return model

    def _validate(self, codes: np.ndarray, P: np.ndarray, w: np.ndarray) -> dict[str, Any]:
        sizes = sorted({s for s in self.size_ladder if s < self.max_leaves} | {int(self.max_leaves)})
        out: dict[str, Any] = {"sizes": sizes, "scores": {}}
        for cfg in self._growths:
            scores = []
            for s in sizes:
                m = self._model_at(cfg, s)
                scores.append(agreement(_decision(m, _route(m, codes, None)), P, w) if len(m.roots) else
                              agreement(np.tile(m.bias, (len(P), 1)), P, w))
            out["scores"][_key(cfg)] = scores
        return out

    def _best(self, k: int) -> tuple[str, str, int | None]:
        """The candidate most faithful on validation at ``k`` leaves (the nearest size validated; ties: the first)."""
        return best_candidate(self.validation_, list(self._growths), k, _key)

    def _set_model(self, model: _Model) -> None:
        self.model_ = model
        thr = np.full(len(model.feature), np.nan)
        inner = model.feature >= 0
        thr[inner] = [self.binner_thresholds_[f][b] for f, b in zip(model.feature[inner], model.bin[inner])]
        self.thresholds_ = thr
        self.bias_ = model.bias

    # ------------------------------------------------------------------ the ladder
    def ladder_(self, sizes: Any = None) -> list["SumOfTreesClassifier"]:
        """The models of every budget in ``sizes`` (default ``size_ladder`` up to ``max_leaves``), from this one fit.

        Each is the greedy growth stopped at that many leaves, its leaf values refitted on the
        training rows (``refit=True``), fitted to the target that validated best at that size when
        ``target="auto"``.  Sizes above ``max_leaves`` give this model.
        """
        check_is_fitted(self)
        if not hasattr(self, "_growths"):
            raise ValueError(
                "ladder_ needs the growth record of a fit in this session; a loaded model has none. Refit it "
                "(or fit with the size you want)."
            )
        sizes = [s for s in self.size_ladder if s <= self.max_leaves] if sizes is None else list(sizes)
        out = []
        for s in sizes:
            check_int(s, "size", low=2)
            cfg = (self.target_, self.loss_, self.depth_)
            if self.validation_ is not None:
                cfg = self._best(s)
            est = copy.copy(self)
            est.max_leaves = int(min(s, self.max_leaves))
            est.target_, est.loss_, est.depth_ = cfg
            est._set_model(self._model_at(cfg, est.max_leaves))
            out.append(est)
        return out

    # ------------------------------------------------------------------ reading it
    @property
    def size_(self) -> int:
        """Leaves over all trees."""
        check_is_fitted(self)
        return int(np.sum(self.model_.left < 0)) if len(self.model_.roots) else 0

    @property
    def n_params_(self) -> int:
        """Model size: nodes over all trees (plus one for the bias when there are none)."""
        check_is_fitted(self)
        return max(int(len(self.model_.feature)), 1)

    @property
    def n_trees_(self) -> int:
        check_is_fitted(self)
        return int(len(self.model_.roots))

    @property
    def trees_(self) -> list[dict[str, np.ndarray]]:
        check_is_fitted(self)
        m = self.model_
        out = []
        ends = list(m.roots[1:]) + [len(m.feature)]
        for start, end in zip(m.roots, ends):
            sl = slice(int(start), int(end))
            left, right = m.left[sl], m.right[sl]
            out.append({
                "feature": m.feature[sl].copy(),
                "threshold": self.thresholds_[sl].copy(),
                "left": np.where(left >= 0, left - start, -1),
                "right": np.where(right >= 0, right - start, -1),
                "value": m.value[sl].copy(),
            })
        return out

    def _logits(self, X: Any) -> np.ndarray:
        X = self._validate_predict(X)
        m = self.model_
        if not len(m.roots):
            return np.tile(m.bias, (len(X), 1))
        return _decision(m, _route(m, X, self.thresholds_))

    def decision_function(self, X: Any) -> np.ndarray:
        """Class logits (n, K): the bias plus each tree's leaf value; with two classes the logit of
        class 1 minus that of class 0 (n,), as scikit-learn's binary classifiers."""
        Z = self._logits(X)
        return Z[:, 1] - Z[:, 0] if Z.shape[1] == 2 else Z

    def predict_proba(self, X: Any) -> np.ndarray:
        return _softmax(self._logits(X))

    def to_text(self, feature_names: list[str] | None = None, class_names: list[str] | None = None, decimals: int = 3) -> str:
        """Each tree as indented if/else text; a leaf shows its top class and its logit contributions.

        Names default to the fitted ``feature_names_in_`` / ``class_names_`` (``distill`` sets them);
        thresholds are printed in the data's raw units when the model carries them (``input_units_``).
        """
        check_is_fitted(self)
        check_int(decimals, "decimals", low=0, high=17)
        return self.view(feature_names=feature_names, class_names=class_names).export_text(decimals=decimals)

    def __str__(self) -> str:
        try:
            check_is_fitted(self)
        except Exception:
            return repr(self)
        return self.to_text()

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        m = self.model_
        arrays = {"roots": m.roots, "feature": m.feature, "bin": m.bin, "left": m.left, "right": m.right,
                  "value": m.value, "bias": m.bias, "thresholds": self.thresholds_}
        return arrays, {"target": self.target_, "loss": self.loss_, "depth": self.depth_, "validation": self.validation_}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.model_ = _Model(roots=arrays["roots"], feature=arrays["feature"], bin=arrays["bin"], left=arrays["left"],
                             right=arrays["right"], value=arrays["value"], bias=arrays["bias"])
        self.thresholds_ = arrays["thresholds"]
        self.bias_ = self.model_.bias
        self.target_ = str(meta.get("target", "soft"))
        self.loss_ = str(meta.get("loss", "logistic"))
        self.depth_ = meta.get("depth", self.max_depth)
        self.validation_ = meta.get("validation")
        self.soft_fit_ = True
