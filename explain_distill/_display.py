"""Short summaries for people: one-screen ``repr`` text and escaped HTML tables for notebooks.

Used by the ``__repr__`` / ``_repr_html_`` of Dataset, Teacher, TransferSet and Distillation.
Arrays are summarised (shape and dtype), never printed; every user string is HTML-escaped.
Like ``_validation`` this module imports nothing of ours, so every stage may use it; it takes
plain data (numbers, strings, dicts), never the objects themselves.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["array_summary", "attr_or_key", "distillation_html", "distillation_text", "names_preview", "number"]

#: The bar ``Distillation``'s notebook display audits against: ``explain_distill.audit``'s default.
DEFAULT_MIN_AGREEMENT = 0.95


def attr_or_key(obj: Any, name: str, default: Any = None) -> Any:
    """Attribute or key ``name`` of a dataclass or a dict (analyses arrive as either: fresh, or read
    back from metrics.json); ``default`` when ``obj`` is None or lacks it."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def array_summary(a: Any) -> str:
    """``"(1347, 64) float32"`` for an array, its type name otherwise."""
    shape = getattr(a, "shape", None)
    if shape is None:
        return type(a).__name__
    return f"{tuple(int(s) for s in shape)} {getattr(a, 'dtype', '')}".rstrip()


def names_preview(names: Sequence[Any], limit: int = 4) -> str:
    """``"['a', 'b', 'c', ... +61 more]"``: the first ``limit`` names of a list."""
    names = [str(n) for n in names]
    shown = ", ".join(repr(n if len(n) <= 40 else n[:39] + "…") for n in names[:limit])
    more = f", ... +{len(names) - limit} more" if len(names) > limit else ""
    return f"[{shown}{more}]"


def number(v: Any, digits: int = 3) -> str:
    """A metric for people: ``0.947``, ``12,345``, ``n/a`` for None or NaN."""
    if v is None or isinstance(v, bool):
        return "n/a" if v is None else str(v)
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 1000):
        return f"{int(v):,}"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(f):
        return "n/a"
    return f"{f:.{digits}f}"


def _verdict(row: Mapping[str, Any], bar: float) -> str:
    """"pass" / "fail" from the row's gate verdict when it has one, else from its lower end against ``bar``."""
    passed = row.get("passed")
    if passed is not None:
        return "pass" if passed else "fail"
    try:
        return "pass" if float(row.get("low")) >= bar else "fail"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "n/a"


def _why(row: Mapping[str, Any]) -> str:
    """A few words on a failed verdict: the class not reproduced, or the bar."""
    if row.get("passed") is not False:
        return ""
    failed = row.get("failed_classes") or []
    if failed:
        return f"class {failed[0]!r} not reproduced" + (f" (+{len(failed) - 1} more)" if len(failed) > 1 else "")
    return "below the bar"


def _teacher_line(teacher_warning: str | None, teacher_check: Mapping[str, Any] | None) -> str | None:
    if teacher_warning:
        return f"WARNING: {teacher_warning}"
    if teacher_check:
        logistic = teacher_check.get("logistic")
        return (f"teacher check: test accuracy {number(teacher_check.get('teacher_accuracy'))} beats always predicting "
                f"{str(teacher_check.get('majority_class'))!r} ({number(teacher_check.get('majority'))})"
                + (f" and is near or above a logistic regression ({number(logistic)})" if logistic is not None else ""))
    return None


def _gate_words(bar: float, gate: str) -> str:
    if gate == "agreement":
        return f"bar {bar:g} on the lower end of the 95% interval of agreement (agreement-only gate)"
    return (f"bar {bar:g} on the lower end of the 95% interval of agreement, and every class the teacher predicts on "
            f"at least 10 rows reproduced")


def _header(dataset: Mapping[str, Any], teacher: Mapping[str, Any], temperature: float, transfer: Mapping[str, int] | None) -> str:
    transfer = {k: int(v) for k, v in (transfer or {}).items() if v}
    rows = f"{sum(transfer.values()):,} rows" if transfer else "not recorded"
    parts = [
        f"data {dataset.get('name', 'data')!s} ({dataset.get('n_classes', '?')} classes, {dataset.get('n_features', '?')} features, "
        f"test n = {dataset.get('n_test', '?')})",
        f"teacher accuracy {number(teacher.get('accuracy'))} ({number(teacher.get('params'))} parameters)",
        f"T = {temperature:g}",
        f"transfer set {rows}" + (f" ({', '.join(f'{k} {v:,}' for k, v in transfer.items())})" if transfer and len(transfer) > 1 else ""),
    ]
    return "; ".join(parts)


def distillation_text(
    rows: Sequence[Mapping[str, Any]],
    *,
    dataset: Mapping[str, Any],
    teacher: Mapping[str, Any],
    temperature: float,
    transfer: Mapping[str, int] | None = None,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    gate: str = "per_class",
    teacher_warning: str | None = None,
    teacher_check: Mapping[str, Any] | None = None,
    constant: Mapping[str, Any] | None = None,
) -> str:
    """A few lines: the run, the teacher check, one line per surrogate (fidelity with its interval, kappa,
    balanced agreement, accuracy, size, readable or not, the verdict at the run's bar), then the bar."""
    width = max([len(str(r["surrogate"])) for r in rows] + [9])
    lines = [f"Distillation({_header(dataset, teacher, temperature, transfer)})"]
    check = _teacher_line(teacher_warning, teacher_check)
    if check:
        lines.append(f"  {check}")
    for r in rows:
        verdict = _verdict(r, min_agreement)
        why = _why(r)
        lines.append(
            f"  {str(r['surrogate']):<{width}}  fidelity {number(r['fidelity'])} [{number(r['low'])}, {number(r['high'])}]"
            f"  kappa {number(r.get('kappa'))}  balanced {number(r.get('balanced'))}  accuracy {number(r['accuracy'])}"
            f"  size {number(r['params'])}{'  readable' if r.get('readable') else ''}  {verdict.upper()}"
            + (f": {why}" if why else "")
        )
    tail = f"  {_gate_words(min_agreement, gate)}"
    if constant:
        tail += (f"; always predicting the teacher's most frequent class {str(constant.get('class'))!r} "
                 f"agrees on {number(constant.get('agreement'))}")
    lines.append(tail)
    return "\n".join(lines)


def distillation_html(
    rows: Sequence[Mapping[str, Any]],
    *,
    dataset: Mapping[str, Any],
    teacher: Mapping[str, Any],
    temperature: float,
    transfer: Mapping[str, int] | None = None,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    gate: str = "per_class",
    teacher_warning: str | None = None,
    teacher_check: Mapping[str, Any] | None = None,
    constant: Mapping[str, Any] | None = None,
) -> str:
    """An HTML table for a notebook: the teacher check first, then per surrogate fidelity with its 95%
    interval, kappa, balanced agreement, accuracy, size, whether it is readable, and the verdict.

    The verdict is :func:`explain_distill.audit`'s rule on the same test split at the run's bar
    (``min_agreement``) and gate: the row's own verdict when it carries one (``passed``).
    """
    e = html.escape
    head = ("surrogate", "fidelity", "95% interval", "kappa", "balanced", "accuracy", "size", "readable",
            f"audit (bar {min_agreement:g})")
    body = []
    for r in rows:
        verdict = _verdict(r, min_agreement)
        color = {"pass": "#1a7f37", "fail": "#cf222e"}.get(verdict, "#57606a")
        why = _why(r)
        body.append(
            "<tr>"
            f"<td style='text-align:left'><b>{e(str(r['surrogate']))}</b></td>"
            f"<td>{number(r['fidelity'])}</td>"
            f"<td>[{number(r['low'])}, {number(r['high'])}]</td>"
            f"<td>{number(r.get('kappa'))}</td>"
            f"<td>{number(r.get('balanced'))}</td>"
            f"<td>{number(r['accuracy'])}</td>"
            f"<td>{number(r['params'])}</td>"
            f"<td>{'yes' if r.get('readable') else 'no'}</td>"
            f"<td class='audit-{verdict}' style='color:{color};font-weight:bold' title='{e(str(r.get('reason') or ''))}'>"
            f"{verdict}{(': ' + e(why)) if why else ''}</td>"
            "</tr>"
        )
    check = _teacher_line(teacher_warning, teacher_check)
    warn = (f"<p style='color:#cf222e;font-weight:bold'>{e(check)}</p>" if teacher_warning
            else f"<p>{e(check)}</p>" if check else "")
    const = (f" Always predicting the teacher's most frequent class {e(repr(str(constant.get('class'))))} agrees on "
             f"{number(constant.get('agreement'))} of the test rows." if constant else "")
    return (
        "<div class='explain-distill-distillation'>"
        f"<p><b>Distillation</b>: {e(_header(dataset, teacher, temperature, transfer))}</p>"
        + warn +
        "<table>"
        "<thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead>"
        "<tbody>" + "".join(body) + "</tbody>"
        "</table>"
        "<p style='font-size:smaller'>Fidelity: top-1 agreement with the teacher on the test split, with its 95% "
        "Wilson interval; kappa: the same agreement corrected for chance (0 for a constant); balanced: the mean over "
        f"the teacher's classes of the share of each class reproduced.{const} Audit: {e(_gate_words(min_agreement, gate))} "
        "(as <code>ed.audit(result, name)</code>). Readable: a tree, rule list, sum of trees or additive model "
        "small enough to read (at most 64 leaves or terms, 30 rules).</p>"
        "</div>"
    )
