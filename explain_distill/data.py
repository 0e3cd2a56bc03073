"""Data sets: train/test splits with names, kind and input shape.

Every built-in ships offline: scikit-learn's ``digits`` (8x8 images), ``breast_cancer``, ``wine``
and ``iris`` (tabular), and ``mnist1d`` (40-sample 1-D signals) generated locally with
``mnist1d.data.make_dataset`` (never ``get_dataset``, which downloads).

Inputs are always stored flat, as float32 arrays of shape (n_samples, n_features);
``input_shape`` says how a model should see one sample ((1, 8, 8) for digits, (1, 40) for
mnist1d, (n_features,) for tabular data).  Scaling is fitted on the training split only, and
the split is stratified and seeded.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ._validation import (
    check_array_2d,
    check_choice,
    check_consistent_length,
    check_fraction,
    check_int,
    check_labels,
    check_min_classes,
    check_names,
)

logger = logging.getLogger(__name__)

__all__ = ["Dataset", "load_dataset", "DATASETS", "MISSING_MARKERS"]

Kind = Literal["tabular", "image", "signal"]
DATASETS = ("digits", "breast_cancer", "wine", "iris", "mnist1d")


@dataclass
class Dataset:
    """A classification data set, split and scaled.

    Attributes
    ----------
    X_train, X_test : ndarray of shape (n, n_features), float32
        Scaled inputs (scaler fitted on the training split only).
    y_train, y_test : ndarray of shape (n,), int64
        Class indices into ``class_names``.
    feature_names : list of str
    class_names : list of str
    kind : {"tabular", "image", "signal"}
    input_shape : tuple of int
        Shape of one sample as a model sees it; ``prod(input_shape) == n_features``.
    name : str
    scaling : dict
        ``{"mean": ..., "scale": ...}`` as applied: ``X_scaled = (X_raw - mean) / scale``.
    notes : list of str
        Anything done to the data a reader of the report should know (one-hot columns, ...).
    missing : dict
        How missing values were handled (``policy``, cell and row counts, per column, what was
        dropped or imputed); empty when the data had none.
    encoding : dict
        ``{"onehot": [{"column", "levels", "features"}]}``: the one-hot groups ``from_csv`` made
        (feature indices of each level), so a split on ``colour=red`` can be read as ``colour = red``.
    source_rows : dict
        ``{"train": ..., "test": ...}``: for each row of ``X_train``/``X_test``, its row in the
        user's input (0-based index into the array given to ``from_arrays``; for ``from_csv`` the
        CSV line number, the header being line 1), with ``source_rows["kind"]`` saying which.

    Notes
    -----
    A model sees the *scaled* inputs: ``X_train``/``X_test`` and every array the package passes
    to a teacher are ``(X_raw - scaling["mean"]) / scaling["scale"]``.  A user module wrapped in a
    :class:`~explain_distill.teacher.Teacher` therefore must not standardise again (or build the
    Dataset with ``scale="none"``).  :meth:`transform` applies the same scaling to new raw
    samples, :meth:`inverse_transform` undoes it.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: list[str]
    class_names: list[str]
    kind: Kind = "tabular"
    input_shape: tuple[int, ...] = ()
    name: str = "data"
    scaling: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    missing: dict[str, Any] = field(default_factory=dict)
    encoding: dict[str, Any] = field(default_factory=dict)
    source_rows: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.X_train = check_array_2d(self.X_train, name="X_train", dtype=np.float32, feature_names=self.feature_names)
        self.X_test = check_array_2d(self.X_test, name="X_test", dtype=np.float32, feature_names=self.feature_names)
        self.y_train = check_labels(self.y_train, name="y_train").astype(np.int64)
        self.y_test = check_labels(self.y_test, name="y_test").astype(np.int64)
        check_consistent_length(X_train=self.X_train, y_train=self.y_train)
        check_consistent_length(X_test=self.X_test, y_test=self.y_test)
        d = self.X_train.shape[1]
        if self.X_test.shape[1] != d:
            raise ValueError(f"X_train has {d} features but X_test has {self.X_test.shape[1]}; they must match.")
        self.feature_names = check_names(self.feature_names, d, what="feature_names")
        self.class_names = check_names(self.class_names, len(self.class_names), what="class_names")
        check_choice(self.kind, "kind", ("tabular", "image", "signal"))
        if not self.input_shape:
            self.input_shape = (d,)
        self.input_shape = tuple(int(s) for s in self.input_shape)
        if int(np.prod(self.input_shape)) != d:
            raise ValueError(
                f"input_shape {self.input_shape} holds {int(np.prod(self.input_shape))} values but the data has "
                f"{d} features; pass an input_shape whose product is {d}."
            )
        k = len(self.class_names)
        for nm, y in (("y_train", self.y_train), ("y_test", self.y_test)):
            if len(y) and (y.min() < 0 or y.max() >= k):
                raise ValueError(
                    f"{nm} holds class indices outside [0, {k - 1}] (min {y.min()}, max {y.max()}) but there are "
                    f"{k} class_names; labels must index class_names."
                )

    # ------------------------------------------------------------------ properties
    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def fingerprint(self) -> str:
        """SHA-256 of the arrays and names: the data hash recorded in metrics.json."""
        h = hashlib.sha256()
        for a in (self.X_train, self.y_train, self.X_test, self.y_test):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update("\x00".join(self.feature_names + ["|"] + self.class_names).encode())
        return h.hexdigest()

    # ------------------------------------------------------------------ scaling
    def _scale_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        d = self.n_features
        mean = np.asarray(self.scaling.get("mean", np.zeros(d)), dtype=np.float64)
        scale = np.asarray(self.scaling.get("scale", np.ones(d)), dtype=np.float64)
        if mean.shape != (d,) or scale.shape != (d,):
            raise ValueError(
                f"This Dataset's scaling holds {mean.shape} means and {scale.shape} scales for {d} features; "
                f"rebuild it with Dataset.from_arrays or load_dataset."
            )
        return mean, scale

    def transform(self, X_raw: Any) -> np.ndarray:
        """Scale new raw samples the way this data set's inputs were scaled: ``(X_raw - mean) / scale``.

        ``X_raw`` has one column per feature (after one-hot encoding, in ``feature_names`` order).
        The result is what a teacher trained on this Dataset expects (float32).
        """
        X = check_array_2d(X_raw, name="X_raw", feature_names=self.feature_names)
        if X.shape[1] != self.n_features:
            raise ValueError(
                f"X_raw has {X.shape[1]} columns but this data set has {self.n_features} features "
                f"({', '.join(self.feature_names[:3])}, ...); pass one column per feature."
            )
        mean, scale = self._scale_arrays()
        return ((X - mean) / scale).astype(np.float32)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """The raw values (the input's own units) of scaled samples: ``X * scale + mean`` (float64)."""
        X = np.asarray(X, dtype=np.float64)
        mean, scale = self._scale_arrays()
        if X.ndim not in (1, 2) or X.shape[-1] != self.n_features:
            raise ValueError(f"Expected samples with {self.n_features} features; received shape {X.shape}.")
        return X * scale + mean

    def units(self) -> dict[str, Any]:
        """The scaling and one-hot encoding as plain data, for printing thresholds in raw units.

        ``{"mean": [...], "scale": [...], "onehot": [{"column", "levels", "features"}]}``: raw =
        scaled * scale + mean per feature; ``distill`` attaches it to every surrogate.
        """
        mean, scale = self._scale_arrays()
        return {"mean": mean.tolist(), "scale": scale.tolist(), "onehot": list((self.encoding or {}).get("onehot", []))}

    def source_row(self, split: str, index: int) -> str:
        """Where test (or training) sample ``index`` came from, in words: ``"CSV line 17"`` or ``"row 403"``."""
        rows = (self.source_rows or {}).get(split)
        if rows is None or not 0 <= int(index) < len(rows):
            return f"{split} #{int(index)}"
        kind = (self.source_rows or {}).get("kind", "index")
        return f"CSV line {rows[int(index)]}" if kind == "csv_line" else f"row {rows[int(index)]}"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "n_train": int(len(self.X_train)),
            "n_test": int(len(self.X_test)),
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "input_shape": list(self.input_shape),
            "class_names": list(self.class_names),
            "notes": list(self.notes),
            "missing": dict(self.missing),
            "sha256": self.fingerprint(),
        }

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_arrays(
        cls,
        X: Any,
        y: Any,
        *,
        feature_names: list[str] | None = None,
        class_names: list[str] | None = None,
        kind: Kind = "tabular",
        input_shape: tuple[int, ...] | None = None,
        name: str = "data",
        test_size: float = 0.25,
        seed: int = 0,
        scale: Literal["feature", "global", "none"] | None = None,
        missing: MissingPolicy = "error",
        notes: list[str] | None = None,
    ) -> "Dataset":
        """Split (stratified, seeded) and scale raw arrays.

        ``y`` may hold any labels (strings, ints); they are mapped to indices in sorted order
        unless ``class_names`` is given, in which case labels must be its entries or indices into it.
        ``scale`` defaults to per-feature standardisation for tabular data and one global
        mean/scale for images and signals (so a picture stays a picture); ``"none"`` keeps the
        values as given (use it when your own module standardises its inputs).  NaN in ``X`` is
        missing: ``missing="error"`` (default) names the cells, ``"drop"`` drops those rows,
        ``"impute"`` fills them with the training split's median (scikit-learn's ``SimpleImputer``
        fitted on the training split only).  ``source_rows`` records each row's index in ``X``.
        """
        check_choice(missing, "missing", MISSING_POLICIES)
        X = check_array_2d(X, name="X", feature_names=feature_names, allow_nan=missing != "error")
        rows = np.arange(len(X))
        return cls._split_and_scale(
            X, y, rows, row_kind="index", feature_names=feature_names, class_names=class_names, kind=kind,
            input_shape=input_shape, name=name, test_size=test_size, seed=seed, scale=scale, missing=missing,
            notes=notes, missing_report=None, encoding=None,
        )

    @classmethod
    def _split_and_scale(
        cls,
        X: np.ndarray,
        y: Any,
        rows: np.ndarray,
        *,
        row_kind: str,
        feature_names: list[str] | None,
        class_names: list[str] | None,
        kind: Kind,
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
    ) -> "Dataset":
        from sklearn.model_selection import train_test_split

        check_choice(kind, "kind", ("tabular", "image", "signal"))
        y = check_labels(y, name="y")
        check_consistent_length(X=X, y=y)
        test_size = check_fraction(test_size, "test_size", inclusive=False)
        if feature_names is None:
            feature_names = [f"x{j}" for j in range(X.shape[1])]
        feature_names = check_names(feature_names, X.shape[1], what="feature_names")
        notes = list(notes or [])
        report = dict(missing_report or {})
        nan_rows = np.isnan(X).any(axis=1) if missing != "error" else np.zeros(len(X), dtype=bool)
        if nan_rows.any() and not report:
            cols = np.isnan(X).sum(axis=0)
            report = {
                "cells": int(cols.sum()),
                "rows": int(nan_rows.sum()),
                "by_column": {feature_names[j]: int(c) for j, c in enumerate(cols) if c},
            }
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
                f"({_counts_text(report.get('by_column', {}))})"
            )
        y_idx, class_names = _encode_labels(y, class_names)
        check_min_classes(y_idx, name="y")
        counts = np.bincount(y_idx, minlength=len(class_names))
        singles = [class_names[k] for k in np.nonzero(counts == 1)[0]]
        stratify = y_idx if not singles and counts[counts > 0].min() >= 2 else None
        if singles:
            logger.warning(
                "%s a single row (of %d rows), so the split cannot be stratified and %s only in the training or "
                "the test split; add rows of %s or drop %s",
                ", ".join(f"class {c!r}" for c in singles[:5]) + (" has" if len(singles) == 1 else " each have"),
                len(y_idx), "that row lands" if len(singles) == 1 else "those rows land",
                "that class" if len(singles) == 1 else "those classes", "it" if len(singles) == 1 else "them",
            )
        try:
            X_tr, X_te, y_tr, y_te, r_tr, r_te = train_test_split(
                X, y_idx, rows, test_size=test_size, random_state=seed, stratify=stratify
            )
        except ValueError as exc:
            raise ValueError(
                f"Could not split {len(X)} samples of {len(class_names)} classes with test_size={test_size} "
                f"({exc}). Provide more samples per class or change test_size."
            ) from exc
        check_min_classes(y_tr, name="y (training split)")
        if missing == "impute" and nan_rows.any():
            X_tr, X_te = _impute(X_tr, X_te, onehot_columns)
            report["imputed"] = {
                "strategy": "median" + (" (most frequent level for one-hot columns)" if onehot_columns is not None and onehot_columns.any() else ""),
                "fitted_on": "training split",
            }
            notes.append(
                f"imputed {report['cells']} missing cells in {report['rows']} rows with the training split's "
                f"median ({_counts_text(report.get('by_column', {}))})"
            )
        mode = scale or ("feature" if kind == "tabular" else "global")
        check_choice(mode, "scale", ("feature", "global", "none"))
        if mode == "feature":
            mean = X_tr.mean(axis=0)
            sd = X_tr.std(axis=0)
        elif mode == "global":
            mean = np.full(X.shape[1], X_tr.mean())
            sd = np.full(X.shape[1], X_tr.std())
        else:
            mean = np.zeros(X.shape[1])
            sd = np.ones(X.shape[1])
        sd = np.where(sd > 1e-12, sd, 1.0)  # constant features stay constant (zero), never NaN
        return cls(
            X_train=((X_tr - mean) / sd).astype(np.float32),
            y_train=y_tr,
            X_test=((X_te - mean) / sd).astype(np.float32),
            y_test=y_te,
            feature_names=feature_names,
            class_names=class_names,
            kind=kind,
            input_shape=tuple(input_shape) if input_shape else (X.shape[1],),
            name=name,
            scaling={"mode": mode, "mean": mean.tolist(), "scale": sd.tolist()},
            notes=notes,
            missing=report,
            encoding=dict(encoding or {}),
            source_rows={"kind": row_kind, "train": r_tr.tolist(), "test": r_te.tolist()},
        )

    @classmethod
    def from_csv(
        cls,
        path: str | os.PathLike,
        target: str,
        *,
        categorical: Literal["onehot", "error"] = "onehot",
        missing: MissingPolicy = "error",
        max_categories: int = 50,
        name: str | None = None,
        test_size: float = 0.25,
        seed: int = 0,
        delimiter: str = ",",
    ) -> "Dataset":
        """Read a CSV file with a header row; ``target`` names the label column.

        Cells holding a missing-value marker (empty, ``NA``, ``N/A``, ``?``, ``null``, ``-``,
        ``None``, ``#N/A``, ``NaN`` and the other spellings in ``MISSING_MARKERS``) are missing
        values, never categories.  ``missing="error"`` (default) names their lines and columns;
        ``"drop"`` drops those rows; ``"impute"`` fills numeric columns with the training split's
        median (one-hot columns with their most frequent level), fitted on the training split
        only.  What was done is recorded in ``missing`` and ``notes``.

        Non-numeric feature columns are one-hot encoded (``categorical="onehot"``, recorded in
        ``notes`` and ``encoding``) or rejected with their names (``"error"``).  A text column with
        more than ``max_categories`` distinct values (an id, free text) is refused with its name
        and count, and so is a numeric column holding a few stray words.
        """
        path = Path(path)
        check_choice(categorical, "categorical", ("onehot", "error"))
        check_choice(missing, "missing", MISSING_POLICIES)
        max_categories = check_int(max_categories, "max_categories", low=2)
        if not path.is_file():
            raise FileNotFoundError(f"CSV file {str(path)!r} does not exist; check the path.")
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise ValueError(f"CSV file {str(path)!r} is empty; expected a header row and data rows.") from None
            numbered = [(reader.line_num, r) for r in reader if any(cell.strip() for cell in r)]
        if target not in header:
            raise ValueError(
                f"Target column {target!r} is not in {path.name}. Its columns are: {', '.join(map(repr, header))}."
            )
        if not numbered:
            raise ValueError(f"CSV file {str(path)!r} has a header but no data rows.")
        lines = np.array([ln for ln, _ in numbered], dtype=np.int64)
        rows = [r for _, r in numbered]
        bad_len = [int(lines[i]) for i, r in enumerate(rows) if len(r) != len(header)]
        if bad_len:
            raise ValueError(
                f"{path.name}: lines {bad_len[:5]} have a different number of fields than the header "
                f"({len(header)}); fix the file or the delimiter."
            )
        cols = [np.array([c.strip() for c in col], dtype=object) for col in zip(*rows)]
        t = header.index(target)
        y_raw = cols[t]
        y_missing = np.array([v in MISSING_MARKERS for v in y_raw])
        if y_missing.any() and missing != "drop":
            where = ", ".join(f"line {lines[i]} ({y_raw[i]!r})" for i in np.nonzero(y_missing)[0][:5])
            raise ValueError(
                f"{path.name}: the target column {target!r} has missing labels on {int(y_missing.sum())} rows: {where}. "
                f"Labels cannot be imputed; fix them, or pass missing='drop' (CLI: --missing drop) to drop those rows."
            )

        features: list[np.ndarray] = []
        names: list[str] = []
        onehot: list[bool] = []
        groups: list[dict[str, Any]] = []
        non_numeric: list[str] = []
        missing_cells: list[tuple[int, str, str]] = []  # (row, column, marker)
        for j, h in enumerate(header):
            if j == t:
                continue
            col = cols[j]
            miss = np.array([v in MISSING_MARKERS for v in col])
            present = col[~miss]
            if len(present) == 0:
                raise ValueError(
                    f"{path.name}: column {h!r} holds no values (all {len(col)} rows are empty or missing markers "
                    f"such as {col[0]!r}); drop the column."
                )
            parsed = _parse_floats(col, miss)
            numbers = ~np.isnan(parsed) | miss
            for i in np.nonzero(miss)[0]:
                missing_cells.append((int(i), h, str(col[i])))
            if numbers.all():
                features.append(parsed[:, None])
                names.append(h)
                onehot.append(False)
                continue
            n_num = int((numbers & ~miss).sum())
            junk = np.nonzero(~numbers)[0]
            if n_num >= 0.9 * len(present):
                shown = ", ".join(f"{col[i]!r} on line {lines[i]}" for i in junk[:5])
                raise ValueError(
                    f"{path.name}: column {h!r} is numeric in {n_num} of {len(present)} filled rows but holds "
                    f"{len(junk)} non-numeric value{'s' if len(junk) > 1 else ''}: {shown}. Fix those cells, or write "
                    f"them as NA if they mean 'missing' (then choose --missing error|drop|impute)."
                )
            levels = sorted(set(present.tolist()))
            if len(levels) > max_categories:
                examples = ", ".join(repr(v) for v in levels[:3])
                raise ValueError(
                    f"{path.name}: column {h!r} has {len(levels)} distinct text values in {len(col)} rows "
                    f"(e.g. {examples}); one-hot encoding it would add {len(levels)} features. It looks like an "
                    f"identifier or free text: drop the column, or raise max_categories (CLI: --max-categories) "
                    f"above {len(levels)} if it really is a category."
                )
            non_numeric.append(h)
            if categorical == "onehot":
                block = np.stack([(col == lv).astype(np.float64) for lv in levels], axis=1)
                block[miss] = np.nan
                groups.append({"column": h, "levels": levels, "features": list(range(len(names), len(names) + len(levels)))})
                features.append(block)
                names.extend(f"{h}={lv}" for lv in levels)
                onehot.extend([True] * len(levels))
        if non_numeric and categorical == "error":
            raise ValueError(
                f"{path.name}: columns {non_numeric} are not numeric. Encode them as numbers, "
                f"or pass categorical='onehot' to one-hot encode them."
            )
        notes: list[str] = []
        if non_numeric:
            notes.append(f"one-hot encoded non-numeric columns: {', '.join(non_numeric)}")
        if not features:
            raise ValueError(f"{path.name}: no feature columns besides the target {target!r}.")
        X = np.concatenate(features, axis=1)
        inf_rows, inf_cols = np.nonzero(np.isinf(X))
        if len(inf_rows):
            cells = [f"line {lines[r]}, column {names[c]!r}" for r, c in list(zip(inf_rows, inf_cols))[:5]]
            raise ValueError(f"{path.name} has infinite values: {'; '.join(cells)}. Replace them with finite numbers or NA.")
        report: dict[str, Any] = {}
        if missing_cells or y_missing.any():
            by_col: dict[str, int] = {}
            markers: dict[str, int] = {}
            for _, h, marker in missing_cells:
                by_col[h] = by_col.get(h, 0) + 1
                markers[marker if marker else "(empty)"] = markers.get(marker if marker else "(empty)", 0) + 1
            miss_rows = {r for r, _, _ in missing_cells}
            if y_missing.any():
                by_col[target] = int(y_missing.sum())
            report = {
                "cells": len(missing_cells),
                "rows": len(miss_rows | set(np.nonzero(y_missing)[0].tolist())),
                "by_column": by_col,
                "markers": markers,
            }
        if missing == "error" and missing_cells:
            shown = "; ".join(
                f"line {lines[r]}, column {h!r} = {marker!r}" if marker else f"line {lines[r]}, column {h!r} is empty"
                for r, h, marker in missing_cells[:5]
            )
            more = f" (and {len(missing_cells) - 5} more)" if len(missing_cells) > 5 else ""
            raise ValueError(
                f"{path.name} has missing values: {shown}{more} (line 1 is the header; {report['cells']} cells in "
                f"{report['rows']} rows: {_counts_text(report['by_column'])}). Pass missing='drop' to drop those rows "
                f"or missing='impute' to fill them from the training split (CLI: --missing drop|impute), or fill the file."
            )
        y_vals = y_raw
        if y_missing.any():  # missing == "drop": rows without a label go first
            keep = ~y_missing
            X, y_vals, lines = X[keep], y_raw[keep], lines[keep]
            notes.append(f"dropped {int(y_missing.sum())} rows without a label in {target!r}")
        y_vals = np.array([str(v) for v in y_vals])
        if _all_numeric(y_vals):
            yf = y_vals.astype(np.float64)
            y_vals = yf.astype(np.int64) if np.all(yf == np.round(yf)) else y_vals
        if report and y_missing.any():
            report["dropped_unlabelled"] = int(y_missing.sum())
        return cls._split_and_scale(
            X, y_vals, lines, row_kind="csv_line", feature_names=names, class_names=None, kind="tabular",
            input_shape=None, name=name or path.stem, test_size=test_size, seed=seed, scale=None, missing=missing,
            notes=notes, missing_report=report or None, encoding={"onehot": groups} if groups else None,
            onehot_columns=np.asarray(onehot, dtype=bool),
        )

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        """Names, kind and shapes on one screen (never the arrays)."""
        from ._display import array_summary, names_preview

        return (
            f"Dataset({self.name!r}, kind={self.kind!r}, train {array_summary(self.X_train)}, test "
            f"{array_summary(self.X_test)}, input_shape={tuple(self.input_shape)}, {self.n_classes} classes "
            f"{names_preview(self.class_names)}, features {names_preview(self.feature_names)})"
        )


#: Cell values read as "missing" in CSV files (pandas' default NA strings plus the usual hand-written ones).
MISSING_MARKERS = frozenset(
    {"", "NA", "N/A", "n/a", "na", "NaN", "nan", "NAN", "-NaN", "-nan", "null", "NULL", "Null", "None", "none",
     "NONE", "#N/A", "#N/A N/A", "#NA", "<NA>", "-1.#IND", "-1.#QNAN", "1.#IND", "1.#QNAN", "?", "-", "--", "."}
)
MissingPolicy = Literal["error", "drop", "impute"]
MISSING_POLICIES = ("error", "drop", "impute")


def _parse_floats(col: np.ndarray, miss: np.ndarray) -> np.ndarray:
    """Float value of each cell; NaN where missing or not a number."""
    out = np.full(len(col), np.nan)
    for i, v in enumerate(col):
        if miss[i]:
            continue
        try:
            f = float(v)
        except ValueError:
            continue
        if f != f:  # a spelling of NaN we do not list ("nAn"): treat as not a number
            continue
        out[i] = f
    return out


def _counts_text(by_column: dict[str, int]) -> str:
    items = sorted(by_column.items(), key=lambda kv: -kv[1])
    text = ", ".join(f"{k!r}: {v}" for k, v in items[:5])
    return text + (f" and {len(items) - 5} more columns" if len(items) > 5 else "")


def _impute(X_tr: np.ndarray, X_te: np.ndarray, onehot: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Median for numeric columns, most frequent value for one-hot columns; fitted on the training split only."""
    from sklearn.impute import SimpleImputer

    X_tr, X_te = X_tr.copy(), X_te.copy()
    onehot = np.zeros(X_tr.shape[1], dtype=bool) if onehot is None else onehot
    for mask, strategy in ((~onehot, "median"), (onehot, "most_frequent")):
        cols = np.nonzero(mask & (np.isnan(X_tr).any(axis=0) | np.isnan(X_te).any(axis=0)))[0]
        if not len(cols):
            continue
        imp = SimpleImputer(strategy=strategy, keep_empty_features=True)
        X_tr[:, cols] = imp.fit_transform(X_tr[:, cols])
        X_te[:, cols] = imp.transform(X_te[:, cols])
    return X_tr, X_te


def _all_numeric(col: np.ndarray) -> bool:
    for v in col:
        if v == "":
            continue
        try:
            float(v)
        except ValueError:
            return False
    return True


def _encode_labels(y: np.ndarray, class_names: list[str] | None) -> tuple[np.ndarray, list[str]]:
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


def _make_mnist1d(n_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Generate mnist1d locally; ``make_dataset`` reseeds numpy's global RNG, so restore it."""
    from mnist1d.data import get_dataset_args, make_dataset

    state = np.random.get_state()
    try:
        args = get_dataset_args()
        args.num_samples = n_samples
        args.seed = seed
        d = make_dataset(args)
    finally:
        np.random.set_state(state)
    X = np.concatenate([d["x"], d["x_test"]]).astype(np.float64)
    y = np.concatenate([d["y"], d["y_test"]])
    return X, y


def load_dataset(
    name: str = "digits",
    *,
    test_size: float = 0.25,
    seed: int = 0,
    n_samples: int | None = None,
) -> Dataset:
    """Load a built-in data set by name: digits, breast_cancer, wine, iris or mnist1d.

    ``n_samples`` applies to mnist1d only (default 5000, the reference size).
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"Unknown data set {name!r}. Available data sets: {', '.join(DATASETS)}.")
    from sklearn import datasets as skd

    if name == "mnist1d":
        X, y = _make_mnist1d(n_samples or 5000, seed=42 if seed is None else seed)
        return Dataset.from_arrays(
            X,
            y,
            feature_names=[f"t{j}" for j in range(X.shape[1])],
            class_names=[str(i) for i in range(10)],
            kind="signal",
            input_shape=(1, X.shape[1]),
            name=name,
            test_size=test_size,
            seed=seed,
        )
    loader = {
        "digits": skd.load_digits,
        "breast_cancer": skd.load_breast_cancer,
        "wine": skd.load_wine,
        "iris": skd.load_iris,
    }[name]
    bunch = loader()
    X, y = bunch.data, bunch.target
    if name == "digits":
        return Dataset.from_arrays(
            X,
            y,
            feature_names=[f"pixel_{r}_{c}" for r in range(8) for c in range(8)],
            class_names=[str(c) for c in bunch.target_names],
            kind="image",
            input_shape=(1, 8, 8),
            name=name,
            test_size=test_size,
            seed=seed,
        )
    return Dataset.from_arrays(
        X,
        y,
        feature_names=[str(f) for f in bunch.feature_names],
        class_names=[str(c) for c in bunch.target_names],
        kind="tabular",
        name=name,
        test_size=test_size,
        seed=seed,
    )


def save_dataset(dataset: Dataset, directory: str | os.PathLike) -> None:
    """Arrays to safetensors, everything else to JSON (no pickle)."""
    from ._io import save_arrays, write_json

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {"X_train": dataset.X_train, "y_train": dataset.y_train, "X_test": dataset.X_test, "y_test": dataset.y_test}
    for split in ("train", "test"):
        if split in dataset.source_rows:
            arrays[f"source_rows_{split}"] = np.asarray(dataset.source_rows[split], dtype=np.int64)
    save_arrays(directory / "data.safetensors", arrays)
    write_json(
        directory / "data.json",
        {
            "name": dataset.name,
            "kind": dataset.kind,
            "input_shape": list(dataset.input_shape),
            "feature_names": dataset.feature_names,
            "class_names": dataset.class_names,
            "scaling": dataset.scaling,
            "notes": dataset.notes,
            "missing": dataset.missing,
            "encoding": dataset.encoding,
            "source_rows_kind": dataset.source_rows.get("kind"),
        },
    )


def load_saved_dataset(directory: str | os.PathLike) -> Dataset:
    from ._io import load_arrays, read_json

    directory = Path(directory)
    meta = read_json(directory / "data.json", what="data description")
    arrays = load_arrays(directory / "data.safetensors", what="data file")
    try:
        return Dataset(
            X_train=arrays["X_train"],
            y_train=arrays["y_train"],
            X_test=arrays["X_test"],
            y_test=arrays["y_test"],
            feature_names=meta["feature_names"],
            class_names=meta["class_names"],
            kind=meta["kind"],
            input_shape=tuple(meta["input_shape"]),
            name=meta["name"],
            scaling=meta.get("scaling", {}),
            notes=meta.get("notes", []),
            missing=meta.get("missing") or {},
            encoding=meta.get("encoding") or {},
            source_rows=(
                {"kind": meta.get("source_rows_kind") or "index",
                 "train": arrays["source_rows_train"].tolist(), "test": arrays["source_rows_test"].tolist()}
                if "source_rows_train" in arrays and "source_rows_test" in arrays else {}
            ),
        )
    except KeyError as exc:
        raise ValueError(f"{directory} holds an incomplete saved data set (missing {exc}); re-run to recreate it.") from exc
