"""From raw arrays to a split, scaled data set: missing rows, labels, the split, imputation, scaling.

:func:`split_and_scale` is what both constructors (``Dataset.from_arrays`` and ``from_csv``) run
after reading: it drops or keeps rows with missing values, maps labels to class indices, splits
(stratified, seeded), imputes from the training split, fits the scaling on the training split
only, and infers the column schema from the raw training values.  It returns the Dataset's
fields as a dict.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .._validation import (
    check_choice,
    check_consistent_length,
    check_fraction,
    check_labels,
    check_min_classes,
    check_names,
)
from .missing import counts_text, impute
from .schema import infer_schema

logger = logging.getLogger(__name__)

__all__ = ["split_and_scale", "encode_labels", "check_target", "SCALE_MODES"]

SCALE_MODES = ("feature", "global", "none")


#: A numeric target with more distinct values than this ...
AUTO_MAX_NUMERIC_CLASSES = 20
#: ... and fewer rows per value than this on average (or values that are not whole numbers) looks
#: continuous: a length in mm, a mass in grams, a price.
MIN_ROWS_PER_CLASS = 20


def _numeric_values(y: np.ndarray) -> np.ndarray | None:
    """The labels as floats when every one is a number (numbers or numeric text), else None."""
    if y.dtype.kind in "iufb":
        return y.astype(np.float64)
    try:
        return np.array([float(v) for v in y], dtype=np.float64)
    except (TypeError, ValueError):
        return None


def check_target(y: np.ndarray, *, max_classes: int | None = None, name: str = "the target") -> None:
    """Refuse a continuous target before anything is trained: each distinct value would become a class.

    A numeric target with more than ``AUTO_MAX_NUMERIC_CLASSES`` distinct values is refused when it
    has fewer than ``MIN_ROWS_PER_CLASS`` rows per value on average or values that are not whole
    numbers.  ``max_classes`` replaces the rule: at most that many classes, numeric or not.
    """
    values, counts = np.unique(y, return_counts=True)
    k = len(values)
    if max_classes is not None:
        if k > max_classes:
            raise ValueError(
                f"{name} has {k} distinct values but max_classes={max_classes}; bin it into at most {max_classes} "
                f"classes or raise max_classes (CLI: --max-classes)."
            )
        return
    num = _numeric_values(values)
    if num is None or k <= AUTO_MAX_NUMERIC_CLASSES:
        return
    whole = bool(np.all(num == np.round(num)))
    if whole and len(y) / k >= MIN_ROWS_PER_CLASS:
        return
    shown = ", ".join(f"{v:g}" for v in np.sort(num)[:: max(1, k // 4)][:4])
    raise ValueError(
        f"{name} is numeric with {k} distinct values in {len(y)} rows (e.g. {shown}"
        f"{'' if whole else '; not whole numbers'}): it looks continuous, and every value would become a class of "
        f"its own. Bin it into a few classes (e.g. pandas.cut, or numpy.digitize on its quantiles), or choose a "
        f"categorical column as the target; if these really are {k} classes, pass max_classes={k} "
        f"(CLI: --max-classes {k})."
    )


def encode_labels(y: np.ndarray, class_names: list[str] | None) -> tuple[np.ndarray, list[str]]:
    """Class indices and class names: labels sorted (``np.unique``), or looked up in ``class_names``."""
    if class_names is not None:
        class_names = check_names(class_names, len(class_names), what="class_names")
        if y.dtype.kind in "iu":
            if y.min() < 0 or y.max() >= len(class_names):
                raise ValueError(
                    f"y holds indices in [{y.min()}, {y.max()}] but only {len(class_names)} class_names were given."
                )
            return y.astype(np.int64), class_names
        lookup = {c: i for i, c in enumerate(class_names)}
        unknown = sorted({str(v) for v in y} - set(lookup))
        if unknown:
            raise ValueError(f"y holds labels {unknown[:5]} that are not in class_names {class_names}.")
        return np.array([lookup[str(v)] for v in y], dtype=np.int64), class_names
    classes, y_idx = np.unique(y, return_inverse=True)
    return y_idx.astype(np.int64), [str(c) for c in classes]


def _missing_rows(
    X: np.ndarray, y: np.ndarray, rows: np.ndarray, *, missing: str, report: dict[str, Any],
    feature_names: list[str], notes: list[str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Count the rows with NaN cells into ``report`` and drop them when ``missing == "drop"``."""
    nan_rows = np.isnan(X).any(axis=1) if missing != "error" else np.zeros(len(X), dtype=bool)
    if nan_rows.any() and not report:
        cols = np.isnan(X).sum(axis=0)
        report.update({
            "cells": int(cols.sum()),
            "rows": int(nan_rows.sum()),
            "by_column": {feature_names[j]: int(c) for j, c in enumerate(cols) if c},
        })
    if report:
        report["policy"] = missing
    if missing == "drop" and nan_rows.any():
        keep = ~nan_rows
        if keep.sum() == 0:
            raise ValueError(
                f"Every one of the {len(X)} rows has a missing value, so missing='drop' leaves nothing; "
                f"use missing='impute' or fill the data."
            )
        X, y, rows = X[keep], y[keep], rows[keep]
        report["dropped_rows"] = int(nan_rows.sum())
        notes.append(
            f"dropped {int(nan_rows.sum())} of {len(nan_rows)} rows with missing values "
            f"({counts_text(report.get('by_column', {}))})"
        )
    return X, y, rows, nan_rows


def _stratify(y_idx: np.ndarray, class_names: list[str]) -> np.ndarray | None:
    """The labels to stratify on, or None (with a warning) when a class has a single row."""
    counts = np.bincount(y_idx, minlength=len(class_names))
    singles = [class_names[k] for k in np.nonzero(counts == 1)[0]]
    if singles:
        one = len(singles) == 1
        logger.warning(
            "%s a single row (of %d rows), so the split cannot be stratified and %s only in the training or "
            "the test split; add rows of %s or drop %s",
            ", ".join(f"class {c!r}" for c in singles[:5]) + (" has" if one else " each have"),
            len(y_idx), "that row lands" if one else "those rows land",
            "that class" if one else "those classes", "it" if one else "them",
        )
        return None
    return y_idx if counts[counts > 0].min() >= 2 else None


def _scaling(X_tr: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) per feature fitted on the training split; constant features keep scale 1."""
    d = X_tr.shape[1]
    if mode == "feature":
        mean, sd = X_tr.mean(axis=0), X_tr.std(axis=0)
    elif mode == "global":
        mean, sd = np.full(d, X_tr.mean()), np.full(d, X_tr.std())
    else:
        mean, sd = np.zeros(d), np.ones(d)
    return mean, np.where(sd > 1e-12, sd, 1.0)  # constant features stay constant (zero), never NaN


def _group_split(
    X: np.ndarray, y: np.ndarray, rows: np.ndarray, groups: np.ndarray, *, test_size: float, seed: int,
    class_names: list[str],
) -> tuple[np.ndarray, ...]:
    """Split whole groups (stratified by each group's first class); rows keep their order within a side."""
    from sklearn.model_selection import train_test_split

    if len(groups) != len(X):
        raise ValueError(f"groups has {len(groups)} entries for {len(X)} rows; pass one group id per row.")
    ids, first = np.unique(groups, return_index=True)
    g_tr, g_te = train_test_split(ids, test_size=test_size, random_state=seed,
                                  stratify=_stratify(y[first], class_names))
    test = np.isin(groups, g_te)
    return X[~test], X[test], y[~test], y[test], rows[~test], rows[test]


def split_and_scale(
    X: np.ndarray,
    y: Any,
    rows: np.ndarray,
    *,
    row_kind: str,
    feature_names: list[str] | None,
    class_names: list[str] | None,
    kind: str,
    input_shape: tuple[int, ...] | None,
    name: str,
    test_size: float,
    seed: int,
    scale: str | None,
    missing: str,
    notes: list[str] | None,
    missing_report: dict[str, Any] | None,
    encoding: dict[str, Any] | None,
    onehot_columns: np.ndarray | None = None,
    max_classes: int | None = None,
    target_name: str = "the target",
    groups: np.ndarray | None = None,
) -> dict[str, Any]:
    """The fields of a :class:`~explain_distill.data.Dataset` built from raw ``X`` (n, d) and labels ``y``.

    ``rows`` is each row's place in the user's input (array index or CSV line, ``row_kind``).
    ``groups`` (one id per row, optional) keeps every group on one side of the split: the
    groups are split (stratified by their first row's class), then their rows follow them, so
    variants of one source never sit on both sides (the built-in image sets use it).
    """
    from sklearn.model_selection import train_test_split

    check_choice(kind, "kind", ("tabular", "image", "signal"))
    y = check_labels(y, name="y")
    check_consistent_length(X=X, y=y)
    if class_names is None:
        check_target(y, max_classes=max_classes, name=target_name)
    test_size = check_fraction(test_size, "test_size", inclusive=False)
    mode = scale or ("feature" if kind == "tabular" else "global")
    check_choice(mode, "scale", SCALE_MODES)
    if feature_names is None:
        feature_names = [f"x{j}" for j in range(X.shape[1])]
    feature_names = check_names(feature_names, X.shape[1], what="feature_names")
    notes = list(notes or [])
    report = dict(missing_report or {})
    X, y, rows, nan_rows = _missing_rows(X, y, rows, missing=missing, report=report, feature_names=feature_names,
                                         notes=notes)
    y_idx, class_names = encode_labels(y, class_names)
    check_min_classes(y_idx, name="y")
    try:
        if groups is not None:
            g = np.asarray(groups)
            g = g[~nan_rows] if missing == "drop" and len(g) == len(nan_rows) else g
            X_tr, X_te, y_tr, y_te, r_tr, r_te = _group_split(X, y_idx, rows, g, test_size=test_size, seed=seed,
                                                              class_names=class_names)
        else:
            X_tr, X_te, y_tr, y_te, r_tr, r_te = train_test_split(
                X, y_idx, rows, test_size=test_size, random_state=seed, stratify=_stratify(y_idx, class_names)
            )
    except ValueError as exc:
        raise ValueError(
            f"Could not split {len(X)} samples of {len(class_names)} classes with test_size={test_size} "
            f"({exc}). Provide more samples per class or change test_size."
        ) from exc
    check_min_classes(y_tr, name="y (training split)")
    if missing == "impute" and nan_rows.any():
        X_tr, X_te = impute(X_tr, X_te, onehot_columns)
        report["imputed"] = {
            "strategy": "median" + (" (most frequent level for one-hot columns)"
                                    if onehot_columns is not None and onehot_columns.any() else ""),
            "fitted_on": "training split",
        }
        notes.append(
            f"imputed {report['cells']} missing cells in {report['rows']} rows with the training split's "
            f"median ({counts_text(report.get('by_column', {}))})"
        )
    mean, sd = _scaling(X_tr, mode)
    encoding = dict(encoding or {})
    return {
        "X_train": ((X_tr - mean) / sd).astype(np.float32),
        "y_train": y_tr,
        "X_test": ((X_te - mean) / sd).astype(np.float32),
        "y_test": y_te,
        "feature_names": feature_names,
        "class_names": class_names,
        "kind": kind,
        "input_shape": tuple(input_shape) if input_shape else (X.shape[1],),
        "name": name,
        "scaling": {"mode": mode, "mean": mean.tolist(), "scale": sd.tolist()},
        "notes": notes,
        "missing": report,
        "encoding": encoding,
        "source_rows": {"kind": row_kind, "train": r_tr.tolist(), "test": r_te.tolist()},
        "schema": infer_schema(X_tr, feature_names, encoding.get("onehot")),
    }
