"""Stage 5 of ``distill``: every readable family at a ladder of sizes, and the smallest faithful one.

:func:`fit_ladder` gets a family's models from small to large, fitting as little as possible (a
family with ``ladder_`` reads its smaller sizes off one fit).  :func:`score_rungs` measures each
on the validation split held out of the training rows and holds it to the run's gate
(:func:`explain_distill._gate.decide`: the bar on the lower end of the 95% interval, and every
sizeable teacher class reproduced); :func:`choose_size` picks the smallest that passes; :func:`fit_ladders` does this for every family, keeps the
chosen model as the family's surrogate (unless the user set its size) and returns the frontier
as plain data.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._gate import Gate, agreement_stats, decide
from .._progress import progress
from .._stats import wilson_interval
from ..surrogates import SURROGATES
from .fitting import Fitter
from .plan import VALIDATION_FRACTION, split_name

logger = logging.getLogger(__name__)

__all__ = ["fit_ladder", "score_rungs", "choose_size", "fit_ladders"]


def fit_ladder(fitter: Fitter, name: str, main: Any, sizes: Sequence[int]) -> list[Any]:
    """Every size of ``name``'s ladder, smallest first, fitting as little as possible.

    A family with ``ladder_`` reads its smaller sizes off one fit (the main surrogate itself when
    it is already that large and configured for it); the others fit once per size.  Sizes that
    the data cannot reach (a tree that stops growing) collapse into one.
    """
    label = split_name(name)[1]
    cls = type(main)
    param = cls.size_param
    overrides = dict(getattr(cls, "ladder_params", {}) or {})
    if hasattr(main, "ladder_"):
        big_size = max(sizes)
        current = main.get_params().get(param)
        compatible = all(main.get_params().get(k) == v for k, v in overrides.items())
        big = main if (current is not None and current >= big_size and compatible) else fitter.fit(
            fitter.configured(name, {**overrides, param: big_size}), label
        )
        models = big.ladder_(sizes)
    else:
        models = [fitter.fit(fitter.configured(name, {**overrides, param: s}), label) for s in sizes]
    out, seen = [], set()
    for est in models:
        if est.size_ not in seen:
            seen.add(est.size_)
            out.append(est)
    return sorted(out, key=lambda e: e.size_)


def score_rungs(models: Sequence[Any], cores: Sequence[Any], param: str, X_val: np.ndarray,
                t_val: np.ndarray, gate: Gate | None = None, class_names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Per rung: ``param_value``, ``size``, validation agreement with the teacher and its 95% interval,
    kappa and balanced agreement, and (with a ``gate``) whether it passes and why."""
    rungs = []
    k = len(class_names) if class_names is not None else int(max(t_val.max(initial=0), 0) + 1)
    for est, core in zip(models, cores):
        pred = np.asarray(est.predict(X_val)) if len(X_val) else np.zeros(0, dtype=np.int64)
        stats = agreement_stats(t_val, pred, max(k, int(pred.max(initial=0)) + 1))
        rung = {
            "param_value": core.get_params()[param],
            "size": int(core.size_),
            "validation": stats.agreement if len(X_val) else None,
            "validation_interval": list(stats.interval),
            "validation_kappa": stats.kappa,
            "validation_balanced": stats.balanced,
            "passed": None,
            "reason": None,
        }
        if gate is not None:
            verdict = decide(stats, gate, class_names)
            rung["passed"], rung["reason"] = verdict.passed, verdict.reason
        rungs.append(rung)
    return rungs


def choose_size(rungs: Sequence[dict[str, Any]]) -> int | None:
    """Index of the smallest rung that passes the gate on the validation split (None: none does, or no bar)."""
    passing = [i for i, r in enumerate(rungs) if r.get("passed")]
    return passing[0] if passing else None


def _log_choice(name: str, cls: type, info: dict[str, Any], user: dict[str, Any], min_agreement: float | None,
                n_val: int) -> None:
    chosen, rungs = info["chosen"], info["rungs"]
    if chosen is not None:
        r = rungs[chosen]
        if info["explicit"]:
            size_keys = {cls.size_param, *dict(getattr(cls, "ladder_params", {}) or {})}
            logger.info("%s: its size was set by you (%s), so it is kept; the smallest size clearing %.3f on "
                        "validation is %d %s", name, {k: user[k] for k in size_keys & set(user)},
                        min_agreement, r["size"], cls.size_unit)
        else:
            logger.info(
                "%s: the smallest model clearing %.3f is %d %s (%s=%s): validation agreement %.3f, "
                "95%% interval [%.3f, %.3f] on %d held-out training rows",
                name, min_agreement, r["size"], cls.size_unit, cls.size_param, r["param_value"],
                r["validation"], *r["validation_interval"], n_val,
            )
    elif min_agreement is not None:
        best = max(rungs, key=lambda r: r["validation_interval"][0])
        logger.warning(
            "%s: no size on its ladder clears %.3f on validation (best: %d %s: %s); keeping the configured model",
            name, min_agreement, best["size"], cls.size_unit, best["reason"],
        )


def _warn_small_validation(n_val: int, bar: float | None) -> None:
    """Say so when the validation split is too small for any size to clear the bar, whatever it does."""
    if bar is None:
        return
    ceiling = wilson_interval(n_val, n_val)[0] if n_val else 0.0
    if ceiling < bar:
        need = next((n for n in range(max(n_val, 1), 100000) if wilson_interval(n, n)[0] >= bar), None)
        logger.warning(
            "the validation split holds %d rows: even perfect agreement has a 95%% lower end of %.3f, below the bar "
            "%.3f, so no size can be chosen%s; use more data or a lower bar", n_val, ceiling, bar,
            f" (at least {need} validation rows are needed, {int(need / VALIDATION_FRACTION)} training rows)" if need else "",
        )


def fit_ladders(fitter: Fitter, fitted: dict[str, Any], X_val: np.ndarray) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """The ladder of every readable family of the plan and the size chosen on the validation split.

    Replaces a family's surrogate in ``fitted`` by its chosen rung (unless the user set its size).
    Returns ``(ladders, choice)``: per family its models smallest first, and ``{"unit", "param",
    "rungs", "chosen", "explicit"}``.
    """
    plan = fitter.plan
    ladders: dict[str, list[Any]] = {}
    choice: dict[str, Any] = {}
    if not plan.families:
        return ladders, choice
    t1 = time.perf_counter()
    _warn_small_validation(len(X_val), plan.min_agreement)
    t_val = plan.teacher.predict(X_val) if len(X_val) else np.zeros(0, dtype=np.int64)
    bar = progress(len(plan.families), "ladders", unit="family")
    for name in plan.families:
        bar.update(1)
        family, label = split_name(name)
        cls = SURROGATES[family]
        main = fitter.shared.get(name) or (fitted[name].estimator if label is not None else fitted[name])
        t2 = time.perf_counter()
        inner = fit_ladder(fitter, name, main, plan.sizes(name))
        fitter.timings[f"ladder_{name}_s"] = time.perf_counter() - t2
        ladders[name] = [fitter.wrap(fitter.name(e, label), name) for e in inner]
        rungs = score_rungs(ladders[name], inner, cls.size_param, X_val, t_val, plan.gate,
                            fitter.dataset.class_names)
        user = plan.params.get(name, {})
        size_keys = {cls.size_param, *dict(getattr(cls, "ladder_params", {}) or {})}
        info = {"unit": cls.size_unit, "param": cls.size_param, "rungs": rungs,
                "chosen": choose_size(rungs), "explicit": bool(size_keys & set(user))}
        choice[name] = info
        if info["chosen"] is not None and not info["explicit"]:
            fitted[name] = ladders[name][info["chosen"]]
        _log_choice(name, cls, info, user, plan.min_agreement, len(X_val))
    bar.close()
    fitter.timings["ladders_s"] = time.perf_counter() - t1
    logger.info("fitted the ladders of %s in %.2fs (%s)", ", ".join(plan.families), fitter.timings["ladders_s"],
                ", ".join(f"{n} {fitter.timings[f'ladder_{n}_s']:.1f}s" for n in plan.families))
    return ladders, choice
