"""The ordered rule list's view, :class:`RuleListView`, and its adapter.

A rule list (:class:`~explain_distill.surrogates.rules.RuleListClassifier`, or anything with
``rules_`` in that layout) is read in order: the first rule whose conditions all hold decides, the
last rule (no conditions) is the ``else``.  The view offers what a :class:`~.tree.TreeView` offers
for a tree: which rule decides a row (``rule_of``), its conditions as data, the highlight of one
sample, and the exports (text, dict, DOT).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..._validation import check_array_2d, check_n_features, check_names
from ...surrogates._base import feature_names_of
from ...surrogates.rules import RuleListClassifier, first_firing_rule
from .conditions import Condition, ConditionWriter, Inverse, raw_units_of
from .export_dict import rule_list_dict
from .export_dot import RuleListDrawingMixin
from .export_text import rule_list_text
from .registry import fitted_class_names, register_adapter

__all__ = ["RuleListView"]


class RuleListView(RuleListDrawingMixin):
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
    units : callable or None
        Raw units when the estimator carries them (see ``TreeView.units``).
    """

    kind = "rules"

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
        self.units: Any = None

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
        fn = feature_names_of(estimator, feature_names)
        if class_names is None:
            class_names = fitted_class_names(estimator, len(estimator.classes_)) or [str(c) for c in estimator.classes_]
        view = cls(rules=estimator.rules_, feature_names=fn, class_names=class_names)
        view.units = raw_units_of(estimator, view.feature_names)
        view.temperature = getattr(estimator, "label_temperature_", None)
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

    # ------------------------------------------------------------------ the view protocol
    def writer(self, inverse: Inverse = None) -> ConditionWriter:
        """The :class:`~.conditions.ConditionWriter` that prints this list's conditions through ``inverse``."""
        return ConditionWriter(inverse, self.units, self.feature_names)

    def decisions(self) -> list[int]:
        """What decides a row: the rules, in reading order."""
        return list(range(len(self.rules)))

    def decision_of(self, X: Any) -> np.ndarray:
        """The deciding rule of every row (:meth:`rule_of`)."""
        return self.rule_of(X)

    def decision_conditions(self, decision: int) -> list[Condition]:
        """The conditions of one rule, as data (the rules before it did not fire)."""
        return [Condition(*c) for c in self.rules[decision]["conditions"]]

    def decision_value(self, decision: int) -> np.ndarray:
        return self.rules[decision]["value"]

    # ------------------------------------------------------------------ exports
    def export_text(self, *, decimals: int = 3, inverse: Inverse = None) -> str:
        """``IF ... THEN class (p=..) [coverage .., fidelity ..]`` / ``ELSE IF ...`` / ``ELSE class ...``,
        one rule a line, in the order the list is read.

        Thresholds in the data's raw units when known (``inverse="scaled"`` for the fitted values),
        with ``decimals`` decimals.
        """
        return rule_list_text(self, decimals=decimals, inverse=inverse)

    def to_dict(self, *, inverse: Inverse = None) -> dict[str, Any]:
        """The rule list as JSON-able dicts: ``{"feature_names", "class_names", "rules": [...]}``;
        each rule ``{"conditions": [{"feature", "feature_index", "op", "threshold"}], "class",
        "probability", "value", "coverage", "fidelity"}`` (thresholds through ``inverse``; fidelity
        None where the model does not record it)."""
        return rule_list_dict(self, inverse=inverse)

    def __str__(self) -> str:
        return self.export_text()

    def __repr__(self) -> str:
        hl = "" if self._highlight is None else f", highlighted={self._highlight}"
        return (
            f"RuleListView(n_rules={len(self.rules)}, n_conditions={sum(len(r['conditions']) for r in self.rules)}, "
            f"n_features={len(self.feature_names)}, n_classes={len(self.class_names)}{hl})"
        )


def _is_rule_list(estimator: Any) -> bool:
    return isinstance(estimator, RuleListClassifier) or hasattr(estimator, "rules_")


register_adapter("rule list", "rules", _is_rule_list, RuleListView.of)
