"""The fidelity-size frontier: how faithful each readable family is at each size, and the
smallest model that clears the bar.

``distill`` fits every readable family's ladder of sizes once (``Distillation.ladders``) and
chooses, on a validation split carved from the training rows, the smallest size whose 95%
Wilson interval clears ``min_agreement`` (``Distillation.frontier``).  This module fits nothing:
it scores the fitted ladder on the held-out test split and returns plain data for metrics.json
(``analysis.frontier``), the plot and the report.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._gate import Gate, agreement_stats, decide
from .._stats import wilson_interval
from ..distill.plan import readable_at

__all__ = ["frontier_report", "frontier_verdict"]


def frontier_report(distillation: Any, *, teacher_pred: np.ndarray | None = None) -> dict[str, Any] | None:
    """Per readable family, every size on its ladder with its test fidelity and interval.

    Returns None when the run has no ladder (``distill(..., frontier=False)``, or a run loaded
    from disk, whose frontier lives in its metrics.json).  Otherwise::

        {"min_agreement": float | None,
         "validation": {"n", "source"},
         "families": {name: [{"size", "leaves" | "rules" | "terms": size, "param", "param_value",
                              "fidelity", "interval", "accuracy", "validation",
                              "validation_interval", "chosen"}, ...]},   # smallest first
         "chosen": {name: index | None},
         "verdict": str}
    """
    ladders = getattr(distillation, "ladders", None) or {}
    meta = getattr(distillation, "frontier", None) or {}
    if not ladders or not meta.get("families"):
        return None
    d = distillation.dataset
    X, y = d.X_test, d.y_test
    t_pred = distillation.teacher.predict(X) if teacher_pred is None else np.asarray(teacher_pred)
    families: dict[str, list[dict[str, Any]]] = {}
    chosen: dict[str, int | None] = {}
    bar = meta.get("min_agreement")
    gate = None if bar is None else Gate(bar, gate=getattr(distillation, "gate", "per_class"),  # type: ignore[arg-type]
                                         min_class_agreement=getattr(distillation, "min_class_agreement", 0.5))
    for name, models in ladders.items():
        info = meta["families"][name]
        unit = info["unit"]
        rows = []
        for i, (est, rung) in enumerate(zip(models, info["rungs"])):
            pred = np.asarray(est.predict(X))
            agree = int(np.sum(pred == t_pred))
            lo, hi = wilson_interval(agree, len(X))
            verdict = (decide(agreement_stats(t_pred, pred, d.n_classes), gate, d.class_names)
                       if gate is not None else None)
            rows.append({
                "size": int(rung["size"]),
                unit: int(rung["size"]),
                "param": info["param"],
                "param_value": rung["param_value"],
                "fidelity": agree / len(X),
                "interval": [lo, hi],
                "accuracy": float(np.mean(pred == y)),
                "validation": rung["validation"],
                "validation_interval": list(rung["validation_interval"]),
                "validation_passed": rung.get("passed"),
                "validation_reason": rung.get("reason"),
                "readable": readable_at(name, size=int(rung["size"])),
                "passed": None if verdict is None else verdict.passed,
                "reason": None if verdict is None else verdict.reason,
                "chosen": i == info["chosen"],
            })
        families[name] = rows
        chosen[name] = info["chosen"]
    out = {
        "min_agreement": meta.get("min_agreement"),
        "validation": {k: v for k, v in (meta.get("validation") or {}).items() if k != "rows"},
        "families": families,
        "chosen": chosen,
    }
    out["verdict"] = frontier_verdict(out)
    return out


def frontier_verdict(frontier: dict[str, Any]) -> str:
    """One sentence on what the frontier found, for the log, the report and ``audit``."""
    bar = frontier.get("min_agreement")
    families = frontier.get("families") or {}
    if not families:
        return "No readable family was fitted at several sizes."
    if bar is None:
        best = {n: max(rows, key=lambda r: r["fidelity"]) for n, rows in families.items() if rows}
        parts = [f"{n} {r['fidelity']:.3f} at {r['size']} {_unit(r)}" for n, r in best.items()]
        return "No bar set (--min-agreement); the most faithful size of each readable family: " + "; ".join(parts) + "."
    picks, unreadable = [], []
    for name, rows in families.items():
        idx = (frontier.get("chosen") or {}).get(name)
        if idx is not None:
            r = rows[idx]
            (picks if readable_at(name, size=r["size"]) else unreadable).append((r["size"], name, r))
    if not picks:
        text = (
            f"No readable model clears {bar:.3f}: at every readable size (at most 64 leaves or terms, 30 rules), each "
            f"readable family's validation interval falls below the bar or leaves a class unreproduced. Use a "
            f"non-readable surrogate (logistic, student) with care, or lower the bar."
        )
        n_val = (frontier.get("validation") or {}).get("n")
        if n_val:
            ceiling = wilson_interval(int(n_val), int(n_val))[0]
            if ceiling < bar:
                text += (
                    f" With {n_val} validation rows even perfect agreement has a lower end of {ceiling:.3f}: "
                    f"more data is needed to certify {bar:.3f}."
                )
        return text + _unreadable_words(unreadable)
    picks.sort(key=lambda t: (t[0], -t[2]["fidelity"]))
    size, name, r = picks[0]
    lo, hi = r["interval"]
    others = ", ".join(f"{n} at {p['size']} {_unit(p)}" for _, n, p in picks[1:])
    text = (
        f"The smallest readable model that clears {bar:.3f} on the validation split is {name} with {size} "
        f"{_unit(r)}: test fidelity {r['fidelity']:.3f} [{lo:.3f}, {hi:.3f}]"
    )
    if r.get("passed") is False:
        text += (f", which does not pass on the test split ({r['reason']}): the choice is not certified there; "
                 f"a larger size or more validation rows are needed.")
    elif r.get("passed"):
        text += ", and it passes on the test split too."
    else:
        text += "."
    if others:
        text += f" Also clearing it: {others}."
    missing = [n for n in families if (frontier.get("chosen") or {}).get(n) is None]
    if missing:
        text += f" No size of {', '.join(missing)} clears it."
    return text + _unreadable_words(unreadable)


def _unreadable_words(rows: list[tuple[int, str, dict[str, Any]]]) -> str:
    if not rows:
        return ""
    return (" Clearing it but not read as an explanation: "
            + ", ".join(f"{n} at {p['size']} {_unit(p)}" for _, n, p in sorted(rows, key=lambda t: t[0])) + ".")


def _unit(row: dict[str, Any]) -> str:
    for unit in ("leaves", "rules", "terms", "nodes"):
        if unit in row:
            return unit
    return "size"
