"""Fidelity of a surrogate to its teacher, on held-out data, with intervals."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .._stats import wilson_interval
from .._validation import check_array_2d, check_fraction
from ..teacher import Teacher

__all__ = ["AuditResult", "audit"]


@dataclass
class AuditResult:
    """Outcome of :func:`audit`.

    ``passed`` is true when the *lower* end of the 95% Wilson interval of top-1 agreement clears
    ``min_agreement``, so a small sample cannot pass by luck.
    """

    passed: bool
    min_agreement: float
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    n: int
    surrogate: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["intervals"] = {k: list(v) for k, v in self.intervals.items()}
        return d


def audit(teacher: Teacher, surrogate: Any, X: Any, *, min_agreement: float = 0.95, name: str = "") -> AuditResult:
    """Gate: does ``surrogate`` agree with ``teacher`` on ``X`` often enough, with confidence?"""
    min_agreement = check_fraction(min_agreement, "min_agreement")
    X = check_array_2d(X, name="X", dtype=np.float32)
    t = teacher.predict(X)
    s = np.asarray(surrogate.predict(X))
    k = int(np.sum(t == s))
    lo, hi = wilson_interval(k, len(X))
    return AuditResult(
        passed=bool(lo >= min_agreement),
        min_agreement=min_agreement,
        metrics={"agreement": k / len(X)},
        intervals={"agreement": (lo, hi)},
        n=int(len(X)),
        surrogate=name,
    )
