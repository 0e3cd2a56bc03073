"""The fidelity-size frontier as one figure: one line per readable family, intervals as bands.

Takes the plain data of :func:`explain_distill.analysis.frontier.frontier_report` (or the
``analysis.frontier`` block of a metrics.json), never a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from .plots import _PALETTE, _styled

__all__ = ["frontier_figure"]

_UNITS = ("leaves", "rules", "terms", "nodes")


@_styled
def frontier_figure(
    families: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    min_agreement: float | None = None,
    title: str = "Fidelity against size, per readable family",
    width: float = 8.0,
    height: float = 3.8,
) -> Figure:
    """Test fidelity against model size (log scale) for each family, with 95% interval bands.

    Parameters
    ----------
    families : dict of family -> list of rows
        Each row has ``size``, ``fidelity``, ``interval`` ([low, high]) and optionally ``chosen``
        and its unit key (``leaves``, ``rules`` or ``terms``), as in ``analysis.frontier``.
    min_agreement : float, optional
        Drawn as a dashed line; the chosen model of each family is ringed.
    """
    if not isinstance(families, Mapping) or not families:
        raise ValueError("frontier_figure needs at least one family with its list of sizes.")
    fig = Figure(figsize=(width, height))
    ax = fig.add_subplot(1, 1, 1)
    sizes_seen: set[int] = set()
    units: set[str] = set()
    for i, (name, rows) in enumerate(families.items()):
        rows = sorted((r for r in rows if r.get("fidelity") is not None), key=lambda r: r["size"])
        if not rows:
            continue
        x = np.array([r["size"] for r in rows], dtype=float)
        y = np.array([r["fidelity"] for r in rows], dtype=float)
        lo = np.array([r["interval"][0] for r in rows], dtype=float)
        hi = np.array([r["interval"][1] for r in rows], dtype=float)
        colour = _PALETTE[i % len(_PALETTE)]
        unit = next((u for u in _UNITS if u in rows[0]), "size")
        units.add(unit)
        ax.fill_between(x, lo, hi, color=colour, alpha=0.15, linewidth=0)
        ax.plot(x, y, marker="o", markersize=3.5, color=colour, label=f"{name} ({unit})")
        chosen = [r for r in rows if r.get("chosen")]
        for r in chosen:
            ax.plot([r["size"]], [r["fidelity"]], marker="o", markersize=10, markerfacecolor="none",
                    markeredgecolor=colour, markeredgewidth=1.6)
        sizes_seen.update(int(v) for v in x)
    if min_agreement is not None:
        ax.axhline(min_agreement, color="#444444", linestyle="--", linewidth=1, label=f"bar {min_agreement:.2f}")
    ax.set_xscale("log", base=2)
    ticks = sorted(sizes_seen)
    if len(ticks) > 12:
        ticks = [t for t in ticks if t & (t - 1) == 0] or ticks[:: max(1, len(ticks) // 10)]
    # on the log axis, labels of sizes closer than a factor 1.2 run into each other ("3032" for 30 and 32):
    # keep the powers of two (the tree's and figs' rungs) and drop the other of such a pair
    kept: list[int] = []
    for t in sorted(ticks, key=lambda t: (t & (t - 1) != 0, t)):
        if all(max(t, k) / max(min(t, k), 1) >= 1.2 for k in kept):
            kept.append(t)
    ticks = sorted(kept)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("size: " + " / ".join(sorted(units)) + " (log scale)", parse_math=False)
    ax.set_ylabel("fidelity to the teacher (test split)")
    ax.set_ylim(max(0.0, min(ax.get_ylim()[0], (min_agreement or 1.0) - 0.05)), 1.005)
    ax.grid(True, alpha=0.3)
    ax.set_title(title, parse_math=False)
    handles, labels = ax.get_legend_handles_labels()
    # below the axes, never over the lines
    leg = ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=min(4, len(labels)), frameon=False)
    for text in leg.get_texts():
        text.set_parse_math(False)
    fig.subplots_adjust(bottom=0.3)
    return fig
