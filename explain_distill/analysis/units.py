"""The data's own units: thresholds and values printed as the user wrote them, not as z-scores.

Surrogates fit in the scaled space they are given (``Dataset.X_train``).  The Dataset owns its
scaling and one-hot encoding and hands it out as plain data (:meth:`Dataset.units`), ``distill``
attaches it to every surrogate (``input_units_``), and :class:`RawUnits` turns a fitted threshold
back into the input's units when a view prints it: ``pixel_3_4 <= 8.5`` (digits pixels 0..16),
``worst radius > 16.8``, and a one-hot column as ``colour = red`` / ``colour != red``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["RawUnits", "format_value"]


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


class RawUnits:
    """``(feature, fitted value) -> raw value`` for one data set's scaling, with readable conditions.

    Parameters
    ----------
    units : dict
        ``{"mean": [...], "scale": [...], "onehot": [{"column", "levels", "features"}]}`` as given by
        :meth:`explain_distill.data.Dataset.units` (raw = fitted * scale + mean).
    feature_names : list of str, optional
        Used to check the sizes.
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
        for group in units.get("onehot") or []:
            for j, level in zip(group["features"], group["levels"]):
                self.onehot[int(j)] = (str(group["column"]), str(level))

    @property
    def n_features(self) -> int:
        return int(self.mean.size)

    def __call__(self, feature: int, value: float) -> float:
        """The raw value of a fitted (scaled) ``value`` of ``feature``."""
        return float(value) * float(self.scale[feature]) + float(self.mean[feature])

    def values(self, X: Any) -> np.ndarray:
        """Raw values of scaled samples (n, d) or one sample (d,)."""
        return np.asarray(X, dtype=np.float64) * self.scale + self.mean

    def condition(self, feature: int, op: str, value: float, name: str, decimals: int | None = None) -> str:
        """``name op raw`` for a numeric feature; ``column = level`` / ``column != level`` for one-hot."""
        raw = self(feature, value)
        if feature in self.onehot and 0.0 < raw < 1.0:
            column, level = self.onehot[feature]
            is_level = op == ">"
            return f"{column} {'=' if is_level else '!='} {level}"
        shown = format_value(raw) if decimals is None else f"{raw:.{decimals}f}"
        return f"{name} {op} {shown}"

    def to_json(self) -> dict[str, Any]:
        groups: dict[str, dict[str, Any]] = {}
        for j, (column, level) in sorted(self.onehot.items()):
            g = groups.setdefault(column, {"column": column, "levels": [], "features": []})
            g["levels"].append(level)
            g["features"].append(j)
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(), "onehot": list(groups.values())}
