"""Fidelity a constant cannot pass: agreement statistics and the one rule that decides pass or fail.

Top-1 agreement alone is the base rate on an imbalanced data set: a surrogate that always answers
the teacher's most frequent class agrees with it on 92.8% of the rows of a 93/7 table.  So beside
agreement (with its 95% Wilson interval) :func:`agreement_stats` measures

- the *constant baseline*: the agreement of always predicting the teacher's most frequent class on
  the same rows;
- *Cohen's kappa* between surrogate and teacher predictions (agreement corrected for chance; 0 for
  a constant), with a 95% interval from its large-sample variance (Fleiss, Cohen & Everitt 1969);
- the *balanced agreement*: the mean over the teacher's classes of the share of that class's rows
  the surrogate reproduces, with a 95% interval;
- per teacher class: its rows, the agreement on them and the Wilson interval.

:func:`decide` is the gate every verdict reads (``audit``, ``--min-agreement``, the smallest
faithful model's choice in ``distill`` and the patterns verdict).  ``gate="per_class"`` (the
default) passes when the lower end of the agreement interval reaches the bar *and* every teacher
class holding at least ``MIN_CLASS_ROWS`` rows (and ``MIN_CLASS_SHARE`` of them, 0 by default) is reproduced:
the lower end of its interval reaches ``min_class_agreement``.  ``gate="agreement"`` is the older
agreement-only rule.  The reason is given in words, naming a class that failed.

Like ``_stats`` this module imports nothing of ours, so ``distill`` (below ``analysis``) can use it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ._stats import Z95, wilson_interval

__all__ = [
    "Agreement",
    "GATES",
    "Gate",
    "GateResult",
    "MIN_CLASS_AGREEMENT",
    "MIN_CLASS_ROWS",
    "MIN_CLASS_SHARE",
    "agreement_from",
    "agreement_stats",
    "cohen_kappa",
    "decide",
]

GateName = Literal["per_class", "agreement"]
GATES: tuple[str, ...] = ("per_class", "agreement")
#: The per-class gate checks the teacher classes holding at least this share of the rows (0: every class
#: with enough rows, below).  It was 0.05 until 2026-12-03: on a 91/9 table whose teacher gives the small
#: class 27 of 750 test rows (3.6%), a surrogate answering the large class on every row passed the gate
#: (agreement 0.964, kappa 0.000); 27 rows missed every one are no small sample.
MIN_CLASS_SHARE = 0.0
#: ... and at least this many rows (fewer say too little either way).
MIN_CLASS_ROWS = 10
#: The lower end of such a class's agreement interval must reach this: the surrogate reproduces the
#: teacher on at least half of the rows the teacher gives that class, with 95% confidence.
MIN_CLASS_AGREEMENT = 0.5


def _confusion(t: np.ndarray, s: np.ndarray, k: int) -> np.ndarray:
    cm = np.zeros((k, k), dtype=np.float64)
    np.add.at(cm, (t, s), 1.0)
    return cm


def cohen_kappa(t: Any, s: Any, n_classes: int | None = None) -> tuple[float, tuple[float, float]]:
    """Cohen's kappa between two label arrays and its 95% interval.

    The variance is the large-sample one of Fleiss, Cohen & Everitt (1969), which (unlike the
    simpler ``po(1-po)/(n(1-pe)^2)``) holds when kappa is not 0.  Kappa is 0 when both arrays are
    one and the same constant (chance agreement is then perfect): a constant surrogate never
    scores above chance.
    """
    t = np.asarray(t, dtype=np.int64)
    s = np.asarray(s, dtype=np.int64)
    n = len(t)
    if n == 0:
        return math.nan, (math.nan, math.nan)
    k = int(max(t.max(), s.max()) + 1) if n_classes is None else int(n_classes)
    p = _confusion(t, s, k) / n
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    po, pe = float(np.trace(p)), float(rows @ cols)
    if pe >= 1.0 - 1e-12:  # both constant on the same class: no information either way
        return 0.0, (0.0, 0.0)
    kappa = (po - pe) / (1.0 - pe)
    diag = np.diag(p)
    a = float(np.sum(diag * (1.0 - (rows + cols) * (1.0 - kappa)) ** 2))
    off = p.copy()
    np.fill_diagonal(off, 0.0)
    b = (1.0 - kappa) ** 2 * float(np.sum(off * (cols[:, None] + rows[None, :]) ** 2))
    c = (kappa - pe * (1.0 - kappa)) ** 2
    var = max(a + b - c, 0.0) / (n * (1.0 - pe) ** 2)
    half = Z95 * math.sqrt(var)
    return kappa, (max(-1.0, kappa - half), min(1.0, kappa + half))


def _balanced(hits: np.ndarray, counts: np.ndarray) -> tuple[float, tuple[float, float]]:
    """Mean per-class agreement over the classes with rows, and a 95% interval.

    Each class's share is smoothed as (k + 1) / (n + 2) for its variance (so a class at 0 or 1
    still has one); the interval is the mean plus or minus 1.96 standard errors, inside [0, 1].
    """
    has = counts > 0
    if not has.any():
        return math.nan, (math.nan, math.nan)
    share = hits[has] / counts[has]
    smooth = (hits[has] + 1.0) / (counts[has] + 2.0)
    var = float(np.sum(smooth * (1.0 - smooth) / (counts[has] + 2.0))) / has.sum() ** 2
    mean = float(share.mean())
    half = Z95 * math.sqrt(var)
    return mean, (max(0.0, mean - half), min(1.0, mean + half))


@dataclass(frozen=True)
class Agreement:
    """How a surrogate's predictions agree with the teacher's on one set of rows.

    Attributes
    ----------
    n : int
    agreement : float
        Top-1 agreement.
    interval : (float, float)
        Its 95% Wilson interval.
    constant_baseline : float
        Agreement of always predicting the teacher's most frequent class on these rows.
    constant_class : int
        That class.
    kappa : float
        Cohen's kappa of surrogate against teacher (0 for a constant surrogate).
    kappa_interval : (float, float)
    balanced : float
        Mean over the teacher's classes (those it predicts here) of per-class agreement.
    balanced_interval : (float, float)
    per_class : list of dict
        Per class index: ``{"class", "n", "agreement", "interval"}`` (``n`` = rows the teacher
        gives that class; agreement NaN where it gives none).
    """

    n: int
    agreement: float
    interval: tuple[float, float]
    constant_baseline: float
    constant_class: int
    kappa: float
    kappa_interval: tuple[float, float]
    balanced: float
    balanced_interval: tuple[float, float]
    per_class: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain data with NaN as None (for metrics.json)."""

        def clean(v: Any) -> Any:
            if isinstance(v, float):
                return v if math.isfinite(v) else None
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            return v

        return clean({
            "n": self.n, "agreement": self.agreement, "interval": list(self.interval),
            "constant_baseline": self.constant_baseline, "constant_class": self.constant_class,
            "kappa": self.kappa, "kappa_interval": list(self.kappa_interval),
            "balanced": self.balanced, "balanced_interval": list(self.balanced_interval),
            "per_class": self.per_class,
        })


def agreement_from(doc: Any) -> Agreement | None:
    """An :class:`Agreement` from its plain-data forms: ``Agreement.to_json()``, a metrics.json surrogate row
    (``fidelity``, ``fidelity_interval``, ``balanced_agreement``, ..., ``per_class`` with class names), a
    fidelity report or an audit result (attributes or keys).  None when it lacks agreement or per-class rows."""
    get = (lambda k: doc.get(k)) if isinstance(doc, dict) else (lambda k: getattr(doc, k, None))
    details = get("details")
    per_class = get("per_class") or (details.get("per_class") if isinstance(details, dict) else None)
    metrics = get("metrics") if isinstance(get("metrics"), dict) else {}
    agreement = next((v for v in (get("agreement"), get("fidelity"), metrics.get("agreement")) if v is not None), None)
    intervals = get("intervals") if isinstance(get("intervals"), dict) else {}
    interval = get("interval") or get("fidelity_interval") or intervals.get("agreement")
    if agreement is None or interval is None or not per_class:
        return None
    nan2 = (math.nan, math.nan)
    pick = lambda *keys: next((v for v in (get(k) if get(k) is not None else metrics.get(k) for k in keys)  # noqa: E731
                               if v is not None), math.nan)
    return Agreement(
        n=int(sum(int(r["n"]) for r in per_class)), agreement=float(agreement), interval=tuple(interval),
        constant_baseline=float(pick("constant_baseline")), constant_class=0,
        kappa=float(pick("kappa")), kappa_interval=tuple(get("kappa_interval") or intervals.get("kappa") or nan2),
        balanced=float(pick("balanced", "balanced_agreement")),
        balanced_interval=tuple(get("balanced_interval") or intervals.get("balanced") or nan2),
        per_class=[{**r, "class": i} for i, r in enumerate(per_class)],
    )


def agreement_stats(teacher_pred: Any, surrogate_pred: Any, n_classes: int) -> Agreement:
    """Agreement of ``surrogate_pred`` with ``teacher_pred`` (class indices on the same rows), with the
    constant baseline, Cohen's kappa and the balanced agreement (see the module docstring)."""
    t = np.asarray(teacher_pred, dtype=np.int64).reshape(-1)
    s = np.asarray(surrogate_pred, dtype=np.int64).reshape(-1)
    if t.shape != s.shape:
        raise ValueError(f"teacher_pred has {t.size} rows but surrogate_pred has {s.size}; pass predictions on the same rows.")
    n, k = len(t), int(n_classes)
    if n and (t.min() < 0 or s.min() < 0 or t.max() >= k or s.max() >= k):
        raise ValueError(f"predictions must be class indices in [0, {k - 1}]; received values outside it.")
    same = t == s
    counts = np.bincount(t, minlength=k).astype(np.float64)
    hits = np.bincount(t[same], minlength=k).astype(np.float64)
    agree = int(same.sum())
    kappa, kappa_iv = cohen_kappa(t, s, k)
    balanced, balanced_iv = _balanced(hits, counts)
    major = int(np.argmax(counts)) if n else 0
    per_class = [
        {"class": c, "n": int(counts[c]), "agreement": hits[c] / counts[c] if counts[c] else math.nan,
         "interval": list(wilson_interval(int(hits[c]), int(counts[c])))}
        for c in range(k)
    ]
    return Agreement(
        n=n, agreement=agree / n if n else math.nan, interval=wilson_interval(agree, n),
        constant_baseline=float(counts[major] / n) if n else math.nan, constant_class=major,
        kappa=kappa, kappa_interval=kappa_iv, balanced=balanced, balanced_interval=balanced_iv, per_class=per_class,
    )


@dataclass(frozen=True)
class Gate:
    """The rule a surrogate must meet: the bar, and which gate (see :func:`decide`)."""

    bar: float
    gate: GateName = "per_class"
    min_class_agreement: float = MIN_CLASS_AGREEMENT
    min_class_share: float = MIN_CLASS_SHARE
    min_class_rows: int = MIN_CLASS_ROWS

    def __post_init__(self) -> None:
        for name in ("bar", "min_class_agreement", "min_class_share"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"{name} must be a fraction in [0, 1]; received {v!r}.")
        if self.gate not in GATES:
            raise ValueError(
                f"gate must be one of {', '.join(GATES)} ('per_class': agreement and every sizeable teacher class "
                f"reproduced; 'agreement': agreement only); received {self.gate!r}."
            )

    def to_json(self) -> dict[str, Any]:
        return {"bar": self.bar, "gate": self.gate, "min_class_agreement": self.min_class_agreement,
                "min_class_share": self.min_class_share, "min_class_rows": self.min_class_rows}


@dataclass(frozen=True)
class GateResult:
    """Pass or fail, and why in words; ``failed_classes`` names the teacher classes not reproduced."""

    passed: bool
    reason: str
    failed_classes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "reason": self.reason, "failed_classes": list(self.failed_classes)}


def _name(c: int, class_names: Sequence[str] | None) -> str:
    return str(class_names[c]) if class_names is not None and c < len(class_names) else str(c)


def checked_classes(stats: Agreement, gate: Gate) -> list[dict[str, Any]]:
    """The per-class rows the per-class gate holds to its floor (enough rows and a large enough share)."""
    need = max(gate.min_class_rows, math.ceil(gate.min_class_share * stats.n))
    return [r for r in stats.per_class if r["n"] >= need and r["n"] > 0]


def decide(stats: Agreement, gate: Gate, class_names: Sequence[str] | None = None) -> GateResult:
    """Whether ``stats`` meet ``gate``, and why, in words (see the module docstring)."""
    lo = stats.interval[0]
    if stats.n == 0:
        return GateResult(False, "no rows to measure agreement on")
    ok = bool(lo >= gate.bar)
    reason = (f"lower end {lo:.3f} of the 95% interval {'clears' if ok else 'is below'} the bar {gate.bar:.3f} "
              f"(agreement {stats.agreement:.3f} on {stats.n} samples; always predicting "
              f"{_name(stats.constant_class, class_names)!r} would agree on {stats.constant_baseline:.3f}, "
              f"kappa {stats.kappa:.3f})")
    ceiling = wilson_interval(stats.n, stats.n)[0]
    if ceiling < gate.bar:
        reason += f"; with {stats.n} samples even perfect agreement has a lower end of {ceiling:.3f}"
    if gate.gate == "agreement":
        return GateResult(ok, reason)
    failed = [r for r in checked_classes(stats, gate) if r["interval"][0] < gate.min_class_agreement]
    if not failed:
        return GateResult(ok, reason)
    worst = min(failed, key=lambda r: (r["interval"][0], -r["n"]))
    name = _name(worst["class"], class_names)
    more = f" (and {len(failed) - 1} more class{'es' if len(failed) > 2 else ''})" if len(failed) > 1 else ""
    reason += (f"; but class {name!r}, which the teacher predicts on {worst['n']} of the {stats.n} rows, is reproduced "
               f"on {worst['agreement']:.1%} of them (95% interval [{worst['interval'][0]:.3f}, "
               f"{worst['interval'][1]:.3f}], below the floor {gate.min_class_agreement:.2f}){more}: the surrogate "
               f"does not reproduce that class")
    return GateResult(False, reason, [_name(r["class"], class_names) for r in failed])
