"""Figures from plain data: arrays and dicts in, ``matplotlib.figure.Figure`` out.

Never pyplot (no global state, safe in threads and servers), never a model or torch: these
functions draw what :mod:`explain_distill.analysis` computed.  Every string a caller passes
(feature and class names, titles, labels) is escaped for mathtext (``$`` -> ``\\$``), so ``$x$``
stays literal, while matplotlib's own mathtext (the ``10^4`` ticks of a log axis) still renders.
Legends sit outside the axes, never over the data, and long column headers wrap instead of being
cut.  Axes areas and legends carry SVG ids (``axes-area-<i>``, ``legend-<i>``) and mosaic column
headers ``col-title-<j>``, so a test can check in a browser that nothing overlaps.  SVG output is
deterministic (fixed ``svg.hashsalt``, no date), so the same input gives the same bytes.
"""

from __future__ import annotations

import base64
import functools
import io
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .._validation import check_choice

logger = logging.getLogger(__name__)

__all__ = [
    "RC",
    "attribution_figure",
    "bars_figure",
    "confusion_figure",
    "curves_figure",
    "figure_to_data_uri",
    "figure_to_png",
    "figure_to_svg",
    "filter_thumbnail",
    "filters_figure",
    "gam_shapes_figure",
    "inputs_figure",
    "leaf_distributions_figure",
    "metric_panels_figure",
    "pattern_figure",
    "pattern_thumbnail",
    "svg_to_data_uri",
]

#: The style every figure is built and saved under (deterministic SVG, literal text).
RC: dict[str, Any] = {
    "svg.hashsalt": "explain_distill",
    "svg.fonttype": "none",  # text stays <text> (escaped by matplotlib): small, selectable
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.interpolation": "nearest",
}

Kind = Literal["tabular", "image", "signal"]
_MAX_SVG_BYTES = 400_000
_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

F = TypeVar("F", bound=Callable[..., Any])
_COMMENT = re.compile(r"<!--.*?-->\n?", re.DOTALL)


def _styled(fn: F) -> F:
    """Build the figure under :data:`RC`, then tag its axes areas and legends with SVG ids."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with matplotlib.rc_context(RC):
            fig = fn(*args, **kwargs)
        _tag(fig)
        return fig

    return wrapper  # type: ignore[return-value]


# ---------------------------------------------------------------------------------- output
def figure_to_svg(fig: Figure) -> str:
    """The figure as an SVG document (a string), deterministic for the same figure."""
    if not isinstance(fig, Figure):
        raise TypeError(f"figure_to_svg needs a matplotlib Figure; received {type(fig).__name__}.")
    buf = io.StringIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight", pad_inches=0.05)
    # matplotlib leaves each text's source in a comment (a log axis' "$\mathdefault{10^{4}}$"): drop them
    return _COMMENT.sub("", buf.getvalue())


def figure_to_png(fig: Figure, *, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (no timestamp metadata)."""
    if not isinstance(fig, Figure):
        raise TypeError(f"figure_to_png needs a matplotlib Figure; received {type(fig).__name__}.")
    buf = io.BytesIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None}, bbox_inches="tight", pad_inches=0.05)
    return buf.getvalue()


def svg_to_data_uri(svg: str) -> str:
    """``data:image/svg+xml;base64,...`` for an SVG document (an <img> never runs SVG scripts)."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def figure_to_data_uri(fig: Figure, *, format: Literal["auto", "svg", "png"] = "auto", dpi: int = 110) -> str:
    """The figure as a data URI: SVG while it stays under ~400 kB (``"auto"``), PNG otherwise."""
    check_choice(format, "format", ("auto", "svg", "png"))
    if format in ("auto", "svg"):
        svg = figure_to_svg(fig)
        if format == "svg" or len(svg) <= _MAX_SVG_BYTES:
            return svg_to_data_uri(svg)
        logger.debug("figure SVG is %d bytes; embedding PNG instead", len(svg))
    return "data:image/png;base64," + base64.b64encode(figure_to_png(fig, dpi=dpi)).decode("ascii")


# ---------------------------------------------------------------------------------- helpers
def _as_2d(a: Any, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n, d); received shape {arr.shape}.")
    return arr


def _image_shape(input_shape: Sequence[int] | None, d: int) -> tuple[int, int] | None:
    """(h, w) when a flat sample of length d can be drawn as an image, else None."""
    if not input_shape:
        return None
    shape = [int(s) for s in input_shape if int(s) != 1] or [1]
    if len(shape) == 2 and shape[0] * shape[1] == d:
        return shape[0], shape[1]
    if len(shape) == 3 and int(np.prod(shape)) == d:  # channels first: show the channel mean
        return None
    return None


def _to_image(v: np.ndarray, input_shape: Sequence[int] | None) -> np.ndarray:
    shape = [int(s) for s in (input_shape or ()) if int(s) != 1]
    if len(shape) == 3:  # (C, H, W) -> mean over channels
        return np.asarray(v).reshape(shape).mean(axis=0)
    hw = _image_shape(input_shape, v.size)
    return np.asarray(v).reshape(hw) if hw else np.asarray(v).reshape(1, -1)


def _drawable_as_image(kind: str, input_shape: Sequence[int] | None, d: int) -> bool:
    if kind != "image" or not input_shape:
        return False
    shape = [int(s) for s in input_shape if int(s) != 1]
    return len(shape) in (2, 3) and int(np.prod(shape)) == d


def _grid(n: int, ncols: int) -> tuple[int, int]:
    ncols = max(1, min(ncols, n))
    return math.ceil(n / ncols), ncols


def _sym_limit(a: np.ndarray) -> float:
    m = float(np.nanmax(np.abs(a))) if a.size else 0.0
    return m if m > 0 and math.isfinite(m) else 1.0


def _short(s: str, n: int = 28) -> str:
    s = str(s)
    return s if len(s) <= n else s[: n - 1] + "…"


def _lit(s: Any) -> str:
    """``s`` drawn literally: every ``$`` escaped, so mathtext never parses a name."""
    return str(s).replace("$", r"\$")


def _label(s: Any, n: int = 28) -> str:
    """A name for a tick or a title: shortened to ``n`` characters, then escaped."""
    return _lit(_short(s, n))


def _wrap(s: Any, width: int, max_lines: int = 3) -> list[str]:
    """``s`` in lines of at most ``width`` characters, broken after spaces, ``:``, ``_``, ``-``, ``/`` or
    ``.`` where possible (inside a long word otherwise); the last line is cut with "…" past ``max_lines``."""
    tokens = [t for t in re.split(r"(?<=[\s:_\-/.])", str(s)) if t]
    lines: list[str] = []
    cur = ""
    for tok in tokens:
        while len(tok) > width:  # a word longer than a line: split it
            if cur:
                lines.append(cur.rstrip())
                cur = ""
            lines.append(tok[:width])
            tok = tok[width:]
        if len(cur) + len(tok.rstrip()) > width and cur:
            lines.append(cur.rstrip())
            cur = ""
        cur += tok
    if cur.strip() or not lines:
        lines.append(cur.rstrip())
    if len(lines) > max_lines:
        lines = lines[: max_lines - 1] + [_short(" ".join(lines[max_lines - 1 :]), width)]
    return lines


def _legend_outside(owner: Any, handles: Any = None, labels: Any = None, *, ncols: int = 1) -> Any:
    """A legend to the right of ``owner`` (an Axes or a Figure), outside every axes."""
    if handles is None:
        handles, labels = owner.get_legend_handles_labels()
    if not handles:
        return None
    if isinstance(owner, Figure):
        return owner.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, ncols=ncols)
    return owner.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                        frameon=False, fontsize=6.5, ncols=ncols)


def _tag(fig: Figure) -> None:
    """SVG ids for the axes areas and legends (the browser tests check that they never overlap)."""
    for i, ax in enumerate(fig.axes):
        if ax.patch.get_gid() is None:
            ax.patch.set_gid(f"axes-area-{i}")
        if ax.get_legend() is not None:
            ax.get_legend().set_gid(f"legend-a{i}")
    for i, leg in enumerate(fig.legends):
        leg.set_gid(f"legend-f{i}")


def _rgb(tile: np.ndarray, cmap: str, vmin: float, vmax: float) -> np.ndarray:
    span = vmax - vmin if vmax > vmin else 1.0
    return matplotlib.colormaps[cmap](np.clip((tile - vmin) / span, 0.0, 1.0))[..., :3]


def _mosaic(
    tiles: list[list[np.ndarray | None]],
    *,
    col_titles: Sequence[str] = (),
    row_titles: Sequence[str] = (),
    tile_titles: Sequence[Sequence[str]] = (),
    tile_inches: float = 1.05,
    title_colors: Sequence[Sequence[str]] = (),
) -> Figure:
    """Many equally sized RGB tiles in ONE axes (one image): far faster than an axes per tile."""
    nr = len(tiles)
    nc = max(len(r) for r in tiles)
    h, w = next(t.shape[:2] for r in tiles for t in r if t is not None)
    pad_x = max(1, round(w * 0.12))
    pad_y = max(1, round(h * (0.32 if tile_titles else 0.12)))
    H, W = nr * (h + pad_y) + pad_y, nc * (w + pad_x)
    canvas = np.ones((H, W, 3))
    for i, row in enumerate(tiles):
        for j, t in enumerate(row):
            if t is not None:
                y, x = pad_y + i * (h + pad_y), j * (w + pad_x)
                canvas[y : y + h, x : x + w] = t
    fs = 7 if tile_inches >= 1 else 6
    # Column headers wrap to the column's width (a character is about 0.62 em wide) instead of being
    # cut: "teacher:FeatureAblation" shows whole, on two lines.
    chars = max(6, int(tile_inches * 72 / (0.62 * fs)))
    headers = [_wrap(t, chars) for t in col_titles]
    n_lines = max((len(hd) for hd in headers), default=0)
    left = 0.55 if row_titles else 0.05
    top = (0.1 + 0.14 * n_lines) if col_titles else 0.05
    fig = Figure(figsize=(nc * tile_inches + left + 0.05, nr * tile_inches * (h + pad_y) / h + top))
    ax = fig.add_axes((left / fig.get_figwidth(), 0.0, 1 - (left + 0.05) / fig.get_figwidth(), 1 - top / fig.get_figheight()))
    ax.imshow(canvas, interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    for j, lines in enumerate(headers):
        txt = ax.text(j * (w + pad_x) + w / 2, -0.5, _lit("\n".join(lines)), ha="center", va="bottom", fontsize=fs,
                      linespacing=1.1)
        txt.set_gid(f"col-title-{j}")
    for i, t in enumerate(row_titles):
        ax.text(-pad_x, pad_y + i * (h + pad_y) + h / 2, _label(t, 16), ha="right", va="center", fontsize=fs)
    for i, row in enumerate(tile_titles):
        for j, t in enumerate(row):
            if t:
                color = title_colors[i][j] if i < len(title_colors) and j < len(title_colors[i]) else "#1d2330"
                ax.text(j * (w + pad_x) + w / 2, pad_y + i * (h + pad_y) - 0.6, _label(t, 24), ha="center", va="bottom",
                        fontsize=fs - 0.5, color=color)
    return fig


# ---------------------------------------------------------------------------------- figures
@_styled
def confusion_figure(
    confusion: Any,
    class_names: Sequence[str],
    *,
    title: str = "",
    xlabel: str = "surrogate",
    ylabel: str = "teacher",
) -> Figure:
    """Heat map of a (K, K) count matrix, rows = teacher class, columns = surrogate class."""
    c = np.asarray(confusion, dtype=float)
    k = len(class_names)
    if c.shape != (k, k):
        raise ValueError(f"confusion must be ({k}, {k}) for {k} class names; received shape {c.shape}.")
    size = min(2.2 + 0.32 * k, 7.0)
    fig = Figure(figsize=(size + 0.6, size))
    ax = fig.add_subplot()
    rows = c.sum(axis=1, keepdims=True)
    share = np.divide(c, rows, out=np.zeros_like(c), where=rows > 0)
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    names = [_label(n, 16) for n in class_names]
    ax.set_xticks(range(k), names, rotation=60 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(range(k), names)
    ax.set_xlabel(_lit(xlabel))
    ax.set_ylabel(_lit(ylabel))
    if title:
        ax.set_title(_lit(title))
    if k <= 12:
        for i in range(k):
            for j in range(k):
                if c[i, j]:
                    ax.text(j, i, f"{int(c[i, j])}", ha="center", va="center", fontsize=6 if k > 8 else 7,
                            color="white" if share[i, j] > 0.6 else "#1d2330")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the teacher's class")
    return fig


@_styled
def inputs_figure(
    X: Any,
    *,
    input_shape: Sequence[int] | None,
    kind: Kind,
    titles: Sequence[str] | None = None,
    ncols: int = 6,
) -> Figure:
    """Draw inputs: images for image data, line plots for signals (tabular: use a table instead)."""
    X = _as_2d(X, "X")
    n, d = X.shape
    if n == 0:
        raise ValueError("inputs_figure needs at least one input; received an empty array.")
    nr, nc = _grid(n, ncols)
    if _drawable_as_image(kind, input_shape, d):
        vmin, vmax = float(np.min(X)), float(np.max(X))
        tiles = [[_rgb(_to_image(X[i], input_shape), "gray_r", vmin, vmax) for i in range(r * nc, min(n, (r + 1) * nc))] for r in range(nr)]
        names = [[titles[i] if titles is not None and i < len(titles) else "" for i in range(r * nc, min(n, (r + 1) * nc))] for r in range(nr)]
        return _mosaic(tiles, tile_titles=names if titles is not None else ())
    fig = Figure(figsize=(1.45 * nc, 1.2 * nr))
    for i in range(n):
        ax = fig.add_subplot(nr, nc, i + 1)
        ax.plot(X[i], color="#1f77b4", lw=1)
        ax.set_xticks([])
        ax.tick_params(labelsize=6)
        if titles is not None and i < len(titles):
            ax.set_title(_label(titles[i], 30), fontsize=6.5)
    fig.subplots_adjust(wspace=0.25, hspace=0.6)
    return fig


@_styled
def attribution_figure(
    inputs: Any,
    maps: Mapping[str, Any],
    *,
    input_shape: Sequence[int] | None,
    kind: Kind,
    feature_names: Sequence[str] | None = None,
    row_titles: Sequence[str] | None = None,
    top_k: int = 8,
    title: str = "",
) -> Figure:
    """Attribution maps side by side: one row per example, one column per model.

    Images: the input, then a diverging heat map per model (red = towards the class).
    Signals: the input, then each model's attribution as a line under it.
    Tabular: one bar chart per example, ``top_k`` features by total attribution, one bar per model.
    """
    X = _as_2d(inputs, "inputs")
    models = {str(k): _as_2d(v, f"maps[{k!r}]") for k, v in maps.items()}
    if not models:
        raise ValueError("attribution_figure needs at least one model's map; received an empty mapping.")
    for name, m in models.items():
        if m.shape != X.shape:
            raise ValueError(f"maps[{name!r}] has shape {m.shape}; it must match inputs {X.shape}.")
    n, d = X.shape
    names = list(models)
    if _drawable_as_image(kind, input_shape, d):
        tiles = []
        for i in range(n):
            img = _to_image(X[i], input_shape)
            row = [_rgb(img, "gray_r", float(img.min()), float(img.max()))]
            for name in names:
                a = _to_image(models[name][i], input_shape)
                lim = _sym_limit(a)
                row.append(_rgb(a, "RdBu_r", -lim, lim))
            tiles.append(row)
        rows = [row_titles[i] if row_titles is not None and i < len(row_titles) else "" for i in range(n)]
        fig = _mosaic(tiles, col_titles=["input"] + names, row_titles=rows if row_titles is not None else ())
    elif kind in ("signal", "image"):
        fig = Figure(figsize=(7.0, 1.5 * n + 0.3))
        for i in range(n):
            ax = fig.add_subplot(n, 1, i + 1)
            line = ax.plot(X[i], color="#bbbbbb", lw=1.2, label="input")
            ax2 = ax.twinx()
            ax2.patch.set_gid(f"axes-area-twin-{i}")
            for j, name in enumerate(names):
                m = models[name][i]
                line += ax2.plot(m / _sym_limit(m), color=_PALETTE[j % len(_PALETTE)], lw=1, label=_lit(name))
            ax2.set_ylim(-1.1, 1.1)
            ax2.set_yticks([])
            ax.set_yticks([])
            if row_titles is not None and i < len(row_titles):
                ax.set_title(_label(row_titles[i], 40), loc="left")
            if i == 0:
                handles = line
        _legend_outside(fig, handles, [h.get_label() for h in handles])
        fig.subplots_adjust(hspace=0.5)
    else:
        fnames = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(d)]
        nr, nc = _grid(n, 2)
        k = min(top_k, d)
        fig = Figure(figsize=(3.6 * nc, (0.28 * k + 0.9) * nr))
        width = 0.8 / len(names)
        for i in range(n):
            ax = fig.add_subplot(nr, nc, i + 1)
            total = sum(np.abs(models[nm][i]) for nm in names)
            top = np.argsort(-total, kind="stable")[:k][::-1]
            for j, name in enumerate(names):
                m = models[name][i]
                scale = _sym_limit(m)
                ax.barh(np.arange(k) + j * width - 0.4 + width / 2, m[top] / scale, height=width,
                        color=_PALETTE[j % len(_PALETTE)], label=_lit(name))
            ax.set_yticks(range(k), [_label(fnames[t], 22) for t in top])
            ax.axvline(0, color="#444444", lw=0.6)
            ax.set_xlim(-1.05, 1.05)
            if row_titles is not None and i < len(row_titles):
                ax.set_title(_label(row_titles[i], 40))
            if i == 0:
                handles, labels = ax.get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=min(len(names), 4), frameon=False)
        fig.subplots_adjust(wspace=0.9, hspace=0.55)
    if title:
        fig.suptitle(_lit(title))
    return fig


@_styled
def curves_figure(
    x: Sequence[float],
    series: Mapping[str, Sequence[float | None]],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logx: bool = False,
    ylim: tuple[float, float] | None = None,
) -> Figure:
    """One line per named series over a shared x axis (missing values as gaps)."""
    xs = np.asarray(x, dtype=float)
    if xs.ndim != 1 or xs.size == 0:
        raise ValueError(f"x must be a non-empty 1-D sequence; received shape {xs.shape}.")
    fig = Figure(figsize=(4.4, 2.9))
    ax = fig.add_subplot()
    for j, (name, ys) in enumerate(series.items()):
        y = np.array([np.nan if v is None else v for v in ys], dtype=float)
        if y.shape != xs.shape:
            raise ValueError(f"series {name!r} has {y.size} values for {xs.size} x values; they must match.")
        ax.plot(xs, y, marker="o", ms=3, lw=1.3, color=_PALETTE[j % len(_PALETTE)], label=_lit(name))
    if logx:
        ax.set_xscale("log")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel(_lit(xlabel))
    ax.set_ylabel(_lit(ylabel))
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(_lit(title))
    if series:
        _legend_outside(ax)
    return fig


@_styled
def metric_panels_figure(
    x: Sequence[float],
    per_model: Mapping[str, Mapping[str, Sequence[float | None]]],
    *,
    metrics: Sequence[str] = ("accuracy", "fidelity"),
    xlabel: str,
    title: str = "",
) -> Figure:
    """Side-by-side panels, one per metric, each with one line per model (robustness curves)."""
    if True:
        xs = np.asarray(x, dtype=float)
        fig = Figure(figsize=(4.0 * len(metrics), 2.9))
        for p, metric in enumerate(metrics):
            ax = fig.add_subplot(1, len(metrics), p + 1)
            for j, (name, vals) in enumerate(per_model.items()):
                ys = vals.get(metric)
                if ys is None:
                    continue
                y = np.array([np.nan if v is None else v for v in ys], dtype=float)
                if y.shape != xs.shape:
                    raise ValueError(f"{name!r} {metric} has {y.size} values for {xs.size} x values; they must match.")
                ax.plot(xs, y, marker="o", ms=3, lw=1.3, color=_PALETTE[j % len(_PALETTE)], label=_lit(name))
            ax.set_xlabel(_lit(xlabel))
            ax.set_ylabel(_lit(metric))
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
            if p == len(metrics) - 1 and per_model:
                _legend_outside(ax)  # right of the last panel: the same models in every panel
        if title:
            fig.suptitle(_lit(title))
        fig.subplots_adjust(wspace=0.3)
        return fig


@_styled
def leaf_distributions_figure(
    distributions: Any,
    *,
    class_names: Sequence[str],
    leaf_ids: Sequence[int] | None = None,
    highlight: Sequence[int] = (),
    ncols: int = 8,
) -> Figure:
    """Small bar glyphs: the class distribution of each leaf, titled by node id (highlighted in red)."""
    D = _as_2d(distributions, "distributions")
    n, k = D.shape
    if k != len(class_names):
        raise ValueError(f"distributions have {k} classes but {len(class_names)} class names were given.")
    ids = list(leaf_ids) if leaf_ids is not None else list(range(n))
    if len(ids) != n:
        raise ValueError(f"leaf_ids has {len(ids)} entries for {n} distributions; give one id per leaf.")
    nr, nc = _grid(n, ncols)
    hl = set(int(h) for h in highlight)
    # one axes for every glyph: each leaf is a cell of k bars (x) and height 1.45 (bars + caption)
    fig = Figure(figsize=(1.15 * nc, 0.8 * nr + 0.1))
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.98))
    xs, hs, bottoms, colors = [], [], [], []
    for i in range(n):
        r, c = divmod(i, nc)
        x0, y0 = c * (k + 1.5), (nr - 1 - r) * 1.45
        red = int(ids[i]) in hl
        xs.extend(x0 + np.arange(k))
        hs.extend(D[i])
        bottoms.extend([y0] * k)
        colors.extend(["#d62728" if red else "#1f77b4"] * k)
        ax.plot([x0 - 0.5, x0 + k - 0.5], [y0, y0], color="#8a94a6", lw=0.6)
        top = int(np.argmax(D[i]))
        ax.text(x0 + (k - 1) / 2, y0 + 1.05, _lit(f"#{ids[i]}: {_short(class_names[top], 10)} ({D[i, top]:.2f})"),
                ha="center", va="bottom", fontsize=6, color="#d62728" if red else "#1d2330")
    ax.bar(xs, hs, bottom=bottoms, width=0.85, color=colors)
    ax.set_xlim(-1, nc * (k + 1.5) - 0.5)
    ax.set_ylim(-0.1, nr * 1.45)
    ax.set_axis_off()
    return fig


@_styled
def filters_figure(
    weights: Any,
    *,
    node_ids: Sequence[int],
    input_shape: Sequence[int] | None,
    kind: Kind,
    feature_names: Sequence[str] | None = None,
    highlight: Sequence[int] = (),
    ncols: int = 8,
    top_k: int = 6,
) -> Figure:
    """Oblique split filters (one per inner node, titled by node id): images, lines or top-feature bars."""
    W = _as_2d(weights, "weights")
    n, d = W.shape
    if len(node_ids) != n:
        raise ValueError(f"node_ids has {len(node_ids)} entries for {n} filters; give one id per filter.")
    hl = set(int(h) for h in highlight)
    image = _drawable_as_image(kind, input_shape, d)
    tabular = not image and kind == "tabular"
    if image:
        nr, nc = _grid(n, ncols)
        tiles, names, colors = [], [], []
        for r in range(nr):
            ids = range(r * nc, min(n, (r + 1) * nc))
            tiles.append([_rgb(_to_image(W[i], input_shape), "RdBu_r", -_sym_limit(W[i]), _sym_limit(W[i])) for i in ids])
            names.append([f"node {int(node_ids[i])}" for i in ids])
            colors.append(["#d62728" if int(node_ids[i]) in hl else "#1d2330" for i in ids])
        return _mosaic(tiles, tile_titles=names, title_colors=colors, tile_inches=0.9)
    nr, nc = _grid(n, ncols if not tabular else 4)
    fig = Figure(figsize=((1.1 if not tabular else 2.4) * nc, (1.15 if not tabular else 0.22 * top_k + 0.6) * nr))
    fnames = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(d)]
    for i in range(n):
        ax = fig.add_subplot(nr, nc, i + 1)
        w = W[i]
        lim = _sym_limit(w)
        color = "#d62728" if int(node_ids[i]) in hl else "#1d2330"
        if image:
            ax.imshow(_to_image(w, input_shape), cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_axis_off()
        elif not tabular:
            ax.plot(w, color="#1f77b4", lw=0.9)
            ax.axhline(0, color="#999999", lw=0.5)
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            k = min(top_k, d)
            top = np.argsort(-np.abs(w), kind="stable")[:k][::-1]
            ax.barh(range(k), w[top] / lim, color=["#d62728" if v > 0 else "#1f77b4" for v in w[top]])
            ax.set_yticks(range(k), [_label(fnames[t], 16) for t in top], fontsize=5.5)
            ax.set_xticks([])
            ax.set_xlim(-1.05, 1.05)
        ax.set_title(f"node {int(node_ids[i])}", fontsize=6.5, color=color)
    fig.subplots_adjust(wspace=0.5 if tabular else 0.1, hspace=0.45)
    return fig


def filter_thumbnail(
    weights: Any,
    *,
    input_shape: Sequence[int] | None,
    kind: Kind,
    feature_names: Sequence[str] | None = None,
    top_k: int = 8,
    dpi: int = 100,
) -> bytes:
    """One split's filter as a small PNG to sit beside its node in a tree drawing.

    Images: the filter as a picture (red pushes right, blue left; zero weights white, so a sparse
    filter shows its few pixels).  Signals: the filter as a line.  Tabular data: the ``top_k``
    largest weights as bars with the features' full names and a scale.
    """
    fig = _filter_thumbnail_figure(weights, input_shape=input_shape, kind=kind, feature_names=feature_names, top_k=top_k)
    return figure_to_png(fig, dpi=dpi)


@_styled
def _filter_thumbnail_figure(
    weights: Any, *, input_shape: Sequence[int] | None, kind: Kind, feature_names: Sequence[str] | None, top_k: int
) -> Figure:
    w = np.asarray(weights, dtype=float).reshape(-1)
    d = w.size
    lim = _sym_limit(w)
    if _drawable_as_image(kind, input_shape, d):
        img = _to_image(w, input_shape)
        h, wd = img.shape
        fig = Figure(figsize=(0.9 * wd / max(h, wd) + 0.1, 0.9 * h / max(h, wd) + 0.1))
        ax = fig.add_axes((0.02, 0.02, 0.96, 0.96))
        ax.imshow(img, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(True)
            side.set_color("#8a94a6")
    elif kind == "signal":
        fig = Figure(figsize=(1.6, 0.7))
        ax = fig.add_axes((0.02, 0.05, 0.96, 0.9))
        ax.plot(w, color="#1f77b4", lw=1.0)
        ax.axhline(0, color="#999999", lw=0.5)
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        names = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(d)]
        nz = np.nonzero(w)[0]
        k = max(1, min(int(top_k), len(nz) if len(nz) else d))
        top = np.argsort(-np.abs(w), kind="stable")[:k][::-1]
        width = 1.2 + 0.055 * max(len(str(names[t])) for t in top)
        fig = Figure(figsize=(width, 0.17 * k + 0.45))
        ax = fig.add_subplot(1, 1, 1)
        ax.barh(range(k), w[top], color=["#d62728" if v > 0 else "#1f77b4" for v in w[top]])
        ax.set_yticks(range(k), [_lit(names[t]) for t in top], fontsize=6)
        ax.axvline(0, color="#999999", lw=0.5)
        ax.set_xlim(-1.05 * lim, 1.05 * lim)
        ax.tick_params(axis="x", labelsize=5.5)
        ax.set_xlabel("weight", fontsize=6)
        fig.subplots_adjust(left=min(0.8, 0.06 * max(len(str(names[t])) for t in top) / width + 0.08), bottom=0.3)
    return fig


@_styled
def bars_figure(
    labels: Sequence[str],
    values: Mapping[str, Sequence[float | None]],
    *,
    ylabel: str,
    title: str = "",
    ylim: tuple[float, float] | None = None,
    logy: bool = False,
) -> Figure:
    """Grouped bars: one group per label, one bar per named series (e.g. KD vs hard labels)."""
    labels = [str(s) for s in labels]
    fig = Figure(figsize=(max(3.2, 0.9 * len(labels) * max(1, len(values)) * 0.6 + 1.6), 2.8))
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(values))
    for j, (name, ys) in enumerate(values.items()):
        y = np.array([np.nan if v is None else v for v in ys], dtype=float)
        if y.size != len(labels):
            raise ValueError(f"series {name!r} has {y.size} values for {len(labels)} labels; they must match.")
        ax.bar(np.arange(len(labels)) + j * width - 0.4 + width / 2, y, width=width,
               color=_PALETTE[j % len(_PALETTE)], label=_lit(name))
    ax.set_xticks(range(len(labels)), [_label(s, 18) for s in labels])
    ax.set_ylabel(_lit(ylabel))
    if logy:
        ax.set_yscale("log")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(_lit(title))
    if len(values) > 1:
        _legend_outside(ax)
    return fig


# ---------------------------------------------------------------------------------- patterns
def _pattern_parts(pattern: Mapping[str, Any]) -> tuple[np.ndarray, int]:
    """(segments (k, C_in, *rf) float, spatial dims) from a ``PatternPrototypes.pattern(c)`` dict."""
    if not isinstance(pattern, Mapping):
        raise TypeError(f"pattern must be a dict (PatternPrototypes.pattern(c)); received {type(pattern).__name__}.")
    missing = [k for k in ("segments", "name") if k not in pattern]
    if missing:
        raise ValueError(f"pattern lacks {missing}; pass PatternPrototypes.pattern(channel).")
    seg = np.asarray(pattern["segments"], dtype=float)
    if seg.ndim not in (3, 4) or seg.shape[0] == 0:
        raise ValueError(
            f"pattern['segments'] must be (top_k, C_in, width) or (top_k, C_in, height, width); received shape {seg.shape}."
        )
    return seg, seg.ndim - 2


def _quiet_nanmean(a: np.ndarray, axis: int) -> np.ndarray:
    """``np.nanmean`` without the warning for all-NaN slices (windows past the input's edge)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=axis)


def _segment_grid(seg: np.ndarray, rows: int = 2) -> np.ndarray:
    """2-D segments (k, C_in, h, w) in a grid of ``rows`` rows, NaN gaps between them."""
    tiles = _quiet_nanmean(seg, axis=1) if seg.shape[1] > 1 else seg[:, 0]
    k, h, w = tiles.shape
    rows = max(1, min(rows, k))
    cols = math.ceil(k / rows)
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    for i in range(k):
        r, c = divmod(i, cols)
        out[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = tiles[i]
    return out


def _rgb_tiles(seg: np.ndarray) -> np.ndarray:
    """Colour segments (k, 3, h, w) as RGB tiles (k, h, w, 3) in [0, 1]: each stretched over its own
    range (the colours as the image has them, up to brightness), NaN (past the edge) left NaN."""
    tiles = np.moveaxis(np.asarray(seg, dtype=float), 1, -1)
    out = np.full(tiles.shape, np.nan)
    for i, t in enumerate(tiles):
        ok = np.isfinite(t)
        if ok.any():
            lo, hi = float(t[ok].min()), float(t[ok].max())
            out[i] = (t - lo) / (hi - lo) if hi > lo else np.where(ok, 0.5, np.nan)
    return out


def _rgb_strip(seg: np.ndarray, rows: int = 2, gap: float = 0.93) -> np.ndarray:
    """Colour segments side by side in ``rows`` rows (light grey gaps and edges), an RGB image."""
    tiles = _rgb_tiles(seg)
    k, h, w, _ = tiles.shape
    rows = max(1, min(rows, k))
    cols = math.ceil(k / rows)
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1, 3), gap)
    for i in range(k):
        r, c = divmod(i, cols)
        out[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = np.where(np.isnan(tiles[i]), gap, tiles[i])
    return out


@_styled
def pattern_figure(pattern: Mapping[str, Any], *, width: float = 7.2) -> Figure:
    """One teacher pattern for a person: what it responds to, its filter, the classes where it fires.

    ``pattern`` is ``PatternPrototypes.pattern(c)`` (plain arrays): the top-activating input
    segments, aligned on the receptive field (signals: overlaid lines, their mean in bold;
    images: the segments side by side), the convolution filter (input channels x taps, red
    positive), and the class mix of the inputs where it fires next to the overall mix.
    """
    seg, dims = _pattern_parts(pattern)
    name = str(pattern["name"])
    fig = Figure(figsize=(width, 1.75))
    gs = fig.add_gridspec(1, 3, width_ratios=(1.5 if dims == 1 else 2.2, 1.0, 1.3), wspace=0.35)
    ax = fig.add_subplot(gs[0, 0])
    k = seg.shape[0]
    if dims == 1:
        lines = _quiet_nanmean(seg, axis=1) if seg.shape[1] > 1 else seg[:, 0]
        x = np.arange(lines.shape[1])
        for i in range(k):
            ax.plot(x, lines[i], color="#8a94a6", lw=0.7, alpha=0.8)
        ax.plot(x, _quiet_nanmean(lines, axis=0), color="#d62728", lw=1.8)
        ax.set_xlabel(f"receptive field ({lines.shape[1]} inputs; gaps: past the edge)" if np.isnan(lines).any()
                      else f"receptive field ({lines.shape[1]} inputs)", parse_math=False)
        ax.set_yticks([])
    elif seg.shape[1] == 3:  # colour images: the windows in colour
        ax.imshow(_rgb_strip(seg), interpolation="nearest")
        ax.set_axis_off()
    else:
        strip = _segment_grid(seg)
        lim = _sym_limit(np.nan_to_num(strip))
        cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#eef1f6")
        ax.imshow(np.ma.masked_invalid(strip), cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_axis_off()
    ax.set_title(_short(f"{name}: top {k} training inputs", 44), parse_math=False)

    ax = fig.add_subplot(gs[0, 1])
    W = pattern.get("filter")
    if W is not None:
        W = np.asarray(W, dtype=float)
        W2 = W.reshape(W.shape[0], -1)
        lim = _sym_limit(W2)
        ax.imshow(W2, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        ax.set_xlabel("tap" if W.ndim == 2 else "tap (row-major)", parse_math=False)
        ax.set_ylabel("input channel", parse_math=False)
        ax.set_xticks([])
        ax.set_title("filter", parse_math=False)
    else:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no filter", ha="center", va="center", transform=ax.transAxes, parse_math=False)

    ax = fig.add_subplot(gs[0, 2])
    names = [str(c) for c in pattern.get("class_names", [])]
    mix = np.asarray(pattern.get("class_mix", []), dtype=float)
    base = np.asarray(pattern.get("base_mix", np.full(len(names), np.nan)), dtype=float)
    if len(names) and mix.size == len(names) and np.isfinite(mix).any():
        xs = np.arange(len(names))
        ax.bar(xs, mix, color="#1f77b4", width=0.75)
        if base.size == len(names):
            ax.scatter(xs, base, marker="_", s=60, color="#1d2330", zorder=3)
        ax.set_xticks(xs, [_short(n, 6) for n in names], fontsize=6, rotation=90 if len(names) > 12 else 0,
                      parse_math=False)
        ax.set_ylim(0, 1)
        thr = pattern.get("fire_threshold")
        n_fire = pattern.get("n_fire")
        ax.set_title(_short(f"where it fires (> {float(thr):.2f}, n={int(n_fire)})" if thr is not None and n_fire is not None
                            else "where it fires", 40), parse_math=False)
    else:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "never fires on the\ntraining inputs", ha="center", va="center", transform=ax.transAxes,
                parse_math=False)
    return fig


@_styled
def pattern_thumbnail(pattern: Mapping[str, Any], *, size: tuple[float, float] | None = None) -> Figure:
    """A small glyph of one pattern, to sit beside a rule: the mean of its top segments (signals and
    grayscale images; red above the mean, blue below), the strongest segment in colour (colour images:
    a mean of differently coloured windows reads as mud).  ``size`` defaults to 0.9 x 0.42 inches for
    signals, 0.6 x 0.6 for images (square, so a receptive field keeps its shape)."""
    seg, dims = _pattern_parts(pattern)
    if size is None:
        size = (0.9, 0.42) if dims == 1 else (0.6, 0.6)
    fig = Figure(figsize=size)
    if dims == 2 and seg.shape[1] == 3:
        ax = fig.add_axes((0.02, 0.02, 0.96, 0.96))
        tile = _rgb_tiles(seg[:1])[0]
        ax.imshow(np.where(np.isnan(tile), 0.93, tile), interpolation="nearest")
        ax.set_axis_off()
        return fig
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.96))
    lines = _quiet_nanmean(seg, axis=1)
    mean = np.nan_to_num(_quiet_nanmean(lines, axis=0))
    if dims == 1:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = np.nanmin(lines, axis=0), np.nanmax(lines, axis=0)
        x = np.arange(mean.size)
        ok = np.isfinite(lo) & np.isfinite(hi)
        ax.fill_between(x[ok], lo[ok], hi[ok], color="#c9d3e3", lw=0)
        ax.plot(x, mean, color="#d62728", lw=1.4)
    else:
        lim = _sym_limit(mean)
        ax.imshow(mean, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_axis_off()
    return fig


@_styled
def gam_shapes_figure(
    shapes: Sequence[Mapping[str, Any]],
    *,
    class_names: Sequence[str],
    ncols: int = 4,
    raw: bool = True,
) -> Figure:
    """Small multiples of an additive model's shape functions: one panel per feature, one line per
    class (its centred logit contribution against the feature's value).

    ``shapes``: ``[{"feature", "form", "x", "contribution" (G, K)}]`` as
    :func:`explain_distill.analysis.readable.additive_shapes` gives them.  A ``"linear"`` shape (x:
    G knots) is linear between knots and flat outside, so the lines drawn through the marked knots
    are the whole function; a ``"step"`` shape (x: G + 1 bin boundaries) is drawn as the stairs it
    is, flat on each bin.
    """
    if not shapes:
        raise ValueError("gam_shapes_figure needs at least one shape; received none.")
    K = len(class_names)
    rows, cols = _grid(len(shapes), ncols)
    fig = Figure(figsize=(1.9 * cols + 1.0, 1.55 * rows + 0.2))
    lim = max(_sym_limit(np.asarray(s["contribution"], dtype=float)) for s in shapes)
    handles: list[Any] = []
    for i, s in enumerate(shapes):
        x = np.asarray(s["x"], dtype=float).reshape(-1)
        c = np.asarray(s["contribution"], dtype=float)
        step = s.get("form", "linear") == "step"
        if c.shape != (x.size - step, K):
            what = f"{x.size} bin boundaries" if step else f"{x.size} knots"
            raise ValueError(f"shape {s.get('feature')!r} has contributions {c.shape} for {what} and {K} classes "
                             f"(a {'step' if step else 'linear'} shape needs ({x.size - step}, {K})).")
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.axhline(0.0, color="#999999", lw=0.6)
        for k in range(K):
            style = {"lw": 1.1, "color": _PALETTE[k % len(_PALETTE)], "label": _label(class_names[k], 16)}
            if step:
                ax.stairs(c[:, k], x, baseline=None, **style)
                line = Line2D([], [], **style)  # the legend shows a line, not a patch
            else:
                (line,) = ax.plot(x, c[:, k], marker="o", ms=1.8, **style)
            if i == 0:
                handles.append(line)
        ax.set_ylim(-1.08 * lim, 1.08 * lim)
        ax.set_title(_label(s.get("feature", f"x{i}"), 24))
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.25)
        if i % cols == 0:
            ax.set_ylabel("logit", fontsize=7)
    fig.supxlabel("feature value" + ("" if raw else " (scaled)"), fontsize=7)
    _legend_outside(fig, handles, [h.get_label() for h in handles])
    fig.subplots_adjust(hspace=0.6, wspace=0.35)
    return fig
