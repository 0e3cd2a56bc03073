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


def _verdict(low: Any, bar: float) -> str:
    try:
        return "pass" if float(low) >= bar else "fail"
    except (TypeError, ValueError):
        return "n/a"


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
) -> str:
    """A few lines: the run, then one line per surrogate (fidelity with its interval, accuracy, size)."""
    width = max([len(str(r["surrogate"])) for r in rows] + [9])
    lines = [f"Distillation({_header(dataset, teacher, temperature, transfer)})"]
    for r in rows:
        lines.append(
            f"  {str(r['surrogate']):<{width}}  fidelity {number(r['fidelity'])} [{number(r['low'])}, {number(r['high'])}]"
            f"  accuracy {number(r['accuracy'])}  size {number(r['params'])}"
        )
    return "\n".join(lines)


def distillation_html(
    rows: Sequence[Mapping[str, Any]],
    *,
    dataset: Mapping[str, Any],
    teacher: Mapping[str, Any],
    temperature: float,
    transfer: Mapping[str, int] | None = None,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
) -> str:
    """An HTML table for a notebook: fidelity with its 95% interval, accuracy, size and the audit verdict.

    The verdict is :func:`explain_distill.audit`'s rule on the same test split: pass when the
    lower end of the interval is at least ``min_agreement``.
    """
    e = html.escape
    head = ("surrogate", "fidelity", "95% interval", "accuracy", "size", f"audit (low &ge; {min_agreement:g})")
    body = []
    for r in rows:
        verdict = _verdict(r.get("low"), min_agreement)
        color = {"pass": "#1a7f37", "fail": "#cf222e"}.get(verdict, "#57606a")
        body.append(
            "<tr>"
            f"<td style='text-align:left'><b>{e(str(r['surrogate']))}</b></td>"
            f"<td>{number(r['fidelity'])}</td>"
            f"<td>[{number(r['low'])}, {number(r['high'])}]</td>"
            f"<td>{number(r['accuracy'])}</td>"
            f"<td>{number(r['params'])}</td>"
            f"<td class='audit-{verdict}' style='color:{color};font-weight:bold'>{verdict}</td>"
            "</tr>"
        )
    return (
        "<div class='explain-distill-distillation'>"
        f"<p><b>Distillation</b>: {e(_header(dataset, teacher, temperature, transfer))}</p>"
        "<table>"
        "<thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead>"
        "<tbody>" + "".join(body) + "</tbody>"
        "</table>"
        "<p style='font-size:smaller'>Fidelity: top-1 agreement with the teacher on the test split, with its 95% "
        f"Wilson interval. Audit: passes when the interval's lower end is at least {min_agreement:g} (as "
        "<code>ed.audit(teacher, surrogate, X_test, min_agreement=...)</code>).</p>"
        "</div>"
    )
