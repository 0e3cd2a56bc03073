"""Every user-facing check and its message, in one place and one voice.

Each error says three things: what was wrong, what was received, and how to fix
it.  Checks raise ``ValueError`` or ``TypeError`` (never ``assert``, which
``python -O`` removes).  This module imports nothing of ours, so every other
module may import it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "check_array_2d",
    "check_finite",
    "check_labels",
    "check_soft_labels",
    "check_targets",
    "check_consistent_length",
    "check_n_features",
    "check_names",
    "check_positive",
    "check_int",
    "check_fraction",
    "check_choice",
    "check_min_classes",
]

_MAX_SHOWN = 5
_FINITE_BLOCK_BYTES = 4 << 20  # rows scanned at a time by check_finite


def _shape_of(x: Any) -> str:
    shape = getattr(x, "shape", None)
    if shape is not None:
        return f"an array of shape {tuple(shape)} and dtype {getattr(x, 'dtype', '?')}"
    return f"a {type(x).__name__}"


def check_finite(
    X: np.ndarray, *, name: str = "X", feature_names: Sequence[str] | None = None, allow_nan: bool = False
) -> None:
    """Raise ValueError naming the first rows/columns holding NaN or inf (only inf when ``allow_nan``)."""
    if X.size == 0 or not np.issubdtype(X.dtype, np.number) or X.dtype.kind in "iub":
        return
    ok = (lambda a: ~np.isinf(a)) if allow_nan else np.isfinite
    if X.ndim == 0:
        X = X.reshape(1, 1)
    # Scan in blocks of rows so the check never allocates a mask the size of X (a 1e6 x 40
    # float32 array would otherwise cost a 40 MB temporary just to say "all fine").
    rows_per_block = max(1, _FINITE_BLOCK_BYTES // max(1, X[:1].nbytes))
    first_bad = -1
    for start in range(0, len(X), rows_per_block):
        if not ok(X[start : start + rows_per_block]).all():
            first_bad = start
            break
    if first_bad < 0:
        return
    tail = X[first_bad:]
    flat = ok(tail).reshape(len(tail), -1)
    bad_rows, bad_cols = np.nonzero(~flat)
    bad_rows = bad_rows + first_bad
    X2 = X.reshape(len(X), -1)
    cells = []
    for r, c in list(zip(bad_rows, bad_cols))[:_MAX_SHOWN]:
        col = feature_names[c] if feature_names is not None and c < len(feature_names) else f"column {c}"
        cells.append(f"row {r}, {col!r} = {X2[r, c]}")
    more = f" (and {len(bad_rows) - _MAX_SHOWN} more)" if len(bad_rows) > _MAX_SHOWN else ""
    if allow_nan:
        raise ValueError(f"{name} contains infinity: {'; '.join(cells)}{more}. Replace these values before calling.")
    raise ValueError(
        f"{name} contains NaN or infinity: {'; '.join(cells)}{more}. "
        f"Drop or impute these values before calling (e.g. sklearn.impute.SimpleImputer)."
    )


def check_array_2d(
    X: Any,
    *,
    name: str = "X",
    dtype: type | None = np.float64,
    allow_empty: bool = False,
    feature_names: Sequence[str] | None = None,
    allow_nan: bool = False,
    finite: bool = True,
) -> np.ndarray:
    """Return X as a finite 2-D numeric array (NaN allowed with ``allow_nan``), or raise a message that says how to fix it.

    ``finite=False`` skips the NaN/inf scan, for callers that scan on the device where the data go
    anyway (and call :func:`check_finite` for the message when that scan finds something).
    """
    if X is None:
        raise TypeError(f"{name} is None; expected a 2-D array of shape (n_samples, n_features).")
    X = _from_tensor(X)
    if hasattr(X, "tocsr") and hasattr(X, "nnz"):  # a scipy.sparse matrix
        raise TypeError(
            f"{name} is a sparse matrix ({type(X).__name__}, shape {X.shape}); a dense array is required. "
            f"Convert it with X.toarray() if it fits in memory."
        )
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and friends
        raise ValueError(
            f"{name} could not be read as an array ({exc}); expected a 2-D array of shape "
            f"(n_samples, n_features)."
        ) from exc
    if arr.dtype.kind in "OUSV":
        # Find the offending columns so the message can name them.
        bad: list[str] = []
        if arr.ndim == 2:
            for j in range(arr.shape[1]):
                try:
                    arr[:, j].astype(np.float64)
                except (TypeError, ValueError):
                    label = feature_names[j] if feature_names is not None and j < len(feature_names) else f"column {j}"
                    bad.append(repr(label))
        where = f" in {', '.join(bad[:_MAX_SHOWN])}" if bad else ""
        if not bad and arr.ndim == 2:
            arr = arr.astype(np.float64)
        else:
            raise ValueError(
                f"{name} holds non-numeric values{where} (received dtype {arr.dtype}). "
                f"Encode categorical columns as numbers first (e.g. sklearn.preprocessing.OneHotEncoder), "
                f"or load the file with Dataset.from_csv(..., categorical='onehot')."
            )
    if arr.dtype.kind == "c":
        raise ValueError(f"{name} is complex (dtype {arr.dtype}); expected real numbers. Pass X.real or abs(X).")
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} has dtype {arr.dtype}, which is not numeric; expected a float array of shape "
            f"(n_samples, n_features). Convert dates and other types to numbers first."
        )
    if arr.ndim == 1:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features) but is 1-D with shape {arr.shape}. "
            f"Reshape your data with X.reshape(-1, 1) if it has a single feature "
            f"or X.reshape(1, -1) if it is a single sample."
        )
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features) but has shape {arr.shape}. "
            f"Flatten images or signals first: X.reshape(len(X), -1)."
        )
    if not allow_empty:
        if arr.shape[0] == 0:
            raise ValueError(f"{name} has 0 samples (shape {arr.shape}); at least 1 is required.")
        if arr.shape[1] == 0:
            raise ValueError(f"{name} has 0 features (shape {arr.shape}); at least 1 is required.")
    if finite:
        check_finite(arr, name=name, feature_names=feature_names, allow_nan=allow_nan)
    if dtype is not None and arr.dtype != dtype:
        with np.errstate(over="ignore", invalid="ignore"):
            arr = arr.astype(dtype, copy=False)
        if arr.dtype.kind == "f" and np.isinf(arr).any():
            big = float(np.nanmax(np.abs(np.asarray(X, dtype=np.float64))))
            raise ValueError(
                f"{name} holds values too large for {np.dtype(dtype).name} (largest magnitude {big:.4g}); "
                f"rescale the data (e.g. sklearn.preprocessing.StandardScaler) before passing it."
            )
    return arr


def _from_tensor(X: Any) -> Any:
    """A torch tensor (any device, any dtype, with or without grad) as a numpy array."""
    if hasattr(X, "detach") and hasattr(X, "cpu"):
        t = X.detach().cpu()
        try:
            return t.numpy()
        except TypeError:  # bfloat16 and other dtypes numpy lacks
            return t.float().numpy()
    return X


def check_labels(y: Any, *, name: str = "y") -> np.ndarray:
    """Hard labels: a 1-D array without NaN."""
    y = _from_tensor(y)
    try:
        arr = np.asarray(y)
    except ValueError as exc:
        raise ValueError(f"{name} could not be read as an array ({exc}); expected 1-D class labels.") from exc
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr.ravel()
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D class labels of shape (n_samples,) but has shape {arr.shape}. "
            f"Pass soft labels as a (n_samples, n_classes) float array instead."
        )
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        rows = np.nonzero(~np.isfinite(arr))[0][:_MAX_SHOWN].tolist()
        raise ValueError(f"{name} contains NaN or infinity at rows {rows}; every sample needs a label.")
    return arr


def check_soft_labels(P: Any, *, name: str = "soft labels", n_classes: int | None = None, atol: float = 1e-3) -> np.ndarray:
    """Soft labels: a (n, K) array of non-negative rows that each sum to 1."""
    P = _from_tensor(P)
    try:
        raw = np.asarray(P)
        if raw.dtype.kind not in "biuf":
            raise TypeError(f"dtype {raw.dtype}")
        arr = raw.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} must be a float array of probabilities (n_samples, n_classes); it could not be read as "
            f"one ({exc})."
        ) from exc
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_classes) but has shape {arr.shape}.")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} have 0 rows (shape {arr.shape}); at least 1 sample is required.")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} has 0 columns (shape {arr.shape}); expected one column per class.")
    if not np.isfinite(arr).all():
        rows = np.unique(np.nonzero(~np.isfinite(arr))[0])[:_MAX_SHOWN].tolist()
        raise ValueError(f"{name} contain NaN or infinity at rows {rows}; the teacher's outputs must be finite.")
    if n_classes is not None and arr.shape[1] != n_classes:
        raise ValueError(
            f"{name} have {arr.shape[1]} columns but {n_classes} classes were expected. "
            f"Pass one probability column per class, in the teacher's class order."
        )
    sums = arr.sum(axis=1)
    bad = (arr < -atol).any(axis=1) | (np.abs(sums - 1.0) > atol)
    if bad.any():
        r = int(np.nonzero(bad)[0][0])
        raise ValueError(
            f"{name} are not probability distributions: row {r} sums to {sums[r]:.4g} "
            f"with minimum {arr[r].min():.4g} ({int(bad.sum())} bad rows in all). "
            f"Did you pass logits? Apply a softmax first (teacher.predict_proba does)."
        )
    arr = np.clip(arr, 0.0, None)
    return arr / arr.sum(axis=1, keepdims=True)


def check_targets(y: Any, *, name: str = "y") -> tuple[np.ndarray | None, np.ndarray | None]:
    """Split ``y`` into (hard labels, soft labels): exactly one of the two is returned, the other is None.

    A 2-D float array with more than one column is taken as soft labels (one row per sample,
    one column per class); anything 1-D as hard labels.  A column vector (n, 1) is ravelled to
    hard labels with scikit-learn's ``DataConversionWarning``, as its classifiers do.
    """
    y = _from_tensor(y)
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        import warnings

        from sklearn.exceptions import DataConversionWarning

        warnings.warn(
            f"A column-vector y was passed when a 1d array was expected. {name} of shape {arr.shape} is read as "
            f"hard labels (n_samples,); pass y.ravel() to silence this, or soft labels as (n_samples, n_classes).",
            DataConversionWarning,
            stacklevel=3,
        )
        arr = arr.ravel()
    if arr.ndim == 2 and arr.shape[1] > 1:
        if arr.dtype.kind not in "fiub":
            raise ValueError(
                f"{name} is 2-D with dtype {arr.dtype}; soft labels must be a float array "
                f"(n_samples, n_classes) of probabilities."
            )
        return None, check_soft_labels(arr, name=name)
    return check_labels(arr, name=name), None


def check_consistent_length(**arrays: Any) -> None:
    """All arrays given as keywords have the same first dimension."""
    lengths = {k: len(v) for k, v in arrays.items() if v is not None}
    if len(set(lengths.values())) > 1:
        got = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise ValueError(
            f"Inconsistent numbers of samples: {got}. Every array needs one row per sample, in the same order."
        )


def check_n_features(X: np.ndarray, expected: int, *, what: str = "this model") -> None:
    if X.shape[1] != expected:
        raise ValueError(
            f"X has {X.shape[1]} features, but {what} is expecting {expected} features as input. "
            f"Pass data with the same columns (and preprocessing) it was fitted on."
        )


def check_min_classes(y: np.ndarray, *, name: str = "y", minimum: int = 2) -> np.ndarray:
    classes = np.unique(y)
    if len(classes) < minimum:
        raise ValueError(
            f"{name} holds {len(classes)} class(es) ({classes.tolist()[:_MAX_SHOWN]}); at least {minimum} are "
            f"needed to train a classifier. Check the target column, or that the split kept every class."
        )
    return classes


def check_names(names: Any, n: int, *, what: str = "feature_names") -> list[str]:
    """A list of ``n`` unique, non-empty strings."""
    if names is None:
        raise TypeError(f"{what} is None; pass a list of {n} strings.")
    if isinstance(names, (str, bytes)):
        raise TypeError(f"{what} must be a list of {n} strings, not a single string {names!r}.")
    names = list(names)
    if len(names) != n:
        raise ValueError(f"{what} has {len(names)} entries but the data has {n}; pass one name for each.")
    bad = [(i, v) for i, v in enumerate(names) if not isinstance(v, str)]
    if bad:
        i, v = bad[0]
        raise TypeError(
            f"{what} must be strings; entry {i} is {v!r} of type {type(v).__name__}. "
            f"Convert them with [str(v) for v in names]."
        )
    empty = [i for i, v in enumerate(names) if v.strip() == ""]
    if empty:
        raise ValueError(f"{what} has empty names at positions {empty[:_MAX_SHOWN]}; give every entry a name.")
    seen: dict[str, int] = {}
    dup = []
    for v in names:
        seen[v] = seen.get(v, 0) + 1
        if seen[v] == 2:
            dup.append(v)
    if dup:
        raise ValueError(f"{what} has duplicates: {dup[:_MAX_SHOWN]!r}; every name must be unique.")
    return names


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive(value: Any, name: str, *, strict: bool = True, upper: float | None = None) -> float:
    """A finite real > 0 (>= 0 when ``strict`` is False), at most ``upper`` when given."""
    if not _is_real(value) or not math.isfinite(float(value)):
        raise TypeError(f"{name} must be a finite number; received {value!r} ({type(value).__name__}).")
    value = float(value)
    if (strict and value <= 0) or (not strict and value < 0):
        bound = "> 0" if strict else ">= 0"
        raise ValueError(f"{name} must be {bound}; received {value!r}.")
    if upper is not None and value > upper:
        raise ValueError(f"{name} must be <= {upper}; received {value!r}.")
    return value


def check_int(value: Any, name: str, *, low: int | None = None, high: int | None = None, hint: str = "") -> int:
    """An integer in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; received {value!r} ({type(value).__name__}).")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name} must be in [{lo}, {hi}]; received {value}.{(' ' + hint) if hint else ''}")
    return value


def check_fraction(value: Any, name: str, *, inclusive: bool = True) -> float:
    """A real in [0, 1] (or (0, 1) when not inclusive)."""
    if not _is_real(value) or not math.isfinite(float(value)):
        raise TypeError(f"{name} must be a number in [0, 1]; received {value!r} ({type(value).__name__}).")
    value = float(value)
    ok = 0.0 <= value <= 1.0 if inclusive else 0.0 < value < 1.0
    if not ok:
        rng = "[0, 1]" if inclusive else "(0, 1)"
        raise ValueError(f"{name} must be in {rng}; received {value!r}.")
    return value


def check_choice(value: Any, name: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}. Available: {', '.join(map(str, choices))}.")
    return value
