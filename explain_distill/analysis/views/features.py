"""The view of a surrogate over teacher features (``NAME@patterns``), and its adapter.

A :class:`~explain_distill.features.FeatureSurrogate` is an ordinary model fitted on the columns of
a feature map (a pattern's strongest response, where it was; or a user function's features).
Its view is the view of that model (a tree, a rule list, a sum of trees), named after the
feature map's columns and worded by it (:class:`~.conditions.FeatureWording`:
``pattern 7 present (response > 0.80)``), which answers on raw inputs: rows go through the
feature map first.  A model without a view of its own (a linear model) gives none.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ...features import FeatureSurrogate
from .conditions import ConditionWriter, FeatureWording, Inverse
from .registry import adapter_for, register_adapter

__all__ = ["FeatureView"]


class FeatureView:
    """A view over feature columns: the inner model's view, worded by the feature map, on raw inputs.

    Attributes
    ----------
    inner : TreeView, RuleListView or SumOfTreesView
        The model's own view over the feature columns (its ``units`` word the features).
    features : FeatureMap
    name : str
        ``family@label``.
    """

    def __init__(self, inner: Any, features: Any, name: str) -> None:
        self.inner = inner
        self.features = features
        self.name = str(name)

    @classmethod
    def of(cls, surrogate: FeatureSurrogate, **names: Any) -> "FeatureView":
        """View a fitted surrogate over features (``feature_names=`` defaults to the feature map's names)."""
        adapter = adapter_for(surrogate.estimator)
        if adapter is None or adapter.family == "features":
            raise TypeError(f"{surrogate.name} is a {type(surrogate.estimator).__name__}, which has no view of its own.")
        names.setdefault("feature_names", list(surrogate.features.names))
        inner = adapter.build(surrogate.estimator, **names)
        inner.units = FeatureWording(surrogate.features)
        return cls(inner, surrogate.features, surrogate.name)

    @property
    def kind(self) -> str:
        """The inner view's kind (``"axis"``, ``"oblique"``, ``"rules"``, ``"sum"``)."""
        return self.inner.kind

    @property
    def feature_names(self) -> list[str]:
        return self.inner.feature_names

    @property
    def class_names(self) -> list[str]:
        return self.inner.class_names

    @property
    def units(self) -> Any:
        return self.inner.units

    def transform(self, X: Any) -> np.ndarray:
        """The feature columns of raw inputs."""
        return self.features.transform(X)

    # ------------------------------------------------------------------ the view protocol
    def writer(self, inverse: Inverse = None) -> ConditionWriter:
        return self.inner.writer(inverse)

    def decisions(self) -> list[int]:
        return self.inner.decisions()

    def decision_of(self, X: Any) -> np.ndarray:
        """The decision of each raw input row (through the feature map)."""
        return self.inner.decision_of(self.transform(X))

    def decision_conditions(self, decision: int) -> list[Any]:
        return self.inner.decision_conditions(decision)

    def decision_value(self, decision: int) -> np.ndarray:
        return self.inner.decision_value(decision)

    def highlight(self, x: Any) -> "FeatureView":
        """This view with the decision of one raw input ``x`` highlighted when drawn."""
        out = copy.copy(self)
        out.inner = self.inner.highlight(self.transform(np.asarray(x).reshape(1, -1))[0])
        return out

    # ------------------------------------------------------------------ exports (over the feature columns)
    def export_text(self, *, decimals: int = 3, inverse: Inverse = None) -> str:
        return self.inner.export_text(decimals=decimals, inverse=inverse)

    def to_dict(self, *, inverse: Inverse = None) -> dict[str, Any]:
        return self.inner.to_dict(inverse=inverse)

    def to_dot(self, x: Any = None, **kwargs: Any) -> str:
        """DOT text of the inner model; ``x`` (a raw input) highlights its decision."""
        return self.inner.to_dot(None if x is None else self.transform(np.asarray(x).reshape(1, -1))[0], **kwargs)

    def draw(self, x: Any = None, **kwargs: Any) -> Any:
        return self.inner.draw(None if x is None else self.transform(np.asarray(x).reshape(1, -1))[0], **kwargs)

    def _repr_svg_(self) -> str | None:
        return self.draw()._repr_svg_()

    def __repr__(self) -> str:
        return f"FeatureView({self.name}: {self.inner!r})"


register_adapter("surrogate over teacher features", "features", lambda est: isinstance(est, FeatureSurrogate), FeatureView.of)
