"""viz.plots: figures without pyplot, deterministic SVG, literal user text."""

from __future__ import annotations

import base64
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from matplotlib.figure import Figure

from explain_distill.viz import plots

HOSTILE = ["<script>alert(1)</script>", "$x$", '"q" & <b>x</b>']


def _figures(rng):
    X = rng.normal(size=(4, 64))
    return [
        plots.confusion_figure(np.array([[5, 1, 0], [2, 7, 1], [0, 0, 3]]), HOSTILE, title="$x$ <t>"),
        plots.inputs_figure(X, input_shape=(1, 8, 8), kind="image", titles=HOSTILE + ["d"]),
        plots.inputs_figure(X[:, :40], input_shape=(1, 40), kind="signal", titles=HOSTILE),
        plots.attribution_figure(X, {"teacher": X, "$tree$": -X}, input_shape=(1, 8, 8), kind="image", row_titles=HOSTILE),
        plots.attribution_figure(X[:, :3], {"teacher": X[:, :3]}, input_shape=(3,), kind="tabular", feature_names=HOSTILE),
        plots.attribution_figure(X[:, :40], {"teacher": X[:, :40]}, input_shape=(1, 40), kind="signal"),
        plots.curves_figure([1, 2, 4], {"$x$": [0.5, None, 0.9]}, xlabel="T", ylabel="fidelity"),
        plots.metric_panels_figure([0, 0.5], {"teacher": {"accuracy": [1, 0.5], "fidelity": [1, 0.7]}}, xlabel="sigma"),
        plots.leaf_distributions_figure(rng.dirichlet(np.ones(3), size=5), class_names=HOSTILE, leaf_ids=[3, 4, 5, 6, 7], highlight=[4]),
        plots.filters_figure(X[:3], node_ids=[0, 1, 2], input_shape=(1, 8, 8), kind="image", highlight=[1]),
        plots.filters_figure(X[:3, :40], node_ids=[0, 1, 2], input_shape=(1, 40), kind="signal"),
        plots.filters_figure(X[:3, :5], node_ids=[0, 1, 2], input_shape=(5,), kind="tabular", feature_names=HOSTILE + ["a", "b"]),
        plots.bars_figure(["student", "$x$"], {"kd": [0.9, 0.8], "hard": [0.85, None]}, ylabel="accuracy"),
    ]


def test_every_builder_returns_a_figure_with_literal_text(rng):
    for fig in _figures(rng):
        assert isinstance(fig, Figure)
        svg = plots.figure_to_svg(fig)
        root = ET.fromstring(svg)  # well-formed XML: user text cannot break out
        assert not any(el.tag.endswith("script") for el in root.iter())
        assert "<script>" not in svg


def test_math_text_stays_literal(rng):
    svg = plots.figure_to_svg(plots.curves_figure([1, 2], {"$x$": [0.1, 0.2]}, xlabel="$\\alpha$", ylabel="y"))
    texts = [el.text for el in ET.fromstring(svg).iter() if el.tag.endswith("text")]
    assert "$x$" in texts and "$\\alpha$" in texts
    svg = plots.figure_to_svg(plots.confusion_figure(np.eye(3, dtype=int), HOSTILE))
    texts = [el.text for el in ET.fromstring(svg).iter() if el.tag.endswith("text")]
    assert '"q" & <b>x</b>' in texts


def test_svg_is_deterministic():
    def build():
        rng = np.random.default_rng(1)
        X = rng.normal(size=(3, 64))
        figs = [
            plots.attribution_figure(X, {"teacher": X}, input_shape=(1, 8, 8), kind="image", row_titles=HOSTILE),
            plots.confusion_figure(np.eye(3, dtype=int), HOSTILE),
            plots.curves_figure([1, 2], {"$x$": [0.1, 0.2]}, xlabel="T", ylabel="f"),
        ]
        return [plots.figure_to_svg(f) for f in figs]

    first, second = build(), build()
    assert first == second
    assert all("<dc:date>" not in s for s in first)


def test_data_uri_switches_to_png_when_svg_is_big(monkeypatch, rng):
    fig = plots.curves_figure([1, 2], {"a": [0.1, 0.2]}, xlabel="x", ylabel="y")
    uri = plots.figure_to_data_uri(fig)
    assert uri.startswith("data:image/svg+xml;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]).startswith(b"<?xml")
    monkeypatch.setattr(plots, "_MAX_SVG_BYTES", 10)
    uri = plots.figure_to_data_uri(fig)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="format"):
        plots.figure_to_data_uri(fig, format="jpeg")
    with pytest.raises(TypeError, match="Figure"):
        plots.figure_to_svg("not a figure")


def test_shape_errors_say_what_was_wrong(rng):
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        plots.confusion_figure(np.zeros((2, 2)), ["a", "b", "c"])
    with pytest.raises(ValueError, match="must match inputs"):
        plots.attribution_figure(np.zeros((2, 4)), {"t": np.zeros((2, 5))}, input_shape=(4,), kind="tabular")
    with pytest.raises(ValueError, match="x values"):
        plots.curves_figure([1, 2, 3], {"a": [1, 2]}, xlabel="x", ylabel="y")
    with pytest.raises(ValueError, match="one id per filter"):
        plots.filters_figure(np.zeros((2, 4)), node_ids=[0], input_shape=(4,), kind="tabular")


def test_viz_never_imports_pyplot_or_torch():
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        import explain_distill.viz as viz
        rng = np.random.default_rng(0)
        X = rng.normal(size=(3, 64))
        viz.figure_to_data_uri(viz.attribution_figure(X, {"t": X}, input_shape=(1, 8, 8), kind="image"))
        viz.figure_to_data_uri(viz.confusion_figure(np.eye(2, dtype=int), ["a", "b"]), format="png")
        viz.figure_to_svg(viz.curves_figure([1, 2], {"a": [1, 2]}, xlabel="x", ylabel="y"))
        print("pyplot" if "matplotlib.pyplot" in sys.modules else "clean")
        print("torch" if "torch" in sys.modules else "no-torch")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert lines[0] == "clean"


# ---------------------------------------------------------------------------- readable figures
def _extents(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    r = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)
    return [leg.get_window_extent(r) for leg in legends], [ax.patch.get_window_extent(r) for ax in fig.axes if ax.axison]


@pytest.mark.parametrize("build", [
    lambda: plots.bars_figure(["accuracy", "fidelity"], {"soft": [0.95, 0.97], "hard": [0.96, 0.99]}, ylabel="y", ylim=(0, 1.05)),
    lambda: plots.curves_figure([1, 2, 4, 8, 20], {f"s{i}": [0.9] * 5 for i in range(8)}, xlabel="T", ylabel="f"),
    lambda: plots.metric_panels_figure([0, 0.5, 1], {"teacher": {"accuracy": [1, 1, 1], "fidelity": [1, 1, 1]},
                                                     "tree": {"accuracy": [0.9, 0.8, 0.7], "fidelity": [0.95, 0.9, 0.8]}}, xlabel="s"),
    lambda: plots.attribution_figure(np.ones((2, 40)), {"teacher": np.ones((2, 40)), "tree": -np.ones((2, 40))},
                                     input_shape=(1, 40), kind="signal"),
], ids=["bars", "curves", "panels", "signal attribution"])
def test_legends_never_cover_an_axes(build):
    legends, areas = _extents(build())
    assert legends and areas
    for leg in legends:
        for area in areas:
            assert not leg.overlaps(area), (leg, area)


def test_log_axis_renders_its_powers_of_ten_and_names_stay_literal():
    svg = plots.figure_to_svg(plots.bars_figure(["$a$", "b"], {"n": [10, 20000]}, ylabel="size", logy=True))
    assert "mathdefault" not in svg and "<!--" not in svg
    texts = [el.text for el in ET.fromstring(svg).iter() if el.tag.endswith("text")]
    assert "$a$" in texts


def test_long_column_headers_wrap_instead_of_being_cut(rng):
    X = rng.random((2, 64))
    fig = plots.attribution_figure(X, {"teacher": X, "teacher:FeatureAblation": X, "a_really_long_surrogate_name_here": X},
                                   input_shape=(1, 8, 8), kind="image")
    heads = [t for t in fig.axes[0].texts if t.get_gid() and t.get_gid().startswith("col-title-")]
    assert [t.get_text().replace("\n", "") for t in heads] == ["input", "teacher", "teacher:FeatureAblation",
                                                               "a_really_long_surrogate_name_here"]
    assert heads[2].get_text() == "teacher:\nFeatureAblation"


def test_wrap_breaks_at_separators_then_inside_words():
    assert plots._wrap("teacher:FeatureAblation", 18) == ["teacher:", "FeatureAblation"]
    assert plots._wrap("short", 18) == ["short"]
    assert plots._wrap("x" * 40, 18) == ["x" * 18, "x" * 18, "x" * 4]
    assert plots._wrap("one two three four five six seven", 9, max_lines=2) == ["one two", "three fo…"]
