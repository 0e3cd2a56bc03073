"""tree_to_dot: exact DOT for a tiny hand-built tree, escaping, highlighting, collapsing, fallback."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from explain_distill.analysis.tree_view import TreeNode, TreeView
from explain_distill.viz.trees import collapse, render_dot, tree_to_dot


def _node(i, depth, *, left=None, right=None, feature=None, threshold=None, value=(0.5, 0.5), n=None, w=None):
    return TreeNode(
        id=i, depth=depth, is_leaf=left is None, left=left, right=right, feature=feature, threshold=threshold,
        weights=None if w is None else np.asarray(w, dtype=float), bias=None if w is None else 0.0,
        beta=None if w is None else 1.0, value=np.asarray(value, dtype=float), n_samples=n,
    )


def tiny(feature_names=("petal", "sepal"), class_names=("a", "b")) -> TreeView:
    """root: petal <= 0.5 ? leaf 1 : (sepal <= -1.25 ? leaf 3 : leaf 4)."""
    nodes = [
        _node(0, 0, left=1, right=2, feature=0, threshold=0.5, value=(0.6, 0.4), n=10),
        _node(1, 1, value=(0.9, 0.1), n=6),
        _node(2, 1, left=3, right=4, feature=1, threshold=-1.25, value=(0.25, 0.75), n=4),
        _node(3, 2, value=(0.5, 0.5), n=1),
        _node(4, 2, value=(0.0, 1.0), n=3),
    ]
    return TreeView(kind="axis", nodes=nodes, feature_names=list(feature_names), class_names=list(class_names))


HEADER = (
    "digraph tree {\n"
    '  graph [rankdir=TB, ranksep=0.35, nodesep=0.2, fontname="Helvetica", fontsize=10];\n'
    '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", color="#8a94a6", fontname="Helvetica", fontsize=10];\n'
    '  edge [color="#8a94a6", fontname="Helvetica", fontsize=9, arrowsize=0.6];\n'
)


def test_exact_dot_of_a_tiny_tree():
    expected = HEADER + (
        "  n0 [label=<<B>petal &lt;= 0.5</B><BR/>#0: a (0.60)<BR/>n = 10>];\n"
        '  n1 [label=<<B>a</B> (0.90)<BR/>leaf #1<BR/>n = 6>, fillcolor="#eef4fb"];\n'
        "  n2 [label=<<B>sepal &lt;= -1.25</B><BR/>#2: b (0.75)<BR/>n = 4>];\n"
        '  n3 [label=<<B>a</B> (0.50)<BR/>leaf #3<BR/>n = 1>, fillcolor="#eef4fb"];\n'
        '  n4 [label=<<B>b</B> (1.00)<BR/>leaf #4<BR/>n = 3>, fillcolor="#eef4fb"];\n'
        "  n0 -> n1 [label=<yes>];\n"
        "  n0 -> n2 [label=<no>];\n"
        "  n2 -> n3 [label=<yes>];\n"
        "  n2 -> n4 [label=<no>];\n"
        "}\n"
    )
    assert tree_to_dot(tiny()) == expected


def test_highlight_marks_exactly_the_path():
    dot = tree_to_dot(tiny(), highlight=[0, 2, 4])
    red = [line.split()[0] for line in dot.splitlines() if 'color="#d62728"' in line and "->" not in line]
    assert red == ["n0", "n2", "n4"]
    red_edges = [line.strip().split(" [")[0] for line in dot.splitlines() if "->" in line and "#d62728" in line]
    assert red_edges == ["n0 -> n2", "n2 -> n4"]
    assert tree_to_dot(tiny(), highlight=[0, 1]).count("#d62728") == 3 + 1  # two nodes + one edge (color, fontcolor)


def test_hostile_names_stay_literal_in_dot_and_svg():
    hostile = ['<script>alert(1)</script>', '"q" -> n9 [label=x]; & $x$']
    view = tiny(feature_names=hostile, class_names=["<b>x</b>", "<img src=x onerror=alert(1)>"])
    dot = tree_to_dot(view, highlight=[0, 2, 3], title="</B>> injected")
    assert "<script>" not in dot and "<img" not in dot and "<b>x" not in dot
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dot
    assert "&quot;q&quot; -&gt; n9 [label=x]; &amp; $x$" in dot
    assert dot.count("->") == 4  # the hostile "->" did not add an edge
    svg, problem = render_dot(dot)
    assert problem is None and svg.lstrip().startswith("<svg")
    root = ET.fromstring(svg)
    tags = {el.tag.rsplit("}", 1)[-1] for el in root.iter()}
    assert "script" not in tags and "foreignObject" not in tags
    texts = " ".join(el.text or "" for el in root.iter() if el.tag.endswith("text"))
    assert "<script>alert(1)</script>" in texts
    assert "<img src=x onerror=alert(1)>" in texts
    assert "</B>> injected" in texts


def deep_oblique(depth: int = 12, d: int = 4) -> TreeView:
    n_inner = 2**depth - 1
    rng = np.random.default_rng(0)
    nodes = []
    for i in range(2 * n_inner + 1):
        level = int(np.floor(np.log2(i + 1)))
        if i < n_inner:
            nodes.append(_node(i, level, left=2 * i + 1, right=2 * i + 2, w=rng.normal(size=d), value=(0.5, 0.5)))
        else:
            nodes.append(_node(i, level, value=(0.3, 0.7)))
    return TreeView(kind="oblique", nodes=nodes, feature_names=[f"x{j}" for j in range(d)], class_names=["a", "b"])


def test_deep_tree_collapses_to_top_levels_plus_path():
    view = deep_oblique()
    path = view.path(np.ones(4))
    assert len(path) == 13
    col = collapse(view, highlight=path, max_depth_shown=3)
    assert set(path) <= set(col.shown)
    assert len(col.shown) == 15 + (13 - 4)  # 4 top levels, plus the path below them
    assert len(col.shown) + col.n_hidden == len(view.nodes)
    dot = tree_to_dot(view, highlight=path, max_depth_shown=3)
    assert f"{len(col.shown)} of {len(view.nodes)} nodes shown" in dot
    assert "hidden" in dot and "&gt; 0" in dot and "filter #0" in dot
    svg, problem = render_dot(dot)
    assert problem is None and "<svg" in svg


def test_render_falls_back_without_dot(monkeypatch):
    import graphviz

    def missing(*args, **kwargs):
        raise graphviz.ExecutableNotFound(("dot",))

    monkeypatch.setattr(graphviz.Source, "pipe", missing)
    svg, problem = render_dot(tree_to_dot(tiny()))
    assert svg is None and "dot" in problem and "not installed" in problem


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="outside this tree"):
        tree_to_dot(tiny(), highlight=[0, 7])
    with pytest.raises(TypeError, match="TreeView"):
        tree_to_dot({"nodes": []})
    with pytest.raises(TypeError, match="DOT text"):
        render_dot(b"digraph {}")


def test_real_sklearn_tree_path(iris):
    from explain_distill.surrogates.shallow import SoftLabelTreeClassifier

    est = SoftLabelTreeClassifier(max_depth=4, random_state=0).fit(iris.X_train, iris.y_train)
    view = TreeView.of(est, feature_names=iris.feature_names, class_names=iris.class_names)
    path = view.path(iris.X_test[0])
    dot = tree_to_dot(view, highlight=path, max_depth_shown=2)
    leaf = path[-1]
    assert f'  n{leaf} [label=<<B>' in dot and f"leaf #{leaf}" in dot
    assert all(f"  n{i} [" in dot for i in path)
