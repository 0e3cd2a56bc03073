"""What every surrogate shares: soft-or-hard targets, and pickle-free persistence.

A surrogate is a scikit-learn classifier whose ``fit(X, y)`` takes hard labels (n,) or the
teacher's soft labels (n, K).  With soft labels, ``classes_`` is ``arange(K)`` so the columns of
``predict_proba`` stay aligned with the teacher's classes even when a class never wins on the
data at hand.

Names: :func:`set_names` attaches the data's names to a fitted surrogate (``distill`` does it):
``feature_names_in_`` (scikit-learn's attribute) and ``class_names_`` (one name per column of
``predict_proba``).  They describe positions: a plain array is still read by position, while a
data frame is checked against ``feature_names_in_`` as scikit-learn does.  Refitting on unnamed
arrays drops them.

Display and export: tree-like surrogates get ``view()``, ``to_dot()``, ``draw()``,
``export_text()`` and ``to_dict()`` from :class:`TreeDisplayMixin`.  Surrogates never import
``analysis``; instead :mod:`explain_distill.analysis.views` registers its views here when it
is imported (which ``import explain_distill`` always does), and the mixin delegates to them.

Persistence: each surrogate implements ``_get_state() -> (arrays, meta)`` (numeric arrays and
JSON-able metadata) and ``_set_state(arrays, meta)``; :func:`save_surrogate` writes them with
safetensors + JSON.  Nothing is pickled, so loading a file cannot run code.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .._io import load_arrays, read_json, save_arrays, write_json
from .._validation import check_consistent_length, check_min_classes, check_names, check_targets

__all__ = [
    "SoftTargetMixin",
    "TreeDisplayMixin",
    "class_names_of",
    "feature_names_of",
    "register_viewer",
    "save_surrogate",
    "load_surrogate",
    "set_names",
    "set_units",
]

FORMAT = "explain_distill.surrogate/1"


class SoftTargetMixin:
    """Turns ``y`` (hard or soft) into a probability matrix and sets ``classes_``/``n_features_in_``."""

    def _validate_fit(self, X: Any, y: Any, *, dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
        """Return (X, P): validated inputs and a (n, K) row-stochastic target matrix."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None. "
                f"Pass hard labels (n_samples,) or soft labels (n_samples, n_classes)."
            )
        self.__dict__.pop("class_names_", None)  # names belong to a fit; set_names adds them again
        self.__dict__.pop("input_units_", None)  # and so do the data's units (set_units)
        hard, soft = check_targets(y)
        if soft is not None:
            X = validate_data(self, X, dtype=dtype, ensure_min_samples=1)
            check_consistent_length(X=X, y=soft)
            self.classes_ = np.arange(soft.shape[1])
            self.soft_fit_ = True
            return X, soft
        X, hard = validate_data(self, X, hard, dtype=dtype, y_numeric=False)
        from sklearn.utils.multiclass import check_classification_targets

        check_classification_targets(hard)
        classes, idx = np.unique(hard, return_inverse=True)
        check_min_classes(hard, name="y")
        self.classes_ = classes
        self.soft_fit_ = False
        P = np.zeros((len(hard), len(classes)))
        P[np.arange(len(hard)), idx] = 1.0
        return X, P

    def _validate_predict(self, X: Any, *, dtype: Any = np.float64) -> np.ndarray:
        check_is_fitted(self)
        if getattr(self, "feature_names_in_", None) is not None and not _has_column_names(X):
            # Names attached by set_names describe positions, and every array in this package is
            # positional: read it by position (scikit-learn would warn on each call).  A data frame
            # still goes through scikit-learn's name check below.
            X = check_array(X, dtype=dtype)
            if X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                    f"{self.n_features_in_} features as input."
                )
            return X
        return validate_data(self, X, dtype=dtype, reset=False)

    def predict(self, X: Any) -> np.ndarray:
        """``classes_[argmax(predict_proba(X))]``."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


def _has_column_names(X: Any) -> bool:
    return getattr(X, "columns", None) is not None or hasattr(X, "__dataframe__")


def set_names(est: Any, *, feature_names: Sequence[str] | None = None, class_names: Sequence[str] | None = None,
              temperature: float | None = None) -> Any:
    """Attach the data's names to a fitted surrogate; returns it.

    Sets ``feature_names_in_`` (scikit-learn's attribute, an object array) and ``class_names_``
    (one name per column of ``predict_proba``, i.e. per entry of ``classes_``), and with
    ``temperature`` the soft labels' temperature as ``label_temperature_`` (leaf and rule
    probabilities then print as ``p=0.88 at T=4``).  Printing, exports and drawings then use them
    without extra arguments.
    """
    check_is_fitted(est)
    if feature_names is not None:
        names = check_names(feature_names, int(est.n_features_in_), what="feature_names")
        est.feature_names_in_ = np.asarray(names, dtype=object)
    if class_names is not None:
        names = check_names(class_names, len(est.classes_), what="class_names")
        est.class_names_ = np.asarray(names, dtype=object)
    if temperature is not None:  # the soft labels' temperature: leaf and rule probabilities print "at T=..."
        est.label_temperature_ = float(temperature)
    return est


def set_units(est: Any, units: Mapping[str, Any] | None) -> Any:
    """Attach the data's scaling (``Dataset.units()``: per-feature ``mean`` and ``scale``, one-hot
    groups) as ``input_units_``, plain data the views use to print thresholds in raw units; returns
    ``est``.  The surrogate itself never uses it: it fits and predicts in the scaled space."""
    check_is_fitted(est)
    if units is None:
        est.__dict__.pop("input_units_", None)
        return est
    d = int(est.n_features_in_)
    mean = np.asarray(units.get("mean"), dtype=np.float64).reshape(-1)
    scale = np.asarray(units.get("scale"), dtype=np.float64).reshape(-1)
    if mean.shape != (d,) or scale.shape != (d,) or not (np.isfinite(mean).all() and np.isfinite(scale).all()):
        raise ValueError(
            f"units must hold {d} finite means and scales (one per feature of the model); received "
            f"{mean.shape} and {scale.shape}."
        )
    onehot = []
    for g in units.get("onehot") or []:
        feats = [int(j) for j in g["features"]]
        if len(feats) != len(g["levels"]) or any(not 0 <= j < d for j in feats):
            raise ValueError(f"one-hot group {g.get('column')!r} does not fit the model's {d} features.")
        onehot.append({"column": str(g["column"]), "levels": [str(v) for v in g["levels"]], "features": feats})
    kinds = units.get("kinds")
    if kinds is not None and len(kinds) != d:
        raise ValueError(f"units give {len(kinds)} column kinds for the model's {d} features.")
    grid = units.get("grid")  # the data's observed values (not saved: load() attaches them again)
    est.input_units_ = {"mean": mean, "scale": scale, "onehot": onehot,
                        "kinds": None if kinds is None else [str(k) for k in kinds],
                        "grid": grid if grid is not None and len(grid) == d else None}
    return est


def feature_names_of(est: Any, feature_names: Sequence[str] | None = None) -> list[str]:
    """``feature_names`` when given, else the estimator's ``feature_names_in_``, else ``x0, x1, ...``."""
    n = int(est.n_features_in_)
    if feature_names is None:
        fitted = getattr(est, "feature_names_in_", None)
        feature_names = [str(f) for f in fitted] if fitted is not None else [f"x{j}" for j in range(n)]
    return check_names(feature_names, n, what="feature_names")


def class_names_of(est: Any, class_names: Sequence[str] | None = None) -> list[str]:
    """``class_names`` when given, else the estimator's ``class_names_``, else ``str`` of ``classes_``."""
    k = len(est.classes_)
    if class_names is None:
        fitted = getattr(est, "class_names_", None)
        ok = fitted is not None and len(fitted) == k
        class_names = [str(c) for c in fitted] if ok else [str(c) for c in est.classes_]
    return check_names(class_names, k, what="class_names")


# ---------------------------------------------------------------------------- display
#: Views registered by explain_distill.analysis.views: "tree" -> TreeView.of,
#: "rules" -> RuleListView.of, "figs" -> SumOfTreesView.of.  Surrogates delegate to them and
#: never import analysis.
_VIEWERS: dict[str, Callable[..., Any]] = {}


def register_viewer(kind: str, factory: Callable[..., Any]) -> None:
    """Register ``factory(estimator, **kwargs) -> view`` for the surrogates whose ``_view_kind`` is ``kind``."""
    if not callable(factory):
        raise TypeError(f"factory must be callable; received {type(factory).__name__}.")
    _VIEWERS[str(kind)] = factory


class TreeDisplayMixin:
    """``view()``, ``to_dot()``, ``draw()``, ``export_text()`` and ``to_dict()`` for a tree-like surrogate.

    Each goes through the view registered for ``_view_kind`` ("tree": a
    :class:`~explain_distill.analysis.views.TreeView`; "rules": a
    :class:`~explain_distill.analysis.views.RuleListView`; "figs": a
    :class:`~explain_distill.analysis.views.SumOfTreesView`), which uses the estimator's
    ``feature_names_in_`` and ``class_names_`` when it has them.
    """

    _view_kind = "tree"

    def view(self, **kwargs: Any) -> Any:
        """The read-only view this surrogate is displayed and exported through (``feature_names=``,
        ``class_names=`` override the fitted names)."""
        check_is_fitted(self)
        factory = _VIEWERS.get(self._view_kind)
        if factory is None:  # only when the surrogates package is loaded without explain_distill itself
            raise RuntimeError(
                f"No {self._view_kind!r} view is registered; `import explain_distill` (it registers the views of "
                f"explain_distill.analysis) before drawing or exporting a surrogate."
            )
        return factory(self, **kwargs)

    def to_dot(self, x: Any = None, **kwargs: Any) -> str:
        """Graphviz DOT text of the model; ``x`` (one sample) highlights its decision path."""
        return self.view().to_dot(x, **kwargs)

    def draw(self, x: Any = None, **kwargs: Any) -> Any:
        """The drawing (SVG in a notebook, ``.save(path)``); ``x`` highlights its decision path."""
        return self.view().draw(x, **kwargs)

    def export_text(self, *, decimals: int = 3, inverse: Callable[[int, float], Any] | None = None) -> str:
        """The model as indented text for a document.

        ``inverse(feature, threshold)`` maps a threshold from the fitted (scaled) units to the
        units to print (a number, or a string printed as is); the identity by default.
        """
        return self.view().export_text(decimals=decimals, inverse=inverse)

    def to_dict(self, *, inverse: Callable[[int, float], Any] | None = None) -> dict[str, Any]:
        """The model as JSON-able nested dicts (names, thresholds through ``inverse``, distributions)."""
        return self.view().to_dict(inverse=inverse)


def _base_params(est: Any) -> dict[str, Any]:
    params = est.get_params(deep=False)
    out = {}
    for k, v in params.items():
        if v is None or isinstance(v, (bool, int, float, str)):
            out[k] = v
        elif isinstance(v, (list, tuple)) and all(isinstance(i, (bool, int, float, str)) for i in v):
            out[k] = list(v)
        else:
            out[k] = repr(v)
    return out


def save_surrogate(est: Any, path: str | os.PathLike, *, name: str) -> None:
    """Write ``path.safetensors`` and ``path.json``; ``name`` is the registry key used to rebuild it."""
    check_is_fitted(est)
    arrays, meta = est._get_state()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = dict(arrays)
    classes = np.asarray(est.classes_)
    if classes.dtype.kind in "iuf":
        arrays["classes_"] = classes
        classes_json = None
    else:
        classes_json = [str(c) for c in classes]
    save_arrays(path.with_suffix(".safetensors"), arrays)
    write_json(
        path.with_suffix(".json"),
        {
            "format": FORMAT,
            "name": name,
            "class": type(est).__name__,
            "params": _base_params(est),
            "n_features_in_": int(est.n_features_in_),
            "classes": classes_json,
            "feature_names_in": [str(f) for f in est.feature_names_in_] if hasattr(est, "feature_names_in_") else None,
            "class_names": [str(c) for c in est.class_names_] if hasattr(est, "class_names_") else None,
            "label_temperature": getattr(est, "label_temperature_", None),
            "input_units": _units_json(getattr(est, "input_units_", None)),
            "meta": meta,
        },
    )


def load_surrogate(path: str | os.PathLike, registry: dict[str, type]) -> Any:
    """Rebuild a surrogate written by :func:`save_surrogate` (no pickle on this path)."""
    path = Path(path)
    doc = read_json(path.with_suffix(".json"), what="surrogate description")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path.with_suffix('.json')} is not an explain_distill surrogate file.")
    name = doc.get("name")
    if name not in registry:
        raise ValueError(f"{path}: unknown surrogate {name!r}; known: {', '.join(registry)}.")
    cls = registry[name]
    arrays = load_arrays(path.with_suffix(".safetensors"), what="surrogate file")
    params = {k: v for k, v in doc["params"].items() if k in cls().get_params(deep=False)}
    est = cls(**params)
    classes = doc.get("classes")
    est.classes_ = np.asarray(classes) if classes is not None else arrays.pop("classes_")
    est.n_features_in_ = int(doc["n_features_in_"])
    try:
        est._set_state(arrays, doc.get("meta") or {})
    except KeyError as exc:
        raise ValueError(f"{path} is incomplete (missing {exc}); re-save the surrogate.") from exc
    try:
        set_names(est, feature_names=doc.get("feature_names_in"), class_names=doc.get("class_names"),
                  temperature=doc.get("label_temperature"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path.with_suffix('.json')} holds names that do not fit the model ({exc}).") from exc
    if doc.get("input_units"):
        try:
            set_units(est, doc["input_units"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path.with_suffix('.json')} holds units that do not fit the model ({exc}).") from exc
    return est


def _units_json(units: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not units:
        return None
    return {"mean": [float(v) for v in units["mean"]], "scale": [float(v) for v in units["scale"]],
            "onehot": list(units.get("onehot") or []), "kinds": units.get("kinds")}
