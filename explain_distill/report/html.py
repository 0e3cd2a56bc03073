"""Lay out what ``distill``, ``analysis`` and ``viz`` produce as one self-contained HTML file.

jinja2 with ``autoescape=True`` (``select_autoescape`` would not escape our ``.html.j2``
templates): every user string (feature and class names, file names) is escaped; only SVG we
generated ourselves is marked safe.  A Content-Security-Policy forbids scripts and any network
request; images are inline SVG or data URIs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import jinja2

from .._version import __version__
from ..distill import Distillation

logger = logging.getLogger(__name__)

__all__ = ["build_report", "render_html"]

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; base-uri 'none'; form-action 'none'"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("explain_distill.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v: "n/a" if v is None or v != v else f"{100 * v:.1f}%"
    env.filters["num"] = lambda v, d=3: "n/a" if v is None or v != v else f"{v:.{d}f}"
    env.filters["intcomma"] = lambda v: f"{int(v):,}"
    return env


def render_html(context: dict[str, Any]) -> str:
    """Render the report template with ``context`` (a plain dict)."""
    return _environment().get_template("report.html.j2").render(csp=CSP, version=__version__, **context)


def report_context(distillation: Distillation, *, run_seconds: float | None = None) -> dict[str, Any]:
    d = distillation
    if not d.metrics:
        d.evaluate()
    rows = []
    for name, m in d.metrics["surrogates"].items():
        rows.append({"name": name, **m})
    return {
        "title": f"explain_distill report: {d.dataset.name}",
        "dataset": d.dataset.describe(),
        "teacher": {**d.metrics["teacher"], "history": d.teacher.history, "arch": (d.teacher.config or {}).get("arch", "user module")},
        "surrogates": rows,
        "temperature": d.temperature,
        "seed": d.seed,
        "info": d.info,
        "run_seconds": run_seconds,
    }


def build_report(distillation: Distillation, out_dir: str | os.PathLike, *, run_seconds: float | None = None) -> Path:
    """Write ``out_dir/index.html`` for ``distillation`` and return its path."""
    if not isinstance(distillation, Distillation):
        raise TypeError(f"build_report needs a Distillation (from ed.distill or ed.load); received {type(distillation).__name__}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    html = render_html(report_context(distillation, run_seconds=run_seconds))
    path = out / "index.html"
    path.write_text(html, encoding="utf-8")
    logger.info("report written to %s (%d bytes)", path, len(html.encode()))
    return path
