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
touches the estimator.  Names default to the estimator's ``feature_names_in_`` and ``class_names_``
(which ``distill`` sets), so views of a distilled surrogate print names without being told.

Display and export, for notebooks and documents: ``view.highlight(x)`` is the same view with the
decision path of ``x`` marked; ``to_dot()`` / ``draw()`` / ``_repr_svg_`` draw it (Graphviz, through
:mod:`explain_distill.viz.trees`, imported inside those methods: analysis never imports viz at
module level); ``export_text()`` and ``to_dict()`` write it out.  Thresholds print in the data's
own units (``analysis.units.RawUnits``, from the ``input_units_`` that ``distill`` attaches):
``pixel_3_4 <= 8.5``, ``colour = red``; ``inverse="scaled"`` gives the fitted z-scores and any
``inverse(feature, value)`` callable another mapping.
:class:`RuleListView` does the same for the ordered rule list
(:class:`~explain_distill.surrogates.shallow.RuleListClassifier`).  Both views are registered with
:mod:`explain_distill.surrogates._base`, which gives every tree-like surrogate ``view()``,
``to_dot()``, ``draw()``, ``export_text()`` and ``to_dict()``.

A tree-like surrogate of another family joins by defining ``_tree_arrays()`` returning
scikit-learn-style node arrays (``children_left``, ``children_right``, ``feature``, ``threshold``,
``value`` of shape (n_nodes, n_classes), optional ``n_samples``): :meth:`TreeView.of` reads it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union

import numpy as np
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils.validation import check_is_fitted

from .._validation import check_array_2d, check_int, check_n_features, check_names
from ..surrogates._base import register_viewer
from ..surrogates.rules import first_firing_rule

__all__ = ["Inverse", "RuleListView", "TreeNode", "TreeView"]

#: How exports print a threshold: ``inverse(feature_index, value)`` -> a number or a ready string;
#: or one callable ``value -> number | str`` per feature (a sequence, or a mapping keyed by index or
#: name; missing / None entries print the value as it is).  None (the default) prints the data's
#: raw units when the view knows them (a surrogate fitted by ``distill`` carries ``input_units_``)
#: and the fitted values otherwise; ``"raw"`` insists on raw units, ``"scaled"`` asks for the fitted
#: (z-score) values.
Inverse = Union[Callable[[int, float], Any], Sequence[Any], Mapping[Any, Any], str, None]

#: Trees with more nodes than this are drawn in a notebook down to depth 3 (plus the highlighted path).
DISPLAY_MAX_NODES = 31
DISPLAY_DEPTH = 3


def _units(inverse: Inverse, feature_names: Sequence[str]) -> Callable[[int, float], Any]:
    """Normalise ``inverse`` to ``f(feature_index, value) -> number | str``."""
    if inverse is None:
        return _identity
    if callable(inverse):
        return inverse
    if isinstance(inverse, Mapping):
        index = {name: j for j, name in enumerate(feature_names)}
        per: dict[int, Any] = {}
        for key, fn in inverse.items():
            j = index.get(key, key) if isinstance(key, str) else key
            if not isinstance(j, (int, np.integer)) or not 0 <= int(j) < len(feature_names):
                raise ValueError(f"inverse has a key {key!r} that is neither a feature name nor a feature index.")
            per[int(j)] = fn
    elif isinstance(inverse, Sequence) and not isinstance(inverse, (str, bytes)):
        if len(inverse) != len(feature_names):
            raise ValueError(
                f"inverse has {len(inverse)} entries but there are {len(feature_names)} features; give one callable "
                f"(or None) per feature."
            )
        per = dict(enumerate(inverse))
    else:
        raise TypeError(
            f"inverse must be a callable (feature, value) -> value, or one callable per feature; received "
            f"{type(inverse).__name__}."
        )
    for j, fn in per.items():
        if fn is not None and not callable(fn):
            raise TypeError(f"inverse for feature {feature_names[j]!r} is {type(fn).__name__}, not a callable.")
    return lambda j, v: per[j](v) if per.get(j) is not None else v


def _show(v: Any, decimals: int) -> str:
    """A threshold for text: a string from ``inverse`` as is, a number with ``decimals`` decimals."""
    if isinstance(v, str):
        return v
    return f"{float(v):.{decimals}f}"


def _identity(j: int, v: float) -> float:
    return v


def _cond(units: Callable[[int, float], Any], j: int, op: str, t: float, name: str, decimals: int | None = None) -> str:
    """One condition as text: the units' own wording when they have one (``colour = red``), else
    ``name op value`` with the value through ``units``."""
    condition = getattr(units, "condition", None)
    if condition is not None:
        return condition(j, op, t, name, decimals)
    v = units(j, t)
    shown = v if isinstance(v, str) else (_fmt(v) if decimals is None else f"{float(v):.{decimals}f}")
    return f"{name} {op} {shown}"


def _jsonable(v: Any) -> Any:
    return v if isinstance(v, str) else float(v)


def _fitted_class_names(estimator: Any, k: int) -> list[str] | None:
    names = getattr(estimator, "class_names_", None)
    return [str(c) for c in names] if names is not None and len(names) == k else None


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
        self._highlight: list[int] | None = None
        self._highlight_x: np.ndarray | None = None
        #: How thresholds print by default: the data's raw units when the estimator carries them
        #: (``input_units_``, attached by ``distill``), else as fitted.  ``inverse="scaled"`` asks
        #: for the fitted (z-score) values.
        self.units: Any = None
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
            Fitted; or any fitted estimator with ``_tree_arrays()`` (see the module docstring).
        feature_names : list of str, optional
            Defaults to the estimator's ``feature_names_in_`` when it has them, else ``x0, x1, ...``.
        class_names : list of str, optional
            Defaults to the estimator's ``class_names_`` (set by ``distill``), else ``str`` of its
            ``classes_`` (``output_k`` for regressors).
        input_shape : tuple of int, optional
            Shape of one sample (``prod == n_features``); defaults to the soft tree's ``input_shape``.

        Raises
        ------
        TypeError
            For any other estimator.
        sklearn.exceptions.NotFittedError
            When the estimator is not fitted.
        """
        view = cls._of(estimator, feature_names, class_names, input_shape)
        view.units = _raw_units(estimator, view.feature_names)
        return view

    @classmethod
    def _of(cls, estimator: Any, feature_names: Any, class_names: Any, input_shape: Any) -> "TreeView":
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
        if callable(getattr(estimator, "_tree_arrays", None)):
            check_is_fitted(estimator)
            arrays = estimator._tree_arrays()
            k = int(np.shape(arrays["value"])[1])
            if class_names is None:
                class_names = _fitted_class_names(estimator, k) or [str(c) for c in getattr(estimator, "classes_", range(k))]
            return cls.from_arrays(
                **arrays,
                feature_names=cls._names(estimator, int(estimator.n_features_in_), feature_names),
                class_names=class_names,
                input_shape=input_shape if input_shape is not None else getattr(estimator, "input_shape", None),
            )
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
            class_names = (_fitted_class_names(owner, vals.shape[1]) if flavour != "regressor" else None) or default_classes
        return cls.from_arrays(
            children_left=t.children_left,
            children_right=t.children_right,
            feature=t.feature,
            threshold=t.threshold,
            value=vals,
            n_samples=t.weighted_n_node_samples,
            feature_names=cls._names(owner, n_features, feature_names),
            class_names=class_names,
            input_shape=input_shape,
        )

    @classmethod
    def from_arrays(
        cls,
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
    ) -> "TreeView":
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
        shape = cls._shape(input_shape, len(names))
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
            nodes.append(
                TreeNode(
                    id=i,
                    depth=int(depth[i]),
                    is_leaf=leaf,
                    left=None if leaf else int(left[i]),
                    right=None if leaf else int(right[i]),
                    feature=None if leaf else int(feat[i]),
                    threshold=None if leaf else float(thr[i]),
                    weights=None,
                    bias=None,
                    beta=None,
                    value=vals[i].copy(),
                    n_samples=None if counts is None else float(counts[i]),
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
            class_names = _fitted_class_names(est, leaves.shape[1]) or [str(c) for c in est.classes_]
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

    def _inverse(self, inverse: Inverse) -> Callable[[int, float], Any]:
        return _resolve(inverse, self.units, self.feature_names)

    def conditions(self, leaf: int, *, inverse: Inverse = None) -> list[tuple[int, str]]:
        """``(node, condition)`` for every split on the way to ``leaf``.

        Thresholds print in the data's raw units when the view knows them (see ``units``),
        through ``inverse`` when given, as fitted with ``inverse="scaled"``.
        """
        path = self.path_to(leaf)
        units = self._inverse(inverse) if self.kind == "axis" else None
        out = []
        for parent, child in zip(path[:-1], path[1:]):
            nd = self.nodes[parent]
            right = child == nd.right
            op = ">" if right else "<="
            if units is not None:
                out.append((parent, _cond(units, nd.feature, op, nd.threshold, self.feature_names[nd.feature])))
            else:
                out.append((parent, f"filter@{parent} {op} 0"))
        return out

    def rule(self, leaf: int, *, inverse: Inverse = None) -> str:
        """The conjunction of conditions that leads to ``leaf``, e.g. ``"pixel_3_4 <= 0.12 and x7 > 1.7"``.

        Oblique splits read ``"filter@0 > 0 and filter@2 <= 0"`` (``filter@i`` is
        ``x . w_i + b_i`` of inner node ``i``).  The root of a one-node tree has the rule ``"True"``.
        """
        conds = self.conditions(leaf, inverse=inverse)
        return " and ".join(c for _, c in conds) if conds else "True"

    def rules(self, *, inverse: Inverse = None) -> list[tuple[int, str]]:
        """``(leaf id, rule)`` for every leaf."""
        return [(leaf, self.rule(leaf, inverse=inverse)) for leaf in self.leaves()]

    # ------------------------------------------------------------------ display and export
    @property
    def highlighted(self) -> list[int] | None:
        """The highlighted root-to-leaf path (node ids), or None (see :meth:`highlight`)."""
        return None if self._highlight is None else list(self._highlight)

    def highlight(self, x: Any) -> "TreeView":
        """This view with the decision path of one sample ``x`` highlighted when drawn.

        ``view.highlight(x)`` in a notebook shows the tree with that path in red;
        ``view.path(x)`` gives the same path as node ids.
        """
        out = copy.copy(self)  # the node arrays are shared: a view is read-only
        out._highlight = self.path(x)
        out._highlight_x = np.asarray(x, dtype=np.float64).reshape(-1)
        return out

    def path_steps(self, x: Any) -> list[dict[str, Any]]:
        """The decision path of one sample, step by step, with the numbers a reader needs.

        Each step is ``{"node", "direction"}`` plus, for an oblique split, ``"response"`` (the filter
        response ``x . w + b``) and ``"p_right"`` (the probability of going right,
        ``sigmoid(beta * response)``), and for an axis split ``"condition"`` (in raw units).
        """
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        path = self.path(x)
        units = self._inverse(None) if self.kind == "axis" else None
        steps = []
        for a, b in zip(path[:-1], path[1:]):
            nd = self.nodes[a]
            right = b == nd.right
            step: dict[str, Any] = {"node": a, "direction": "right" if right else "left"}
            if self.kind == "oblique":
                r = float(x @ nd.weights + nd.bias)
                z = (nd.beta if nd.beta is not None else 1.0) * r
                step["response"] = r
                step["p_right"] = float(0.5 * (1.0 + np.tanh(0.5 * z)))
            else:
                step["condition"] = _cond(units, nd.feature, ">" if right else "<=", nd.threshold, self.feature_names[nd.feature])
            steps.append(step)
        return steps

    def _data_kind(self) -> str:
        shape = [s for s in (self.input_shape or ()) if s != 1]
        return "image" if len(shape) >= 2 else "signal" if self.input_shape and len(self.input_shape) == 2 else "tabular"

    def _filter_parts(self, path: list[int] | None, x: Any, filters: bool) -> tuple[dict[int, str], dict[str, bytes], dict]:
        """Pictures of the oblique filters on the path (file name per node, PNG bytes per file name)
        and the numbers on the path's edges (filter response, probability of going right)."""
        if self.kind != "oblique" or not path:
            return {}, {}, {}
        from ..viz.plots import filter_thumbnail

        names: dict[int, str] = {}
        images: dict[str, bytes] = {}
        if filters:
            for node in path[:-1]:
                name = f"filter_{node}.png"
                names[node] = name
                images[name] = filter_thumbnail(self.nodes[node].weights, input_shape=self.input_shape,
                                                kind=self._data_kind(), feature_names=self.feature_names)
        notes = {}
        if x is not None:
            for step, child in zip(self.path_steps(x), path[1:]):
                notes[(step["node"], child)] = f"response {step['response']:.2f}, P(right) {step['p_right']:.2f}"
        return names, images, notes

    def _path_or_highlight(self, x: Any) -> list[int] | None:
        return self.path(x) if x is not None else self._highlight

    def _depth_shown(self, max_depth_shown: Any) -> int | None:
        if isinstance(max_depth_shown, str):
            if max_depth_shown != "auto":
                raise ValueError(f"max_depth_shown must be an int, None or 'auto'; received {max_depth_shown!r}.")
            return None if len(self.nodes) <= DISPLAY_MAX_NODES else DISPLAY_DEPTH
        return max_depth_shown

    def to_dot(
        self,
        x: Any = None,
        *,
        max_depth_shown: int | Literal["auto"] | None = "auto",
        title: str | None = None,
        inverse: Inverse = None,
        filters: bool = False,
    ) -> str:
        """Graphviz DOT text of the tree (:func:`explain_distill.viz.trees.tree_to_dot`).

        Parameters
        ----------
        x : array (n_features,), optional
            Highlight this sample's path (default: the path set by :meth:`highlight`, if any).
            On a soft tree its edges carry the filter response and the probability of going right.
        max_depth_shown : int, None or "auto"
            Levels drawn (plus the highlighted path); ``"auto"`` draws every node of a tree of at
            most 31 nodes and three levels of a larger one; None draws every node.
        title : str, optional
        inverse : callable or per-feature callables, optional
            How thresholds are printed (see :data:`Inverse`); raw units when known.
        filters : bool, default=False
            Soft tree: reference a picture of each path node's filter beside it (``filter_<id>.png``;
            :meth:`draw` embeds them, the DOT text alone only names them).
        """
        return self._dot_and_images(x, max_depth_shown, title, inverse, filters)[0]

    def _dot_and_images(self, x: Any, max_depth_shown: Any, title: Any, inverse: Inverse, filters: bool) -> tuple[str, dict]:
        from ..viz.trees import tree_to_dot

        units = self._inverse(inverse)
        path = self._path_or_highlight(x)
        sample = x if x is not None else getattr(self, "_highlight_x", None) if self._highlight is not None else None
        names, images, notes = self._filter_parts(path, sample, filters)
        dot = tree_to_dot(
            self, path, max_depth_shown=self._depth_shown(max_depth_shown), title=title, inverse=units,
            images=names or None, edge_notes=notes or None,
        )
        return dot, images

    def draw(
        self,
        x: Any = None,
        *,
        max_depth_shown: int | Literal["auto"] | None = "auto",
        title: str | None = None,
        inverse: Inverse = None,
        filters: bool = True,
    ) -> Any:
        """The tree drawn by Graphviz: a :class:`~explain_distill.viz.trees.TreeDrawing` (SVG in a
        notebook, ``.save("tree.svg")``); parameters as in :meth:`to_dot`.  A soft tree's highlighted
        path shows each node's filter beside it (``filters=False`` to leave them out)."""
        from ..viz.trees import TreeDrawing

        dot, images = self._dot_and_images(x, max_depth_shown, title, inverse, filters)
        return TreeDrawing(dot, images=images)

    def _repr_svg_(self) -> str | None:
        """Jupyter's rich display: the drawing (None without Graphviz, so the text repr shows)."""
        return self.draw()._repr_svg_()

    def export_text(self, *, decimals: int = 3, inverse: Inverse = None, show_samples: bool = True) -> str:
        """The tree as indented text in scikit-learn's ``export_text`` style, with names.

        ``|--- petal width <= 0.800`` then the subtree where the condition holds, then
        ``|--- petal width >  0.800`` and the other subtree; a leaf reads
        ``class: setosa (p=0.98, n=40)``.  Oblique splits read ``filter@i <= 0`` (``x . w_i + b_i``,
        the weights are in :meth:`to_dict`).  Thresholds go through ``inverse`` (see :data:`Inverse`).
        """
        decimals = check_int(decimals, "decimals", low=0, high=17)
        units = self._inverse(inverse)
        lines: list[str] = []
        stack: list[tuple[int, int, str | None]] = [(0, 0, None)]
        while stack:
            i, level, head = stack.pop()
            if head is not None:
                lines.append(f"{'|   ' * level}|--- {head}")
                level += 1
            nd = self.nodes[i]
            if nd.is_leaf:
                k = int(np.argmax(nd.value))
                n = "" if nd.n_samples is None or not show_samples else f", n={_count(nd.n_samples)}"
                lines.append(f"{'|   ' * level}|--- class: {self.class_names[k]} (p={nd.value[k]:.2f}{n})")
                continue
            if self.kind == "axis":
                name = self.feature_names[nd.feature]
                yes = _cond(units, nd.feature, "<=", nd.threshold, name, decimals)
                no = _cond(units, nd.feature, ">", nd.threshold, name, decimals).replace(" > ", " >  ", 1)
            else:
                yes, no = f"filter@{i} <= 0", f"filter@{i} >  0"
            stack.append((nd.right, level, no))  # scikit-learn's order: the "<=" branch first
            stack.append((nd.left, level, yes))
        return "\n".join(lines)

    def to_dict(self, *, inverse: Inverse = None) -> dict[str, Any]:
        """The tree as nested JSON-able dicts.

        ``{"kind", "feature_names", "class_names", "tree": node}``; an axis split node is
        ``{"id", "feature", "feature_index", "threshold", "left", "right", ...}`` (left: ``x[feature]
        <= threshold``), an oblique one ``{"id", "weights", "bias", "beta", "left", "right", ...}``
        (right when ``x . weights + bias > 0``), a leaf ``{"id", "leaf": true, ...}``; every node
        has ``"class"``, ``"probability"``, ``"value"`` (the class distribution) and ``"samples"``.
        With ``inverse`` the threshold is printed through it and ``"threshold_fitted"`` keeps the
        fitted value.
        """
        units = self._inverse(inverse)
        converted = units is not _identity

        def node(i: int) -> dict[str, Any]:
            nd = self.nodes[i]
            k = int(np.argmax(nd.value))
            out: dict[str, Any] = {"id": i, "depth": nd.depth}
            if nd.is_leaf:
                out["leaf"] = True
            elif self.kind == "axis":
                out["feature"] = self.feature_names[nd.feature]
                out["feature_index"] = int(nd.feature)
                out["threshold"] = _jsonable(units(nd.feature, nd.threshold))
                out["condition"] = _cond(units, nd.feature, "<=", nd.threshold, self.feature_names[nd.feature])
                if converted:
                    out["threshold_fitted"] = float(nd.threshold)
            else:
                out["weights"] = [float(w) for w in nd.weights]
                out["bias"] = float(nd.bias)
                out["beta"] = None if nd.beta is None else float(nd.beta)
            out["class"] = self.class_names[k]
            out["probability"] = float(nd.value[k])
            out["value"] = [float(v) for v in nd.value]
            out["samples"] = None if nd.n_samples is None else float(nd.n_samples)
            if not nd.is_leaf:
                out["left"] = node(nd.left)
                out["right"] = node(nd.right)
            return out

        return {
            "kind": self.kind,
            "feature_names": list(self.feature_names),
            "class_names": list(self.class_names),
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "tree": node(0),
        }

    def __repr__(self) -> str:
        hl = "" if self._highlight is None else f", highlighted={self._highlight}"
        return (
            f"TreeView(kind={self.kind!r}, n_nodes={len(self.nodes)}, n_leaves={len(self.leaves())}, "
            f"depth={self.depth}, n_features={self.n_features}, n_classes={len(self.class_names)}{hl})"
        )


def _count(v: float) -> str:
    return f"{int(v)}" if float(v).is_integer() else f"{v:.3g}"


class RuleListView:
    """A read-only view of an ordered rule list (first rule that fires decides), like :class:`TreeView`.

    Build one with :meth:`RuleListView.of` (or ``rules.view()``).

    Attributes
    ----------
    rules : list of dict
        ``{"conditions": [(feature, "<=" or ">", threshold), ...], "value": (K,), "coverage": float,
        "fidelity": float}`` in the order the list is read (coverage: the share of training rows the
        rule decides; fidelity: the share of those on which the teacher agrees with it, NaN when the
        model does not record it); the last rule has no conditions (the ``else``).
    feature_names, class_names : list of str
    """

    def __init__(self, *, rules: Sequence[Mapping[str, Any]], feature_names: Sequence[str], class_names: Sequence[str]) -> None:
        self.feature_names = check_names(list(feature_names), len(feature_names), what="feature_names")
        self.class_names = check_names(list(class_names), len(class_names), what="class_names")
        if not rules:
            raise ValueError("a RuleListView needs at least one rule (the else rule).")
        out = []
        for r, rule in enumerate(rules):
            conds = [(int(f), str(op), float(t)) for f, op, t in rule["conditions"]]
            bad = [c for c in conds if not 0 <= c[0] < len(self.feature_names) or c[1] not in ("<=", ">")]
            if bad:
                raise ValueError(f"rule {r} has conditions {bad} outside the {len(self.feature_names)} features or not <= / >.")
            value = np.asarray(rule["value"], dtype=np.float64)
            if value.shape != (len(self.class_names),):
                raise ValueError(f"rule {r} predicts {value.shape} values for {len(self.class_names)} classes.")
            out.append({"conditions": conds, "value": value, "coverage": float(rule.get("coverage", float("nan"))),
                        "fidelity": float(rule.get("fidelity", float("nan")))})
        self.rules = out
        self._highlight: int | None = None
        self.units: Any = None  # raw units when the estimator carries them (see TreeView.units)

    @classmethod
    def of(
        cls, estimator: Any, *, feature_names: Sequence[str] | None = None, class_names: Sequence[str] | None = None
    ) -> "RuleListView":
        """View a fitted rule list (anything with ``rules_`` in that layout, ``n_features_in_`` and ``classes_``).

        Names default to the estimator's ``feature_names_in_`` / ``class_names_``.
        """
        check_is_fitted(estimator)
        if not hasattr(estimator, "rules_"):
            raise TypeError(f"RuleListView.of takes a fitted rule list (with rules_); received {type(estimator).__name__}.")
        k = len(estimator.classes_)
        fn = TreeView._names(estimator, int(estimator.n_features_in_), feature_names)
        if class_names is None:
            class_names = _fitted_class_names(estimator, k) or [str(c) for c in estimator.classes_]
        view = cls(rules=estimator.rules_, feature_names=fn, class_names=class_names)
        view.units = _raw_units(estimator, view.feature_names)
        return view

    @property
    def highlighted(self) -> int | None:
        """Index of the rule that fires for the sample given to :meth:`highlight`, or None."""
        return self._highlight

    def rule_of(self, X: Any) -> np.ndarray:
        """Index of the first rule that fires for each row of ``X`` (float32 comparisons, as the model)."""
        X = check_array_2d(X, name="X", dtype=None)
        check_n_features(X, len(self.feature_names), what="this rule list")
        return first_firing_rule(self.rules, X.astype(np.float32))

    def highlight(self, x: Any) -> "RuleListView":
        """This view with the rule that decides one sample ``x`` highlighted when drawn."""
        x = np.asarray(x)
        out = copy.copy(self)
        out._highlight = int(self.rule_of(x.reshape(1, -1))[0])
        return out

    def _inverse(self, inverse: Inverse) -> Callable[[int, float], Any]:
        return _resolve(inverse, self.units, self.feature_names)

    def _conditions(self, rule: Mapping[str, Any], units: Callable[[int, float], Any], decimals: int | None) -> str:
        return " AND ".join(_cond(units, f, op, t, self.feature_names[f], decimals) for f, op, t in rule["conditions"])

    def export_text(self, *, decimals: int = 3, inverse: Inverse = None) -> str:
        """``IF ... THEN class (p=..) [coverage .., fidelity ..]`` / ``ELSE IF ...`` / ``ELSE class ...``,
        one rule a line, in the order the list is read.

        Thresholds in the data's raw units when known (``inverse="scaled"`` for the fitted values),
        with ``decimals`` decimals.
        """
        decimals = check_int(decimals, "decimals", low=0, high=17)
        units = self._inverse(inverse)
        lines = []
        for r, rule in enumerate(self.rules):
            k = int(np.argmax(rule["value"]))
            then = f"{self.class_names[k]} (p={rule['value'][k]:.2f}) [{_rule_stats(rule)}]"
            if not rule["conditions"]:
                lines.append(("ELSE " if r else "") + then)
                continue
            lines.append(f"{'IF' if r == 0 else 'ELSE IF'} {self._conditions(rule, units, decimals)} THEN {then}")
        return "\n".join(lines)

    def to_dict(self, *, inverse: Inverse = None) -> dict[str, Any]:
        """The rule list as JSON-able dicts: ``{"feature_names", "class_names", "rules": [...]}``;
        each rule ``{"conditions": [{"feature", "feature_index", "op", "threshold"}], "class",
        "probability", "value", "coverage", "fidelity"}`` (thresholds through ``inverse``; fidelity
        None where the model does not record it)."""
        units = self._inverse(inverse)
        rules = []
        for rule in self.rules:
            k = int(np.argmax(rule["value"]))
            conds = []
            for f, op, t in rule["conditions"]:
                c = {"feature": self.feature_names[f], "feature_index": f, "op": op, "threshold": _jsonable(units(f, t)),
                     "condition": _cond(units, f, op, t, self.feature_names[f])}
                if units is not _identity:
                    c["threshold_fitted"] = t
                conds.append(c)
            rules.append({
                "conditions": conds,
                "class": self.class_names[k],
                "probability": float(rule["value"][k]),
                "value": [float(v) for v in rule["value"]],
                "coverage": float(rule["coverage"]),
                "fidelity": _jsonable(rule["fidelity"]) if np.isfinite(rule["fidelity"]) else None,
            })
        return {"feature_names": list(self.feature_names), "class_names": list(self.class_names), "rules": rules}

    def to_dot(self, x: Any = None, *, title: str | None = None, inverse: Inverse = None) -> str:
        """Graphviz DOT text: the rules as a chain (``yes`` to the rule's class, ``no`` to the next rule);
        ``x`` highlights the rules it passes through and the one that decides it."""
        from ..viz.trees import rules_to_dot

        fired = int(self.rule_of(np.asarray(x).reshape(1, -1))[0]) if x is not None else self._highlight
        return rules_to_dot(self, fired=fired, title=title, inverse=self._inverse(inverse))

    def draw(self, x: Any = None, *, title: str | None = None, inverse: Inverse = None) -> Any:
        """The rule list drawn by Graphviz (a :class:`~explain_distill.viz.trees.TreeDrawing`)."""
        from ..viz.trees import TreeDrawing

        return TreeDrawing(self.to_dot(x, title=title, inverse=inverse))

    def _repr_svg_(self) -> str | None:
        return self.draw()._repr_svg_()

    def __str__(self) -> str:
        return self.export_text()

    def __repr__(self) -> str:
        hl = "" if self._highlight is None else f", highlighted={self._highlight}"
        return (
            f"RuleListView(n_rules={len(self.rules)}, n_conditions={sum(len(r['conditions']) for r in self.rules)}, "
            f"n_features={len(self.feature_names)}, n_classes={len(self.class_names)}{hl})"
        )


def _rule_stats(rule: Mapping[str, Any]) -> str:
    """``coverage 12.3%, fidelity 98.0%`` (fidelity only where the rule list records it)."""
    fid = float(rule.get("fidelity", float("nan")))
    return f"coverage {rule['coverage']:.1%}" + (f", fidelity {fid:.1%}" if np.isfinite(fid) else "")


def _raw_units(estimator: Any, feature_names: Sequence[str]) -> Any:
    """The estimator's ``input_units_`` (attached by ``distill``) as :class:`RawUnits`, or None."""
    from .units import RawUnits

    units = getattr(estimator, "input_units_", None)
    if not units:
        return None
    try:
        return RawUnits(units, feature_names)
    except (KeyError, ValueError):
        return None


def _resolve(inverse: Inverse, units: Any, feature_names: Sequence[str]) -> Callable[[int, float], Any]:
    """What prints a threshold: ``inverse`` when given, ``"scaled"`` the fitted value, ``"raw"`` (or
    None, by default) the view's raw units when it has them."""
    if isinstance(inverse, str):
        if inverse == "scaled":
            return _identity
        if inverse == "raw":
            if units is None:
                raise ValueError(
                    "inverse='raw' needs the data's units: view a surrogate fitted through ed.distill (it carries "
                    "input_units_), or pass inverse= a callable (feature, value) -> raw value."
                )
            return units
        raise ValueError(f"inverse must be 'raw', 'scaled', a callable or one callable per feature; received {inverse!r}.")
    if inverse is None:
        return units if units is not None else _identity
    return _units(inverse, feature_names)


register_viewer("tree", TreeView.of)
register_viewer("rules", RuleListView.of)
