"""Timing helpers shared by the benchmark modules: interleaved repeats, medians, ratios, peak memory.

These machines are shared and noisy, so every benchmark compares a candidate against a baseline
timed side by side in the same process, interleaving the repeats (A B A B ...) so that a burst of
load from a neighbour hits both, and reports the ratio of medians (and of minima).
"""

from __future__ import annotations

import gc
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["interleaved", "ratio_row", "peak_rss_mb", "fmt"]


def interleaved(fns: dict[str, Callable[[], Any]], *, repeats: int = 5, warmup: int = 1) -> dict[str, list[float]]:
    """Time every callable ``repeats`` times, round-robin, after ``warmup`` untimed rounds."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            gc.collect()
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def ratio_row(times: dict[str, list[float]], name: str, baseline: str) -> dict[str, float]:
    med, base = statistics.median(times[name]), statistics.median(times[baseline])
    return {
        "median_s": med,
        "min_s": min(times[name]),
        "ratio_median": med / base,
        "ratio_min": min(times[name]) / min(times[baseline]),
    }


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(who).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}"
