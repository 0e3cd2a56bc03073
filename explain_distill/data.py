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
    check_labels,
    check_min_classes,
    check_names,
)

logger = logging.getLogger(__name__)

__all__ = ["Dataset", "load_dataset", "DATASETS"]

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
        notes: list[str] | None = None,
    ) -> "Dataset":
        """Split (stratified, seeded) and scale raw arrays.

        ``y`` may hold any labels (strings, ints); they are mapped to indices in sorted order
        unless ``class_names`` is given, in which case labels must be its entries or indices into it.
        ``scale`` defaults to per-feature standardisation for tabular data and one global
        mean/scale for images and signals (so a picture stays a picture).
        """
        from sklearn.model_selection import train_test_split

        check_choice(kind, "kind", ("tabular", "image", "signal"))
        X = check_array_2d(X, name="X", feature_names=feature_names)
        y = check_labels(y, name="y")
        check_consistent_length(X=X, y=y)
        test_size = check_fraction(test_size, "test_size", inclusive=False)
        if feature_names is None:
            feature_names = [f"x{j}" for j in range(X.shape[1])]
        feature_names = check_names(feature_names, X.shape[1], what="feature_names")
        y_idx, class_names = _encode_labels(y, class_names)
        check_min_classes(y_idx, name="y")
        counts = np.bincount(y_idx, minlength=len(class_names))
        stratify = y_idx if counts[counts > 0].min() >= 2 else None
        if stratify is None:
            logger.warning("some class has a single sample; splitting without stratification")
        try:
            X_tr, X_te, y_tr, y_te = train_test_split(
                X, y_idx, test_size=test_size, random_state=seed, stratify=stratify
            )
        except ValueError as exc:
            raise ValueError(
                f"Could not split {len(X)} samples of {len(class_names)} classes with test_size={test_size} "
                f"({exc}). Provide more samples per class or change test_size."
            ) from exc
        check_min_classes(y_tr, name="y (training split)")
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
            notes=list(notes or []),
        )

    @classmethod
    def from_csv(
        cls,
        path: str | os.PathLike,
        target: str,
        *,
        categorical: Literal["onehot", "error"] = "onehot",
        name: str | None = None,
        test_size: float = 0.25,
        seed: int = 0,
        delimiter: str = ",",
    ) -> "Dataset":
        """Read a CSV file with a header row; ``target`` names the label column.

        Non-numeric feature columns are one-hot encoded (``categorical="onehot"``, recorded in
        ``notes`` so the report states it) or rejected with their names (``"error"``).
        """
        path = Path(path)
        check_choice(categorical, "categorical", ("onehot", "error"))
        if not path.is_file():
            raise FileNotFoundError(f"CSV file {str(path)!r} does not exist; check the path.")
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise ValueError(f"CSV file {str(path)!r} is empty; expected a header row and data rows.") from None
            rows = [r for r in reader if any(cell.strip() for cell in r)]
        if target not in header:
            raise ValueError(
                f"Target column {target!r} is not in {path.name}. Its columns are: {', '.join(map(repr, header))}."
            )
        if not rows:
            raise ValueError(f"CSV file {str(path)!r} has a header but no data rows.")
        bad_len = [i + 2 for i, r in enumerate(rows) if len(r) != len(header)]
        if bad_len:
            raise ValueError(
                f"{path.name}: lines {bad_len[:5]} have a different number of fields than the header "
                f"({len(header)}); fix the file or the delimiter."
            )
        cols = list(zip(*rows))
        t = header.index(target)
        y_raw = np.array([c.strip() for c in cols[t]])
        missing = np.nonzero(y_raw == "")[0]
        if len(missing):
            raise ValueError(f"{path.name}: target column {target!r} is empty on lines {(missing[:5] + 2).tolist()}.")
        if _all_numeric(y_raw):
            yf = y_raw.astype(np.float64)
            y_raw = yf.astype(np.int64) if np.all(yf == np.round(yf)) else y_raw
        features: list[np.ndarray] = []
        names: list[str] = []
        notes: list[str] = []
        non_numeric: list[str] = []
        for j, h in enumerate(header):
            if j == t:
                continue
            col = np.array([c.strip() for c in cols[j]])
            if _all_numeric(col):
                vals = np.array([float(v) if v != "" else np.nan for v in col])
                features.append(vals[:, None])
                names.append(h)
            else:
                non_numeric.append(h)
                if categorical == "onehot":
                    levels = sorted(set(col.tolist()))
                    features.append(np.stack([(col == lv).astype(np.float64) for lv in levels], axis=1))
                    names.extend(f"{h}={lv}" for lv in levels)
        if non_numeric and categorical == "error":
            raise ValueError(
                f"{path.name}: columns {non_numeric} are not numeric. Encode them as numbers, "
                f"or pass categorical='onehot' to one-hot encode them."
            )
        if non_numeric:
            notes.append(f"one-hot encoded non-numeric columns: {', '.join(non_numeric)}")
        if not features:
            raise ValueError(f"{path.name}: no feature columns besides the target {target!r}.")
        X = np.concatenate(features, axis=1)
        bad_rows, bad_cols = np.nonzero(~np.isfinite(X))
        if len(bad_rows):
            cells = [
                f"line {r + 2}, column {names[c]!r} = {'empty or NaN' if np.isnan(X[r, c]) else X[r, c]}"
                for r, c in list(zip(bad_rows, bad_cols))[:5]
            ]
            more = f" (and {len(bad_rows) - 5} more)" if len(bad_rows) > 5 else ""
            raise ValueError(
                f"{path.name} has missing or infinite values: {'; '.join(cells)}{more} (line 1 is the header). "
                f"Fill or drop these rows before loading."
            )
        return cls.from_arrays(
            X, y_raw, feature_names=names, name=name or path.stem, test_size=test_size, seed=seed, notes=notes
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
    save_arrays(
        directory / "data.safetensors",
        {"X_train": dataset.X_train, "y_train": dataset.y_train, "X_test": dataset.X_test, "y_test": dataset.y_test},
    )
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
        )
    except KeyError as exc:
        raise ValueError(f"{directory} holds an incomplete saved data set (missing {exc}); re-run to recreate it.") from exc
