"""The view protocol and the registry of adapters: which view reads which model.

Every readable model is read through a *view*: plain data built once from the fitted model, with
the same questions whatever the family (:class:`View`).  A family joins by registering an
*adapter* (:func:`register_adapter`): a test of whether it reads an estimator and a function that
builds the view.  Callers ask :func:`view_of` (any view), :func:`tree_view_of` (a single tree,
as fidelity per leaf and the report's tree sections want) or :func:`family_of`; nothing else
branches on model classes.

The adapters of this package, in the order they are tried:

============  =========  ====================================================================
family        module     reads
============  =========  ====================================================================
``tree``      soft_tree  the soft decision tree (oblique splits)
``tree``      sklearn    ``SoftLabelTreeClassifier``, ``DecisionTreeClassifier`` /
                         ``Regressor``, anything with ``_tree_arrays()``
``rules``     rules      the ordered rule list (``rules_``)
``figs``      figs       the sum of trees (``SumOfTreesClassifier``)
``features``  features   a surrogate over teacher features (``NAME@patterns``) whose model
                         has a view of its own
============  =========  ====================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

__all__ = ["Adapter", "View", "adapter_for", "family_of", "fitted_class_names", "register_adapter", "tree_view_of", "view_of"]


class View(Protocol):
    """What every view of a readable model offers.

    A row is decided by one *decision* (a tree's leaf, a rule list's rule; a sum of trees: one leaf
    per tree).  Conditions are data (:class:`~.conditions.Condition`) until the view's
    :meth:`writer` turns them into text.
    """

    kind: str
    feature_names: list[str]
    class_names: list[str]
    units: Any

    def decisions(self) -> list[int]:
        """The ids that decide rows: leaves, rules."""

    def decision_of(self, X: Any) -> np.ndarray:
        """The decision of each row (``leaf_of``, ``rule_of``)."""

    def decision_conditions(self, decision: int) -> list[Any]:
        """The conditions that lead to one decision, as data."""

    def decision_value(self, decision: int) -> np.ndarray:
        """What one decision predicts (a class distribution; a sum of trees: logit contributions)."""

    def writer(self, inverse: Any = None) -> Any:
        """The :class:`~.conditions.ConditionWriter` for this view's conditions through ``inverse``."""

    def highlight(self, x: Any) -> "View":
        """The same view with the decision of one sample marked when drawn."""

    def export_text(self, *, decimals: int = 3, inverse: Any = None) -> str: ...

    def to_dict(self, *, inverse: Any = None) -> dict[str, Any]: ...

    def to_dot(self, x: Any = None, **kwargs: Any) -> str: ...

    def draw(self, x: Any = None, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Adapter:
    """How one model kind is viewed.

    Attributes
    ----------
    name : str
    family : str
        ``"tree"`` (builds a :class:`~.tree.TreeView`), ``"rules"``, ``"figs"``, ``"features"``.
    accepts : callable
        ``accepts(estimator) -> bool``, fitted or not (building checks that it is fitted).
    build : callable
        ``build(estimator, **names) -> view``.
    """

    name: str
    family: str
    accepts: Callable[[Any], bool]
    build: Callable[..., Any]


_ADAPTERS: list[Adapter] = []


def register_adapter(name: str, family: str, accepts: Callable[[Any], bool], build: Callable[..., Any]) -> Adapter:
    """Register how a model kind is viewed (tried after the adapters registered before it); returns it."""
    if not (callable(accepts) and callable(build)):
        raise TypeError("register_adapter needs callables accepts(estimator) and build(estimator, **names).")
    adapter = Adapter(str(name), str(family), accepts, build)
    _ADAPTERS[:] = [a for a in _ADAPTERS if a.name != adapter.name] + [adapter]
    return adapter


def adapter_for(estimator: Any, family: str | None = None) -> Adapter | None:
    """The first registered adapter (of ``family``, when given) that reads ``estimator``, or None."""
    for adapter in _ADAPTERS:
        if (family is None or adapter.family == family) and adapter.accepts(estimator):
            return adapter
    return None


def family_of(estimator: Any) -> str | None:
    """The family of the view that reads ``estimator`` (``"tree"``, ``"rules"``, ...), or None."""
    adapter = adapter_for(estimator)
    return None if adapter is None else adapter.family


def view_of(estimator: Any, **names: Any) -> Any:
    """The view of a fitted readable model (``feature_names=``, ``class_names=`` override its names).

    Raises
    ------
    TypeError
        When no adapter reads it (e.g. a logistic regression: it has no rules to view).
    """
    adapter = adapter_for(estimator)
    if adapter is None:
        kinds = ", ".join(sorted({a.name for a in _ADAPTERS}))
        raise TypeError(f"No view reads a {type(estimator).__name__}; views exist for: {kinds}.")
    return adapter.build(estimator, **names)


def tree_view_of(estimator: Any, dataset: Any = None) -> Any:
    """The :class:`~.tree.TreeView` of a single-tree model, named after ``dataset`` when given; None
    when the model is not a tree (a rule list, a sum of trees, a linear model, a model over features)."""
    adapter = adapter_for(estimator, family="tree")
    if adapter is None:
        return None
    names: dict[str, Any] = {}
    if dataset is not None:
        names = {"feature_names": list(dataset.feature_names), "class_names": list(dataset.class_names),
                 "input_shape": tuple(dataset.input_shape)}
    return adapter.build(estimator, **names)


def fitted_class_names(estimator: Any, k: int) -> list[str] | None:
    """The estimator's ``class_names_`` (set by ``distill``) when it has ``k`` of them, else None."""
    names = getattr(estimator, "class_names_", None)
    return [str(c) for c in names] if names is not None and len(names) == k else None
