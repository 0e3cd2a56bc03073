"""Trees as Graphviz DOT text, rendered last.

:func:`tree_to_dot` is pure text over a :class:`~explain_distill.analysis.views.TreeView`
(any tree kind: scikit-learn's axis-aligned trees, the oblique soft tree), so it is tested
against exact expected output.  Labels are Graphviz HTML-like labels built with
:func:`html.escape`: a feature called ``<script>`` or ``"a" -> b`` stays literal text.
Deep trees are collapsed: the top ``max_depth_shown`` levels plus the highlighted path are
drawn, and every hidden subtree becomes one dashed "… n nodes hidden" box.

:func:`render_dot` calls Graphviz (the ``dot`` binary) and returns SVG, or ``None`` with a reason
when ``dot`` is not installed, so the report can fall back to the DOT text and say so.
:func:`rules_to_dot` draws an ordered rule list as a chain, and :class:`TreeDrawing` wraps DOT
text for notebooks (``_repr_svg_``) and files (``save``).

:func:`sum_to_dot` draws a sum of trees (``figs``): the bias and one box per tree.

Conditions are text the view writes (``view.writer(inverse)``, the one place a condition becomes
text, in :mod:`explain_distill.analysis.views.conditions`); they print as fitted unless an
``inverse(feature, value)`` callable is given, which may return a number or a ready string (e.g.
raw units with their unit).  Here they are only escaped and laid out.
"""

from __future__ import annotations

import html
import logging
import re
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_int

logger = logging.getLogger(__name__)

__all__ = ["CollapsedTree", "TreeDrawing", "collapse", "render_dot", "rules_to_dot", "sum_to_dot", "tree_to_dot"]

_HL = "#d62728"
_HL_FILL = "#fdecea"
_LEAF_FILL = "#eef4fb"


@dataclass(frozen=True)
class CollapsedTree:
    """Which nodes a drawing shows.

    Attributes
    ----------
    shown : list of int
        Node ids drawn, in id order.
    hidden : dict of int -> int
        For each drawn node whose child subtree is hidden: child id -> number of nodes in it.
    n_hidden : int
        Nodes not drawn in total.
    """

    shown: list[int]
    hidden: dict[int, int]
    n_hidden: int


def _check_view(view: Any) -> None:
    for attr in ("kind", "nodes", "feature_names", "class_names", "writer"):
        if not hasattr(view, attr):
            raise TypeError(
                f"tree_to_dot needs a TreeView (explain_distill.analysis.tree_view.TreeView.of(estimator)); "
                f"received {type(view).__name__}, which has no {attr!r}."
            )


def _check_path(view: Any, highlight: Sequence[int] | None) -> list[int]:
    if highlight is None:
        return []
    try:
        path = [int(h) for h in highlight]
    except (TypeError, ValueError) as exc:
        raise TypeError(f"highlight must be a list of node ids (TreeView.path(x)); received {highlight!r}.") from exc
    n = len(view.nodes)
    bad = [h for h in path if not 0 <= h < n]
    if bad:
        raise ValueError(f"highlight holds node ids {bad} outside this tree's 0..{n - 1}; pass TreeView.path(x).")
    return path


def collapse(view: Any, *, highlight: Sequence[int] | None = None, max_depth_shown: int | None = None) -> CollapsedTree:
    """Nodes shown when drawing the top ``max_depth_shown`` levels plus the ``highlight`` path."""
    _check_view(view)
    path = set(_check_path(view, highlight))
    if max_depth_shown is not None:
        max_depth_shown = check_int(max_depth_shown, "max_depth_shown", low=0)
    nodes = view.nodes
    sizes = np.ones(len(nodes), dtype=np.int64)
    for nd in sorted(nodes, key=lambda n: -n.depth):  # children before parents
        if not nd.is_leaf:
            sizes[nd.id] += sizes[nd.left] + sizes[nd.right]

    def visible(nd: Any) -> bool:
        return max_depth_shown is None or nd.depth <= max_depth_shown or nd.id in path

    shown, hidden = [], {}
    stack = [0]
    while stack:
        i = stack.pop()
        shown.append(i)
        nd = nodes[i]
        if nd.is_leaf:
            continue
        for c in (nd.left, nd.right):
            if visible(nodes[c]):
                stack.append(c)
            else:
                hidden[c] = int(sizes[c])
    return CollapsedTree(shown=sorted(shown), hidden=dict(sorted(hidden.items())), n_hidden=int(sum(hidden.values())))


def _num(v: float) -> str:
    return f"{v:.3g}"


def _count(v: float) -> str:
    return f"{int(v)}" if float(v).is_integer() else _num(v)


def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _writer(view: Any, inverse: Callable[[int, float], Any] | None) -> Any:
    """The view's condition writer (the one place conditions become text); as fitted by default."""
    return view.writer(inverse if inverse is not None else "scaled")


def _header(name: str, *, ranksep: float, nodesep: float) -> list[str]:
    """The first lines of a drawing: the graph, node and edge styles."""
    return [
        f"digraph {name} {{",
        f'  graph [rankdir=TB, ranksep={ranksep}, nodesep={nodesep}, fontname="Helvetica", fontsize=10];',
        '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", color="#8a94a6", fontname="Helvetica", fontsize=10];',
        '  edge [color="#8a94a6", fontname="Helvetica", fontsize=9, arrowsize=0.6];',
    ]


def _temperature_note(view: Any) -> list[str]:
    """A caption line saying what leaf numbers are when they are softened probabilities (T != 1)."""
    t = getattr(view, "temperature", None)
    return [] if t is None or float(t) == 1.0 else [f"numbers in leaves: the teacher's probabilities softened at T = {float(t):g}"]


def _footer(lines: list[str], caption: list[str]) -> str:
    """The caption under the drawing (escaped lines), the closing brace, the text."""
    if caption:
        lines.append(f"  label=<{'<BR/>'.join(caption)}>;")
        lines.append("  labelloc=b;")
    lines.append("}")
    return "\n".join(lines) + "\n"


_HL_EDGE = f'color="{_HL}", penwidth=2.2, fontcolor="{_HL}"'


def _box_attrs(label: str, *, leaf: bool, on: bool) -> str:
    """A node's attributes: its label, the leaf fill, red when on the highlighted path."""
    attrs = [f"label={label}"]
    if leaf:
        attrs.append(f'fillcolor="{_HL_FILL if on else _LEAF_FILL}"')
    elif on:
        attrs.append(f'fillcolor="{_HL_FILL}"')
    if on:
        attrs.append(f'color="{_HL}", penwidth=2.2')
    return ", ".join(attrs)


def _with_image(label: str, image: str | None) -> str:
    """``label`` (an HTML-like label without its outer ``<>``) beside a picture file, in one table."""
    if image is None:
        return f"<{label}>"
    return (
        f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="2" CELLPADDING="1"><TR>'
        f'<TD>{label}</TD><TD FIXEDSIZE="FALSE"><IMG SRC="{_e(image)}"/></TD></TR></TABLE>>'
    )


def _node_label(view: Any, nd: Any, writer: Any) -> str:
    value = np.asarray(nd.value, dtype=float)
    k = int(np.argmax(value)) if value.size else 0
    cls = view.class_names[k] if k < len(view.class_names) else str(k)
    p = float(value[k]) if value.size else float("nan")
    n = "" if nd.n_samples is None else f"<BR/>n = {_count(nd.n_samples)}"
    if nd.is_leaf:
        return f"<<B>{_e(cls)}</B> ({p:.2f})<BR/>leaf #{nd.id}{n}>"
    if view.kind == "axis":
        cond = _e(writer.text(view.splits.condition(nd, False), digits=3, raw_decimals=False))
        return f"<<B>{cond}</B><BR/>#{nd.id}: {_e(cls)} ({p:.2f}){n}>"
    beta = "" if nd.beta is None else f", &#946; = {_num(nd.beta)}"
    nz = ""
    if nd.weights is not None:
        k = int(np.count_nonzero(nd.weights))
        if k < len(nd.weights):
            nz = f"<BR/>{k} nonzero weights"
    return f"<<B>filter #{nd.id}</B><BR/>{_e(cls)} ({p:.2f}){beta}{nz}>"


def _edge_label(view: Any, nd: Any, right: bool, note: str | None = None) -> str:
    if view.kind == "axis":
        text = "no" if right else "yes"
    else:
        text = "&gt; 0" if right else "&lt;= 0"
    return text if note is None else f"{text}<BR/>{_e(note)}"


def tree_to_dot(
    view: Any,
    highlight: Sequence[int] | None = None,
    *,
    max_depth_shown: int | None = None,
    title: str | None = None,
    inverse: Callable[[int, float], Any] | None = None,
    images: dict[int, str] | None = None,
    edge_notes: dict[tuple[int, int], str] | None = None,
) -> str:
    """Graphviz DOT text for a :class:`TreeView`.

    Parameters
    ----------
    view : TreeView
    highlight : list of int, optional
        A root-to-leaf path of node ids (``view.path(x)``): drawn in red, and always shown even
        below ``max_depth_shown``.
    max_depth_shown : int, optional
        Draw nodes down to this depth (plus the highlighted path); each hidden subtree becomes a
        dashed box saying how many nodes it holds.  None draws every node.
    title : str, optional
        Caption under the drawing (escaped).
    inverse : callable (feature, value) -> number or str, optional
        How an axis-aligned threshold is printed (e.g. in raw units); as fitted by default.  The
        condition's text comes from the view (``view.writer``), the one place conditions are written.
    images : dict of node id -> image file name, optional
        A picture drawn beside the node (the soft tree's filter on the highlighted path); the
        names are resolved by :func:`render_dot` / :class:`TreeDrawing`, which embed the files.
    edge_notes : dict of (parent, child) -> str, optional
        Extra text under an edge's label (e.g. ``"response 1.2, P(right) 0.77"`` on the path).

    Returns
    -------
    str
        DOT source; every user string (feature and class names, the title) is HTML-escaped
        inside an HTML-like label, so it cannot break out of the label.
    """
    col = collapse(view, highlight=highlight, max_depth_shown=max_depth_shown)
    path = _check_path(view, highlight)
    on_path = set(path)
    path_edges = set(zip(path[:-1], path[1:]))
    writer = _writer(view, inverse)
    lines = _header("tree", ranksep=0.35, nodesep=0.2)
    for i in col.shown:
        nd = view.nodes[i]
        label = _node_label(view, nd, writer)
        if images and i in images:
            label = _with_image(label[1:-1], images[i])
        lines.append(f"  n{i} [{_box_attrs(label, leaf=nd.is_leaf, on=i in on_path)}];")
    # a node whose two subtrees are both hidden gets one placeholder (named after its left child)
    merged = {}
    for i in col.shown:
        nd = view.nodes[i]
        if not nd.is_leaf and nd.left in col.hidden and nd.right in col.hidden:
            merged[i] = col.hidden[nd.left] + col.hidden[nd.right]
    placeholders = {view.nodes[i].left: size for i, size in merged.items()}
    merged_away = {view.nodes[i].right for i in merged}
    for h, size in col.hidden.items():
        if h not in merged_away:
            size = placeholders.get(h, size)
            lines.append(f'  n{h} [label=<&#8230; {size} node{"s" if size != 1 else ""} hidden>, style="dashed", fontcolor="#667085"];')
    for i in col.shown:
        nd = view.nodes[i]
        if nd.is_leaf:
            continue
        if i in merged:
            lines.append(f"  n{i} -> n{nd.left} [style=dashed];")
            continue
        for c, right in ((nd.left, False), (nd.right, True)):
            attrs = [f"label=<{_edge_label(view, nd, right, (edge_notes or {}).get((i, c)))}>"]
            if (i, c) in path_edges:
                attrs.append(_HL_EDGE)
            if c in col.hidden:
                attrs.append("style=dashed")
            lines.append(f"  n{i} -> n{c} [{', '.join(attrs)}];")
    caption = []
    if title:
        caption.append(_e(title))
    if col.n_hidden:
        caption.append(f"{len(col.shown)} of {len(view.nodes)} nodes shown")
    return _footer(lines, caption + _temperature_note(view))


def rules_to_dot(
    view: Any,
    *,
    fired: int | None = None,
    title: str | None = None,
    inverse: Callable[[int, float], Any] | None = None,
    decimals: int = 3,
) -> str:
    """Graphviz DOT text for an ordered rule list (a :class:`RuleListView` or anything with ``rules``,
    ``feature_names`` and ``class_names``): a chain of condition boxes, each with a ``yes`` edge to
    its class and a ``no`` edge to the next rule; the last box is the ``else`` class.

    ``fired`` (a rule index) draws in red the rules a sample passes through and the one that
    decides it.  Every name is HTML-escaped inside HTML-like labels.
    """
    for attr in ("rules", "feature_names", "class_names", "writer"):
        if not hasattr(view, attr):
            raise TypeError(f"rules_to_dot needs a RuleListView (rules.view()); received {type(view).__name__}, without {attr!r}.")
    rules = list(view.rules)
    if fired is not None:
        fired = check_int(fired, "fired", low=0, high=len(rules) - 1)
    decimals = check_int(decimals, "decimals", low=0, high=17)
    writer = _writer(view, inverse)
    lines = _header("rules", ranksep=0.3, nodesep=0.25)
    red = f', color="{_HL}", penwidth=2.2'
    red_edge = f', color="{_HL}", fontcolor="{_HL}", penwidth=2.2'
    for r, rule in enumerate(rules):
        val = np.asarray(rule["value"], dtype=float)
        k = int(np.argmax(val))
        fid = float(rule.get("fidelity", float("nan")))
        outcome = (f"<B>{_e(view.class_names[k])}</B> ({val[k]:.2f})<BR/>coverage {float(rule.get('coverage', float('nan'))):.1%}"
                   + (f", fidelity {fid:.1%}" if np.isfinite(fid) else ""))
        passed = fired is not None and r < fired  # the sample reaches this rule and it does not fire
        decides = fired is not None and r == fired
        if not rule["conditions"]:  # the else rule: its class directly
            else_ = "else: " if r else ""
            fill = _HL_FILL if decides else _LEAF_FILL
            lines.append(f'  r{r} [label=<{else_}{outcome}>, fillcolor="{fill}"{red if decides else ""}];')
            continue
        conds = "<BR/>and ".join(_e(c) for c in writer.texts(rule["conditions"], decimals=decimals, raw_decimals=False))
        on = f', fillcolor="{_HL_FILL}"{red}' if passed or decides else ""
        lines.append(f"  r{r} [label=<<B>rule {r + 1}</B><BR/>{conds}>{on}];")
        lines.append(f'  c{r} [label=<{outcome}>, fillcolor="{_HL_FILL if decides else _LEAF_FILL}"{red if decides else ""}];')
        lines.append(f"  r{r} -> c{r} [label=<yes>{red_edge if decides else ''}];")
        lines.append(f"  {{rank=same; r{r}; c{r};}}")
        if r + 1 < len(rules):
            lines.append(f"  r{r} -> r{r + 1} [label=<no>{red_edge if passed else ''}];")
    return _footer(lines, ([_e(title)] if title else []) + _temperature_note(view))


def sum_to_dot(
    view: Any,
    highlight: Sequence[Sequence[int]] | None = None,
    *,
    title: str | None = None,
    inverse: Callable[[int, float], Any] | None = None,
) -> str:
    """Graphviz DOT text for a sum of trees (a :class:`SumOfTreesView`): the bias, then each tree in
    a box of its own; a leaf shows the class it adds most to and by how much (a logit).

    ``highlight`` holds one root-to-leaf path per tree (``view.path(x)``), drawn in red.  Node
    names run across the trees (``n<offset + id>``); every name is HTML-escaped.
    """
    for attr in ("trees", "bias", "class_names", "offsets", "writer"):
        if not hasattr(view, attr):
            raise TypeError(f"sum_to_dot needs a SumOfTreesView (figs.view()); received {type(view).__name__}, without {attr!r}.")
    paths = [[] for _ in view.trees] if highlight is None else [list(p) for p in highlight]
    if len(paths) != len(view.trees):
        raise ValueError(f"highlight holds {len(paths)} paths for {len(view.trees)} trees; pass view.path(x).")
    writer = _writer(view, inverse)
    lines = _header("sum", ranksep=0.35, nodesep=0.2)
    bias = "<BR/>".join(f"{_e(c)} {v:+.2f}" for c, v in zip(view.class_names, view.bias))
    lines.append(f'  bias [label=<<B>bias</B><BR/>{bias}>, fillcolor="{_LEAF_FILL}"];')
    for t, (tree, path) in enumerate(zip(view.trees, paths)):
        path = _check_path(tree, path)
        base = int(view.offsets[t])
        lines += [f"  subgraph cluster_{t} {{", f'    label=<tree {t + 1}>; color="#c9d1de";']
        for nd in tree.nodes:
            k = int(np.argmax(nd.value))
            text = (f"<<B>+{_e(view.class_names[k])}</B> ({nd.value[k]:+.2f})<BR/>leaf #{nd.id}>" if nd.is_leaf else
                    f"<<B>{_e(writer.text(tree.splits.condition(nd, False), digits=3, raw_decimals=False))}</B>>")
            lines.append(f"    n{base + nd.id} [{_box_attrs(text, leaf=nd.is_leaf, on=nd.id in path)}];")
        for nd in (nd for nd in tree.nodes if not nd.is_leaf):
            for c, word in ((nd.left, "yes"), (nd.right, "no")):
                red = f", {_HL_EDGE}" if (nd.id, c) in set(zip(path[:-1], path[1:])) else ""
                lines.append(f"    n{base + nd.id} -> n{base + c} [label=<{word}>{red}];")
        lines.append("  }")
    return _footer(lines, [_e(title)] if title else [])


class TreeDrawing:
    """A tree (or rule list) drawing: DOT text, drawn to SVG by Graphviz when first asked.

    In a notebook it displays as SVG (``_repr_svg_``); without Graphviz's ``dot`` program it
    falls back to its text repr, which says so.  ``save(path)`` writes ``.svg`` or ``.dot``/``.gv``.

    Attributes
    ----------
    dot : str
        The DOT source (:func:`tree_to_dot`, :func:`rules_to_dot`).
    """

    def __init__(self, dot: str, images: dict[str, bytes] | None = None) -> None:
        if not isinstance(dot, str):
            raise TypeError(f"TreeDrawing takes DOT text (a str); received {type(dot).__name__}.")
        self.dot = dot
        self.images = dict(images or {})  # file name in the DOT text -> PNG bytes, embedded in the SVG
        self._svg: str | None = None
        self._problem: str | None = None
        self._rendered = False

    def svg(self) -> str | None:
        """The SVG document, or None when Graphviz could not draw it (``problem`` says why)."""
        if not self._rendered:
            self._svg, self._problem = render_dot(self.dot, images=self.images)
            self._rendered = True
        return self._svg

    @property
    def problem(self) -> str | None:
        """Why there is no SVG (Graphviz missing or failing), after :meth:`svg` ran; else None."""
        self.svg()
        return self._problem

    def _repr_svg_(self) -> str | None:
        return self.svg()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the drawing: ``.svg`` (needs Graphviz) or the DOT text (``.dot`` / ``.gv``); returns the path."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix in (".dot", ".gv"):
            path.write_text(self.dot, encoding="utf-8")
            return path
        if suffix != ".svg":
            raise ValueError(f"save writes .svg, .dot or .gv files; received {str(path)!r}. Pick one of these suffixes.")
        svg = self.svg()
        if svg is None:
            raise RuntimeError(f"{self._problem} Save the DOT text instead: drawing.save('{path.with_suffix('.dot').name}').")
        path.write_text(svg, encoding="utf-8")
        return path

    def __repr__(self) -> str:
        n = len(re.findall(r"^\s+[rcn]\d+ \[label=", self.dot, flags=re.MULTILINE))
        return f"TreeDrawing({n} boxes; display it in a notebook or .save('tree.svg'); .dot holds the DOT text)"


_PROLOG = re.compile(r"<\?xml[^>]*\?>|<!DOCTYPE[^>]*>|<!--.*?-->", re.DOTALL)


def render_dot(dot: str, *, images: dict[str, bytes] | None = None) -> tuple[str | None, str | None]:
    """Render DOT text to an SVG document with Graphviz.

    ``images`` maps the picture file names used in the DOT labels (``<IMG SRC="..."/>``) to PNG
    bytes: they are written to a temporary folder for Graphviz to lay out, and embedded in the SVG
    as ``data:`` URIs, so the SVG stands alone.

    Returns
    -------
    (svg, problem)
        ``svg`` is the SVG text (XML prolog, DOCTYPE and comments removed), or None when Graphviz
        could not render; ``problem`` then says why (e.g. the ``dot`` binary is not installed).
    """
    if not isinstance(dot, str):
        raise TypeError(f"render_dot takes DOT text (a str from tree_to_dot); received {type(dot).__name__}.")
    import graphviz

    images = dict(images or {})
    tmp = None
    if images:
        import tempfile

        tmp = tempfile.TemporaryDirectory(prefix="explain_distill-dot-")
        for name, data in images.items():
            if Path(name).name != name or not name.endswith(".png"):
                raise ValueError(f"image names must be plain .png file names; received {name!r}.")
            Path(tmp.name, name).write_bytes(data)
        dot = dot.replace("{", "{\n  imagepath=" + _quote(tmp.name) + ";", 1)
    try:
        raw = graphviz.Source(dot).pipe(format="svg", encoding="utf-8")
    except graphviz.ExecutableNotFound:
        msg = "Graphviz's `dot` program is not installed, so trees are shown as DOT text (install graphviz to draw them)."
        logger.warning(msg)
        return None, msg
    except Exception as exc:  # CalledProcessError: show the text rather than fail the report
        msg = f"Graphviz could not draw this tree ({type(exc).__name__}: {exc}); it is shown as DOT text."
        logger.warning(msg)
        return None, msg
    finally:
        if tmp is not None:
            tmp.cleanup()
    svg = _PROLOG.sub("", raw).strip() + "\n"
    if images:
        import base64

        def embed(m: re.Match) -> str:
            name = Path(html.unescape(m.group(2))).name
            data = images.get(name)
            if data is None:
                return m.group(0)
            return f'{m.group(1)}"data:image/png;base64,{base64.b64encode(data).decode("ascii")}"'

        svg = re.sub(r'((?:xlink:)?href=)"([^"]+\.png)"', embed, svg)
    return svg, None


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

