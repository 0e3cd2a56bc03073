"""Small statistical primitives shared by ``distill`` and ``analysis`` (numpy only, imports nothing of ours)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["wilson_interval", "agreement", "paired_difference"]

# Two-sided 95% normal quantile.
Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927).

    Unlike the normal approximation it stays inside [0, 1] and behaves at 0 and n successes,
    which is exactly where fidelity numbers live.  Returns ``(nan, nan)`` when ``n == 0``.
    """
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of positions where two label arrays agree (nan for empty input)."""
    a = np.asarray(a)
    b = np.asarray(b)
    if len(a) == 0:
        return math.nan
    return float(np.mean(a == b))


def paired_difference(a: np.ndarray, b: np.ndarray, w: np.ndarray | None = None, z: float = Z95) -> tuple[float, float, float]:
    """(mean(a) - mean(b), low, high): the normal interval of the difference of two rates measured on the
    same rows (``a``, ``b``: per-row 0/1 outcomes; ``w``: row weights, equal when None).  Its variance is
    that of the per-row differences, so only the rows where the two disagree widen it (McNemar)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n = len(d)
    if n == 0:
        return (math.nan, math.nan, math.nan)
    p = np.full(n, 1.0 / n) if w is None else np.asarray(w, dtype=np.float64) / max(float(np.sum(w)), 1e-12)
    diff = float(p @ d)
    se = math.sqrt(max(float(p @ d**2) - diff**2, 0.0) / n)
    return diff, diff - z * se, diff + z * se
