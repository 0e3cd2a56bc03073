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

__all__ = ["Column", "ColumnKind", "Domain", "ObservedValues", "Schema", "infer_schema", "COLUMN_KINDS"]

ColumnKind = Literal["real", "integer", "binary", "onehot"]
COLUMN_KINDS: tuple[str, ...] = ("real", "integer", "binary", "onehot")

#: A column is whole numbers when every value is within this of one, relative to the column's largest
#: magnitude: float32 storage of a scaled column loses ~6e-8 of |x - mean| <= 2 max|x|, and a real
#: measurement is far from it.  Until 2026-12-03 it was 1e-4 relative to each value: amounts in cents above
#: 5,000 (51079,80) all sat within it, the column read as integer and a printed threshold 11955.73 became
#: "<= 11955", false for a row of 11955.50.
_INTEGER_TOL = 1e-6


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
    return bool(np.all(np.abs(col - np.round(col)) <= _INTEGER_TOL * max(1.0, float(np.max(np.abs(col))))))


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


class Domain:
    """Where inputs of one data set can lie, in the scaled units models see: the schema made operational.

    :meth:`project` moves synthesized inputs into the domain (one level hot per one-hot group,
    0/1 columns in {0, 1}, integers integral, every value inside the observed training range, all
    judged in raw units); :meth:`outside` says which rows were not in it.  Images and signals keep
    their intensities continuous (a pixel's 0..16 steps are the scanner's, not the picture's): only
    the range is kept (``continuous=True``).

    Parameters
    ----------
    schema : Schema
    mean, scale : array (d,)
        The data set's scaling: raw = scaled * scale + mean.
    continuous : bool
        Treat every column as real (bounded only).
    """

    def __init__(self, schema: Schema, mean: Any, scale: Any, *, continuous: bool = False) -> None:
        self.schema = schema
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.continuous = bool(continuous)
        kinds = ["real"] * len(schema) if continuous else schema.kinds
        self.binary = np.array([j for j, k in enumerate(kinds) if k == "binary"], dtype=np.intp)
        self.integer = np.array([j for j, k in enumerate(kinds) if k == "integer"], dtype=np.intp)
        self.groups = [] if continuous else [np.asarray(g["features"], dtype=np.intp) for g in schema.onehot]
        self.low, self.high = schema.low, schema.high

    def _raw(self, Q: np.ndarray) -> np.ndarray:
        return np.asarray(Q, dtype=np.float64) * self.scale + self.mean

    def outside(self, Q: Any, *, tol: float = 1e-4) -> np.ndarray:
        """Per row: True when some value is outside its column's domain (raw units, ``tol`` for float error)."""
        R = self._raw(Q)
        span = np.maximum(np.abs(self.high - self.low), 1.0)
        bad = ((R < self.low - tol * span) | (R > self.high + tol * span)).any(axis=1)
        for cols in (self.binary, self.integer):
            if len(cols):
                V = R[:, cols]
                bad |= (np.abs(V - np.round(V)) > tol * np.maximum(1.0, np.abs(V))).any(axis=1)
        if len(self.binary):
            V = np.round(R[:, self.binary])
            bad |= ((V != 0) & (V != 1)).any(axis=1)
        for cols in self.groups:
            G = R[:, cols]
            on = np.abs(G - 1.0) <= tol
            off = np.abs(G) <= tol
            bad |= ~((on | off).all(axis=1) & (on.sum(axis=1) == 1))
        return bad

    def project(self, Q: Any) -> np.ndarray:
        """``Q`` (n, d) scaled, moved into the domain: the nearest values the data can take (float32)."""
        R = self._raw(Q)
        for cols in self.groups:
            G = R[:, cols]
            R[:, cols] = 0.0
            R[np.arange(len(R))[:, None], cols[np.argmax(G, axis=1)][:, None]] = 1.0
        if len(self.binary):
            R[:, self.binary] = (R[:, self.binary] >= 0.5).astype(np.float64)
        if len(self.integer):
            R[:, self.integer] = np.round(R[:, self.integer])
        R = np.clip(R, self.low, self.high)
        return ((R - self.mean) / self.scale).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {"continuous": self.continuous, "binary": len(self.binary), "integer": len(self.integer),
                "onehot_groups": len(self.groups)}


class ObservedValues:
    """The distinct values each feature takes in a data set's rows, as models see them (scaled float32,
    sorted), computed per feature on first use: where a printed threshold must fall so that every
    observed row stays on its side.  Holds references to the arrays, never copies of them."""

    def __init__(self, *arrays: np.ndarray) -> None:
        self._arrays = [a for a in arrays if a is not None and len(a)]
        self._d = int(self._arrays[0].shape[1]) if self._arrays else 0
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self._d

    def __getitem__(self, j: int) -> np.ndarray:
        j = int(j)
        if not 0 <= j < self._d:
            raise IndexError(f"feature {j} outside 0..{self._d - 1}")
        if j not in self._cache:
            self._cache[j] = np.unique(np.concatenate([np.asarray(a[:, j], dtype=np.float32) for a in self._arrays]))
        return self._cache[j]
