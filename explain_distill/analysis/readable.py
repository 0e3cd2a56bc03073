"""What a reader needs from the readable families, as plain data: a rule list's rules with their
coverage and fidelity, and an additive model's shape functions in the data's raw units.

- :func:`rule_list_table`: every rule of a fitted rule list in the order the list is read, with
  its training coverage and fidelity (recorded at fit) and its coverage and fidelity on the rows
  given (the test split in a report); rules that decide none of those rows are counted and left
  out (they change nothing on them).
- :func:`additive_shapes`: the most important one-feature shapes of a fitted additive model
  (``gam``) in raw units: each class's centred logit contribution at the knots of a linear shape
  (linear between them, flat outside) or on the bins of a step shape, plus the pair terms by name.

Both take fitted surrogates and arrays; nothing here draws (see :func:`explain_distill.viz.plots.gam_shapes_figure`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .._validation import check_array_2d, check_int, check_n_features

__all__ = ["rule_list_table", "additive_shapes"]


def rule_list_table(estimator: Any, X: Any, teacher_pred: Any, *, decimals: int | None = None) -> dict[str, Any]:
    """The rules of a fitted rule list, in reading order, with coverage and fidelity each.

    Parameters
    ----------
    estimator : fitted rule list
        Anything :class:`~explain_distill.analysis.views.RuleListView` can view (``rules_``,
        ``n_features_in_``, ``classes_``); thresholds print in raw units when it carries them.
    X : array (n, d)
        Rows to measure each rule on (the test split in a report).
    teacher_pred : array (n,)
        The teacher's class index of each row.

    Returns
    -------
    dict
        ``rules``: ``[{"position" (1-based, in the list), "conditions": [str] (as printed: each feature
        once), "class", "p",
        "train_coverage", "train_fidelity", "n", "coverage", "agreement", "is_else"}]`` for the
        rules that decide at least one row of ``X`` (the ``else`` always); ``hidden``: how many
        rules decide none; ``n_rules``: rules before the ``else``; ``n``: rows of ``X``.
    """
    from .views import RuleListView

    check_is_fitted(estimator)
    view = RuleListView.of(estimator)
    X = check_array_2d(X, name="X", dtype=None)
    check_n_features(X, len(view.feature_names), what="this rule list")
    t = np.asarray(teacher_pred).reshape(-1)
    if len(t) != len(X):
        raise ValueError(f"teacher_pred has {len(t)} entries but X has {len(X)} rows; pass one class per row.")
    which = np.asarray(estimator.rule_of(X))
    pred = np.asarray(estimator.predict(X))
    classes = list(np.asarray(estimator.classes_))
    pred_idx = np.array([classes.index(p) for p in pred], dtype=np.int64) if len(pred) else np.zeros(0, dtype=np.int64)
    agree = pred_idx == t
    doc = view.to_dict()["rules"]
    rows, hidden = [], 0
    last = len(view.rules) - 1
    for r, (rule, d) in enumerate(zip(view.rules, doc)):
        mine = which == r
        n = int(mine.sum())
        if n == 0 and r != last:
            hidden += 1
            continue
        rows.append({
            "position": r + 1,
            "conditions": list(d["text"]),
            "class": d["class"],
            "p": float(d["probability"]),
            "train_coverage": float(rule["coverage"]),
            "train_fidelity": float(rule["fidelity"]) if np.isfinite(rule["fidelity"]) else None,
            "n": n,
            "coverage": n / len(X) if len(X) else None,
            "agreement": float(agree[mine].mean()) if n else None,
            "is_else": r == last,
        })
    return {"rules": rows, "hidden": hidden, "n_rules": last, "n": int(len(X))}


def additive_shapes(
    estimator: Any, *, max_terms: int = 12, feature_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """The shape functions of a fitted additive model, most important first, in raw units.

    Returns ``{"shapes": [{"feature", "feature_index", "form", "x" (raw units: the knots (G,) of a
    ``"linear"`` shape, the bin boundaries (G + 1,) of a ``"step"`` one), "contribution" (G, K)
    centred logits, "importance"}], "pairs": [{"features": (name_a, name_b), "importance"}],
    "class_names", "intercept", "n_terms", "shown", "raw": bool}`` (``raw`` False when the model
    carries no units: ``x`` is then in the fitted scale).
    """
    check_is_fitted(estimator)
    if not hasattr(estimator, "shapes_"):
        raise TypeError(f"additive_shapes takes a fitted additive model (with shapes_); received {type(estimator).__name__}.")
    max_terms = check_int(max_terms, "max_terms", low=1)
    from ..surrogates._base import class_names_of, feature_names_of

    fn = feature_names_of(estimator, feature_names)
    cn = class_names_of(estimator)
    units = getattr(estimator, "input_units_", None)
    shapes = estimator.shapes_
    importance = np.asarray(estimator.importance_, dtype=np.float64)
    order = np.argsort(-importance, kind="stable")
    mains, pairs = [], []
    for i in order:
        s = shapes[int(i)]
        if s["kind"] == "main":
            if len(mains) >= max_terms:
                continue
            j = int(s["features"][0])
            x = np.asarray(s["grid"], dtype=np.float64)
            if units:
                x = x * float(units["scale"][j]) + float(units["mean"][j])
            mains.append({"feature": fn[j], "feature_index": j, "form": s.get("form", "linear"), "x": x,
                          "contribution": np.asarray(s["contribution"], dtype=np.float64), "importance": float(importance[i])})
        else:
            a, b = (int(v) for v in s["features"])
            pairs.append({"features": (fn[a], fn[b]), "importance": float(importance[i])})
    return {"shapes": mains, "pairs": pairs, "class_names": list(cn), "intercept": np.asarray(estimator.intercept_),
            "n_terms": len(shapes), "shown": len(mains), "raw": bool(units)}
