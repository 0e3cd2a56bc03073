"""Views of the readable models: one protocol, one adapter per model kind, exports apart.

==============  ==========================================================================
module          what lives there
==============  ==========================================================================
registry        the :class:`View` protocol; adapters: ``register_adapter``, ``view_of``,
                ``tree_view_of``, ``family_of``
conditions      conditions as data (``Condition``, ``FilterCondition``) and the one place
                they become text (``ConditionWriter``), the units (``Inverse``), the words
                of teacher features (``describe_condition``), ``tightest``
tree            ``TreeNode`` and the core of ``TreeView`` (nodes, paths, conditions, rules)
splits          how inner nodes split: ``"axis"`` and ``"oblique"``
sklearn         adapter: scikit-learn's trees, ``SoftLabelTreeClassifier``, ``_tree_arrays()``
soft_tree       adapter: the soft decision tree
rules           ``RuleListView`` and its adapter
figs            ``SumOfTreesView`` and its adapter
features        ``FeatureView`` (a surrogate over teacher features) and its adapter
export_text     text exports (scikit-learn's ``export_text`` layout, IF/ELSE IF rule lists)
export_dict     JSON-able dict exports
export_dot      DOT text and drawings (``viz`` imported inside the methods only)
==============  ==========================================================================

Importing this package registers the adapters (soft tree first) and gives the surrogates'
``view()`` / ``draw()`` / ``export_text()`` registry (:mod:`explain_distill.surrogates._base`) its
views: ``"tree"`` -> ``TreeView.of``, ``"rules"`` -> ``RuleListView.of``, ``"figs"`` ->
``SumOfTreesView.of``.
"""

from __future__ import annotations

from ...surrogates._base import register_viewer

# The adapters register in this order, which is the order they are tried in.
from . import soft_tree, sklearn, rules, figs, features  # noqa: E401, F401, I001  isort: skip
from .conditions import Condition, ConditionWriter, FeatureWording, FilterCondition, Inverse, describe_condition, tightest
from .export_dot import DISPLAY_DEPTH, DISPLAY_MAX_NODES
from .features import FeatureView
from .figs import SumOfTreesView
from .registry import View, family_of, register_adapter, tree_view_of, view_of
from .rules import RuleListView
from .tree import TreeNode, TreeView

__all__ = [
    "DISPLAY_DEPTH",
    "DISPLAY_MAX_NODES",
    "Condition",
    "ConditionWriter",
    "FeatureView",
    "FeatureWording",
    "FilterCondition",
    "Inverse",
    "RuleListView",
    "SumOfTreesView",
    "TreeNode",
    "TreeView",
    "View",
    "describe_condition",
    "family_of",
    "register_adapter",
    "tightest",
    "tree_view_of",
    "view_of",
]

register_viewer("tree", TreeView.of)
register_viewer("rules", RuleListView.of)
register_viewer("figs", SumOfTreesView.of)
