"""Small statistical primitives shared by ``distill`` and ``analysis`` (numpy only, imports nothing of ours)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["wilson_interval", "agreement"]

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
