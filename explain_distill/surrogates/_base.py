"""What every surrogate shares: soft-or-hard targets, and pickle-free persistence.

A surrogate is a scikit-learn classifier whose ``fit(X, y)`` takes hard labels (n,) or the
teacher's soft labels (n, K).  With soft labels, ``classes_`` is ``arange(K)`` so the columns of
``predict_proba`` stay aligned with the teacher's classes even when a class never wins on the
data at hand.

Persistence: each surrogate implements ``_get_state() -> (arrays, meta)`` (numeric arrays and
JSON-able metadata) and ``_set_state(arrays, meta)``; :func:`save_surrogate` writes them with
safetensors + JSON.  Nothing is pickled, so loading a file cannot run code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

from .._io import load_arrays, read_json, save_arrays, write_json
from .._validation import check_consistent_length, check_min_classes, check_targets

__all__ = ["SoftTargetMixin", "save_surrogate", "load_surrogate"]

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
        return validate_data(self, X, dtype=dtype, reset=False)

    def predict(self, X: Any) -> np.ndarray:
        """``classes_[argmax(predict_proba(X))]``."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


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
    return est
