"""Adapters for axis-aligned trees: scikit-learn's, ours over them, and any tree given as node arrays.

- ``DecisionTreeClassifier`` (single output): class distributions at every node;
- ``DecisionTreeRegressor``: the node's output vector (``value`` for one output, ``output_k``);
- :class:`~explain_distill.surrogates.shallow.SoftLabelTreeClassifier`: the regressor it grows on
  the soft labels, read as class distributions;
- any fitted estimator with ``_tree_arrays()`` returning scikit-learn-style node arrays
  (``children_left``, ``children_right``, ``feature``, ``threshold``, ``value`` of shape
  (n_nodes, n_classes), optional ``n_samples``): :func:`tree_from_arrays`.

Node ids are scikit-learn's own (root 0, depth-first), so ``TreeView.leaf_of`` equals ``apply``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils.validation import check_is_fitted

from ..._validation import check_names
from ...surrogates._base import feature_names_of
from ...surrogates.shallow import SoftLabelTreeClassifier
from .conditions import raw_units_of
from .registry import fitted_class_names, register_adapter
from .tree import TreeNode, TreeView, check_input_shape

__all__ = ["tree_from_arrays"]


def tree_from_arrays(
    *,
    children_left: Any,
    children_right: Any,
    feature: Any,
    threshold: Any,
    value: Any,
    n_samples: Any = None,
    feature_names: Sequence[str],
    class_names: Sequence[str],
    input_shape: tuple[int, ...] | None = None,
) -> TreeView:
    """An axis-aligned view from scikit-learn-style node arrays (pre-order ids, root 0, -1 = no child).

    A sample goes left when ``x[feature] <= threshold``; ``value`` is (n_nodes, n_classes).
    """
    left = np.asarray(children_left, dtype=np.intp)
    right = np.asarray(children_right, dtype=np.intp)
    feat = np.asarray(feature)
    thr = np.asarray(threshold, dtype=np.float64)
    vals = np.asarray(value, dtype=np.float64)
    n = len(left)
    if not (len(right) == len(feat) == len(thr) == len(vals) == n) or vals.ndim != 2 or n == 0:
        raise ValueError(
            f"from_arrays needs node arrays of one length and value of shape (n_nodes, n_classes); received "
            f"{len(left)}, {len(right)}, {len(feat)}, {len(thr)} nodes and value of shape {vals.shape}."
        )
    counts = None if n_samples is None else np.asarray(n_samples, dtype=np.float64)
    names = check_names(list(feature_names), len(feature_names), what="feature_names")
    class_names = check_names(class_names, vals.shape[1], what="class_names")
    shape = check_input_shape(input_shape, len(names))
    depth = np.zeros(n, dtype=int)
    for i in range(n):  # pre-order ids: parents come before children
        if left[i] != -1:
            if not (i < left[i] < n and i < right[i] < n):
                raise ValueError(f"node {i} has children {left[i]}, {right[i]}: ids must be pre-order within 0..{n - 1}.")
            depth[left[i]] = depth[i] + 1
            depth[right[i]] = depth[i] + 1
    nodes = []
    for i in range(n):
        leaf = bool(left[i] == -1)
        if not leaf and not 0 <= int(feat[i]) < len(names):
            raise ValueError(f"node {i} splits on feature {int(feat[i])}, outside 0..{len(names) - 1}.")
        nodes.append(TreeNode(
            id=i, depth=int(depth[i]), is_leaf=leaf, left=None if leaf else int(left[i]), right=None if leaf else int(right[i]),
            feature=None if leaf else int(feat[i]), threshold=None if leaf else float(thr[i]), weights=None, bias=None,
            beta=None, value=vals[i].copy(), n_samples=None if counts is None else float(counts[i]),
        ))
    return TreeView(kind="axis", nodes=nodes, feature_names=names, class_names=class_names, input_shape=shape)


def _values(reg: Any, owner: Any, flavour: str) -> tuple[np.ndarray, list[str]]:
    """Node values as a (n_nodes, K) array and the default class names, per kind of scikit-learn tree."""
    value = np.asarray(reg.tree_.value, dtype=np.float64)
    if flavour == "classifier":
        vals = value[:, 0, :]
        s = vals.sum(axis=1, keepdims=True)
        return np.divide(vals, s, out=np.zeros_like(vals), where=s > 0), [str(c) for c in owner.classes_]
    if flavour == "soft":
        vals = np.clip(value[:, :, 0], 0.0, None)
        s = vals.sum(axis=1, keepdims=True)
        K = vals.shape[1]
        return np.divide(vals, s, out=np.full_like(vals, 1.0 / K), where=s > 0), [str(c) for c in owner.classes_]
    vals = value[:, :, 0]
    return vals, ["value"] if vals.shape[1] == 1 else [f"output_{k}" for k in range(vals.shape[1])]


def _of_sklearn(reg: Any, owner: Any, flavour: str, feature_names: Any, class_names: Any, input_shape: Any) -> TreeView:
    t = reg.tree_
    vals, default_classes = _values(reg, owner, flavour)
    if class_names is None:
        class_names = (fitted_class_names(owner, vals.shape[1]) if flavour != "regressor" else None) or default_classes
    return tree_from_arrays(
        children_left=t.children_left, children_right=t.children_right, feature=t.feature, threshold=t.threshold,
        value=vals, n_samples=t.weighted_n_node_samples, feature_names=feature_names_of(owner, feature_names),
        class_names=class_names, input_shape=input_shape,
    )


def _of_classifier(est: Any, *, feature_names: Any = None, class_names: Any = None, input_shape: Any = None) -> TreeView:
    check_is_fitted(est)
    if est.n_outputs_ != 1:
        raise ValueError(
            f"TreeView supports single-output classifiers; this DecisionTreeClassifier has "
            f"{est.n_outputs_} outputs. Fit one tree per output, or a DecisionTreeRegressor on "
            f"the probability matrix."
        )
    return _with_units(est, _of_sklearn(est, est, "classifier", feature_names, class_names, input_shape))


def _of_regressor(est: Any, *, feature_names: Any = None, class_names: Any = None, input_shape: Any = None) -> TreeView:
    check_is_fitted(est)
    return _with_units(est, _of_sklearn(est, est, "regressor", feature_names, class_names, input_shape))


def _of_soft_label_tree(est: Any, *, feature_names: Any = None, class_names: Any = None, input_shape: Any = None) -> TreeView:
    check_is_fitted(est)
    return _with_units(est, _of_sklearn(est.estimator_, est, "soft", feature_names, class_names, input_shape))


def _of_tree_arrays(est: Any, *, feature_names: Any = None, class_names: Any = None, input_shape: Any = None) -> TreeView:
    check_is_fitted(est)
    arrays = est._tree_arrays()
    k = int(np.shape(arrays["value"])[1])
    if class_names is None:
        class_names = fitted_class_names(est, k) or [str(c) for c in getattr(est, "classes_", range(k))]
    view = tree_from_arrays(
        **arrays, feature_names=feature_names_of(est, feature_names), class_names=class_names,
        input_shape=input_shape if input_shape is not None else getattr(est, "input_shape", None),
    )
    return _with_units(est, view)


def _with_units(est: Any, view: TreeView) -> TreeView:
    view.units = raw_units_of(est, view.feature_names)
    view.temperature = getattr(est, "label_temperature_", None)
    return view


register_adapter("soft-label tree", "tree", lambda est: isinstance(est, SoftLabelTreeClassifier), _of_soft_label_tree)
register_adapter("decision tree classifier", "tree", lambda est: isinstance(est, DecisionTreeClassifier), _of_classifier)
register_adapter("decision tree regressor", "tree", lambda est: isinstance(est, DecisionTreeRegressor), _of_regressor)
register_adapter("tree given as node arrays", "tree", lambda est: callable(getattr(est, "_tree_arrays", None)), _of_tree_arrays)
