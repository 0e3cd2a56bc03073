"""Conditions as data, and the one place where they become text.

A split of a tree or a test of a rule is data: a :class:`Condition` ``(feature, op, threshold)``
with the threshold as fitted (in the scaled space the surrogate saw), or, for an oblique split of
the soft tree, a :class:`FilterCondition` ``(node, op)`` (``x . w + b`` against 0).  Views hand
conditions out in this form (``decision_conditions``); every view, every export (text, dict, DOT),
the report and ``metrics.json`` turn them into text through :class:`ConditionWriter` and nowhere
else, so how a condition reads is decided here.  With the data's raw units (what ``distill``
attaches) a printed condition is true as printed: the threshold splits the data's observed values
exactly where the model does, with the fewest digits that keep every row on its side (0/1 columns
as ``col = 1``, integers as integers, one-hot levels as ``col = level``), and a conjunction states
each feature once (:meth:`ConditionWriter.texts`).  Otherwise:

- the writer's *units* say how a fitted threshold prints: the identity (as fitted), the data's raw
  units (:class:`~explain_distill.analysis.units.RawUnits`, whose own wording reads a one-hot
  column as ``colour = red``), any ``inverse(feature, value)`` the user passes (see
  :data:`Inverse`), or the words of a teacher feature (:class:`FeatureWording`:
  ``pattern 7 present (response > 0.80)``, :func:`describe_condition`);
- the caller says how precise: ``decimals`` (fixed) or ``digits`` (significant), as each export
  printed before there was one place (prose ``.4g``, tree drawings ``.3g``, text exports
  ``.3f``); ``raw_decimals=False`` leaves raw units their own precision
  (:func:`~explain_distill.analysis.units.format_value`) where drawings ask for fixed decimals.

:func:`tightest` keeps one bound per feature and side along a conjunction (the first step towards
one condition per feature, with intervals merged).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Union

import numpy as np

__all__ = [
    "Condition",
    "ConditionWriter",
    "FeatureWording",
    "FilterCondition",
    "Inverse",
    "describe_condition",
    "raw_units_of",
    "resolve_units",
    "tightest",
]

#: How exports print a threshold: ``inverse(feature_index, value)`` -> a number or a ready string;
#: or one callable ``value -> number | str`` per feature (a sequence, or a mapping keyed by index or
#: name; missing / None entries print the value as it is).  None (the default) prints the data's
#: raw units when the view knows them (a surrogate fitted by ``distill`` carries ``input_units_``)
#: and the fitted values otherwise; ``"raw"`` insists on raw units, ``"scaled"`` asks for the fitted
#: (z-score) values.
Inverse = Union[Callable[[int, float], Any], Sequence[Any], Mapping[Any, Any], str, None]


class Condition(NamedTuple):
    """``x[feature] op threshold`` with ``op`` ``"<="`` or ``">"`` and the threshold as fitted."""

    feature: int
    op: str
    threshold: float


class FilterCondition(NamedTuple):
    """An oblique split of the soft tree: ``x . w + b op 0`` for the filter of inner node ``node``."""

    node: int
    op: str


def identity(feature: int, value: float) -> float:
    """The fitted value as it is (``inverse="scaled"``)."""
    return value


# ---------------------------------------------------------------------------- units
def _per_feature(inverse: Inverse, feature_names: Sequence[str]) -> Callable[[int, float], Any]:
    """Normalise a user's ``inverse`` (a callable, or one callable per feature) to ``f(feature, value)``."""
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


def resolve_units(inverse: Inverse, units: Any, feature_names: Sequence[str]) -> Callable[[int, float], Any]:
    """What prints a threshold: ``inverse`` when given, ``"scaled"`` the fitted value, ``"raw"`` (or
    None, by default) the view's ``units`` when it has them."""
    if isinstance(inverse, str):
        if inverse == "scaled":
            return identity
        if inverse == "raw":
            if units is None:
                raise ValueError(
                    "inverse='raw' needs the data's units: view a surrogate fitted through ed.distill (it carries "
                    "input_units_), or pass inverse= a callable (feature, value) -> raw value."
                )
            return units
        raise ValueError(f"inverse must be 'raw', 'scaled', a callable or one callable per feature; received {inverse!r}.")
    if inverse is None:
        return units if units is not None else identity
    return _per_feature(inverse, feature_names)


def raw_units_of(estimator: Any, feature_names: Sequence[str]) -> Any:
    """The estimator's ``input_units_`` (attached by ``distill``) as :class:`RawUnits`, or None."""
    from ..units import RawUnits

    units = getattr(estimator, "input_units_", None)
    if not units:
        return None
    try:
        return RawUnits(units, feature_names)
    except (KeyError, ValueError):
        return None


# ---------------------------------------------------------------------------- the one place
class ConditionWriter:
    """Turns :class:`Condition` / :class:`FilterCondition` into text; the only code that does.

    Parameters
    ----------
    inverse : Inverse
        As the exports take it (None: the view's ``units``).
    units : callable or None
        The view's default units (raw units when the model carries them).
    feature_names : list of str
    lazy : bool, default=False
        Resolve ``inverse`` on first use (views whose splits may not need it: the soft tree).
    """

    def __init__(self, inverse: Inverse, units: Any, feature_names: Sequence[str], *, lazy: bool = False) -> None:
        self.feature_names = list(feature_names)
        self._args = (inverse, units)
        self._units: Callable[[int, float], Any] | None = None
        if not lazy:
            self._units = resolve_units(inverse, units, self.feature_names)

    @property
    def units(self) -> Callable[[int, float], Any]:
        """``f(feature, fitted value) -> number | str`` (with ``.condition`` when it words conditions itself)."""
        if self._units is None:
            self._units = resolve_units(*self._args, self.feature_names)
        return self._units

    @property
    def converted(self) -> bool:
        """Whether thresholds print other than as fitted."""
        return self.units is not identity

    def value(self, feature: int, threshold: float) -> Any:
        """A threshold in the units printed (a number, or the string an ``inverse`` returned)."""
        return self.units(feature, threshold)

    def text(
        self,
        condition: Condition | FilterCondition | Sequence[Any],
        *,
        decimals: int | None = None,
        digits: int = 4,
        raw_decimals: bool = True,
        wording: bool = True,
    ) -> str:
        """One condition as text: ``name op value``, or the units' own wording (``colour = red``).

        ``decimals`` fixes the decimals, else ``digits`` significant digits; ``raw_decimals=False``
        keeps units that word conditions themselves at their own precision; ``wording=False``
        prints those units' numbers without their wording (``name op raw value``).
        """
        if isinstance(condition, FilterCondition):
            return f"filter@{condition.node} {condition.op} 0"
        j, op, t = condition
        name = self.feature_names[j]
        worded = getattr(self.units, "condition", None) if wording else None
        if worded is not None:
            return worded(j, op, t, name, decimals if raw_decimals else None)
        v = self.units(j, t)
        shown = v if isinstance(v, str) else f"{float(v):.{digits}g}" if decimals is None else f"{float(v):.{decimals}f}"
        return f"{name} {op} {shown}"

    def texts(self, conditions: Iterable[Condition | FilterCondition], **precision: Any) -> list[str]:
        """A conjunction as text: with the data's raw units one condition per feature (bounds merged, a
        one-hot column's ``= level`` absorbing its ``!= other``, in first-appearance order), else
        :meth:`text` of each condition in order."""
        conditions = list(conditions)
        merge = getattr(self.units, "conjunction", None)
        if merge is not None and precision.get("wording", True) and not any(isinstance(c, FilterCondition) for c in conditions):
            return merge([tuple(c) for c in conditions], self.feature_names)
        return [self.text(c, **precision) for c in conditions]


# ---------------------------------------------------------------------------- teacher features
def _short(v: float) -> str:
    return f"{v:.2f}" if abs(v) < 100 else f"{v:.4g}"


def describe_condition(feature: Mapping[str, Any], op: str, threshold: float) -> str:
    """One split on a teacher feature in words; ``feature`` is ``FeatureMap.describe(j)``, ``op`` is ``"<="`` or ``">"``.

    ``pattern 7 present (response > 0.80)``, ``pattern 3 absent (response ≤ 0.41)``,
    ``pattern 12 at top-left present (response > 0.55)`` (a grid region),
    ``pattern 5 at position ≤ 12.4 (of 40)``, ``ink > 3.00``.
    """
    role = feature.get("role")
    name = str(feature.get("name"))
    above = op == ">"
    if role == "response":
        pattern = f"pattern {feature['channel']}"
        if feature.get("cell"):
            pattern += f" at {feature['cell']}"
        if threshold <= 0:
            return f"{pattern} present" if above else f"{pattern} silent"
        return f"{pattern} present (response > {_short(threshold)})" if above else f"{pattern} absent (response ≤ {_short(threshold)})"
    if role in ("position", "row", "column"):
        extent = float(feature.get("extent") or 1)
        where = threshold * extent
        word = {"position": "position", "row": "row", "column": "column"}[role]
        return f"pattern {feature['channel']} at {word} {'>' if above else '≤'} {where:.1f} (of {extent:g})"
    return f"{name} {'>' if above else '≤'} {_short(threshold)}"


class FeatureWording:
    """Units for a surrogate over teacher features: values as fitted, conditions in the features' words.

    Parameters
    ----------
    features : FeatureMap
        Anything with ``describe(j) -> {"name", "role", ...}``.
    """

    def __init__(self, features: Any) -> None:
        self.features = features

    def __call__(self, feature: int, value: float) -> float:
        return value

    def condition(self, feature: int, op: str, value: float, name: str, decimals: int | None = None) -> str:
        """:func:`describe_condition` of the feature's description."""
        return describe_condition(self.features.describe(feature), op, value)


# ---------------------------------------------------------------------------- simplifying
def tightest(conditions: Iterable[Sequence[Any]]) -> list[Condition]:
    """Keep the tightest bound per (feature, side), in first-appearance order."""
    best: dict[tuple[int, str], float] = {}
    order: list[tuple[int, str]] = []
    for f, op, thr in conditions:
        key = (int(f), op)
        if key not in best:
            order.append(key)
            best[key] = float(thr)
        else:
            best[key] = min(best[key], float(thr)) if op == "<=" else max(best[key], float(thr))
    return [Condition(f, op, best[(f, op)]) for f, op in order]
