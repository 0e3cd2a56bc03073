"""Views as JSON-able dicts: trees as nested nodes, rule lists as a list of rules, sums of trees as
their bias and trees.

Thresholds are printed through the view's :class:`~.conditions.ConditionWriter` (and each split
or condition carries its text as ``"condition"``); ``"threshold_fitted"`` keeps the fitted value
whenever the printed one differs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .conditions import ConditionWriter, Inverse

__all__ = ["rule_list_dict", "sum_dict", "tree_dict"]


def _node(view: Any, i: int, writer: ConditionWriter, top: str = "probability") -> dict[str, Any]:
    """Node ``i`` and its subtree; ``top`` names the entry holding the top class's value."""
    nd = view.nodes[i]
    k = int(np.argmax(nd.value))
    out: dict[str, Any] = {"id": i, "depth": nd.depth}
    if nd.is_leaf:
        out["leaf"] = True
    else:
        out.update(view.splits.fields(nd, view.feature_names, writer))
    out["class"] = view.class_names[k]
    out[top] = float(nd.value[k])
    out["value"] = [float(v) for v in nd.value]
    out["samples"] = None if nd.n_samples is None else float(nd.n_samples)
    if not nd.is_leaf:
        out["left"] = _node(view, nd.left, writer, top)
        out["right"] = _node(view, nd.right, writer, top)
    return out


def tree_dict(view: Any, *, inverse: Inverse = None) -> dict[str, Any]:
    """A :class:`~.tree.TreeView` as nested dicts (see :meth:`TreeView.to_dict`)."""
    writer = view.writer(inverse)
    return {
        "kind": view.kind,
        "feature_names": list(view.feature_names),
        "class_names": list(view.class_names),
        "input_shape": None if view.input_shape is None else list(view.input_shape),
        "tree": _node(view, 0, writer),
    }


def rule_list_dict(view: Any, *, inverse: Inverse = None) -> dict[str, Any]:
    """A :class:`~.rules.RuleListView` as dicts (see :meth:`RuleListView.to_dict`)."""
    writer = view.writer(inverse)
    rules = []
    for r, rule in enumerate(view.rules):
        k = int(np.argmax(rule["value"]))
        conds = []
        for c in view.decision_conditions(r):
            v = writer.value(c.feature, c.threshold)
            d = {"feature": view.feature_names[c.feature], "feature_index": c.feature, "op": c.op,
                 "threshold": v if isinstance(v, str) else float(v), "condition": writer.text(c)}
            if writer.converted:
                d["threshold_fitted"] = c.threshold
            conds.append(d)
        fid = rule["fidelity"]
        rules.append({
            "conditions": conds,
            "text": writer.texts(view.decision_conditions(r)),  # as printed: each feature once
            "class": view.class_names[k],
            "probability": float(rule["value"][k]),
            "value": [float(v) for v in rule["value"]],
            "coverage": float(rule["coverage"]),
            "fidelity": float(fid) if np.isfinite(fid) else None,
        })
    return {"feature_names": list(view.feature_names), "class_names": list(view.class_names), "rules": rules}


def sum_dict(view: Any, *, inverse: Inverse = None) -> dict[str, Any]:
    """A :class:`~.figs.SumOfTreesView` as dicts: ``{"feature_names", "class_names", "bias", "trees"}``,
    each tree nested as in :func:`tree_dict`, a leaf's ``"value"`` its contribution to each class's logit
    (``"contribution"``: the top class's)."""
    writer = view.writer(inverse)
    return {
        "kind": "sum",
        "feature_names": list(view.feature_names),
        "class_names": list(view.class_names),
        "bias": [float(v) for v in view.bias],
        "trees": [_node(tree, 0, writer, "contribution") for tree in view.trees],
    }
