"""The core of :class:`TreeView`: one read-only view over every tree this package fits.

Renderers, per-leaf fidelity and rule extraction code against :class:`TreeView` only, never
against a particular tree class (the "shadow tree" adapter idea of dtreeviz).  Adapters build it
from a model (:mod:`.sklearn`: scikit-learn's trees, ``SoftLabelTreeClassifier`` and anything with
``_tree_arrays()``; :mod:`.soft_tree`: the soft decision tree); the way inner nodes split is its
``kind`` (:mod:`.splits`: ``"axis"`` or ``"oblique"``).

Here live the nodes and the questions about them: leaves, ``leaf_of``, paths, conditions (as data
and as text, through :class:`~.conditions.ConditionWriter`), rules and the highlighted path.  The
exports (:mod:`.export_text`, :mod:`.export_dict`, :mod:`.export_dot`) are methods that hand the
view to those modules.

The view holds numbers only (numpy arrays, floats, strings); building it is the only step that
touches the estimator.  Names default to the estimator's ``feature_names_in_`` and ``class_names_``
(which ``distill`` sets), and thresholds print in the data's raw units when the estimator carries
them (``units``, from ``input_units_``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..._validation import check_array_2d, check_int, check_n_features
from .conditions import Condition, ConditionWriter, FilterCondition, Inverse
from .export_dict import tree_dict
from .export_dot import TreeDrawingMixin
from .export_text import tree_text
from .splits import SPLITS

__all__ = ["TreeNode", "TreeView", "check_input_shape"]


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


def check_input_shape(input_shape: Any, n_features: int) -> tuple[int, ...] | None:
    """``input_shape`` as a tuple whose product is ``n_features`` (None when not given)."""
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


class TreeView(TreeDrawingMixin):
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
    units : callable or None
        How thresholds print by default: the data's raw units when the estimator carries them
        (``input_units_``, attached by ``distill``), else as fitted.
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
        if kind not in SPLITS:
            raise ValueError(f"kind must be {' or '.join(repr(k) for k in SPLITS)}; received {kind!r}.")
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
        self.units: Any = None
        self._is_leaf = np.array([nd.is_leaf for nd in self.nodes], dtype=bool)
        self._left = np.array([-1 if nd.left is None else nd.left for nd in self.nodes], dtype=np.intp)
        self._right = np.array([-1 if nd.right is None else nd.right for nd in self.nodes], dtype=np.intp)
        self._parent = np.full(len(self.nodes), -1, dtype=np.intp)
        for nd in self.nodes:
            if not nd.is_leaf:
                self._parent[nd.left] = nd.id
                self._parent[nd.right] = nd.id
        self.splits = SPLITS[kind](self.nodes, len(self.feature_names))

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
            Fitted; or any fitted estimator with ``_tree_arrays()`` (scikit-learn-style node arrays
            ``children_left``, ``children_right``, ``feature``, ``threshold``, ``value`` of shape
            (n_nodes, n_classes), optional ``n_samples``).
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
        from .registry import adapter_for

        adapter = adapter_for(estimator, family="tree")
        if adapter is None:
            raise TypeError(
                f"TreeView.of takes a fitted SoftLabelTreeClassifier, SoftDecisionTree, DecisionTreeClassifier or "
                f"DecisionTreeRegressor; received {type(estimator).__name__}. Other surrogates have no tree to view."
            )
        return adapter.build(estimator, feature_names=feature_names, class_names=class_names, input_shape=input_shape)

    @classmethod
    def from_arrays(cls, **arrays: Any) -> "TreeView":
        """An axis-aligned view from scikit-learn-style node arrays (pre-order ids, root 0, -1 = no child).

        Keywords: ``children_left``, ``children_right``, ``feature``, ``threshold``, ``value``
        (n_nodes, n_classes), optional ``n_samples``, ``feature_names``, ``class_names``, optional
        ``input_shape``.  A sample goes left when ``x[feature] <= threshold``.
        """
        from .sklearn import tree_from_arrays

        return tree_from_arrays(**arrays)

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

    def leaf_of(self, X: Any) -> np.ndarray:
        """Leaf id of every row of ``X`` (the soft tree: the leaf of its max-probability path).

        Returns
        -------
        ndarray (n_samples,) of int
        """
        X = check_array_2d(X, name="X", dtype=None)
        check_n_features(X, self.n_features, what="this tree")
        X = self.splits.prepare(X)
        node = np.zeros(len(X), dtype=np.intp)
        for _ in range(self.depth):  # one vectorised step per level
            inner = ~self._is_leaf[node]
            if not inner.any():
                break
            right = self.splits.go_right(X[inner], node[inner])
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

    # ------------------------------------------------------------------ conditions
    def writer(self, inverse: Inverse = None, *, lazy: bool = False) -> ConditionWriter:
        """The :class:`~.conditions.ConditionWriter` that prints this view's conditions through ``inverse``."""
        return ConditionWriter(inverse, self.units, self.feature_names, lazy=lazy)

    def path_conditions(self, node: int) -> list[tuple[int, Condition | FilterCondition]]:
        """``(inner node, condition)`` as data for every split on the way to ``node``."""
        path = self.path_to(node)
        return [(a, self.splits.condition(self.nodes[a], b == self.nodes[a].right)) for a, b in zip(path[:-1], path[1:])]

    def conditions(self, leaf: int, *, inverse: Inverse = None) -> list[tuple[int, str]]:
        """``(node, condition)`` for every split on the way to ``leaf``.

        Thresholds print in the data's raw units when the view knows them (see ``units``),
        through ``inverse`` when given, as fitted with ``inverse="scaled"``.
        """
        writer = self.writer(inverse, lazy=not self.splits.uses_units)
        return [(node, writer.text(c)) for node, c in self.path_conditions(leaf)]

    def rule(self, leaf: int, *, inverse: Inverse = None) -> str:
        """The conjunction of conditions that leads to ``leaf``, e.g. ``"pixel_3_4 <= 8 and 1.2 < x7 <= 3"``:
        in the data's raw units each feature is stated once (see :meth:`ConditionWriter.texts`).

        Oblique splits read ``"filter@0 > 0 and filter@2 <= 0"`` (``filter@i`` is
        ``x . w_i + b_i`` of inner node ``i``).  The root of a one-node tree has the rule ``"True"``.
        """
        writer = self.writer(inverse, lazy=not self.splits.uses_units)
        conds = writer.texts(c for _, c in self.path_conditions(leaf))
        return " and ".join(conds) if conds else "True"

    def rules(self, *, inverse: Inverse = None) -> list[tuple[int, str]]:
        """``(leaf id, rule)`` for every leaf."""
        return [(leaf, self.rule(leaf, inverse=inverse)) for leaf in self.leaves()]

    # ------------------------------------------------------------------ the view protocol
    def decisions(self) -> list[int]:
        """What decides a row: the leaves."""
        return self.leaves()

    def decision_of(self, X: Any) -> np.ndarray:
        """The leaf of every row (:meth:`leaf_of`)."""
        return self.leaf_of(X)

    def decision_conditions(self, decision: int) -> list[Condition | FilterCondition]:
        """The conditions on the path to a leaf, as data."""
        return [c for _, c in self.path_conditions(decision)]

    def decision_value(self, decision: int) -> np.ndarray:
        return self.nodes[decision].value

    # ------------------------------------------------------------------ highlight
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
        writer = self.writer(None)
        steps = []
        for a, b in zip(path[:-1], path[1:]):
            nd = self.nodes[a]
            right = b == nd.right
            step: dict[str, Any] = {"node": a, "direction": "right" if right else "left"}
            step.update(self.splits.step(x, nd, right, writer))
            steps.append(step)
        return steps

    # ------------------------------------------------------------------ exports
    def export_text(self, *, decimals: int = 3, inverse: Inverse = None, show_samples: bool = True) -> str:
        """The tree as indented text in scikit-learn's ``export_text`` style, with names.

        ``|--- petal width <= 0.800`` then the subtree where the condition holds, then
        ``|--- petal width >  0.800`` and the other subtree; a leaf reads
        ``class: setosa (p=0.98, n=40)``.  Oblique splits read ``filter@i <= 0`` (``x . w_i + b_i``,
        the weights are in :meth:`to_dict`).  Thresholds go through ``inverse`` (see :data:`Inverse`).
        """
        return tree_text(self, decimals=decimals, inverse=inverse, show_samples=show_samples)

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
        return tree_dict(self, inverse=inverse)

    def __repr__(self) -> str:
        hl = "" if self._highlight is None else f", highlighted={self._highlight}"
        return (
            f"TreeView(kind={self.kind!r}, n_nodes={len(self.nodes)}, n_leaves={len(self.leaves())}, "
            f"depth={self.depth}, n_features={self.n_features}, n_classes={len(self.class_names)}{hl})"
        )
