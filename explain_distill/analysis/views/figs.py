"""The sum of trees' view, :class:`SumOfTreesView`, and its adapter (``figs``:
:class:`~explain_distill.surrogates.figs.SumOfTreesClassifier`).

The model predicts ``softmax(bias + sum_t value_t[leaf_t(x)])``: every row lands in one leaf of
each tree, and each leaf adds its values to the class logits.  The view keeps one axis-aligned
:class:`~.tree.TreeView` per tree (their ``value``: a leaf's contribution to each class's logit,
zeros at inner nodes) and the bias; a row's decision is one leaf per tree, numbered across the
trees (tree ``t``'s node ``i`` is ``offsets[t] + i``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..._validation import check_array_2d, check_n_features
from ...surrogates._base import class_names_of, feature_names_of
from ...surrogates.figs import SumOfTreesClassifier
from .conditions import Condition, ConditionWriter, Inverse, raw_units_of
from .export_dict import sum_dict
from .export_dot import SumDrawingMixin
from .export_text import sum_text
from .registry import register_adapter
from .sklearn import tree_from_arrays
from .tree import TreeView

__all__ = ["SumOfTreesView"]


class SumOfTreesView(SumDrawingMixin):
    """A read-only view of a sum of trees (:meth:`SumOfTreesView.of`, or ``figs.view()``): the bias
    and one :class:`TreeView` per tree.

    Attributes
    ----------
    trees : list of TreeView
        Axis-aligned, compared in float64 as the model routes; leaf values are logit contributions.
    bias : ndarray (K,)
    feature_names, class_names : list of str
    units : callable or None
        Raw units when the estimator carries them (see ``TreeView.units``).
    """

    kind = "sum"

    def __init__(
        self, *, trees: Sequence[TreeView], bias: Any, feature_names: Sequence[str], class_names: Sequence[str]
    ) -> None:
        self.trees = list(trees)
        self.bias = np.asarray(bias, dtype=np.float64)
        self.feature_names = list(feature_names)
        self.class_names = list(class_names)
        if self.bias.shape != (len(self.class_names),):
            raise ValueError(f"bias holds {self.bias.shape} values for {len(self.class_names)} classes.")
        self.offsets = np.cumsum([0] + [len(t.nodes) for t in self.trees])
        self.units: Any = None
        self._highlight: list[list[int]] | None = None

    @classmethod
    def of(
        cls, estimator: Any, *, feature_names: Sequence[str] | None = None, class_names: Sequence[str] | None = None
    ) -> "SumOfTreesView":
        """View a fitted sum of trees (``trees_`` tables and ``bias_``); names default to the fitted ones."""
        check_is_fitted(estimator)
        fn = feature_names_of(estimator, feature_names)
        cn = class_names_of(estimator, class_names)
        trees = []
        for t in estimator.trees_:
            tree = tree_from_arrays(children_left=t["left"], children_right=t["right"], feature=t["feature"],
                                    threshold=t["threshold"], value=t["value"], feature_names=fn, class_names=cn)
            tree.splits.float32 = False  # the model compares its float64 inputs
            trees.append(tree)
        view = cls(trees=trees, bias=estimator.bias_, feature_names=fn, class_names=cn)
        view.units = raw_units_of(estimator, fn)
        view.temperature = getattr(estimator, "label_temperature_", None)
        for tree in trees:  # each tree prints its conditions in the same units
            tree.units = view.units
        return view

    def _split(self, decision: int) -> tuple[int, int]:
        """(tree, node within it) of a decision id."""
        t = int(np.searchsorted(self.offsets, decision, side="right")) - 1
        if not 0 <= t < len(self.trees):
            raise ValueError(f"decision {decision} is outside this sum's {int(self.offsets[-1])} nodes.")
        return t, int(decision - self.offsets[t])

    def leaf_of(self, X: Any) -> np.ndarray:
        """The leaf of every row in every tree, (n_samples, n_trees), ids within each tree."""
        X = check_array_2d(X, name="X", dtype=None)
        check_n_features(X, len(self.feature_names), what="this sum of trees")
        return np.stack([t.leaf_of(X) for t in self.trees], axis=1) if self.trees else np.zeros((len(X), 0), np.intp)

    def path(self, x: Any) -> list[list[int]]:
        """Node ids from the root to the leaf that one sample ``x`` reaches, in every tree."""
        return [t.path(x) for t in self.trees]

    @property
    def highlighted(self) -> list[list[int]] | None:
        """The highlighted path in every tree, or None (see :meth:`highlight`)."""
        return None if self._highlight is None else [list(p) for p in self._highlight]

    def highlight(self, x: Any) -> "SumOfTreesView":
        """This view with the leaf of one sample ``x`` in every tree highlighted when drawn."""
        out = copy.copy(self)
        out._highlight = self.path(x)
        return out

    # ------------------------------------------------------------------ the view protocol
    def writer(self, inverse: Inverse = None) -> ConditionWriter:
        """The :class:`~.conditions.ConditionWriter` that prints this sum's conditions through ``inverse``."""
        return ConditionWriter(inverse, self.units, self.feature_names)

    def decisions(self) -> list[int]:
        """Every tree's leaves, numbered across the trees."""
        return [int(self.offsets[t]) + leaf for t, tree in enumerate(self.trees) for leaf in tree.leaves()]

    def decision_of(self, X: Any) -> np.ndarray:
        """One leaf per tree for every row, (n_samples, n_trees), numbered across the trees."""
        return self.leaf_of(X) + self.offsets[:-1][None, :]

    def decision_conditions(self, decision: int) -> list[Condition]:
        t, node = self._split(decision)
        return self.trees[t].decision_conditions(node)

    def decision_value(self, decision: int) -> np.ndarray:
        """A leaf's contribution to each class's logit."""
        t, node = self._split(decision)
        return self.trees[t].nodes[node].value

    # ------------------------------------------------------------------ exports
    def export_text(self, *, decimals: int = 3, inverse: Inverse = None) -> str:
        """``bias: ...`` then each tree as indented text; a leaf reads ``+class (class +0.12, ...)``."""
        return sum_text(self, decimals=decimals, inverse=inverse)

    def to_dict(self, *, inverse: Inverse = None) -> dict[str, Any]:
        """``{"kind": "sum", "feature_names", "class_names", "bias", "trees": [node, ...]}``, nodes as in
        ``TreeView.to_dict``."""
        return sum_dict(self, inverse=inverse)

    def __str__(self) -> str:
        return self.export_text()

    def __repr__(self) -> str:
        hl = "" if self._highlight is None else ", highlighted"
        return (
            f"SumOfTreesView(n_trees={len(self.trees)}, n_leaves={len(self.decisions())}, "
            f"n_features={len(self.feature_names)}, n_classes={len(self.class_names)}{hl})"
        )


register_adapter("sum of trees", "figs", lambda est: isinstance(est, SumOfTreesClassifier), SumOfTreesView.of)
