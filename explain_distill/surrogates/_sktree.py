"""scikit-learn trees from plain node arrays, and their best-first truncations.

The ``tree`` surrogate keeps its model in a ``DecisionTreeRegressor`` (so ``TreeView``, ``apply``,
``decision_path`` and ``export_text`` work on it) even when the tree was grown here (node-local
queries) or cut from a bigger one (the frontier's ladder).  :func:`make_regressor` builds one from
node arrays; :func:`best_first_order` replays best-first growth (the order scikit-learn's
``max_leaf_nodes`` expands nodes in: largest weighted impurity decrease first) on a fitted tree; and
:func:`truncate` keeps the first splits of that order.
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np
from sklearn.tree import DecisionTreeRegressor

__all__ = ["NODE_FIELDS", "make_regressor", "best_first_order", "truncate", "node_depths"]

NODE_FIELDS = (
    "left_child",
    "right_child",
    "feature",
    "threshold",
    "impurity",
    "n_node_samples",
    "weighted_n_node_samples",
    "missing_go_to_left",
)

_TEMPLATES: dict[int, Any] = {}


def _node_dtype(n_outputs: int) -> np.dtype:
    if n_outputs not in _TEMPLATES:
        t = DecisionTreeRegressor().fit(np.zeros((2, 1)), np.zeros((2, n_outputs)))
        _TEMPLATES[n_outputs] = t.tree_.__getstate__()["nodes"].dtype
    return _TEMPLATES[n_outputs]


def make_regressor(n_features: int, fields: dict[str, np.ndarray], values: np.ndarray, **params: Any) -> DecisionTreeRegressor:
    """A fitted ``DecisionTreeRegressor`` with the given nodes.

    ``fields`` maps names of :data:`NODE_FIELDS` to one array per node (missing ones are zero);
    ``values`` is (n_nodes, n_outputs) or (n_nodes, n_outputs, 1).  ``params`` go to the
    regressor's constructor (they describe it; nothing is refitted).
    """
    from sklearn.tree._tree import Tree

    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 2:
        values = values[:, :, None]
    n, n_outputs = values.shape[0], values.shape[1]
    dtype = _node_dtype(n_outputs)
    nodes = np.zeros(n, dtype=dtype)
    for f in dtype.names:
        if f in fields:
            nodes[f] = fields[f]
    left = nodes["left_child"]
    depth = node_depths(left, nodes["right_child"])
    reg = DecisionTreeRegressor(**params)
    reg.n_features_in_ = int(n_features)
    reg.n_outputs_ = int(n_outputs)
    reg.max_features_ = int(n_features)
    tree = Tree(int(n_features), np.ones(n_outputs, dtype=np.intp), int(n_outputs))
    tree.__setstate__({"max_depth": int(depth.max()) if n else 0, "node_count": n, "nodes": nodes,
                       "values": np.ascontiguousarray(values)})
    reg.tree_ = tree
    return reg


def node_depths(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Depth of every node (parents before children, as scikit-learn numbers them)."""
    depth = np.zeros(len(left), dtype=np.int64)
    for i in range(len(left)):
        if left[i] >= 0:
            depth[left[i]] = depth[right[i]] = depth[i] + 1
    return depth


def best_first_order(tree: Any) -> list[int]:
    """Inner nodes in the order best-first growth would split them: largest weighted impurity decrease first."""
    left, right = tree.children_left, tree.children_right
    wn, imp = tree.weighted_n_node_samples, tree.impurity

    def gain(i: int) -> float:
        return float(wn[i] * imp[i] - wn[left[i]] * imp[left[i]] - wn[right[i]] * imp[right[i]])

    order: list[int] = []
    heap: list[tuple[float, int]] = []
    if tree.node_count and left[0] >= 0:
        heap.append((-gain(0), 0))
    while heap:
        _, i = heapq.heappop(heap)
        order.append(i)
        for c in (left[i], right[i]):
            if left[c] >= 0:
                heapq.heappush(heap, (-gain(c), c))
    return order


def truncate(reg: DecisionTreeRegressor, inner: Any) -> DecisionTreeRegressor:
    """The tree with only the splits in ``inner`` (node ids, a subtree containing the root); others become leaves."""
    t = reg.tree_
    keep_split = np.zeros(t.node_count, dtype=bool)
    keep_split[np.asarray(list(inner), dtype=np.int64)] = True
    state = t.__getstate__()
    old = state["nodes"]
    order: list[int] = []
    stack = [0]
    while stack:  # pre-order over the nodes that remain
        i = stack.pop()
        order.append(i)
        if keep_split[i]:
            stack.append(int(t.children_right[i]))
            stack.append(int(t.children_left[i]))
    new_id = np.full(t.node_count, -1, dtype=np.int64)
    new_id[order] = np.arange(len(order))
    idx = np.asarray(order)
    fields = {f: old[f][idx] for f in old.dtype.names}
    split = keep_split[idx]
    fields["left_child"] = np.where(split, new_id[old["left_child"][idx]], -1)
    fields["right_child"] = np.where(split, new_id[old["right_child"][idx]], -1)
    fields["feature"] = np.where(split, old["feature"][idx], -2)
    fields["threshold"] = np.where(split, old["threshold"][idx], -2.0)
    params = {k: v for k, v in reg.get_params().items()}
    return make_regressor(reg.n_features_in_, fields, state["values"][idx], **params)
