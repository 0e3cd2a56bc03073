"""Views as Graphviz DOT and drawings: the display half of every view.

The DOT text itself is written by :mod:`explain_distill.viz.trees` (``tree_to_dot``,
``rules_to_dot``, ``sum_to_dot``), which asks the view for its conditions as text (the view's
:class:`~.conditions.ConditionWriter`); here the views choose what is drawn (the highlighted path,
how deep, the soft tree's filter pictures) and wrap the result in a ``TreeDrawing``.  ``analysis``
never imports ``viz`` at module level: every import of it below sits inside a function (the one
exception DESIGN.md allows, for rich display).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .conditions import Inverse

__all__ = ["DISPLAY_DEPTH", "DISPLAY_MAX_NODES", "RuleListDrawingMixin", "SumDrawingMixin", "TreeDrawingMixin"]

#: Trees with more nodes than this are drawn in a notebook down to depth 3 (plus the highlighted path).
DISPLAY_MAX_NODES = 31
DISPLAY_DEPTH = 3


class _SvgMixin:
    def _repr_svg_(self) -> str | None:
        """Jupyter's rich display: the drawing (None without Graphviz, so the text repr shows)."""
        return self.draw()._repr_svg_()  # type: ignore[attr-defined]


class TreeDrawingMixin(_SvgMixin):
    """``to_dot``, ``draw`` and the notebook display of a :class:`~.tree.TreeView`."""

    def to_dot(
        self,
        x: Any = None,
        *,
        max_depth_shown: int | Literal["auto"] | None = "auto",
        title: str | None = None,
        inverse: Inverse = None,
        filters: bool = False,
    ) -> str:
        """Graphviz DOT text of the tree (:func:`explain_distill.viz.trees.tree_to_dot`).

        Parameters
        ----------
        x : array (n_features,), optional
            Highlight this sample's path (default: the path set by :meth:`highlight`, if any).
            On a soft tree its edges carry the filter response and the probability of going right.
        max_depth_shown : int, None or "auto"
            Levels drawn (plus the highlighted path); ``"auto"`` draws every node of a tree of at
            most 31 nodes and three levels of a larger one; None draws every node.
        title : str, optional
        inverse : callable or per-feature callables, optional
            How thresholds are printed (see :data:`Inverse`); raw units when known.
        filters : bool, default=False
            Soft tree: reference a picture of each path node's filter beside it (``filter_<id>.png``;
            :meth:`draw` embeds them, the DOT text alone only names them).
        """
        return self._dot_and_images(x, max_depth_shown, title, inverse, filters)[0]

    def draw(self, x: Any = None, *, max_depth_shown: int | Literal["auto"] | None = "auto", title: str | None = None,
             inverse: Inverse = None, filters: bool = True) -> Any:
        """The tree drawn by Graphviz: a :class:`~explain_distill.viz.trees.TreeDrawing` (SVG in a
        notebook, ``.save("tree.svg")``); parameters as in :meth:`to_dot`.  A soft tree's highlighted
        path shows each node's filter beside it (``filters=False`` to leave them out)."""
        from ...viz.trees import TreeDrawing

        dot, images = self._dot_and_images(x, max_depth_shown, title, inverse, filters)
        return TreeDrawing(dot, images=images)

    def _dot_and_images(self: Any, x: Any, max_depth_shown: Any, title: Any, inverse: Inverse, filters: bool) -> tuple[str, dict]:
        from ...viz.trees import tree_to_dot

        units = self.writer(inverse).units
        path = self.path(x) if x is not None else self._highlight
        sample = x if x is not None else self._highlight_x if self._highlight is not None else None
        names, images, notes = _filter_parts(self, path, sample, filters)
        dot = tree_to_dot(
            self, path, max_depth_shown=_depth_shown(self, max_depth_shown), title=title, inverse=units,
            images=names or None, edge_notes=notes or None,
        )
        return dot, images


def _depth_shown(view: Any, max_depth_shown: Any) -> int | None:
    if isinstance(max_depth_shown, str):
        if max_depth_shown != "auto":
            raise ValueError(f"max_depth_shown must be an int, None or 'auto'; received {max_depth_shown!r}.")
        return None if len(view.nodes) <= DISPLAY_MAX_NODES else DISPLAY_DEPTH
    return max_depth_shown


def _data_kind(view: Any) -> str:
    shape = [s for s in (view.input_shape or ()) if s != 1]
    return "image" if len(shape) >= 2 else "signal" if view.input_shape and len(view.input_shape) == 2 else "tabular"


def _filter_parts(view: Any, path: list[int] | None, x: Any, filters: bool) -> tuple[dict[int, str], dict[str, bytes], dict]:
    """Pictures of the oblique filters on the path (file name per node, PNG bytes per file name)
    and the numbers on the path's edges (filter response, probability of going right)."""
    if view.kind != "oblique" or not path:
        return {}, {}, {}
    from ...viz.plots import filter_thumbnail

    names: dict[int, str] = {}
    images: dict[str, bytes] = {}
    if filters:
        for node in path[:-1]:
            name = f"filter_{node}.png"
            names[node] = name
            images[name] = filter_thumbnail(view.nodes[node].weights, input_shape=view.input_shape,
                                            kind=_data_kind(view), feature_names=view.feature_names)
    notes = {}
    if x is not None:
        for step, child in zip(view.path_steps(x), path[1:]):
            notes[(step["node"], child)] = f"response {step['response']:.2f}, P(right) {step['p_right']:.2f}"
    return names, images, notes


class RuleListDrawingMixin(_SvgMixin):
    """``to_dot``, ``draw`` and the notebook display of a :class:`~.rules.RuleListView`."""

    def to_dot(self: Any, x: Any = None, *, title: str | None = None, inverse: Inverse = None) -> str:
        """Graphviz DOT text: the rules as a chain (``yes`` to the rule's class, ``no`` to the next rule);
        ``x`` highlights the rules it passes through and the one that decides it."""
        from ...viz.trees import rules_to_dot

        fired = int(self.rule_of(np.asarray(x).reshape(1, -1))[0]) if x is not None else self._highlight
        return rules_to_dot(self, fired=fired, title=title, inverse=self.writer(inverse).units)

    def draw(self, x: Any = None, *, title: str | None = None, inverse: Inverse = None) -> Any:
        """The rule list drawn by Graphviz (a :class:`~explain_distill.viz.trees.TreeDrawing`)."""
        from ...viz.trees import TreeDrawing

        return TreeDrawing(self.to_dot(x, title=title, inverse=inverse))


class SumDrawingMixin(_SvgMixin):
    """``to_dot``, ``draw`` and the notebook display of a :class:`~.figs.SumOfTreesView`."""

    def to_dot(self: Any, x: Any = None, *, title: str | None = None, inverse: Inverse = None) -> str:
        """Graphviz DOT text: the bias and one box per tree; ``x`` highlights its leaf in every tree."""
        from ...viz.trees import sum_to_dot

        paths = self.path(x) if x is not None else self._highlight
        return sum_to_dot(self, paths, title=title, inverse=self.writer(inverse).units)

    def draw(self, x: Any = None, *, title: str | None = None, inverse: Inverse = None) -> Any:
        """The sum of trees drawn by Graphviz (a :class:`~explain_distill.viz.trees.TreeDrawing`)."""
        from ...viz.trees import TreeDrawing

        return TreeDrawing(self.to_dot(x, title=title, inverse=inverse))
