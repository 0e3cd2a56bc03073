"""Analysis: fidelity, robustness and attributions, computed as plain data (never drawn here).

:func:`run_analyses` runs the lot on a :class:`~explain_distill.distill.Distillation`'s held-out
split and returns :class:`Analyses`, whose ``to_json()`` goes into the run's ``metrics.json``:

- ``teacher_check``: the teacher's test accuracy against a majority-class and a logistic
  baseline fitted on the same split, with ``warning`` when it does not beat them;
- ``reasons.<surrogate>``: label fidelity beside attribution agreement (with the method) and
  fidelity at the smallest noise level, with ``flags``/``flag`` when the answers agree but the
  reasons or the robustness do not;
- ``frontier.<family>``: per readable family a list, smallest first, of ``{size, leaves | rules |
  terms, fidelity, interval, validation, validation_interval, chosen, ...}``; ``frontier_summary``:
  the bar, the validation split, the chosen index per family and the verdict in words;
- ``fidelity.<surrogate>``: ``agreement``, ``interval``, ``kl``, ``jensen_shannon``,
  ``total_variation``, ``brier``, ``per_class``, ``confusion``, ``leaves``, ``disagreements``,
  ``truth``, ``compression``;
- ``robustness``: ``sigmas``, ``epsilons``, ``noise``, ``fgsm``;
- ``attribution``: ``method``, ``spearman``, ``top_k``, ``sign`` (surrogate -> mean), ``agreement``
  (details per sample / class), ``nan_count``, ``gradcam`` and ``attention`` (maps upsampled to the input).
- ``patterns`` (runs with ``NAME@patterns`` surrogates): ``verdict`` (``outcome``, ``bar``, ``text``),
  ``surrogates`` (their rules / weights over the teacher's pattern detectors, the channels used),
  ``prototypes`` (per drawn pattern: fire threshold, class shares, top training inputs).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._progress import progress

from .attribution import AttributionReport, attribution_report
from .baseline import TeacherCheck, teacher_check
from .fidelity import AuditResult, FidelityReport, audit, fidelity_report, to_jsonable
from .frontier import frontier_report, frontier_verdict
from .reasons import reasons_report
from .patterns import PatternAnalysis, PatternVerdict, pattern_analysis, pattern_verdict
from .robustness import RobustnessReport, robustness_report
from .views import RuleListView, SumOfTreesView, TreeNode, TreeView, tree_view_of, view_of

logger = logging.getLogger(__name__)

__all__ = [
    "Analyses",
    "AttributionReport",
    "AuditResult",
    "FidelityReport",
    "PatternAnalysis",
    "PatternVerdict",
    "RobustnessReport",
    "RuleListView",
    "SumOfTreesView",
    "TeacherCheck",
    "TreeNode",
    "TreeView",
    "attribution_report",
    "audit",
    "fidelity_report",
    "frontier_report",
    "frontier_verdict",
    "reasons_report",
    "pattern_analysis",
    "pattern_verdict",
    "robustness_report",
    "run_analyses",
    "teacher_check",
    "view_of",
]


@dataclass
class Analyses:
    """Every analysis of one distillation, as plain data.

    Attributes
    ----------
    fidelity : dict of surrogate name -> FidelityReport
    robustness : RobustnessReport or None
    attribution : AttributionReport or None
    extras : dict
        Other plain-data sections (curves, compression, kd_vs_hard, ...) added by their producers.
    timings : dict
        Seconds spent per section.
    teacher : TeacherCheck or None
        The teacher's test accuracy against a majority-class and a logistic baseline, with a
        warning when it does not beat them.
    frontier : dict or None
        :func:`~explain_distill.analysis.frontier.frontier_report`: every readable family's test
        fidelity at each size of its ladder, and the smallest that clears the bar.
    patterns : PatternAnalysis or None
        The surrogates over the teacher's features read as rules, the verdict, the prototypes.
    """

    fidelity: dict[str, FidelityReport]
    robustness: RobustnessReport | None = None
    attribution: AttributionReport | None = None
    extras: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    teacher: TeacherCheck | None = None
    frontier: dict[str, Any] | None = None
    patterns: PatternAnalysis | None = None

    @property
    def reasons(self) -> dict[str, dict[str, Any]]:
        """Per surrogate: label fidelity beside attribution agreement and low-noise fidelity, with flags."""
        return reasons_report({n: r.agreement for n, r in self.fidelity.items()}, self.attribution, self.robustness)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "teacher_check": self.teacher.to_json() if self.teacher is not None else None,
            "fidelity": {name: rep.to_json() for name, rep in self.fidelity.items()},
            "robustness": self.robustness.to_json() if self.robustness is not None else None,
            "attribution": self.attribution.to_json() if self.attribution is not None else None,
            "analysis_seconds": {k: round(v, 3) for k, v in self.timings.items()},
            "reasons": self.reasons,
        }
        if self.frontier is not None:
            doc["frontier"] = self.frontier["families"]
            doc["frontier_summary"] = {k: v for k, v in self.frontier.items() if k != "families"}
        if self.patterns is not None:
            doc["patterns"] = self.patterns.to_json()
        doc.update(to_jsonable(self.extras))
        return to_jsonable(doc)


def _tree_view(est: Any, dataset: Any) -> Any:
    """TreeView of a tree surrogate named after ``dataset``, or None (not a single tree)."""
    try:
        return tree_view_of(est, dataset)
    except TypeError:
        return None


def _pick_examples(y_pred: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` test indices, spread over the teacher's predicted classes (round-robin), sorted."""
    rng = np.random.default_rng(seed)
    by_class = [rng.permutation(np.nonzero(y_pred == c)[0]).tolist() for c in np.unique(y_pred)]
    out: list[int] = []
    while len(out) < n and any(by_class):
        for lst in by_class:
            if lst and len(out) < n:
                out.append(lst.pop())
    return np.sort(np.asarray(out, dtype=np.int64))


def _features_memoized(fn: Any) -> Any:
    """Run ``fn(distillation, ...)`` with every feature map of the run mapping the same rows once."""

    @functools.wraps(fn)
    def wrapper(distillation: Any, *args: Any, **kwargs: Any) -> Any:
        with contextlib.ExitStack() as stack:
            for fmap in (getattr(distillation, "features", None) or {}).values():
                if hasattr(fmap, "memoized"):
                    stack.enter_context(fmap.memoized())
            return fn(distillation, *args, **kwargs)

    return wrapper


@_features_memoized
def run_analyses(
    distillation: Any,
    *,
    robustness: bool = True,
    attributions: bool = True,
    n_examples: int = 6,
    seed: int = 0,
    sigmas: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0),
    epsilons: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2),
    method: str = "IntegratedGradients",
    n_steps: int = 32,
    max_robustness_samples: int = 1000,
) -> Analyses:
    """Fidelity, robustness and attribution analyses of every surrogate, on the test split.

    Affordable inside ``explain-distill run``: attributions on ``n_examples`` examples only,
    robustness on at most ``max_robustness_samples`` test samples, everything batched.
    """
    from .._validation import check_int

    n_examples = check_int(n_examples, "n_examples", low=1)
    d = distillation.dataset
    teacher = distillation.teacher
    X, y = d.X_test, d.y_test
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    P = teacher.predict_proba(X)
    check = getattr(distillation, "teacher_check", None)  # distill ran it; a run saved before it did has none
    if check is None:
        check = teacher_check(teacher, d, teacher_pred=P.argmax(axis=1), seed=seed)
    timings["teacher_check"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    front = frontier_report(distillation, teacher_pred=P.argmax(axis=1))
    if front is not None:
        timings["frontier"] = time.perf_counter() - t0
        logger.info("frontier: %s", front["verdict"])
    t0 = time.perf_counter()
    X_raw = d.inverse_transform(X) if getattr(d, "scaling", None) else None  # what the user reads: raw units
    fid: dict[str, FidelityReport] = {}
    bar = progress(len(distillation.surrogates) + 3, "analyses", unit="step")
    for name, est in distillation.surrogates.items():
        bar.update(1)
        fid[name] = fidelity_report(
            P,
            est.predict_proba(X),
            y_true=y,
            class_names=d.class_names,
            X=X,
            view=_tree_view(est, d),
            name=name,
            params=int(getattr(est, "n_params_", 0)) or None,
            teacher_params=teacher.n_params,
            feature_names=d.feature_names,
            X_raw=X_raw,
        )
    timings["fidelity"] = time.perf_counter() - t0

    bar.update(1)
    rob = None
    if robustness:
        t0 = time.perf_counter()
        sub = np.arange(len(X))
        if len(X) > max_robustness_samples:
            sub = np.sort(np.random.default_rng(seed).choice(len(X), max_robustness_samples, replace=False))
        rob = robustness_report(teacher, distillation.surrogates, X[sub], y[sub], sigmas=sigmas, epsilons=epsilons, seed=seed)
        timings["robustness"] = time.perf_counter() - t0

    bar.update(1)
    att = None
    if attributions:
        t0 = time.perf_counter()
        idx = _pick_examples(P.argmax(axis=1), n_examples, seed)
        att = attribution_report(
            teacher,
            distillation.surrogates,
            X[idx],
            indices=idx,
            class_names=d.class_names,
            method=method,  # type: ignore[arg-type]
            n_steps=n_steps,
            seed=seed,
        )
        timings["attribution"] = time.perf_counter() - t0

    bar.update(1)
    t0 = time.perf_counter()
    pat = pattern_analysis(distillation)
    bar.close()
    if pat is not None:
        timings["patterns"] = time.perf_counter() - t0
    logger.info("analyses done: %s", {k: round(v, 2) for k, v in timings.items()})
    return Analyses(fidelity=fid, robustness=rob, attribution=att, timings=timings, teacher=check, frontier=front,
                    patterns=pat)
