"""Drawing: matplotlib Figures and Graphviz DOT from plain data (never a model, never torch)."""

from .plots import (
    attribution_figure,
    bars_figure,
    confusion_figure,
    curves_figure,
    figure_to_data_uri,
    figure_to_png,
    figure_to_svg,
    filters_figure,
    gam_shapes_figure,
    inputs_figure,
    leaf_distributions_figure,
    metric_panels_figure,
    pattern_figure,
    pattern_thumbnail,
    svg_to_data_uri,
)
from .trees import CollapsedTree, collapse, render_dot, tree_to_dot

__all__ = [
    "CollapsedTree",
    "attribution_figure",
    "bars_figure",
    "collapse",
    "confusion_figure",
    "curves_figure",
    "figure_to_data_uri",
    "figure_to_png",
    "figure_to_svg",
    "filters_figure",
    "gam_shapes_figure",
    "inputs_figure",
    "leaf_distributions_figure",
    "metric_panels_figure",
    "pattern_figure",
    "pattern_thumbnail",
    "render_dot",
    "svg_to_data_uri",
    "tree_to_dot",
]
