"""Views as text for documents: trees in scikit-learn's ``export_text`` layout, rule lists as
``IF ... THEN ... / ELSE IF ... / ELSE ...``, sums of trees as one such tree per term.

Each function takes a view and returns a string; conditions are written by the view's
:class:`~.conditions.ConditionWriter` (the one place thresholds become text), the layout here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from ..._validation import check_int
from .conditions import ConditionWriter, Inverse

__all__ = ["p_at", "rule_list_text", "rule_stats", "sum_text", "tree_text"]


def p_at(view: Any, p: float) -> str:
    """``p=0.88`` or ``p=0.88 at T=4``: leaf and rule probabilities are the teacher's, softened at the run's
    temperature (shown unless it is 1 or unknown)."""
    t = getattr(view, "temperature", None)
    return f"p={p:.2f}" if t is None or float(t) == 1.0 else f"p={p:.2f} at T={float(t):g}"


def _count(v: float) -> str:
    return f"{int(v)}" if float(v).is_integer() else f"{v:.3g}"


def _tree_lines(view: Any, writer: ConditionWriter, leaf: Callable[[Any], str], **precision: Any) -> Iterator[str]:
    """``|--- condition`` lines, the ``<=`` branch first (scikit-learn's order), ``leaf(node)`` at leaves."""
    stack: list[tuple[int, int, str | None]] = [(0, 0, None)]
    while stack:
        i, level, head = stack.pop()
        if head is not None:
            yield f"{'|   ' * level}|--- {head}"
            level += 1
        nd = view.nodes[i]
        if nd.is_leaf:
            yield f"{'|   ' * level}|--- {leaf(nd)}"
            continue
        yes = writer.text(view.splits.condition(nd, False), **precision)
        no = writer.text(view.splits.condition(nd, True), **precision).replace(" > ", " >  ", 1)  # aligned, as scikit-learn
        stack.append((nd.right, level, no))
        stack.append((nd.left, level, yes))


def tree_text(
    view: Any, *, decimals: int = 3, inverse: Inverse = None, show_samples: bool = True, show_probability: bool = True
) -> str:
    """A :class:`~.tree.TreeView` as indented text (see :meth:`TreeView.export_text`).

    ``show_probability=False`` with ``show_samples=False`` writes scikit-learn's own leaves
    (``class: setosa``).
    """
    decimals = check_int(decimals, "decimals", low=0, high=17)
    writer = view.writer(inverse)

    def leaf(nd: Any) -> str:
        k = int(np.argmax(nd.value))
        if not show_probability:
            return f"class: {view.class_names[k]}"
        n = "" if nd.n_samples is None or not show_samples else f", n={_count(nd.n_samples)}"
        return f"class: {view.class_names[k]} ({p_at(view, nd.value[k])}{n})"

    return "\n".join(_tree_lines(view, writer, leaf, decimals=decimals))


def rule_stats(rule: Mapping[str, Any]) -> str:
    """``coverage 12.3%, fidelity 98.0%`` (fidelity only where the rule list records it)."""
    fid = float(rule.get("fidelity", float("nan")))
    return f"coverage {rule['coverage']:.1%}" + (f", fidelity {fid:.1%}" if np.isfinite(fid) else "")


def rule_list_text(view: Any, *, decimals: int = 3, inverse: Inverse = None) -> str:
    """A :class:`~.rules.RuleListView` one rule a line, in reading order (see :meth:`RuleListView.export_text`)."""
    decimals = check_int(decimals, "decimals", low=0, high=17)
    writer = view.writer(inverse)
    lines = []
    for r, rule in enumerate(view.rules):
        k = int(np.argmax(rule["value"]))
        then = f"{view.class_names[k]} ({p_at(view, rule['value'][k])}) [{rule_stats(rule)}]"
        if not rule["conditions"]:
            lines.append(("ELSE " if r else "") + then)
            continue
        conds = " AND ".join(writer.texts(view.decision_conditions(r), decimals=decimals))
        lines.append(f"{'IF' if r == 0 else 'ELSE IF'} {conds} THEN {then}")
    return "\n".join(lines)


def sum_text(view: Any, *, decimals: int = 3, inverse: Inverse = None) -> str:
    """A :class:`~.figs.SumOfTreesView`: the bias, then each tree; a leaf shows its top class and its
    contributions to every class's logit.

    Conditions read as in every other view (raw units, true as printed).
    """
    decimals = check_int(decimals, "decimals", low=0, high=17)
    writer = view.writer(inverse)
    cn = view.class_names

    def leaf(nd: Any) -> str:
        k = int(np.argmax(nd.value))
        return f"+{cn[k]} ({', '.join(f'{c} {x:+.2f}' for c, x in zip(cn, nd.value))})"

    lines = ["bias: " + ", ".join(f"{c} {v:+.2f}" for c, v in zip(cn, view.bias))]
    for t, tree in enumerate(view.trees):
        lines.append(f"tree {t + 1}:")
        lines.extend(_tree_lines(tree, writer, leaf, decimals=decimals))
    return "\n".join(lines)
