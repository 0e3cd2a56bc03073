"""Where ``TreeView`` was born; the views now live in :mod:`explain_distill.analysis.views`.

This module re-exports the names it always offered, so ``from explain_distill.analysis.tree_view
import TreeView, TreeNode, RuleListView, Inverse`` keeps working.  New code imports from
:mod:`explain_distill.analysis.views` (or :mod:`explain_distill.analysis`).
"""

from __future__ import annotations

from .views import DISPLAY_DEPTH, DISPLAY_MAX_NODES, Inverse, RuleListView, TreeNode, TreeView

__all__ = ["DISPLAY_DEPTH", "DISPLAY_MAX_NODES", "Inverse", "RuleListView", "TreeNode", "TreeView"]
