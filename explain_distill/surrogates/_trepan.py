"""Best-first tree growth with node-local queries (TREPAN) for the ``tree`` surrogate.

The tree grows one split at a time, the node with the largest weighted impurity decrease first (as
scikit-learn's ``max_leaf_nodes``).  Each node's split is scikit-learn's own: a depth-1 tree of the
same criterion fitted on the node's rows, so without queries this grows the tree scikit-learn would.
A node that holds fewer than ``min_samples`` rows first asks the oracle to label new inputs drawn
inside its region (:class:`~._queries.RegionSampler`), up to the fit's query budget; the new rows
share the node's weight with the rows already there (the node keeps the share of the data that
reaches it) and flow down to its children.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._queries import QueryBudget, RegionSampler, call_oracle, in_box
from ._sktree import make_regressor

__all__ = ["grow_with_queries"]


@dataclass
class _Node:
    rows: np.ndarray
    depth: int
    lo: np.ndarray
    hi: np.ndarray
    feature: int = -2
    threshold: float = -2.0
    gain: float = 0.0
    left: int = -1
    right: int = -1
    mass: float = 0.0  # weight of the rows in the node (kept when queries join)
    n_rows: int = 0  # rows in the node when it was split (or at the end, for a leaf)
    value: Any = None  # mean soft label of its rows, queries included


class _QueryingGrowth:
    """The rows (the data's, then the queries labelled so far) and the nodes of one growth."""

    def __init__(self, X: np.ndarray, P: np.ndarray, w: np.ndarray, *, fit_stump: Callable[..., Any],
                 oracle: Callable[[np.ndarray], Any], max_depth: int | None, min_samples_leaf: int, min_samples: int,
                 budget: QueryBudget, sampler: RegionSampler, rng: np.random.Generator) -> None:
        self.d, self.K = X.shape[1], P.shape[1]
        self.X, self.P, self.w = np.asarray(X, dtype=np.float32), np.asarray(P, dtype=np.float64), np.asarray(w, dtype=np.float64).copy()
        self.nodes: list[_Node] = [_Node(np.arange(len(X)), 0, np.full(self.d, -np.inf), np.full(self.d, np.inf))]
        self.heap: list[tuple[float, int]] = []
        self.nodes_queried = 0
        self.fit_stump, self.oracle, self.project = fit_stump, oracle, getattr(oracle, "project", None)
        self.max_depth, self.min_samples_leaf, self.min_samples = max_depth, min_samples_leaf, min_samples
        self.budget, self.sampler, self.rng = budget, sampler, rng

    def add_queries(self, node: _Node) -> None:
        """Label new inputs drawn inside ``node``'s region, up to ``min_samples`` rows and the budget."""
        m = self.budget.take(self.min_samples - len(node.rows))
        if m <= 0:
            return
        Q = self.sampler.sample(self.X[node.rows], node.lo, node.hi, m, self.rng)
        if self.project is not None:  # into the data's domain; a draw the move took out of the node is dropped
            Q = np.asarray(self.project(Q), dtype=np.float32)
            Q = Q[in_box(Q, node.lo, node.hi)]
            self.budget.give_back(m - len(Q))
            m = len(Q)
            if m == 0:
                return
        PQ = call_oracle(self.oracle, Q, self.K)
        mass = float(self.w[node.rows].sum())
        share = len(node.rows) / (len(node.rows) + m)
        self.w[node.rows] *= share  # the node keeps its mass: the old rows and the new share it
        start = len(self.X)
        self.X = np.concatenate([self.X, Q])
        self.P = np.concatenate([self.P, PQ])
        self.w = np.concatenate([self.w, np.full(m, mass / (len(node.rows) + m))])
        node.rows = np.concatenate([node.rows, np.arange(start, start + m)])
        self.nodes_queried += 1

    def settle(self, node: _Node) -> None:
        """The node's mass, row count and mean soft label as its rows stand."""
        wr = self.w[node.rows]
        node.mass = float(wr.sum())
        node.n_rows = len(node.rows)
        node.value = (wr[:, None] * self.P[node.rows]).sum(axis=0) / max(node.mass, 1e-300)

    def evaluate(self, i: int) -> None:
        """Query a small node, settle it, and queue its best split (when one lowers the impurity)."""
        node = self.nodes[i]
        if self.min_samples > len(node.rows) and self.budget.left > 0:
            self.add_queries(node)
        self.settle(node)
        if (self.max_depth is not None and node.depth >= self.max_depth) or len(node.rows) < 2 * self.min_samples_leaf:
            return
        stump = self.fit_stump(self.X[node.rows], self.P[node.rows], self.w[node.rows]).tree_
        if stump.node_count < 3:
            return
        wn, imp = stump.weighted_n_node_samples, stump.impurity
        gain = float(wn[0] * imp[0] - wn[1] * imp[1] - wn[2] * imp[2])
        if gain <= 0:
            return
        node.feature, node.threshold, node.gain = int(stump.feature[0]), float(stump.threshold[0]), gain
        heapq.heappush(self.heap, (-gain, i))

    def split(self, i: int) -> list[int]:
        """Split node ``i`` at its queued threshold; returns the two children's ids."""
        node = self.nodes[i]
        go_left = self.X[node.rows, node.feature] <= node.threshold
        kids = []
        for side, rows in (("left", node.rows[go_left]), ("right", node.rows[~go_left])):
            lo, hi = node.lo.copy(), node.hi.copy()
            if side == "left":
                hi[node.feature] = min(hi[node.feature], node.threshold)
            else:
                lo[node.feature] = max(lo[node.feature], node.threshold)
            self.nodes.append(_Node(rows, node.depth + 1, lo, hi))
            kids.append(len(self.nodes) - 1)
        node.left, node.right = kids
        return kids

    def finish(self) -> None:
        """A split stays only where it was made; the nodes never split are leaves, settled on every row
        that ended there (their weights no longer change)."""
        for n in self.nodes:
            if n.left < 0:
                n.feature, n.threshold = -2, -2.0
                self.settle(n)


def grow_with_queries(
    X: np.ndarray,
    P: np.ndarray,
    w: np.ndarray,
    *,
    fit_stump: Callable[[np.ndarray, np.ndarray, np.ndarray], Any],
    oracle: Callable[[np.ndarray], Any],
    max_depth: int | None,
    max_leaf_nodes: int | None,
    min_samples_leaf: int,
    min_samples: int,
    budget: QueryBudget,
    sampler: RegionSampler,
    rng: np.random.Generator,
    params: dict[str, Any],
    criterion: str = "entropy",
) -> tuple[Any, dict[str, int]]:
    """Grow a tree; returns (a fitted ``DecisionTreeRegressor``, {"queries": labelled inputs, "nodes_queried": ...}).

    ``fit_stump(X, P, w)`` fits the depth-1 regressor that picks a node's split (its criterion is
    the tree's).  Node values are the weighted mean of the node's soft labels, queries included.
    """
    g = _QueryingGrowth(X, P, w, fit_stump=fit_stump, oracle=oracle, max_depth=max_depth, min_samples_leaf=min_samples_leaf,
                        min_samples=min_samples, budget=budget, sampler=sampler, rng=rng)
    g.evaluate(0)
    leaves = 1
    while g.heap and (max_leaf_nodes is None or leaves < max_leaf_nodes):
        _, i = heapq.heappop(g.heap)
        kids = g.split(i)
        leaves += 1
        for k in kids:
            g.evaluate(k)
    g.finish()
    reg = make_regressor(X.shape[1], *_preorder(g.nodes, g.P, g.w, criterion), **params)
    return reg, {"queries": budget.used, "nodes_queried": g.nodes_queried}


def _preorder(nodes: list[_Node], P: np.ndarray, w: np.ndarray, criterion: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(scikit-learn's node arrays, the node values) with the nodes numbered in pre-order, as it stores trees."""
    values = np.stack([n.value for n in nodes])
    order: list[int] = []
    stack = [0]
    while stack:
        i = stack.pop()
        order.append(i)
        if nodes[i].left >= 0:
            stack.append(nodes[i].right)
            stack.append(nodes[i].left)
    new_id = {old: new for new, old in enumerate(order)}
    fields = {
        "left_child": np.array([new_id[nodes[i].left] if nodes[i].left >= 0 else -1 for i in order]),
        "right_child": np.array([new_id[nodes[i].right] if nodes[i].right >= 0 else -1 for i in order]),
        "feature": np.array([nodes[i].feature for i in order]),
        "threshold": np.array([nodes[i].threshold for i in order], dtype=np.float64),
        "impurity": np.array([_impurity(P[nodes[i].rows], w[nodes[i].rows], values[i], criterion) for i in order]),
        "n_node_samples": np.array([nodes[i].n_rows for i in order]),
        "weighted_n_node_samples": np.array([nodes[i].mass for i in order]),
        "missing_go_to_left": np.ones(len(order), dtype=np.uint8),
    }
    return fields, values[order]


def _impurity(P: np.ndarray, w: np.ndarray, mean: np.ndarray, criterion: str) -> float:
    """The node impurity whose weighted decrease ranks splits: the entropy of the node's mean
    distribution ("entropy": the soft cross-entropy up to a per-row constant) or the mean variance
    of the probability columns ("squared_error")."""
    if criterion == "entropy":
        p = mean[mean > 0]
        return float(-(p * np.log(p)).sum())
    second = (w[:, None] * P * P).sum(axis=0) / max(float(w.sum()), 1e-300)
    return float(np.mean(second - mean * mean))
