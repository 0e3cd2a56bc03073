"""The Dataset: train/test arrays with names, kind, input shape, scaling and its inverse, and the schema.

Inputs are always stored flat, as float32 arrays of shape (n_samples, n_features);
``input_shape`` says how a model should see one sample ((1, 8, 8) for digits, (1, 40) for
mnist1d, (n_features,) for tabular data).  Scaling is fitted on the training split only, and
the split is stratified and seeded (:mod:`.split`); CSV files are read by :mod:`.csv`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._validation import (
    check_array_2d,
    check_choice,
    check_consistent_length,
    check_int,
    check_labels,
    check_names,
)
from .csv import read_csv
from .missing import MISSING_POLICIES, MissingPolicy
from .schema import Domain, ObservedValues, Schema, infer_schema
from .split import split_and_scale

logger = logging.getLogger(__name__)

__all__ = ["Dataset", "Kind"]

Kind = Literal["tabular", "image", "signal"]


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
    schema : Schema
        Each column's type (real, integer, binary, one-hot level) and observed range on the
        training split, raw units (:mod:`explain_distill.data.schema`); inferred from the raw
        training values when not given.
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
    schema: Schema = field(default_factory=Schema)

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
        if not isinstance(self.schema, Schema):
            raise TypeError(f"schema must be a Schema (explain_distill.data.schema); received {type(self.schema).__name__}.")
        if len(self.schema) not in (0, d):
            raise ValueError(f"The schema describes {len(self.schema)} columns but the data has {d} features.")
        if not len(self.schema) and d:  # built directly: read the kinds off the raw training values
            self.schema = infer_schema(self.inverse_transform(self.X_train), self.feature_names,
                                       (self.encoding or {}).get("onehot"))

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
        """The scaling, one-hot encoding, column kinds and observed values, for printing conditions in raw units.

        ``{"mean": [...], "scale": [...], "onehot": [{"column", "levels", "features"}], "kinds": [...],
        "grid": ObservedValues}``: raw = scaled * scale + mean per feature; ``kinds`` from the schema
        (real, integer, binary, onehot); ``grid`` the distinct values of each feature over the training
        and test rows (computed per feature when a condition on it is printed).  ``distill`` attaches
        it to every surrogate, so a printed threshold splits the data's rows where the model does.
        """
        mean, scale = self._scale_arrays()
        if getattr(self, "_observed", None) is None:
            self._observed = ObservedValues(self.X_train, self.X_test)
        return {"mean": mean.tolist(), "scale": scale.tolist(), "onehot": list((self.encoding or {}).get("onehot", [])),
                "kinds": list(self.schema.kinds) if len(self.schema) == self.n_features else None,
                "grid": self._observed}

    def domain(self) -> Domain:
        """Where this data set's inputs can lie, in scaled units (:class:`~explain_distill.data.schema.Domain`):
        query synthesis projects onto it.  Tabular data keeps each column's kind (0/1, integer, one-hot
        level) and range; images and signals keep their intensities continuous, inside the range."""
        mean, scale = self._scale_arrays()
        return Domain(self.schema, mean, scale, continuous=self.kind != "tabular")

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
        max_classes: int | None = None,
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
        A numeric ``y`` that looks continuous (many distinct values for the rows, or not whole
        numbers) is refused: bin it, or pass ``max_classes`` if they really are classes.
        """
        check_choice(missing, "missing", MISSING_POLICIES)
        if max_classes is not None:
            max_classes = check_int(max_classes, "max_classes", low=2)
        X = check_array_2d(X, name="X", feature_names=feature_names, allow_nan=missing != "error")
        return cls(**split_and_scale(
            X, y, np.arange(len(X)), row_kind="index", feature_names=feature_names, class_names=class_names, kind=kind,
            input_shape=input_shape, name=name, test_size=test_size, seed=seed, scale=scale, missing=missing,
            notes=notes, missing_report=None, encoding=None, max_classes=max_classes, target_name="y",
        ))

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
        delimiter: str | None = None,
        max_classes: int | None = None,
        keep_columns: Sequence[str] = (),
        encoding: str | None = None,
        decimal: Literal[".", ","] | None = None,
        scale: Literal["feature", "global", "none"] | None = None,
        input_shape: tuple[int, ...] | None = None,
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
        and count, and so is a numeric column holding a few stray words.  A numeric column that
        holds a different value on every row, increasing (or decreasing) with the line, is a row id
        and is refused too, unless ``keep_columns`` names it.  A numeric target that looks
        continuous is refused (bin it, or pass ``max_classes`` if its values really are classes).

        Files as people write them: ``encoding`` (default: UTF-8 with or without a byte-order mark,
        then cp1252, the encoding Excel on Windows writes), ``delimiter`` (default: sniffed among
        ``,`` ``;`` tab and ``|``) and ``decimal`` (default: ``","`` when the delimiter is not a comma
        and a column holds numbers written with a decimal comma, such as ``3,14`` or ``1.234,5``;
        else ``"."``).  What was detected is logged and noted.  A byte the encoding cannot decode is
        reported with its line.  ``scale`` as in :meth:`from_arrays` (``"none"`` when your own
        module standardises its inputs).  ``input_shape`` reads a table of pixel or sample columns
        (a flattened 28x28 image per row, say) as images (3 dimensions, ``(1, 28, 28)``) or signals
        (2 dimensions, ``(1, 40)``); its product must equal the number of feature columns.
        """
        path = Path(path)
        if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
            raise ValueError(f"delimiter must be one character such as ',' or ';' (or None to sniff it); received {delimiter!r}.")
        if decimal is not None:
            check_choice(decimal, "decimal", (".", ","))
        if scale is not None:
            check_choice(scale, "scale", ("feature", "global", "none"))
        check_choice(categorical, "categorical", ("onehot", "error"))
        check_choice(missing, "missing", MISSING_POLICIES)
        max_categories = check_int(max_categories, "max_categories", low=2)
        if not path.is_file():
            raise FileNotFoundError(f"CSV file {str(path)!r} does not exist; check the path.")
        if max_classes is not None:
            max_classes = check_int(max_classes, "max_classes", low=2)
        if isinstance(keep_columns, str):
            keep_columns = [keep_columns]
        if decimal == "," and delimiter == ",":
            raise ValueError("decimal=',' with delimiter=',' cannot be told apart; a decimal-comma file separates its "
                             "fields with ';' (pass delimiter=';' or leave it to be sniffed).")
        table = read_csv(path, target, categorical=categorical, missing=missing, max_categories=max_categories,
                         delimiter=delimiter, keep_columns=frozenset(str(c) for c in keep_columns),
                         encoding=encoding, decimal=decimal)
        kind: Kind = "tabular"
        if input_shape is not None:
            input_shape = tuple(int(v) for v in input_shape)
            if int(np.prod(input_shape)) != table.X.shape[1] or len(input_shape) not in (1, 2, 3):
                raise ValueError(
                    f"input_shape {input_shape} holds {int(np.prod(input_shape))} values but {path.name} has "
                    f"{table.X.shape[1]} feature columns; pass a shape whose product is {table.X.shape[1]}."
                )
            kind = {1: "tabular", 2: "signal", 3: "image"}[len(input_shape)]  # type: ignore[assignment]
        return cls(**split_and_scale(
            table.X, table.y, table.lines, row_kind="csv_line", feature_names=table.feature_names, class_names=None,
            kind=kind, input_shape=input_shape, name=name or path.stem, test_size=test_size, seed=seed, scale=scale,
            missing=missing, notes=table.notes, missing_report=table.missing or None,
            encoding={"onehot": table.onehot} if table.onehot else None, onehot_columns=table.onehot_columns,
            max_classes=max_classes, target_name=f"{path.name}: the target column {target!r}",
        ))

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        """Names, kind and shapes on one screen (never the arrays)."""
        from .._display import array_summary, names_preview

        return (
            f"Dataset({self.name!r}, kind={self.kind!r}, train {array_summary(self.X_train)}, test "
            f"{array_summary(self.X_test)}, input_shape={tuple(self.input_shape)}, {self.n_classes} classes "
            f"{names_preview(self.class_names)}, features {names_preview(self.feature_names)})"
        )


