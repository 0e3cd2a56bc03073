"""The data's own units: thresholds and values printed as the user wrote them, not as z-scores.

Surrogates fit in the scaled space they are given (``Dataset.X_train``).  The Dataset owns its
scaling and one-hot encoding and hands it out as plain data (:meth:`Dataset.units`), ``distill``
attaches it to every surrogate (``input_units_``), and :class:`RawUnits` turns a fitted threshold
back into the input's units when a view prints it: ``pixel_3_4 <= 8.5`` (digits pixels 0..16),
``worst radius > 16.8``, and a one-hot column as ``colour = red`` / ``colour != red``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["RawUnits", "format_value", "shortest_between"]


def format_value(v: float) -> str:
    """A number as a person reads it: 4 significant digits, no exponent for ordinary sizes."""
    v = float(v)
    if v == 0 or not np.isfinite(v):
        return f"{v:g}" if np.isfinite(v) else str(v)
    a = abs(v)
    if 1e-4 <= a < 1e6:
        digits = max(0, 3 - int(np.floor(np.log10(a))))
        text = f"{v:.{digits}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return f"{v:.4g}"


def shortest_between(lo: float, hi: float, target: float) -> tuple[float, int]:
    """(value, decimals): the number with the fewest significant digits in ``[lo, hi]``, nearest ``target``
    among those; ``decimals`` < 0 means rounded to tens, hundreds, ...  Requires ``lo <= hi``."""
    for d in range(-12, 16):
        f = 10.0 ** d
        q_lo, q_hi = math.ceil(lo * f), math.floor(hi * f)
        if q_lo <= q_hi:
            q = min(max(round(target * f), q_lo), q_hi)
            return q / f, d
    return target, 16


def _number(v: float, decimals: int) -> str:
    return f"{int(round(v))}" if decimals <= 0 else f"{v:.{decimals}f}"


class RawUnits:
    """``(feature, fitted value) -> raw value`` for one data set's scaling, with conditions true as printed.

    Parameters
    ----------
    units : dict
        ``{"mean": [...], "scale": [...], "onehot": [{"column", "levels", "features"}], "kinds": [...],
        "grid": [...]}`` as given by :meth:`explain_distill.data.Dataset.units` (raw = fitted * scale +
        mean; ``kinds`` each column's type, ``grid`` per feature the sorted distinct values the data
        holds, as the model sees them).
    feature_names : list of str, optional
        Used to check the sizes.

    Notes
    -----
    A condition prints a threshold that splits the data's observed values exactly where the model
    does, with the fewest digits that keep every observed row on its side: a 0/1 column reads
    ``col = 0`` / ``col = 1``, an integer column an integer (``tenure <= 12``, exact for every whole
    number), a one-hot level ``colour = red``, a real column the shortest number between the two
    observed values the split falls between.  Without the observed values (a surrogate loaded on
    its own) a real threshold prints with 4 significant digits.
    """

    def __init__(self, units: Mapping[str, Any], feature_names: Sequence[str] | None = None) -> None:
        self.mean = np.asarray(units["mean"], dtype=np.float64).reshape(-1)
        self.scale = np.asarray(units["scale"], dtype=np.float64).reshape(-1)
        if self.mean.shape != self.scale.shape:
            raise ValueError(f"units hold {self.mean.size} means but {self.scale.size} scales; they must match.")
        if feature_names is not None and len(feature_names) != self.mean.size:
            raise ValueError(
                f"units describe {self.mean.size} features but there are {len(feature_names)} feature names; "
                f"they come from another data set."
            )
        self.onehot: dict[int, tuple[str, str]] = {}
        self.levels: dict[str, list[str]] = {}
        for group in units.get("onehot") or []:
            self.levels[str(group["column"])] = [str(v) for v in group["levels"]]
            for j, level in zip(group["features"], group["levels"]):
                self.onehot[int(j)] = (str(group["column"]), str(level))
        kinds = units.get("kinds")
        self.kinds = list(kinds) if kinds is not None and len(kinds) == self.mean.size else ["real"] * self.mean.size
        grid = units.get("grid")
        self.grid = list(grid) if grid is not None and len(grid) == self.mean.size else None

    @property
    def n_features(self) -> int:
        return int(self.mean.size)

    def __call__(self, feature: int, value: float) -> float:
        """The raw value of a fitted (scaled) ``value`` of ``feature``."""
        return float(value) * float(self.scale[feature]) + float(self.mean[feature])

    def values(self, X: Any) -> np.ndarray:
        """Raw values of scaled samples (n, d) or one sample (d,)."""
        return np.asarray(X, dtype=np.float64) * self.scale + self.mean

    def _z(self, feature: int, raw: float) -> float:
        """A raw value as the model sees it: scaled, in float32."""
        return float(np.float32((raw - self.mean[feature]) / self.scale[feature]))

    def _integer_cut(self, feature: int, t: float) -> int:
        """The largest whole number the model sends to the ``<=`` side of threshold ``t``."""
        p = math.floor(self(feature, t))
        while self._z(feature, p + 1) <= t:
            p += 1
        while self._z(feature, p) > t:
            p -= 1
        return p

    def _real_cut(self, feature: int, t: float) -> str:
        """The shortest number between the observed values on either side of threshold ``t``."""
        raw = self(feature, t)
        if self.grid is None:
            return format_value(raw)
        g = np.asarray(self.grid[feature], dtype=np.float64)
        i = int(np.searchsorted(g, t, side="right"))
        lo = self(feature, g[i - 1]) if i > 0 else None
        hi = self(feature, g[i]) if i < len(g) else None
        if lo is None and hi is None:
            return format_value(raw)
        lo = lo if lo is not None else raw - abs(hi - raw)  # type: ignore[operator]
        hi = hi if hi is not None else raw + abs(raw - lo)
        # The observed values as the user wrote them: float32 storage moved them by ~1e-7 relative.
        tol = 1e-6 * max(1.0, abs(lo), abs(hi))
        lo, hi = shortest_between(lo - tol, lo + tol, lo)[0], shortest_between(hi - tol, hi + tol, hi)[0]
        if hi - lo <= 2 * tol:
            return f"{raw:.9g}"
        value, decimals = shortest_between(lo, hi - tol, raw)  # lo itself keeps its rows on the <= side
        return _number(value, decimals)

    def cut(self, feature: int, t: float) -> str:
        """The printed threshold of a split ``x[feature] <= t`` (fitted ``t``), true for the observed rows."""
        kind = self.kinds[feature]
        if kind in ("integer", "binary"):
            return str(self._integer_cut(feature, t))
        return self._real_cut(feature, t)

    def condition(self, feature: int, op: str, value: float, name: str, decimals: int | None = None) -> str:
        """``name op raw`` (true as printed); ``column = level`` / ``column != level`` for one-hot levels,
        ``name = 0`` / ``name = 1`` for 0/1 columns.  ``decimals`` is kept for older callers and unused
        where the observed values decide the digits."""
        raw = self(feature, value)
        if feature in self.onehot and 0.0 < raw < 1.0:
            column, level = self.onehot[feature]
            return self._column_text(column, level, []) if op == ">" else self._column_text(column, None, [level])
        if self.kinds[feature] == "binary" and 0.0 <= raw < 1.0:
            return f"{name} = {1 if op == '>' else 0}"
        if self.grid is None and self.kinds[feature] == "real" and decimals is not None:
            return f"{name} {op} {raw:.{decimals}f}"
        return f"{name} {op} {self.cut(feature, value)}"

    def conjunction(self, conditions: Sequence[Sequence[Any]], names: Sequence[str]) -> list[str]:
        """A conjunction of ``(feature, op, fitted threshold)`` read as one condition per feature, in
        first-appearance order: bounds on a feature merged into the tightest (``42.91 < x <= 44.47``), a
        one-hot column's ``= level`` absorbing its ``!= other`` (``col not in {a, b}`` when only levels are
        excluded, ``col = c`` when one level is left)."""
        order: list[Any] = []
        lows: dict[int, float] = {}
        highs: dict[int, float] = {}
        equal: dict[str, str] = {}
        unequal: dict[str, list[str]] = {}
        for f, op, t in conditions:
            f, t = int(f), float(t)
            raw = self(f, t)
            if f in self.onehot and 0.0 < raw < 1.0:
                column, level = self.onehot[f]
                key: Any = ("col", column)
                if op == ">":
                    equal[column] = level
                else:
                    unequal.setdefault(column, []).append(level)
            else:
                key = ("num", f)
                side = lows if op == ">" else highs
                side[f] = max(side.get(f, t), t) if op == ">" else min(side.get(f, t), t)
            if key not in order:
                order.append(key)
        out = []
        for kind, key in order:
            if kind == "col":
                out.append(self._column_text(key, equal.get(key), unequal.get(key, [])))
            else:
                out.append(self._bounds_text(key, names[key], lows.get(key), highs.get(key)))
        return out

    def _column_text(self, column: str, level: str | None, excluded: list[str]) -> str:
        """``col = level``; with only exclusions ``col != a`` / ``col not in {a, b}``, or ``col = c`` when
        one level is left (a yes/no column reads ``partner = Yes``, not ``partner != No``)."""
        if level is not None:
            return f"{column} = {level}"
        left = [lv for lv in self.levels.get(column, []) if lv not in excluded]
        if len(left) == 1:
            return f"{column} = {left[0]}"
        if len(excluded) == 1:
            return f"{column} != {excluded[0]}"
        return f"{column} not in {{{', '.join(sorted(set(excluded), key=excluded.index))}}}"

    def _bounds_text(self, f: int, name: str, low: float | None, high: float | None) -> str:
        if low is not None and high is not None:
            if self.kinds[f] == "binary" or f in self.onehot:  # both sides of one 0/1 split: cannot happen on a path
                return " and ".join([self.condition(f, ">", low, name), self.condition(f, "<=", high, name)])
            return f"{self.cut(f, low)} < {name} <= {self.cut(f, high)}"
        if low is not None:
            return self.condition(f, ">", low, name)
        return self.condition(f, "<=", high, name)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        groups: dict[str, dict[str, Any]] = {}
        for j, (column, level) in sorted(self.onehot.items()):
            g = groups.setdefault(column, {"column": column, "levels": [], "features": []})
            g["levels"].append(level)
            g["features"].append(j)
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(), "onehot": list(groups.values()),
                "kinds": list(self.kinds)}
