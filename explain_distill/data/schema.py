"""Each column's type and domain, as plain data: what values an input of this data set can take.

A :class:`Schema` holds one :class:`Column` per feature (after one-hot encoding):

- ``"binary"``: the column holds only 0 and 1 (a flag, ``senior_citizen``);
- ``"integer"``: whole numbers (counts, ``tenure`` in months, pixel intensities 0..16);
- ``"onehot"``: one level of a text column one-hot encoded by ``from_csv`` (``group`` names the
  column, ``level`` the level; exactly one level of a group is 1 in every row);
- ``"real"``: anything else.

Every column also records its observed range on the training split (``low``, ``high``, in the
data's raw units).  The schema is inferred from the raw training values (:func:`infer_schema`)
and saved with the data set; query synthesis keeps synthesized inputs inside it and printed
conditions read through it (``col = 1`` on a 0/1 column, integers as integers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = ["Column", "ColumnKind", "Schema", "infer_schema", "COLUMN_KINDS"]

ColumnKind = Literal["real", "integer", "binary", "onehot"]
COLUMN_KINDS: tuple[str, ...] = ("real", "integer", "binary", "onehot")

#: A value counts as a whole number when it is within this of one, relative to its size
#: (float32 storage of scaled inputs loses ~1e-7 relative; a real measurement is far from it).
_INTEGER_TOL = 1e-4


@dataclass(frozen=True)
class Column:
    """One feature's type and observed domain.

    Attributes
    ----------
    name : str
        The feature name (``colour=red`` for a one-hot level).
    kind : {"real", "integer", "binary", "onehot"}
    low, high : float
        Smallest and largest value on the training split, raw units.
    group, level : str or None
        One-hot columns: the source column and the level this feature stands for.
    """

    name: str
    kind: ColumnKind
    low: float
    high: float
    group: str | None = None
    level: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: v for k, v in d.items() if v is not None}


@dataclass
class Schema:
    """The columns of a data set, in feature order, and its one-hot groups.

    Attributes
    ----------
    columns : list of Column
    onehot : list of dict
        ``{"column", "levels", "features"}`` per one-hot encoded text column (feature indices).
    """

    columns: list[Column] = field(default_factory=list)
    onehot: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.columns)

    @property
    def kinds(self) -> list[str]:
        return [c.kind for c in self.columns]

    @property
    def low(self) -> np.ndarray:
        return np.array([c.low for c in self.columns], dtype=np.float64)

    @property
    def high(self) -> np.ndarray:
        return np.array([c.high for c in self.columns], dtype=np.float64)

    def indices(self, kind: str) -> np.ndarray:
        """Feature indices of the columns of one kind."""
        return np.array([j for j, c in enumerate(self.columns) if c.kind == kind], dtype=np.intp)

    def counts(self) -> dict[str, int]:
        """How many columns of each kind (for the log and the report)."""
        out = {k: 0 for k in COLUMN_KINDS}
        for c in self.columns:
            out[c.kind] += 1
        return {k: v for k, v in out.items() if v}

    def to_json(self) -> dict[str, Any]:
        return {"columns": [c.to_json() for c in self.columns], "onehot": [dict(g) for g in self.onehot]}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | None) -> "Schema":
        if not doc:
            return cls()
        columns = [Column(**{k: c[k] for k in ("name", "kind", "low", "high", "group", "level") if k in c})
                   for c in doc.get("columns") or []]
        bad = [c.kind for c in columns if c.kind not in COLUMN_KINDS]
        if bad:
            raise ValueError(f"schema column kinds {bad[:3]} are not among {', '.join(COLUMN_KINDS)}.")
        return cls(columns=columns, onehot=[dict(g) for g in doc.get("onehot") or []])


def _is_integral(col: np.ndarray) -> bool:
    return bool(np.all(np.abs(col - np.round(col)) <= _INTEGER_TOL * np.maximum(1.0, np.abs(col))))


def infer_schema(
    X_raw: np.ndarray, feature_names: Sequence[str], onehot: Sequence[Mapping[str, Any]] | None = None
) -> Schema:
    """The schema of raw training values ``X_raw`` (n, d): each column's kind and observed range.

    ``onehot`` lists the one-hot groups ``{"column", "levels", "features"}`` (their features are
    ``"onehot"``); NaN cells (missing values not yet imputed) are ignored.
    """
    X_raw = np.asarray(X_raw, dtype=np.float64)
    d = X_raw.shape[1]
    member: dict[int, tuple[str, str]] = {}
    for g in onehot or []:
        for j, level in zip(g["features"], g["levels"]):
            member[int(j)] = (str(g["column"]), str(level))
    columns = []
    for j in range(d):
        col = X_raw[:, j]
        col = col[np.isfinite(col)]
        low, high = (float(col.min()), float(col.max())) if len(col) else (0.0, 0.0)
        if j in member:
            group, level = member[j]
            columns.append(Column(str(feature_names[j]), "onehot", low, high, group=group, level=level))
            continue
        if len(col) and _is_integral(col):
            values = np.unique(np.round(col))
            kind: ColumnKind = "binary" if set(values.tolist()) <= {0.0, 1.0} and len(values) == 2 else "integer"
            low, high = float(np.round(low)), float(np.round(high))
        else:
            kind = "real"
        columns.append(Column(str(feature_names[j]), kind, low, high))
    return Schema(columns=columns, onehot=[{"column": str(g["column"]), "levels": [str(v) for v in g["levels"]],
                                            "features": [int(j) for j in g["features"]]} for g in onehot or []])
