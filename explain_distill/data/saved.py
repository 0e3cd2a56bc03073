"""A Dataset on disk: arrays in safetensors, everything else in JSON (never pickle)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._io import load_arrays, read_json, save_arrays, write_json
from .dataset import Dataset
from .schema import Schema

__all__ = ["save_dataset", "load_saved_dataset"]


def save_dataset(dataset: Dataset, directory: str | os.PathLike) -> None:
    """Arrays to ``data.safetensors``, names, scaling, schema and notes to ``data.json``."""
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
            "schema": dataset.schema.to_json(),
            "source_rows_kind": dataset.source_rows.get("kind"),
        },
    )


def load_saved_dataset(directory: str | os.PathLike) -> Dataset:
    """The Dataset written by :func:`save_dataset` (runs saved before the schema existed infer it)."""
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
            schema=Schema.from_json(meta.get("schema")),
            source_rows=(
                {"kind": meta.get("source_rows_kind") or "index",
                 "train": arrays["source_rows_train"].tolist(), "test": arrays["source_rows_test"].tolist()}
                if "source_rows_train" in arrays and "source_rows_test" in arrays else {}
            ),
        )
    except KeyError as exc:
        raise ValueError(f"{directory} holds an incomplete saved data set (missing {exc}); re-run to recreate it.") from exc
