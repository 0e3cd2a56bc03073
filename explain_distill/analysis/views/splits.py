"""How a tree's inner nodes split: one class per split geometry, chosen by ``TreeView.kind``.

- ``"axis"`` (:class:`AxisSplits`): scikit-learn's trees and every tree given as node arrays.  A
  sample goes *left* when ``x[feature] <= threshold``, compared in float32 as scikit-learn does.
- ``"oblique"`` (:class:`ObliqueSplits`): the soft decision tree.  A sample goes *right* with
  probability ``sigmoid(beta * (x . w + b))``; a view follows the more probable branch (right when
  ``x . w + b > 0``), so every leaf is an exact conjunction of half-space conditions.

A split kind answers the few questions where the geometries differ: routing rows, the condition of
a branch as data (:mod:`.conditions`), the numbers a step of a path carries and the fields of a
node in ``to_dict``.  :class:`~explain_distill.analysis.views.tree.TreeView` asks them and never
branches on the kind itself; a new geometry registers a class in :data:`SPLITS`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .conditions import Condition, ConditionWriter, FilterCondition

__all__ = ["AxisSplits", "ObliqueSplits", "SPLITS"]


class AxisSplits:
    """``x[feature] <= threshold`` goes left (scikit-learn's trees)."""

    kind = "axis"
    uses_units = True  # conditions print thresholds through the view's units

    def __init__(self, nodes: list[Any], n_features: int) -> None:
        self.feature = np.array([-1 if nd.feature is None else nd.feature for nd in nodes], dtype=np.intp)
        self.threshold = np.array([np.nan if nd.threshold is None else nd.threshold for nd in nodes], dtype=np.float64)
        #: scikit-learn trees compare float32 inputs with float64 thresholds; a model that compares
        #: float64 inputs (the sum of trees) sets this False on its views.
        self.float32 = True

    def prepare(self, X: np.ndarray) -> np.ndarray:
        return X.astype(np.float32).astype(np.float64) if self.float32 else X.astype(np.float64)

    def go_right(self, X: np.ndarray, node: np.ndarray) -> np.ndarray:
        rows = np.arange(len(X))
        return ~(X[rows, self.feature[node]] <= self.threshold[node])

    @staticmethod
    def condition(nd: Any, right: bool) -> Condition:
        return Condition(nd.feature, ">" if right else "<=", nd.threshold)

    def step(self, x: np.ndarray, nd: Any, right: bool, writer: ConditionWriter) -> dict[str, Any]:
        """What a path step through ``nd`` shows: its condition (in the writer's units)."""
        return {"condition": writer.text(self.condition(nd, right))}

    def fields(self, nd: Any, feature_names: list[str], writer: ConditionWriter) -> dict[str, Any]:
        """The split's entries in ``to_dict``: name, index, threshold (printed and, when converted, fitted)."""
        v = writer.value(nd.feature, nd.threshold)
        out: dict[str, Any] = {
            "feature": feature_names[nd.feature],
            "feature_index": int(nd.feature),
            "threshold": v if isinstance(v, str) else float(v),
            "condition": writer.text(self.condition(nd, False)),
        }
        if writer.converted:
            out["threshold_fitted"] = float(nd.threshold)
        return out


class ObliqueSplits:
    """``x . w + b > 0`` goes right (the soft tree's more probable branch)."""

    kind = "oblique"
    uses_units = False  # conditions read filter@i against 0

    def __init__(self, nodes: list[Any], n_features: int) -> None:
        self.W = np.zeros((len(nodes), n_features), dtype=np.float64)
        self.b = np.zeros(len(nodes), dtype=np.float64)
        for nd in nodes:
            if not nd.is_leaf:
                self.W[nd.id] = nd.weights
                self.b[nd.id] = nd.bias

    @staticmethod
    def prepare(X: np.ndarray) -> np.ndarray:
        return X.astype(np.float64)

    def go_right(self, X: np.ndarray, node: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", X, self.W[node]) + self.b[node] > 0

    @staticmethod
    def condition(nd: Any, right: bool) -> FilterCondition:
        return FilterCondition(nd.id, ">" if right else "<=")

    @staticmethod
    def step(x: np.ndarray, nd: Any, right: bool, writer: ConditionWriter) -> dict[str, Any]:
        """The filter response ``x . w + b`` and the probability of going right, ``sigmoid(beta * response)``."""
        r = float(x @ nd.weights + nd.bias)
        z = (nd.beta if nd.beta is not None else 1.0) * r
        return {"response": r, "p_right": float(0.5 * (1.0 + np.tanh(0.5 * z)))}

    @staticmethod
    def fields(nd: Any, feature_names: list[str], writer: ConditionWriter) -> dict[str, Any]:
        return {
            "weights": [float(w) for w in nd.weights],
            "bias": float(nd.bias),
            "beta": None if nd.beta is None else float(nd.beta),
        }


#: Split kinds by ``TreeView.kind``.
SPLITS: dict[str, type] = {"axis": AxisSplits, "oblique": ObliqueSplits}
