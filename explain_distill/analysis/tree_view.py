"""One read-only view over every tree this package fits: ``TreeView``.

Renderers, per-leaf fidelity and rule extraction code against :class:`TreeView` only, never
against a particular tree class (the "shadow tree" adapter idea of dtreeviz).  Two kinds exist:

- ``"axis"``: scikit-learn trees (``DecisionTreeClassifier``, ``DecisionTreeRegressor``) and
  :class:`~explain_distill.surrogates.shallow.SoftLabelTreeClassifier`.  Node ids are
  scikit-learn's own (root 0, depth-first), so :meth:`TreeView.leaf_of` equals ``apply``.
  A sample goes *left* when ``x[feature] <= threshold``.
- ``"oblique"``: the soft decision tree
  (:class:`~explain_distill.surrogates.soft_tree.SoftDecisionTree`).  Node ids are heap ids
  (children of ``i`` are ``2i+1`` left and ``2i+2`` right).  A sample goes *right* with
  probability ``sigmoid(beta * (x . w + b))``; the view's paths follow the more probable branch at
  each node (right when ``x . w + b > 0``, as ``beta > 0``), which makes every leaf an exact
  conjunction of half-space conditions.

The view holds numbers only (numpy arrays, floats, strings); building it is the only step that
touches the estimator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils.validation import check_is_fitted

from .._validation import check_array_2d, check_int, check_n_features, check_names

__all__ = ["TreeNode", "TreeView"]


@dataclass(frozen=True)
class TreeNode:
    """One node of a :class:`TreeView`.

    Attributes
    ----------
    id : int
        0 is the root.
    depth : int
    is_leaf : bool
    left, right : int or None
        Child ids (None for leaves); "left" is the condition-false / ``sigmoid < 0.5`` side.
    feature : int or None
        Axis-aligned split feature (scikit-learn trees); None otherwise.
    threshold : float or None
        scikit-learn trees go left when ``x[feature] <= threshold``.
    weights : ndarray (n_features,) or None
        Oblique split (soft tree): right with probability ``sigmoid(beta * (x . weights + bias))``.
    bias, beta : float or None
    value : ndarray (K,)
        Class distribution at the node (at leaves: the prediction).  For the soft tree's inner
        nodes it is the average of the leaf distributions below, weighted by how much training
        mass reached each leaf when that was recorded (``leaf_mass_``), uniformly otherwise.
        For a plain ``DecisionTreeRegressor`` it is the node's output vector.
    n_samples : float or None
        Training samples reaching the node (scikit-learn trees); None for the soft tree.
    """

    id: int
    depth: int
    is_leaf: bool
    left: int | None
    right: int | None
    feature: int | None
    threshold: float | None
    weights: np.ndarray | None
    bias: float | None
    beta: float | None
    value: np.ndarray
    n_samples: float | None


def _fmt(v: float) -> str:
    return f"{v:.4g}"


class TreeView:
    """A read-only view of a fitted tree: nodes, rules and decision paths.

    Build one with :meth:`TreeView.of`.

    Attributes
    ----------
    kind : {"axis", "oblique"}
    nodes : list of TreeNode
        Indexed by node id (``nodes[i].id == i``).
    feature_names : list of str
    class_names : list of str
    input_shape : tuple of int or None
        Shape of one sample, for drawing oblique filters as images.
    """

    kind: Literal["axis", "oblique"]

    def __init__(
        self,
        *,
        kind: Literal["axis", "oblique"],
        nodes: list[TreeNode],
        feature_names: list[str],
        class_names: list[str],
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        if kind not in ("axis", "oblique"):
            raise ValueError(f"kind must be 'axis' or 'oblique'; received {kind!r}.")
        if not nodes:
            raise ValueError("a TreeView needs at least one node (the root).")
        for i, nd in enumerate(nodes):
            if nd.id != i:
                raise ValueError(f"nodes must be listed by id: position {i} holds node {nd.id}.")
        self.kind = kind
        self.nodes = list(nodes)
        self.feature_names = list(feature_names)
        self.class_names = list(class_names)
        self.input_shape = tuple(int(s) for s in input_shape) if input_shape is not None else None
        n = len(self.nodes)
        self._is_leaf = np.array([nd.is_leaf for nd in self.nodes], dtype=bool)
        self._left = np.array([-1 if nd.left is None else nd.left for nd in self.nodes], dtype=np.intp)
        self._right = np.array([-1 if nd.right is None else nd.right for nd in self.nodes], dtype=np.intp)
        self._parent = np.full(n, -1, dtype=np.intp)
        for nd in self.nodes:
            if not nd.is_leaf:
                self._parent[nd.left] = nd.id
                self._parent[nd.right] = nd.id
        if kind == "axis":
            self._feature = np.array([-1 if nd.feature is None else nd.feature for nd in self.nodes], dtype=np.intp)
            self._threshold = np.array(
                [np.nan if nd.threshold is None else nd.threshold for nd in self.nodes], dtype=np.float64
            )
        else:
            d = len(self.feature_names)
            self._W = np.zeros((n, d), dtype=np.float64)
            self._b = np.zeros(n, dtype=np.float64)
            for nd in self.nodes:
                if not nd.is_leaf:
                    self._W[nd.id] = nd.weights
                    self._b[nd.id] = nd.bias

    # ------------------------------------------------------------------ construction
    @classmethod
    def of(
        cls,
        estimator: Any,
        *,
        feature_names: list[str] | None = None,
        class_names: list[str] | None = None,
        input_shape: tuple[int, ...] | None = None,
    ) -> "TreeView":
        """View a fitted tree.

        Parameters
        ----------
        estimator : SoftLabelTreeClassifier, DecisionTreeClassifier, DecisionTreeRegressor or SoftDecisionTree
            Fitted.
        feature_names : list of str, optional
            Defaults to the estimator's ``feature_names_in_`` when it has them, else ``x0, x1, ...``.
        class_names : list of str, optional
            Defaults to ``str`` of the estimator's ``classes_`` (``output_k`` for regressors).
        input_shape : tuple of int, optional
            Shape of one sample (``prod == n_features``); defaults to the soft tree's ``input_shape``.

        Raises
        ------
        TypeError
            For any other estimator.
        sklearn.exceptions.NotFittedError
            When the estimator is not fitted.
        """
        from ..surrogates.shallow import SoftLabelTreeClassifier
        from ..surrogates.soft_tree import SoftDecisionTree

        if isinstance(estimator, SoftDecisionTree):
            return cls._of_soft_tree(estimator, feature_names, class_names, input_shape)
        if isinstance(estimator, SoftLabelTreeClassifier):
            check_is_fitted(estimator)
            return cls._of_sklearn(
                estimator.estimator_, estimator, "soft", feature_names, class_names, input_shape
            )
        if isinstance(estimator, DecisionTreeClassifier):
            check_is_fitted(estimator)
            if estimator.n_outputs_ != 1:
                raise ValueError(
                    f"TreeView supports single-output classifiers; this DecisionTreeClassifier has "
                    f"{estimator.n_outputs_} outputs. Fit one tree per output, or a DecisionTreeRegressor on "
                    f"the probability matrix."
                )
            return cls._of_sklearn(estimator, estimator, "classifier", feature_names, class_names, input_shape)
        if isinstance(estimator, DecisionTreeRegressor):
            check_is_fitted(estimator)
            return cls._of_sklearn(estimator, estimator, "regressor", feature_names, class_names, input_shape)
        raise TypeError(
            f"TreeView.of takes a fitted SoftLabelTreeClassifier, SoftDecisionTree, DecisionTreeClassifier or "
            f"DecisionTreeRegressor; received {type(estimator).__name__}. Other surrogates have no tree to view."
        )

    @staticmethod
    def _names(estimator: Any, n_features: int, feature_names: Any) -> list[str]:
        if feature_names is None:
            fn = getattr(estimator, "feature_names_in_", None)
            feature_names = [str(f) for f in fn] if fn is not None else [f"x{i}" for i in range(n_features)]
        return check_names(feature_names, n_features, what="feature_names")

    @staticmethod
    def _shape(input_shape: Any, n_features: int) -> tuple[int, ...] | None:
        if input_shape is None or (isinstance(input_shape, (tuple, list)) and len(input_shape) == 0):
            return None
        if isinstance(input_shape, (int, np.integer)):
            input_shape = (int(input_shape),)
        try:
            shape = tuple(int(s) for s in input_shape)
        except TypeError as exc:
            raise TypeError(f"input_shape must be a tuple of ints; received {input_shape!r}.") from exc
        if math.prod(shape) != n_features or any(s < 1 for s in shape):
            raise ValueError(
                f"input_shape {shape} holds {math.prod(shape)} values but the tree has {n_features} features; "
                f"pass the shape of one sample, e.g. (8, 8) for 64 pixels."
            )
        return shape

    @classmethod
    def _of_sklearn(
        cls,
        reg: Any,
        owner: Any,
        flavour: str,
        feature_names: Any,
        class_names: Any,
        input_shape: Any,
    ) -> "TreeView":
        t = reg.tree_
        n_features = int(reg.n_features_in_)
        value = np.asarray(t.value, dtype=np.float64)
        if flavour == "classifier":
            vals = value[:, 0, :]
            s = vals.sum(axis=1, keepdims=True)
            vals = np.divide(vals, s, out=np.zeros_like(vals), where=s > 0)
            default_classes = [str(c) for c in owner.classes_]
        elif flavour == "soft":
            vals = np.clip(value[:, :, 0], 0.0, None)
            s = vals.sum(axis=1, keepdims=True)
            K = vals.shape[1]
            vals = np.divide(vals, s, out=np.full_like(vals, 1.0 / K), where=s > 0)
            default_classes = [str(c) for c in owner.classes_]
        else:
            vals = value[:, :, 0]
            default_classes = ["value"] if vals.shape[1] == 1 else [f"output_{k}" for k in range(vals.shape[1])]
        if class_names is None:
            class_names = default_classes
        class_names = check_names(class_names, vals.shape[1], what="class_names")
        names = cls._names(owner, n_features, feature_names)
        shape = cls._shape(input_shape, n_features)
        left, right = t.children_left, t.children_right
        depth = np.zeros(t.node_count, dtype=int)
        for i in range(t.node_count):  # sklearn's ids are pre-order: parents come before children
            if left[i] != -1:
                depth[left[i]] = depth[i] + 1
                depth[right[i]] = depth[i] + 1
        nodes = []
        for i in range(t.node_count):
            leaf = bool(left[i] == -1)
            nodes.append(
                TreeNode(
                    id=i,
                    depth=int(depth[i]),
                    is_leaf=leaf,
                    left=None if leaf else int(left[i]),
                    right=None if leaf else int(right[i]),
                    feature=None if leaf else int(t.feature[i]),
                    threshold=None if leaf else float(t.threshold[i]),
                    weights=None,
                    bias=None,
                    beta=None,
                    value=vals[i].copy(),
                    n_samples=float(t.weighted_n_node_samples[i]),
                )
            )
        return cls(kind="axis", nodes=nodes, feature_names=names, class_names=class_names, input_shape=shape)

    @classmethod
    def _of_soft_tree(cls, est: Any, feature_names: Any, class_names: Any, input_shape: Any) -> "TreeView":
        check_is_fitted(est)
        n_inner = int(est.n_inner_)
        n_features = int(est.n_features_in_)
        W = np.asarray(est.inner_weight_, dtype=np.float64)
        b = np.asarray(est.inner_bias_, dtype=np.float64)
        beta = np.asarray(est.beta_, dtype=np.float64)
        leaves = np.asarray(est.leaf_distributions_, dtype=np.float64)
        n_leaves = leaves.shape[0]
        mass = getattr(est, "leaf_mass_", None)
        mass = np.ones(n_leaves) if mass is None else np.asarray(mass, dtype=np.float64)
        # value of every heap node: mass-weighted mean of the leaf distributions below it
        n = n_inner + n_leaves
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
        if class_names is None:
            class_names = [str(c) for c in est.classes_]
        class_names = check_names(class_names, leaves.shape[1], what="class_names")
        names = cls._names(est, n_features, feature_names)
        if input_shape is None:
            input_shape = getattr(est, "input_shape", None)
        shape = cls._shape(input_shape, n_features)
        nodes = []
        for i in range(n):
            leaf = i >= n_inner
            nodes.append(
                TreeNode(
                    id=i,
                    depth=int(math.floor(math.log2(i + 1))),
                    is_leaf=leaf,
                    left=None if leaf else 2 * i + 1,
                    right=None if leaf else 2 * i + 2,
                    feature=None,
                    threshold=None,
                    weights=None if leaf else W[i].copy(),
                    bias=None if leaf else float(b[i]),
                    beta=None if leaf else float(beta[i]),
                    value=vals[i].copy(),
                    n_samples=None,
                )
            )
        return cls(kind="oblique", nodes=nodes, feature_names=names, class_names=class_names, input_shape=shape)

    # ------------------------------------------------------------------ queries
    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def depth(self) -> int:
        """Depth of the deepest leaf (a lone root has depth 0)."""
        return max(nd.depth for nd in self.nodes)

    def leaves(self) -> list[int]:
        """Ids of the leaves, in id order."""
        return [nd.id for nd in self.nodes if nd.is_leaf]

    def _check_X(self, X: Any) -> np.ndarray:
        X = check_array_2d(X, name="X", dtype=None)
        check_n_features(X, self.n_features, what="this tree")
        if self.kind == "axis":
            # scikit-learn trees compare float32 inputs with float64 thresholds; do the same.
            return X.astype(np.float32).astype(np.float64)
        return X.astype(np.float64)

    def _go_right(self, X: np.ndarray, node: np.ndarray) -> np.ndarray:
        rows = np.arange(len(X))
        if self.kind == "axis":
            return ~(X[rows, self._feature[node]] <= self._threshold[node])
        return np.einsum("ij,ij->i", X, self._W[node]) + self._b[node] > 0

    def leaf_of(self, X: Any) -> np.ndarray:
        """Leaf id of every row of ``X`` (the soft tree: the leaf of its max-probability path).

        Returns
        -------
        ndarray (n_samples,) of int
        """
        X = self._check_X(X)
        node = np.zeros(len(X), dtype=np.intp)
        for _ in range(self.depth):  # one vectorised step per level
            inner = ~self._is_leaf[node]
            if not inner.any():
                break
            right = self._go_right(X[inner], node[inner])
            node[inner] = np.where(right, self._right[node[inner]], self._left[node[inner]])
        return node

    def path(self, x: Any) -> list[int]:
        """Node ids from the root to the leaf that one sample ``x`` reaches."""
        x = np.asarray(x)
        if x.ndim == 2 and x.shape[0] == 1:
            x = x[0]
        if x.ndim != 1:
            x = x.reshape(-1) if x.size == self.n_features else x
        if x.ndim != 1:
            raise ValueError(
                f"path takes one sample of {self.n_features} features; received an array of shape {x.shape}. "
                f"Use leaf_of(X) for many samples."
            )
        leaf = int(self.leaf_of(x.reshape(1, -1))[0])
        return self.path_to(leaf)

    def path_to(self, node: int) -> list[int]:
        """Node ids from the root down to ``node``."""
        node = check_int(node, "node", low=0, high=len(self.nodes) - 1)
        out = [node]
        while self._parent[out[-1]] != -1:
            out.append(int(self._parent[out[-1]]))
        return out[::-1]

    def conditions(self, leaf: int) -> list[tuple[int, str]]:
        """``(node, condition)`` for every split on the way to ``leaf``."""
        path = self.path_to(leaf)
        out = []
        for parent, child in zip(path[:-1], path[1:]):
            nd = self.nodes[parent]
            right = child == nd.right
            if self.kind == "axis":
                op = ">" if right else "<="
                out.append((parent, f"{self.feature_names[nd.feature]} {op} {_fmt(nd.threshold)}"))
            else:
                op = ">" if right else "<="
                out.append((parent, f"filter@{parent} {op} 0"))
        return out

    def rule(self, leaf: int) -> str:
        """The conjunction of conditions that leads to ``leaf``, e.g. ``"pixel_3_4 <= 0.12 and x7 > 1.7"``.

        Oblique splits read ``"filter@0 > 0 and filter@2 <= 0"`` (``filter@i`` is
        ``x . w_i + b_i`` of inner node ``i``).  The root of a one-node tree has the rule ``"True"``.
        """
        conds = self.conditions(leaf)
        return " and ".join(c for _, c in conds) if conds else "True"

    def rules(self) -> list[tuple[int, str]]:
        """``(leaf id, rule)`` for every leaf."""
        return [(leaf, self.rule(leaf)) for leaf in self.leaves()]

    def __repr__(self) -> str:
        return (
            f"TreeView(kind={self.kind!r}, n_nodes={len(self.nodes)}, n_leaves={len(self.leaves())}, "
            f"depth={self.depth}, n_features={self.n_features}, n_classes={len(self.class_names)})"
        )
