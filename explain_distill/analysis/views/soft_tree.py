"""Adapter for the soft decision tree (:class:`~explain_distill.surrogates.soft_tree.SoftDecisionTree`,
dense and sparse): an ``"oblique"`` :class:`~.tree.TreeView`.

Node ids are heap ids (children of ``i`` are ``2i+1`` left and ``2i+2`` right).  An inner node
keeps its filter (``weights``, ``bias``, ``beta``); a sample goes right with probability
``sigmoid(beta * (x . w + b))`` and the view follows the more probable branch.  The value of an
inner node is the average of the leaf distributions below it, weighted by the training mass that
reached each leaf when the model recorded it (``leaf_mass_``), uniformly otherwise.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..._validation import check_names
from ...surrogates import SoftDecisionTree
from ...surrogates._base import feature_names_of
from .conditions import raw_units_of
from .registry import fitted_class_names, register_adapter
from .tree import TreeNode, TreeView, check_input_shape

__all__: list[str] = []


def _node_values(leaves: np.ndarray, mass: np.ndarray, n_inner: int) -> np.ndarray:
    """The value of every heap node: the mass-weighted mean of the leaf distributions below it."""
    n = n_inner + leaves.shape[0]
    num = np.zeros((n, leaves.shape[1]))
    den = np.zeros(n)
    num[n_inner:] = leaves * mass[:, None]
    den[n_inner:] = mass
    for i in range(n_inner - 1, -1, -1):  # bottom-up over heap ids (a level-order reduction)
        num[i] = num[2 * i + 1] + num[2 * i + 2]
        den[i] = den[2 * i + 1] + den[2 * i + 2]
    vals = np.where(den[:, None] > 0, num / np.maximum(den, 1e-300)[:, None], 0.0)
    vals[den <= 0] = leaves.mean(axis=0)
    vals[n_inner:] = leaves
    return vals


def _of_soft_tree(est: Any, *, feature_names: Any = None, class_names: Any = None, input_shape: Any = None) -> TreeView:
    check_is_fitted(est)
    n_inner = int(est.n_inner_)
    n_features = int(est.n_features_in_)
    W = np.asarray(est.inner_weight_, dtype=np.float64)
    b = np.asarray(est.inner_bias_, dtype=np.float64)
    beta = np.asarray(est.beta_, dtype=np.float64)
    leaves = np.asarray(est.leaf_distributions_, dtype=np.float64)
    mass = getattr(est, "leaf_mass_", None)
    mass = np.ones(leaves.shape[0]) if mass is None else np.asarray(mass, dtype=np.float64)
    vals = _node_values(leaves, mass, n_inner)
    if class_names is None:
        class_names = fitted_class_names(est, leaves.shape[1]) or [str(c) for c in est.classes_]
    class_names = check_names(class_names, leaves.shape[1], what="class_names")
    names = feature_names_of(est, feature_names)
    shape = check_input_shape(input_shape if input_shape is not None else getattr(est, "input_shape", None), n_features)
    nodes = []
    for i in range(len(vals)):
        leaf = i >= n_inner
        nodes.append(TreeNode(
            id=i, depth=int(math.floor(math.log2(i + 1))), is_leaf=leaf, left=None if leaf else 2 * i + 1,
            right=None if leaf else 2 * i + 2, feature=None, threshold=None, weights=None if leaf else W[i].copy(),
            bias=None if leaf else float(b[i]), beta=None if leaf else float(beta[i]), value=vals[i].copy(), n_samples=None,
        ))
    view = TreeView(kind="oblique", nodes=nodes, feature_names=names, class_names=class_names, input_shape=shape)
    view.units = raw_units_of(est, view.feature_names)
    view.temperature = getattr(est, "label_temperature_", None)
    return view


register_adapter("soft decision tree", "tree", lambda est: isinstance(est, SoftDecisionTree), _of_soft_tree)
