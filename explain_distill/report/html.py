"""Lay out what ``distill``, ``analysis`` and ``viz`` produce as one self-contained HTML file.

jinja2 with ``autoescape=True`` (``select_autoescape`` would not escape our ``.html.j2``
templates): every user string (feature and class names, file names) is escaped.  Figures are
embedded as ``data:`` URIs in ``<img>`` (an SVG shown through ``<img>`` never runs script), so
nothing is marked safe but the numbers we format.  A Content-Security-Policy forbids scripts
and every network request; the file opens offline with nothing beside it.

Sections whose data is absent (no soft tree, no student, no analyses) say "not computed"
instead of failing.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from .._display import attr_or_key as _get
from .._io import check_output_dir, record_written
from .._validation import check_fraction
from .._version import __version__
from ..distill import Distillation

logger = logging.getLogger(__name__)

__all__ = ["build_report", "render_html", "report_context", "write_report"]

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; base-uri 'none'; form-action 'none'"

#: How many levels of a tree are drawn (the highlighted path is always drawn in full).
TREE_DEPTH_SHOWN = {"axis": 3, "oblique": 3}
_MAX_RULES = 60
_MAX_LEAF_GLYPHS = 32
_MAX_TABLE_FEATURES = 12
_MAX_DISAGREEMENTS = 12
_N_EXAMPLES = 3


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _pct(v: Any) -> str:
    f = _finite(v)
    return "n/a" if f is None else f"{100 * f:.1f}%"


def _num(v: Any, d: int = 3) -> str:
    f = _finite(v)
    if f is None:
        return "n/a"
    if f != 0 and (abs(f) >= 1e5 or abs(f) < 10 ** (-d)):
        return f"{f:.{max(d - 1, 1)}e}"
    return f"{f:.{d}f}"


def _intcomma(v: Any) -> str:
    f = _finite(v)
    return "n/a" if f is None else f"{int(f):,}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("explain_distill.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = _pct
    env.filters["num"] = _num
    env.filters["intcomma"] = _intcomma
    return env


def render_html(context: dict[str, Any]) -> str:
    """Render the report template with ``context`` (a plain dict, see :func:`report_context`)."""
    return _environment().get_template("report.html.j2").render(csp=CSP, version=__version__, **context)


# ------------------------------------------------------------------------------ small helpers
def _uri(fig: Any) -> str:
    from ..viz.plots import figure_to_data_uri

    return figure_to_data_uri(fig)


def _figure(what: str, build: Any, *args: Any, **kwargs: Any) -> dict[str, str] | None:
    """Build and encode one figure; a drawing failure costs that figure, never the report."""
    try:
        return {"uri": _uri(build(*args, **kwargs)), "alt": what}
    except Exception as exc:  # noqa: BLE001 - one bad figure must not lose the whole report
        logger.warning("could not draw %s: %s: %s", what, type(exc).__name__, exc)
        return None


def _class(names: Sequence[str], i: Any) -> str:
    try:
        return str(names[int(i)])
    except (IndexError, TypeError, ValueError):
        return str(i)


def _interval(v: Any) -> tuple[float | None, float | None]:
    if v is None:
        return None, None
    try:
        lo, hi = v
    except (TypeError, ValueError):
        return None, None
    return _finite(lo), _finite(hi)


# ------------------------------------------------------------------------------ sections
def _gate_verdict(m: Mapping[str, Any], min_agreement: float | None, gate: str, class_names: Sequence[str]) -> Any:
    """The gate's verdict on a metrics row at ``min_agreement`` (None without a bar)."""
    from .._gate import Gate, agreement_from, decide

    if min_agreement is None:
        return None
    saved = m.get("gate") or {}
    if saved.get("bar") == min_agreement and saved.get("gate") == gate:
        return saved
    stats = agreement_from(m)
    if stats is None:
        lo = _interval(m.get("fidelity_interval"))[0]
        return {"passed": lo is not None and lo >= min_agreement, "reason": "", "failed_classes": []}
    return decide(stats, Gate(min_agreement, gate=gate), list(class_names)).to_json()  # type: ignore[arg-type]


def _summary(d: Distillation, analyses: Any, min_agreement: float | None) -> list[dict[str, Any]]:
    from ..distill.plan import readable_at

    fid = _get(analyses, "fidelity", {}) or {}
    reasons = (_get(analyses, "reasons") or {}) if analyses is not None else {}
    rows = []
    for name, m in d.metrics["surrogates"].items():
        f = fid.get(name)
        lo, hi = _interval(_get(f, "interval") if f is not None else m.get("fidelity_interval"))
        agreement = _get(f, "agreement") if f is not None else m.get("fidelity")
        gate = _gate_verdict(m, min_agreement, getattr(d, "gate", "per_class"), d.dataset.class_names)
        rows.append({
            "name": name,
            "accuracy": m.get("accuracy"),
            "fidelity": agreement,
            "low": lo,
            "high": hi,
            "kappa": m.get("kappa"),
            "kappa_interval": m.get("kappa_interval"),
            "balanced": m.get("balanced_agreement"),
            "balanced_interval": m.get("balanced_interval"),
            "constant": m.get("constant_baseline"),
            "readable": readable_at(name, d.surrogates.get(name)),
            "params": m.get("params"),
            "verdict": None if gate is None else ("pass" if gate["passed"] else "fail"),
            "verdict_reason": None if gate is None else gate.get("reason"),
            "failed_classes": [] if gate is None else gate.get("failed_classes") or [],
            "kl": _get(f, "kl"),
            "js": _get(f, "jensen_shannon"),
            "reasons": reasons.get(name),
        })
    return rows


def _tabular_cases(X: np.ndarray, feature_names: Sequence[str], headers: list[str]) -> dict[str, Any]:
    d = X.shape[1]
    cols = list(range(min(d, _MAX_TABLE_FEATURES)))
    return {
        "headers": headers,
        "rows": [{"feature": feature_names[j], "values": [_num(X[i, j], 2) for i in range(len(X))]} for j in cols],
        "more": d - len(cols),
    }


def _fidelity_section(d: Distillation, analyses: Any) -> list[dict[str, Any]]:
    from ..viz.plots import confusion_figure, inputs_figure

    fid = _get(analyses, "fidelity", {}) or {}
    ds = d.dataset
    out = []
    for name, f in fid.items():
        confusion = _get(f, "confusion")
        per_class = []
        for row in _get(f, "per_class", []) or []:
            lo, hi = _interval(row.get("interval"))
            per_class.append({"class": str(row.get("class")), "n": row.get("n"), "agreement": row.get("agreement"), "low": lo, "high": hi})
        leaves = []
        for row in (_get(f, "leaves") or [])[:8]:
            lo, hi = _interval(row.get("interval"))
            leaves.append({"leaf": row.get("leaf"), "rule": str(row.get("rule", "")), "coverage": row.get("coverage"),
                           "agreement": row.get("agreement"), "low": lo, "high": hi})
        dis = _get(f, "disagreements", {}) or {}
        idx = np.asarray(dis.get("indices", []), dtype=int).reshape(-1)
        t_cls = np.asarray(dis.get("teacher", []), dtype=int).reshape(-1)
        s_cls = np.asarray(dis.get("surrogate", []), dtype=int).reshape(-1)
        t_p = np.asarray(dis.get("teacher_proba", np.full(len(idx), np.nan)), dtype=float).reshape(-1)
        Xd = dis.get("X")
        cases = []
        for i in range(min(len(idx), _MAX_DISAGREEMENTS)):
            cases.append({
                "index": int(idx[i]),
                "source": ds.source_row("test", int(idx[i])),
                "teacher": _class(ds.class_names, t_cls[i]) if i < len(t_cls) else "?",
                "surrogate": _class(ds.class_names, s_cls[i]) if i < len(s_cls) else "?",
                "teacher_proba": t_p[i] if i < len(t_p) else None,
            })
        drawing, table = None, None
        if cases and Xd is not None:
            Xd = np.asarray(Xd, dtype=float)[: len(cases)]
            if ds.kind in ("image", "signal"):
                titles = [f"#{c['index']}: T {c['teacher']} / S {c['surrogate']}" for c in cases]
                drawing = _figure(f"disagreements of {name}", inputs_figure, Xd, input_shape=ds.input_shape,
                                  kind=ds.kind, titles=titles)
            else:
                table = _tabular_cases(Xd, ds.feature_names, [f"#{c['index']}" for c in cases])
        conf_fig = None
        if confusion is not None:
            conf_fig = _figure(f"teacher x {name} confusion", confusion_figure, confusion, ds.class_names,
                               title=f"teacher (rows) x {name} (columns)", xlabel=name)
        out.append({
            "name": name,
            "n": _get(f, "n"),
            "agreement": _get(f, "agreement"),
            "interval": _interval(_get(f, "interval")),
            "kl": _get(f, "kl"), "js": _get(f, "jensen_shannon"), "tv": _get(f, "total_variation"), "brier": _get(f, "brier"),
            "per_class": per_class,
            "confusion": conf_fig,
            "leaves": leaves,
            "n_disagreements": int(len(idx)),
            "cases": cases,
            "drawing": drawing,
            "table": table,
            "where": dis.get("where"),
        })
    return out


def _example_indices(d: Distillation, analyses: Any) -> list[int]:
    att = _get(analyses, "attribution")
    idx = _get(att, "indices")
    if idx is not None and len(idx):
        return [int(i) for i in np.asarray(idx).reshape(-1)[:_N_EXAMPLES]]
    return list(range(min(_N_EXAMPLES, len(d.dataset.X_test))))


def _tree_drawing(view: Any, highlight: list[int], title: str, x: Any = None) -> dict[str, Any]:
    """The tree drawn with the path of ``x`` (a test sample) highlighted; a soft tree's path nodes
    show their filters beside them and its path edges the filter response and P(right)."""
    from ..viz.plots import svg_to_data_uri
    from ..viz.trees import collapse

    depth = TREE_DEPTH_SHOWN[view.kind]
    if x is not None:
        view = view.highlight(x)
    drawing = view.draw(max_depth_shown=depth, title=title)
    dot = drawing.dot
    col = collapse(view, highlight=highlight, max_depth_shown=depth)
    svg, problem = drawing.svg(), drawing.problem
    return {
        "uri": svg_to_data_uri(svg) if svg is not None else None,
        "dot": dot if svg is None else None,
        "problem": problem,
        "n_nodes": len(view.nodes),
        "n_shown": len(col.shown),
        "n_hidden": col.n_hidden,
        "depth_shown": depth,
        "depth": view.depth,
        "shown": col.shown,
    }


def _views(d: Distillation) -> dict[str, Any]:
    """The tree view of every single-tree surrogate (named after the data set)."""
    from ..analysis.views import tree_view_of

    views = {}
    for name, est in d.surrogates.items():
        try:
            view = tree_view_of(est, d.dataset)
        except TypeError:
            continue
        except Exception as exc:  # noqa: BLE001 - a tree that cannot be viewed is reported, not fatal
            logger.warning("could not view surrogate %s as a tree: %s", name, exc)
            continue
        if view is not None:
            views[name] = view
    return views


def _examples_table(d: Distillation, name: str, view: Any, examples: list[int]) -> list[dict[str, Any]]:
    ds = d.dataset
    X = ds.X_test[examples]
    t_pred = d.teacher.predict(X)
    s_pred = np.asarray(d.surrogates[name].predict(X))
    est = d.surrogates[name]
    rows = []
    for j, i in enumerate(examples):
        path = view.path(X[j])
        steps = []
        for step in view.path_steps(X[j]):
            if "response" in step:
                steps.append(f"#{step['node']} {step['direction']} (response {_num(step['response'], 2)}, "
                             f"P(right) {_num(step['p_right'], 2)})")
            else:
                steps.append(f"#{step['node']} {step['direction']}")
        leaf = path[-1]
        rows.append({
            "index": int(i),
            "source": ds.source_row("test", int(i)),
            "truth": _class(ds.class_names, ds.y_test[i]),
            "teacher": _class(ds.class_names, t_pred[j]),
            "surrogate": _class(ds.class_names, s_pred[j]),
            "path": " → ".join(steps + [f"leaf #{leaf}"]),
            "rule": view.rule(leaf),
            "nodes": path,
        })
    return rows


def _soft_tree_sections(d: Distillation, views: dict[str, Any], examples: list[int]) -> list[dict[str, Any]]:
    """One section per soft tree (dense and sparse), in the run's order."""
    return [_soft_tree_section(d, name, views[name], examples) for name, v in views.items() if v.kind == "oblique"]


def _soft_tree_section(d: Distillation, name: str, view: Any, examples: list[int]) -> dict[str, Any]:
    from ..viz.plots import filters_figure, inputs_figure, leaf_distributions_figure

    ds = d.dataset
    rows = _examples_table(d, name, view, examples)
    highlight = rows[0]["nodes"] if rows else None
    drawing = _tree_drawing(view, highlight, f"{name}: max-probability path of test sample #{rows[0]['index']}" if rows else name,
                            x=ds.X_test[rows[0]["index"]] if rows else None)
    inner = [i for i in drawing["shown"] if not view.nodes[i].is_leaf]
    on_path = set(highlight or [])
    filters = None
    if inner:
        filters = _figure("soft tree filters", filters_figure, np.stack([view.nodes[i].weights for i in inner]),
                          node_ids=inner, input_shape=ds.input_shape, kind=ds.kind, feature_names=ds.feature_names,
                          highlight=sorted(on_path))
    leaf_ids = view.leaves()
    example_leaves = [r["nodes"][-1] for r in rows]
    if len(leaf_ids) > _MAX_LEAF_GLYPHS:
        counts = np.bincount(view.leaf_of(ds.X_test), minlength=len(view.nodes))
        busiest = sorted(leaf_ids, key=lambda i: (-counts[i], i))
        keep = list(dict.fromkeys(example_leaves + busiest))[:_MAX_LEAF_GLYPHS]
        leaf_ids = sorted(keep)
    leaves = _figure("soft tree leaf distributions", leaf_distributions_figure,
                     np.stack([view.nodes[i].value for i in leaf_ids]), class_names=ds.class_names,
                     leaf_ids=leaf_ids, highlight=example_leaves)
    example_fig = None
    if ds.kind in ("image", "signal") and rows:
        example_fig = _figure("example inputs", inputs_figure, ds.X_test[examples], input_shape=ds.input_shape,
                              kind=ds.kind, titles=[f"#{r['index']}: {r['truth']}" for r in rows])
    nonzero = [int(np.count_nonzero(nd.weights)) for nd in view.nodes if not nd.is_leaf]
    return {
        "name": name,
        "depth": view.depth,
        "n_leaves": len(view.leaves()),
        "nonzero_max": max(nonzero) if nonzero else 0,
        "nonzero_mean": float(np.mean(nonzero)) if nonzero else 0.0,
        "n_features": view.n_features,
        "drawing": drawing,
        "filters": filters,
        "leaves": leaves,
        "n_leaf_glyphs": len(leaf_ids),
        "examples": rows,
        "example_inputs": example_fig,
    }


def _shallow_tree_sections(d: Distillation, views: dict[str, Any], examples: list[int], analyses: Any) -> list[dict[str, Any]]:
    fid = _get(analyses, "fidelity", {}) or {}
    out = []
    for name, view in views.items():
        if view.kind != "axis":
            continue
        rows = _examples_table(d, name, view, examples)
        highlight = rows[0]["nodes"] if rows else None
        drawing = _tree_drawing(view, highlight, f"{name}: path of test sample #{rows[0]['index']}" if rows else name,
                                x=d.dataset.X_test[rows[0]["index"]] if rows else None)
        leaf_stats = {int(r["leaf"]): r for r in (_get(fid.get(name), "leaves") or [])}
        coverage = np.bincount(view.leaf_of(d.dataset.X_test), minlength=len(view.nodes))
        rules = []
        for leaf, rule in view.rules()[:_MAX_RULES]:
            v = np.asarray(view.nodes[leaf].value, dtype=float)
            k = int(np.argmax(v))
            st = leaf_stats.get(leaf, {})
            rules.append({"leaf": leaf, "rule": rule, "cls": _class(view.class_names, k), "p": float(v[k]),
                          "coverage": int(coverage[leaf]), "agreement": st.get("agreement")})
        out.append({
            "name": name,
            "depth": view.depth,
            "n_leaves": len(view.leaves()),
            "drawing": drawing,
            "examples": rows,
            "rules": rules,
            "more_rules": max(0, len(view.leaves()) - _MAX_RULES),
        })
    return out


def _rule_list_sections(d: Distillation) -> list[dict[str, Any]]:
    """Each raw-input rule list: its rules in reading order with coverage and fidelity, training and test."""
    from ..analysis.readable import rule_list_table
    from ..analysis.views import family_of

    ds = d.dataset
    out = []
    t_pred = None
    for name, est in d.surrogates.items():
        if family_of(est) != "rules":  # a rule list over features is read with the patterns
            continue
        if t_pred is None:
            t_pred = np.asarray(d.teacher.predict(ds.X_test))
        try:
            table = rule_list_table(est, ds.X_test, t_pred)
        except Exception as exc:  # noqa: BLE001 - one rule list that cannot be read costs its section
            logger.warning("could not tabulate the rule list %s: %s", name, exc)
            continue
        out.append({"name": name, **table})
    return out


def _additive_sections(d: Distillation) -> list[dict[str, Any]]:
    """Each raw-input additive model: its most important shape functions drawn in raw units."""
    from ..analysis.readable import additive_shapes
    from ..viz.plots import gam_shapes_figure

    out = []
    for name, est in d.surrogates.items():
        if not hasattr(est, "shapes_"):
            continue
        try:
            doc = additive_shapes(est, max_terms=_MAX_SHAPES)
        except Exception as exc:  # noqa: BLE001 - a model that cannot be read costs its section
            logger.warning("could not read the shapes of %s: %s", name, exc)
            continue
        fig = _figure(f"{name} shape functions", gam_shapes_figure, doc["shapes"], class_names=doc["class_names"],
                      raw=doc["raw"]) if doc["shapes"] else None
        out.append({"name": name, "figure": fig, "n_terms": doc["n_terms"], "shown": doc["shown"],
                    "pairs": [{"features": " × ".join(p["features"]), "importance": p["importance"]} for p in doc["pairs"]],
                    "raw": doc["raw"]})
    return out


#: Shape functions drawn per additive model (the most important ones).
_MAX_SHAPES = 12


def _table_from(obj: Any) -> dict[str, Any] | None:
    """A plain table from a dict of scalars or a dict of dicts/list of dicts of scalars."""
    if isinstance(obj, Mapping) and obj and all(not isinstance(v, (Mapping, list, tuple)) for v in obj.values()):
        return {"columns": ["", "value"], "rows": [[str(k), _cell(v)] for k, v in obj.items()]}
    if isinstance(obj, Mapping) and obj and any(isinstance(v, Mapping) for v in obj.values()):
        sub = {k: v for k, v in obj.items() if isinstance(v, Mapping) and k not in _NOT_ROWS}
        cols = list(dict.fromkeys(k for v in sub.values() for k, x in v.items() if not isinstance(x, (Mapping, list, tuple))))
        notes = [str(v) for v in obj.values() if isinstance(v, str)]
        return {"columns": [""] + cols, "rows": [[str(name)] + [_cell(v.get(c)) for c in cols] for name, v in sub.items()],
                "notes": notes}
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(v, Mapping) for v in obj):
        cols = list(dict.fromkeys(k for v in obj for k, x in v.items() if not isinstance(x, (Mapping, list, tuple))))
        return {"columns": cols, "rows": [[_cell(v.get(c)) for c in cols] for v in obj]}
    return None


_NOT_ROWS = {"student_params", "transfer_set", "queries"}


def _cell(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "n/a" if v is None else str(v)
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        return _num(v)
    return str(v)


def _student_section(d: Distillation, analyses: Any) -> dict[str, Any] | None:
    from ..viz.plots import bars_figure

    extras = _get(analyses, "extras", {}) or {}
    fid = _get(analyses, "fidelity", {}) or {}
    compression = extras.get("compression")
    kd = extras.get("kd_vs_hard")
    rows = []
    for name, f in fid.items():
        c = _get(f, "compression") or {}
        if c:
            rows.append({"name": name, "params": c.get("params"), "teacher_params": c.get("teacher_params"), "ratio": c.get("ratio")})
    if not rows:
        tp = d.metrics["teacher"].get("params")
        for name, m in d.metrics["surrogates"].items():
            p = m.get("params")
            rows.append({"name": name, "params": p, "teacher_params": tp, "ratio": (tp / p) if tp and p else None})
    has_student = "student" in d.surrogates
    if not has_student and compression is None and kd is None:
        return {"present": False, "compression_rows": rows, "chart": None, "extra_tables": [], "kd_chart": None}
    chart = None
    if rows:
        chart = _figure("compression", bars_figure, [r["name"] for r in rows],
                        {"parameters / nodes": [r["params"] for r in rows]}, ylabel="size (log scale)", logy=True,
                        title=f"surrogate size (teacher: {_intcomma(rows[0]['teacher_params'])} parameters)")
    tables = []
    for title, obj in (("Compression", compression), ("Knowledge distillation vs hard labels", kd)):
        t = _table_from(obj) if obj is not None else None
        if t is not None:
            tables.append({"title": title, **t})
    kd_chart = _kd_chart(kd)
    return {"present": True, "compression_rows": rows, "chart": chart, "extra_tables": tables, "kd_chart": kd_chart}


def _kd_chart(kd: Any) -> dict[str, str] | None:
    """Grouped bars of accuracy/fidelity for each training variant, when ``kd`` is a dict of dicts."""
    from ..viz.plots import bars_figure

    if not isinstance(kd, Mapping) or not kd or not all(isinstance(v, Mapping) for v in kd.values()):
        return None
    keys = ("accuracy", "fidelity", "agreement")
    rows = {str(k): v for k, v in kd.items() if isinstance(v, Mapping) and any(_finite(v.get(m)) is not None for m in keys)}
    metrics = [m for m in keys if any(_finite(v.get(m)) is not None for v in rows.values())]
    if not metrics:
        return None
    return _figure("KD vs hard labels", bars_figure, metrics,
                   {k: [_finite(v.get(m)) for m in metrics] for k, v in rows.items()},
                   ylabel="on the test split", ylim=(0, 1.05), title="student trained on soft vs hard labels")


_METHOD_NAMES = {
    "IntegratedGradients": "Integrated Gradients",
    "FeatureAblation": "feature ablation",
    "Saliency": "saliency (gradients)",
    "DeepLift": "DeepLift",
    "GradientShap": "GradientSHAP",
    "NoiseTunnel": "SmoothGrad (noise tunnel)",
}


def _saliency_section(d: Distillation, analyses: Any) -> dict[str, Any] | None:
    from ..viz.plots import attribution_figure

    att = _get(analyses, "attribution")
    if att is None:
        return None
    ds = d.dataset
    maps = {str(k): np.asarray(v) for k, v in (_get(att, "maps", {}) or {}).items()}
    if "teacher" in maps:
        maps = {"teacher": maps.pop("teacher"), **maps}
    inputs = np.asarray(_get(att, "inputs"))
    idx = np.asarray(_get(att, "indices", np.arange(len(inputs)))).reshape(-1)
    titles = [f"#{int(i)}: {_class(ds.class_names, ds.y_test[int(i)])}" if 0 <= int(i) < len(ds.y_test) else f"#{int(i)}" for i in idx]
    fig = None
    if maps and inputs.size:
        fig = _figure("attribution maps", attribution_figure, inputs, maps, input_shape=ds.input_shape, kind=ds.kind,
                      feature_names=ds.feature_names, row_titles=titles)
    agreement = []
    methods = _get(att, "methods", {}) or {}
    reference = _get(att, "reference", {}) or {}
    for name, a in (_get(att, "agreement", {}) or {}).items():
        ref = reference.get(a.get("against")) or {}
        agreement.append({"name": name, "spearman": a.get("spearman"), "top_k": a.get("top_k"), "k": a.get("k"),
                          "sign": a.get("sign"), "method": _METHOD_NAMES.get(methods.get(name), methods.get(name)),
                          "against": a.get("against"), "ceiling": ref.get("ceiling"), "floor": ref.get("floor")})
    cam_maps = {}
    for label, key in (("Grad-CAM", "gradcam"), ("attention", "attention")):
        for k, v in (_get(att, key, {}) or {}).items():
            cam_maps[f"{label} {k}"] = np.asarray(v)
    cams = []
    if cam_maps and inputs.size:
        f = _figure("Grad-CAM and attention maps", attribution_figure, inputs, cam_maps, input_shape=ds.input_shape,
                    kind=ds.kind, feature_names=ds.feature_names, row_titles=titles)
        if f is not None:
            cams.append({"title": "Grad-CAM and activation attention", "figure": f})
    return {"method": str(_get(att, "method", "")), "figure": fig, "agreement": agreement, "cams": cams, "n": int(len(idx))}


def _curve_from(obj: Any) -> tuple[list[float], dict[str, list[Any]], str] | None:
    """Find (x, series, xlabel) in a curve dict of a few plausible shapes."""
    if not isinstance(obj, Mapping):
        return None
    for key in ("x", "temperatures", "temperature", "sizes", "size", "depths", "depth", "sigmas", "epsilons"):
        xs = obj.get(key)
        if isinstance(xs, (list, tuple, np.ndarray)) and len(xs):
            n = len(xs)
            series: dict[str, list[Any]] = {}
            for k, v in obj.items():
                if k == key:
                    continue
                if isinstance(v, (list, tuple, np.ndarray)) and len(v) == n and all(_finite(x) is not None or x is None for x in v):
                    series[str(k)] = list(v)
                elif isinstance(v, Mapping):
                    for k2, v2 in v.items():
                        if isinstance(v2, (list, tuple, np.ndarray)) and len(v2) == n:
                            series[f"{k} {k2}"] = list(v2)
                        elif isinstance(v2, Mapping):
                            for k3, v3 in v2.items():
                                if isinstance(v3, (list, tuple, np.ndarray)) and len(v3) == n:
                                    series[f"{k2} {k3}" if k in ("series", "models", "surrogates") else f"{k} {k2} {k3}"] = list(v3)
            series = {k: v for k, v in series.items()
                      if all(x is None or (_finite(x) is not None and -1e-9 <= float(x) <= 1 + 1e-9) for x in v)}
            if series:
                label = {"temperatures": "temperature T", "depths": "depth", "sizes": "size"}.get(key, key)
                return [float(x) for x in xs], series, str(obj.get("xlabel", label))
    return None


def _curves_section(analyses: Any) -> dict[str, Any]:
    from ..viz.plots import curves_figure, metric_panels_figure

    rob = _get(analyses, "robustness")
    figures = []
    if rob is not None:
        for label, xs_key, key, xlabel in (("Gaussian noise", "sigmas", "noise", "noise sigma (in scaled units)"),
                                           ("FGSM adversarial", "epsilons", "fgsm", "FGSM epsilon")):
            xs = _get(rob, xs_key)
            data = _get(rob, key) or {}
            if xs is not None and len(xs) and data:
                f = _figure(label, metric_panels_figure, xs, data, xlabel=xlabel, title=label)
                if f is not None:
                    figures.append({"title": label, "figure": f})
    extras = _get(analyses, "extras", {}) or {}
    curves = []
    for key, label in (("temperature_curve", "Fidelity vs temperature"), ("size_curve", "Fidelity vs size")):
        obj = extras.get(key)
        if obj is None:
            continue
        found = _curve_from(obj)
        if found is None:
            t = _table_from(obj)
            curves.append({"title": label, "figure": None, "table": t})
            continue
        xs, series, xlabel = found
        title = label
        if key == "temperature_curve":  # refitted on a transfer set of its own: say what that held
            q = obj.get("queries")
            held = f"plus synthesized queries ({', '.join(f'{k} {v}' for k, v in q.items())})" if q else "only, without synthesized queries"
            title = f"{label}\nrefitted on the training split {held}"
        f = _figure(label, curves_figure, xs, series, xlabel=xlabel, ylabel="on the test split", title=title,
                    logx=key == "size_curve" and min(xs) > 0 and max(xs) / max(min(xs), 1e-12) > 20)
        curves.append({"title": label, "figure": f, "table": None})
    return {"robustness": figures, "curves": curves, "robustness_computed": rob is not None}


# ------------------------------------------------------------------------------ patterns (issue 15)
_MAX_PATTERN_RULES = 24
_MAX_CONDITIONS_SHOWN = 8


def _pattern_conditions(rule: Any, channels_drawn: set[int], fmap: Any, gallery: set[int] = frozenset()) -> list[dict[str, Any]]:
    out = []
    for (f, _op, _thr), text in list(zip(rule.conditions, rule.text))[:_MAX_CONDITIONS_SHOWN]:
        c = fmap.describe(f).get("channel") if fmap is not None else None
        out.append({"text": text, "channel": c if c in channels_drawn else None, "linked": c in gallery,
                    "blank": c is not None and c not in channels_drawn})
    return out


def _patterns_section(d: Distillation, analyses: Any, min_agreement: float | None) -> dict[str, Any] | None:
    """The surrogates over the teacher's pattern detectors: verdict, rules with pictures, the gallery."""
    from ..analysis.patterns import pattern_verdict
    from ..features import FeatureSurrogate
    from ..viz.plots import pattern_figure, pattern_thumbnail

    if not any(isinstance(e, FeatureSurrogate) for e in d.surrogates.values()):
        return None
    fid = _get(analyses, "fidelity", {}) or {}
    results = {n: (fid.get(n) if fid.get(n) is not None else m) for n, m in d.metrics["surrogates"].items()}
    from ..distill.plan import readable_at

    verdict = pattern_verdict(results, bar=min_agreement, gate=getattr(d, "gate", "per_class"),
                              readable={n: readable_at(n, e) for n, e in d.surrogates.items()})
    pa = _get(analyses, "patterns")
    if isinstance(pa, Mapping):  # analyses given as saved JSON: the rules and pictures need the objects
        pa = None
    section: dict[str, Any] = {"verdict": verdict.to_json(), "analysed": pa is not None, "surrogates": [],
                               "gallery": [], "thumbs": [], "layer": None, "n_channels": 0}
    if pa is None:
        return section
    fmaps = {n: e.features for n, e in d.surrogates.items() if isinstance(e, FeatureSurrogate)}
    protos = _get(pa, "prototypes")
    drawn: set[int] = set()
    gallery = set(_get(pa, "gallery", None) or (protos.channels if protos is not None else []))
    if protos is not None:
        for c in protos.channels:
            p = protos.pattern(c)
            thumb = _figure(f"pattern {c}", pattern_thumbnail, p)
            if thumb is not None:
                # images: a square glyph, drawn larger so a receptive field stays readable beside its rule
                section["thumbs"].append({"channel": int(c), "uri": thumb["uri"], "square": len(p["input_shape"]) == 3})
                drawn.add(int(c))
            if c not in gallery:  # a thumbnail beside its rules; the full figure only for the gallery's patterns
                continue
            mix = np.asarray(p["class_mix"], dtype=float)
            top = int(np.nanargmax(mix)) if np.isfinite(mix).any() else None
            section["gallery"].append({
                "channel": int(c),
                "name": p["name"],
                "figure": _figure(f"pattern {c}: top inputs, filter and class mix", pattern_figure, p),
                "top_class": None if top is None else _class(p["class_names"], top),
                "top_share": None if top is None else float(mix[top]),
                "n_fire": p["n_fire"],
                "threshold": p["fire_threshold"],
                "n_searched": p["n_searched"],
            })
    section["layer"] = _get(pa, "layer")
    section["n_channels"] = _get(pa, "n_channels", 0)
    section["grid"] = max((int(getattr(f, "grid", 1) or 1) for f in fmaps.values()), default=1)
    names = d.dataset.class_names
    for view in _get(pa, "surrogates", []) or []:
        fmap = fmaps.get(view.name)
        m = d.metrics["surrogates"].get(view.name, {})
        rules = []
        for r in view.rules[:_MAX_PATTERN_RULES]:
            rules.append({
                "conditions": _pattern_conditions(r, drawn, fmap, gallery),
                "more": max(0, len(r.conditions) - _MAX_CONDITIONS_SHOWN),
                "cls": _class(names, r.cls), "p": r.p, "coverage": r.coverage, "agreement": r.agreement,
            })
        weights = []
        for w in view.weights:
            feats = []
            for j, v in w["features"]:
                desc = fmap.describe(j) if fmap is not None else {"name": str(j)}
                c = desc.get("channel")
                feats.append({"name": desc.get("name"), "weight": v, "channel": c if c in drawn else None})
            weights.append({"cls": _class(names, w["class"]), "features": feats})
        section["surrogates"].append({
            "name": view.name, "kind": view.kind, "fidelity": m.get("fidelity"),
            "interval": _interval(m.get("fidelity_interval")), "params": m.get("params"),
            "rules": rules, "more_rules": max(0, len(view.rules) - _MAX_PATTERN_RULES), "n_rules": len(view.rules),
            "weights": weights, "n_channels_used": len(view.channels),
        })
    return section
def _frontier_section(analyses: Any) -> dict[str, Any] | None:
    """The fidelity-size frontier: the verdict, the chosen model per family, the plot and the ladder."""
    from ..analysis.frontier import frontier_verdict
    from ..viz.frontier import frontier_figure

    front = _get(analyses, "frontier") if analyses is not None else None
    if front is None:
        extras = _get(analyses, "extras", {}) or {}
        if not extras.get("frontier"):
            return None
        front = {**(extras.get("frontier_summary") or {}), "families": extras["frontier"]}
    families = front.get("families") or {}
    if not families:
        return None
    bar = front.get("min_agreement")
    rows = []
    for name, ladder in families.items():
        chosen = next((r for r in ladder if r.get("chosen")), None)
        best = max(ladder, key=lambda r: r["fidelity"]) if ladder else None
        unit = next((u for u in ("leaves", "rules", "terms", "nodes") if ladder and u in ladder[0]), "size")
        rows.append({
            "family": name,
            "unit": unit,
            "chosen": chosen,
            "best": best,
            "ladder": ladder,
            "readable": bool(chosen.get("readable")) if chosen else any(r.get("readable") for r in ladder),
        })
    figure = _figure("fidelity against size", frontier_figure, families, min_agreement=bar)
    validation = front.get("validation") or {}
    return {
        "verdict": front.get("verdict") or frontier_verdict(front),
        "min_agreement": bar,
        "rows": rows,
        "figure": figure,
        "validation_n": validation.get("n"),
        "validation_source": validation.get("source", "training split"),
    }


def _teacher_check(analyses: Any) -> dict[str, Any] | None:
    """The teacher-vs-baselines check as the template shows it (from Analyses or a metrics.json dict)."""
    check = _get(analyses, "teacher") if analyses is not None else None
    if check is None and isinstance(analyses, Mapping):
        check = analyses.get("teacher_check")
    if check is None:
        return None
    doc = check.to_json() if hasattr(check, "to_json") else dict(check)
    return {
        "majority": doc.get("majority"),
        "majority_class": doc.get("majority_class"),
        "logistic": doc.get("logistic"),
        "warning": doc.get("warning"),
    }


def report_context(
    distillation: Distillation,
    *,
    analyses: Any = None,
    min_agreement: float | None = None,
    run_seconds: float | None = None,
) -> dict[str, Any]:
    """Everything the template lays out, as plain data (figures already encoded as data URIs)."""
    d = distillation
    if not d.metrics:
        d.evaluate()
    if min_agreement is None:
        min_agreement = getattr(d, "min_agreement", None)  # the run's own bar
    views = _views(d)
    examples = _example_indices(d, analyses)
    soft = _soft_tree_sections(d, views, examples)
    shallow = _shallow_tree_sections(d, views, examples, analyses)
    trees_problem = next((t["drawing"]["problem"] for t in soft + shallow if t["drawing"]["problem"]), None)
    info = d.info or {}
    return {
        "title": f"explain_distill report: {d.dataset.name}",
        "dataset": d.dataset.describe(),
        "teacher": {**d.metrics["teacher"], "arch": (d.teacher.config or {}).get("arch", "user module")},
        "teacher_check": _teacher_check(analyses) or _teacher_check({"teacher_check": _json_or_none(getattr(d, "teacher_check", None))}),
        "frontier": _frontier_section(analyses),
        "surrogates": _summary(d, analyses, min_agreement),
        "min_agreement": min_agreement,
        "gate": getattr(d, "gate", "per_class"),
        "constant": d.metrics.get("constant"),
        "temperature": d.temperature,
        "seed": d.seed,
        "analysed": analyses is not None,
        "fidelity": _fidelity_section(d, analyses),
        "soft_trees": soft,
        "shallow_trees": shallow,
        "rule_lists": _rule_list_sections(d),
        "additive": _additive_sections(d),
        "trees_problem": trees_problem,
        "student": _student_section(d, analyses),
        "saliency": _saliency_section(d, analyses),
        "curves": _curves_section(analyses),
        "patterns": _patterns_section(d, analyses, min_agreement),
        "provenance": {
            "versions": dict(info.get("versions", {})),
            "data_sha256": info.get("data_sha256"),
            "teacher_sha256": info.get("teacher_sha256"),
            "device": d.metrics["teacher"].get("device"),
            "transfer_set": _table_from(info.get("transfer_set")) if info.get("transfer_set") else None,
            "timings": info.get("timings", {}),
        },
        "run_seconds": run_seconds,
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _json_or_none(obj: Any) -> Any:
    return None if obj is None else obj.to_json()


def build_report(
    distillation: Distillation,
    out_dir: str | os.PathLike,
    *,
    analyses: Any = None,
    min_agreement: float | None = None,
    run_seconds: float | None = None,
) -> Path:
    """Write ``out_dir/index.html`` for ``distillation`` and return its path.

    Parameters
    ----------
    distillation : Distillation
        From :func:`explain_distill.distill` or :func:`explain_distill.load`.
    out_dir : path
        Created if missing.  It must be new, empty, or an earlier output of this package (a run
        or report directory) holding nothing else: a directory with other files is refused with a
        message naming them, so nothing of yours is ever overwritten.  Only ``index.html`` is
        written there (atomically: a reader never sees half a page).
    analyses : Analyses, optional
        From :func:`explain_distill.analysis.run_analyses`; without it the fidelity, saliency and
        robustness sections say "not computed" (trees and the summary are still drawn).
    min_agreement : float in [0, 1], optional
        The audit bar: each surrogate passes when the lower end of its 95% agreement interval
        reaches it.
    run_seconds : float, optional
        Shown under provenance.
    """
    _check_report_args(distillation, analyses, min_agreement)
    out = check_output_dir(out_dir, what="report directory", replace=False)
    out.mkdir(parents=True, exist_ok=True)
    path = write_report(distillation, out, analyses=analyses, min_agreement=min_agreement, run_seconds=run_seconds)
    record_written(out, ["index.html"], kind="report")
    return path


def _check_report_args(distillation: Any, analyses: Any, min_agreement: float | None) -> float | None:
    if not isinstance(distillation, Distillation):
        raise TypeError(f"build_report needs a Distillation (from ed.distill or ed.load); received {type(distillation).__name__}.")
    if min_agreement is not None:
        min_agreement = check_fraction(min_agreement, "min_agreement")
    if analyses is not None and not hasattr(analyses, "fidelity") and not isinstance(analyses, Mapping):
        raise TypeError(
            f"analyses must be the result of explain_distill.analysis.run_analyses(distillation); "
            f"received {type(analyses).__name__}."
        )
    return min_agreement


def write_report(
    distillation: Distillation,
    out_dir: Path,
    *,
    analyses: Any = None,
    min_agreement: float | None = None,
    run_seconds: float | None = None,
) -> Path:
    """Render ``out_dir/index.html`` without the output-directory checks (for writers that hold a
    fresh temporary directory, such as ``explain-distill run``); returns its path."""
    min_agreement = _check_report_args(distillation, analyses, min_agreement)
    t0 = time.perf_counter()
    html = render_html(report_context(distillation, analyses=analyses, min_agreement=min_agreement, run_seconds=run_seconds))
    path = Path(out_dir) / "index.html"
    tmp = path.with_name(f".index.html.tmp-{os.getpid()}")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)  # our own temporary file onto our own index.html (checked by the caller)
    logger.debug("rendered %s (%d bytes) in %.1fs", path, len(html.encode()), time.perf_counter() - t0)
    return path
