"""Teacher features: a named, batched map from inputs to features, and the pictures that show them.

When a network recognises a shape wherever it sits in the signal, no split on one raw input can
follow it; its own pattern detectors can.  This stage turns the teacher's convolutional channels
into features a surrogate can split on, and shows each one to a person.

- :class:`PatternFeatures` (the feature set ``"patterns"``): pick a convolutional layer of the
  teacher (default: the last convolution, read after the activation that follows it;
  ``layer="features.5"`` to choose by module name) and turn each channel ``c`` into
  ``"pattern c"``, its strongest response over positions (in units of its top-1% response on the
  training inputs once :meth:`PatternFeatures.fit`), and, as a second feature, where that was
  (``"pattern c position"`` for signals, ``"pattern c row"`` / ``"pattern c column"`` for
  images: the centre of the receptive field as a fraction of the input's extent).  On images of
  side >= 16 the default reads each channel per region of a 3 x 3 grid instead
  (``"pattern c @ top-left"`` ...): where a pattern fires matters there.
- :class:`FunctionFeatures` (the feature set ``"features"``): any user function from inputs to
  named features, for any teacher.
- :class:`FeatureSurrogate`: an ordinary surrogate fitted on feature columns, paired with the map
  so that it answers ``predict``/``predict_proba`` on raw inputs (fidelity, audit, report).  It
  is saved without pickle: the map is rebuilt from the teacher and its JSON ``spec()``.
- :meth:`PatternFeatures.prototypes` returns :class:`PatternPrototypes`, plain arrays per
  channel: its top-activating input segments from the training data (the receptive field,
  aligned), the filter itself, and the class mix of the inputs where it fires.

Inputs cross this boundary flat, (n_samples, n_features), like the teacher's; the map runs
batched, under ``no_grad``, on the teacher's device, and stops each forward pass at the chosen
layer.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._validation import check_array_2d, check_fraction, check_int, check_n_features, check_names
from .teacher import Teacher, eval_mode, own_thread

logger = logging.getLogger(__name__)

__all__ = [
    "FEATURE_SETS",
    "FeatureMap",
    "FeatureSurrogate",
    "FunctionFeatures",
    "PatternFeatures",
    "PatternPrototypes",
    "ReceptiveField",
    "cell_names",
    "conv_layer_names",
    "default_grid",
    "feature_map_from_spec",
]

#: Feature-set labels a surrogate name may carry after ``@`` (``"tree@patterns"``).
FEATURE_SETS: tuple[str, ...] = ("patterns", "features")

_CONVS = (nn.Conv1d, nn.Conv2d)
_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)
# Layers that keep every position where it is (no spatial mixing): they leave the receptive field alone.
_POINTWISE = (
    nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.PReLU, nn.Sigmoid, nn.Tanh,
    nn.Softplus, nn.Mish, nn.Hardswish, nn.Hardtanh, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.GroupNorm,
)
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.PReLU, nn.Mish, nn.Hardswish)


class _Stop(Exception):
    """Raised by the capture hook: the rest of the forward pass is not needed."""


# ---------------------------------------------------------------------------- the map interface
class FeatureMap:
    """A named map from flat inputs (n, n_features_in) to features (n, n_features), batched.

    Attributes
    ----------
    names : list of str
        One name per output column.
    label : str
        The feature-set label surrogates carry after ``@`` (``"patterns"``, ``"features"``).
    n_features_in : int or None
        Width of the raw inputs it accepts (None: any).
    """

    label: str = "features"
    names: list[str]
    n_features_in: int | None = None

    @property
    def n_features(self) -> int:
        return len(self.names)

    def transform(self, X: Any) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:  # pragma: no cover - interface
        """A JSON description from which :func:`feature_map_from_spec` rebuilds the map."""
        raise NotImplementedError

    def describe(self, j: int) -> dict[str, Any]:
        """What column ``j`` is: ``{"name", "role"}`` (and ``"channel"`` for patterns)."""
        return {"name": self.names[j], "role": "feature", "channel": None}


# ---------------------------------------------------------------------------- receptive fields
@dataclass(frozen=True)
class ReceptiveField:
    """Where a layer position looks in the input, per spatial dimension.

    Position ``p`` of the layer sees the input window centred at ``start + p * jump`` of width
    ``size`` (input coordinates; the window may reach past the input's edges, into padding).
    ``method`` says how it was found: ``"analytic"`` (from the conv/pool arithmetic) or
    ``"gradient"`` (from the input gradient of one position, for modules the arithmetic cannot
    follow).
    """

    size: tuple[int, ...]
    jump: tuple[float, ...]
    start: tuple[float, ...]
    method: str = "analytic"

    def centre(self, position: Sequence[int] | np.ndarray) -> np.ndarray:
        """Input coordinates of the centre of the window seen by ``position`` (..., ndim)."""
        p = np.asarray(position, dtype=np.float64)
        return np.asarray(self.start) + p * np.asarray(self.jump)

    def window(self, position: Sequence[int]) -> list[int]:
        """First input index of the window of ``position``, per dimension."""
        c = self.centre(position)
        return [int(round(ci - (s - 1) / 2)) for ci, s in zip(c, self.size)]


def _pair(v: Any, dims: int) -> tuple[int, ...]:
    if isinstance(v, (tuple, list)):
        return tuple(int(x) for x in v)
    return (int(v),) * dims


def _analytic_rf(module: nn.Module, target: nn.Module, input_shape: Sequence[int]) -> tuple[ReceptiveField, tuple[int, ...]] | None:
    """Compose conv/pool arithmetic over the leaf modules registered up to ``target`` (inclusive).

    Returns None when a module on the way is one the arithmetic cannot follow, or when the
    spatial size it predicts differs from the layer's real one (the modules do not run in
    registration order): the caller then measures the field by gradient.
    """
    dims = len(input_shape) - 1
    size = [1.0] * dims
    jump = [1.0] * dims
    start = [0.0] * dims
    length = [int(n) for n in input_shape[1:]]
    leaves = [m for m in module.modules() if next(iter(m.children()), None) is None]
    inside = [m for m in target.modules() if next(iter(m.children()), None) is None]
    if not inside or not any(m is inside[-1] for m in leaves):
        return None
    last = inside[-1]
    for m in leaves:
        if isinstance(m, _CONVS + _POOLS):
            if isinstance(m, _CONVS) and m.weight.dim() - 2 != dims:
                return None
            if getattr(m, "ceil_mode", False):
                return None
            k = _pair(m.kernel_size, dims)
            s = _pair(m.stride if m.stride is not None else m.kernel_size, dims)
            d = _pair(getattr(m, "dilation", 1), dims)
            if isinstance(m.padding, str):
                p = tuple(0 if m.padding == "valid" else d[i] * (k[i] - 1) // 2 for i in range(dims))
            else:
                p = _pair(m.padding, dims)
            for i in range(dims):
                start[i] += ((k[i] - 1) * d[i] / 2 - p[i]) * jump[i]
                size[i] += (k[i] - 1) * d[i] * jump[i]
                jump[i] *= s[i]
                if isinstance(m, _CONVS) and m.padding == "same":
                    continue
                length[i] = (length[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1
        elif not isinstance(m, _POINTWISE):
            return None
        if m is last:
            break
    return ReceptiveField(tuple(int(round(v)) for v in size), tuple(jump), tuple(start), "analytic"), tuple(length)


# ---------------------------------------------------------------------------- pattern features
#: Images whose shorter side is at least this many pixels get a 3 x 3 grid of pattern regions by
#: default: on 28x28 digits a depth-limited tree over each last-layer channel's maximum per region
#: follows a LeNet far better than over its maximum anywhere (issue 23's probe at 64 leaves: 0.834
#: vs 0.620; raw pixels 0.774); 8x8 digits and 1-D signals keep one region (their earlier default).
GRID_MIN_SIDE = 16

_CELLS_3X3 = ("top-left", "top", "top-right", "left", "centre", "right", "bottom-left", "bottom", "bottom-right")


def default_grid(input_shape: Sequence[int], spatial: Sequence[int]) -> int:
    """3 for images (C, H, W) with min(H, W) >= GRID_MIN_SIDE whose layer has >= 3 positions per side, else 1."""
    if len(input_shape) == 3 and min(input_shape[1:]) >= GRID_MIN_SIDE and min(spatial) >= 3:
        return 3
    return 1


def cell_names(grid: int, dims: int) -> list[str]:
    """Readable names of the grid regions, row-major: ``top-left`` ... ``bottom-right`` on a 3 x 3 grid,
    ``start``/``middle``/``end`` on 3 parts of a signal, ``r1c2`` (1-based) on other grids."""
    if grid == 1:
        return ["anywhere"]
    if dims == 2:
        if grid == 3:
            return list(_CELLS_3X3)
        return [f"r{r + 1}c{c + 1}" for r in range(grid) for c in range(grid)]
    if grid == 3:
        return ["start", "middle", "end"]
    return [f"part {i + 1} of {grid}" for i in range(grid)]


def conv_layer_names(module: nn.Module) -> list[str]:
    """Names (as in ``named_modules``) of the 1-D/2-D convolutions of ``module``, in order."""
    return [name for name, m in module.named_modules() if isinstance(m, _CONVS)]


def _default_layer(module: nn.Module, input_shape: Sequence[int] | None = None) -> str:
    """The layer whose output is the network's last spatial map of pattern detectors.

    Without an input shape: the last convolution registered, or the activation module right
    after it.  With one (what :class:`PatternFeatures` passes), one forward pass is traced: from
    the last convolution that runs and still has more than one position, the map is followed
    through the modules that keep its shape and run once (activations, normalisations, and the
    blocks that contain the convolution, e.g. a residual block whose output is the sum of its
    branches passed through a functional ReLU); a container whose output equals what is already
    chosen is skipped, so a plain stack keeps the activation's own name.  The first module that
    changes the shape (a pool, a flatten, the head) ends it.
    """
    named = list(module.named_modules())
    convs = [i for i, (_, m) in enumerate(named) if isinstance(m, _CONVS)]
    if not convs:
        raise ValueError(
            f"Pattern features need a convolutional teacher; {type(module).__name__} has no Conv1d/Conv2d layer. "
            f"For other networks pass features=a function from inputs to named features (surrogates 'NAME@features')."
        )
    traced = _trace(module, input_shape) if input_shape is not None else None
    if traced:
        chosen = _follow_map(module, traced, len(input_shape) - 1)
        if chosen is not None:
            return chosen
    i = convs[-1]
    if i + 1 < len(named) and isinstance(named[i + 1][1], _ACTIVATIONS):
        return named[i + 1][0]
    return named[i][0]


def _trace(module: nn.Module, input_shape: Sequence[int]) -> list[tuple[str, Any]] | None:
    """(name, output) of every module call of one forward pass on two random inputs, in call order."""
    calls: list[tuple[str, Any]] = []
    handles = []
    for name, m in module.named_modules():
        if name:
            handles.append(m.register_forward_hook(own_thread(lambda _m, _i, o, name=name: calls.append((name, o)))))
    try:
        p = next(iter(module.parameters()), None)
        x = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0))
        if p is not None:
            x = x.to(p.device, p.dtype)
        with eval_mode(module), torch.no_grad():
            module(x)
    except Exception as exc:  # noqa: BLE001 - a module that cannot run here falls back to the registration order
        logger.info("could not trace the teacher's forward pass to find the pattern layer (%s: %s)", type(exc).__name__, exc)
        return None
    finally:
        for h in handles:
            h.remove()
    return calls


def _follow_map(module: nn.Module, calls: list[tuple[str, Any]], dims: int) -> str | None:
    modules = dict(module.named_modules())
    counts: dict[str, int] = {}
    for name, _ in calls:
        counts[name] = counts.get(name, 0) + 1

    def spatial_map(o: Any) -> bool:
        return isinstance(o, torch.Tensor) and o.dim() == dims + 2 and int(np.prod(o.shape[2:])) > 1

    last = None
    for k, (name, o) in enumerate(calls):
        if isinstance(modules[name], _CONVS) and spatial_map(o):
            last = k
    if last is None:
        return None
    conv_name, out = calls[last]
    chosen = conv_name
    for name, o in calls[last + 1 :]:
        if not isinstance(o, torch.Tensor) or o.shape != out.shape:
            break
        ancestor = conv_name.startswith(name + ".")
        if not (ancestor or isinstance(modules[name], _POINTWISE)):
            break
        if counts[name] != 1:
            continue  # a module called twice (one ReLU reused) cannot be read at one place
        if torch.equal(o, out):
            continue  # the same map under a wider name: keep the narrower one
        chosen, out = name, o
    return chosen


#: Input arrays whose features :meth:`PatternFeatures.memoized` keeps (the oldest goes first).
_MEMO_SIZE = 16


class PatternFeatures(FeatureMap):
    """A convolutional layer's channels as features: each channel's strongest response, and where.

    Parameters
    ----------
    teacher : Teacher
        A teacher with an ``input_shape`` of (C, L) or (C, H, W) and at least one Conv1d/Conv2d.
    layer : str, optional
        Module name (as in ``teacher.module.named_modules()``) whose output (n, C, *spatial) is
        read.  Default: the last convolution, after the activation that directly follows it.
    positions : bool, optional
        Add each channel's argmax position as features: the centre of its receptive field as a
        fraction of the input's extent (multiply by the length to get input coordinates).
        Default: True with one region (``grid=1``), False with a grid (the region says where).
    grid : int, optional
        Read each channel as its strongest response in each of ``grid`` x ``grid`` regions of the
        layer's positions (``grid`` parts of a signal): a feature per channel and region, named
        ``"pattern c @ top-left"`` ... ``"pattern c @ bottom-right"`` on a 3 x 3 grid, so a rule
        says where in the image the pattern fires.  Default: 3 on images whose shorter side is
        at least :data:`GRID_MIN_SIDE` (16) pixels, 1 (anywhere) on smaller images and signals.
    scale : sequence of float, optional
        Per-channel divisor of the responses (what :meth:`fit` sets).  None: raw responses.

    Attributes
    ----------
    names : list of str
        ``"pattern c"`` for c in channels (``"pattern c @ REGION"`` per region on a grid), then
        with positions ``"pattern c position"`` (signals) or ``"pattern c row"``,
        ``"pattern c column"`` (images).
    grid : int
    cells : list of str
        The region names, row-major (``["anywhere"]`` without a grid).
    n_channels : int
    spatial : tuple of int
        The layer's spatial shape.
    receptive_field : ReceptiveField
    scale : ndarray (n_channels,) or None
        After :meth:`fit`: each channel's 99th-percentile response on the inputs it was fitted
        on, so a response of 1.0 is "as strong as on its top 1% of training inputs" and
        thresholds read alike across channels (a channel that never responds keeps 1.0).
    """

    label = "patterns"

    def __init__(
        self,
        teacher: Teacher,
        *,
        layer: str | None = None,
        positions: bool | None = None,
        grid: int | None = None,
        scale: Sequence[float] | None = None,
    ) -> None:
        if not isinstance(teacher, Teacher):
            raise TypeError(f"teacher must be an explain_distill Teacher; received {type(teacher).__name__}.")
        shape = teacher.input_shape
        if shape is None or len(shape) not in (2, 3):
            raise ValueError(
                f"Pattern features need inputs with a shape (C, L) for signals or (C, H, W) for images; the teacher's "
                f"input_shape is {shape}. Build the Teacher with input_shape=..., or use features=a function."
            )
        if positions is not None and not isinstance(positions, bool):
            raise TypeError(f"positions must be True, False or None (automatic); received {positions!r}.")
        if grid is not None and (isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 1):
            raise ValueError(
                f"grid must be a whole number >= 1 (each channel's maximum over a grid x grid of regions; 1: over the "
                f"whole input) or None (automatic: 3 on images of side >= 16, else 1); received {grid!r}."
            )
        modules = dict(teacher.module.named_modules())
        if layer is None:
            layer = _default_layer(teacher.module, shape)
        elif not isinstance(layer, str) or layer not in modules or layer == "":
            convs = conv_layer_names(teacher.module)
            raise ValueError(
                f"feature_layer={layer!r} is not a module of the teacher. Its convolutions are: "
                f"{', '.join(convs) or 'none'} (any module name from teacher.module.named_modules() whose output "
                f"is (n, channels, *positions) works, e.g. the activation after a convolution)."
            )
        self.teacher = teacher
        self.layer = layer
        self.input_shape = tuple(shape)
        self.n_features_in = int(np.prod(shape))
        self._module = modules[layer]
        self._conv = self._feeding_conv(teacher.module, self._module)
        probe = self._activations(np.zeros((1, self.n_features_in), dtype=np.float32))
        dims = len(self.input_shape) - 1
        if probe.ndim != dims + 2:
            raise ValueError(
                f"Layer {layer!r} outputs shape {tuple(probe.shape)} for one sample, but pattern features need "
                f"(1, channels, {'length' if dims == 1 else 'height, width'}) like the input's {self.input_shape}. "
                f"Choose a convolution or the activation after one: {', '.join(conv_layer_names(teacher.module))}."
            )
        self.n_channels = int(probe.shape[1])
        self.spatial = tuple(int(s) for s in probe.shape[2:])
        if grid is None:
            grid = default_grid(self.input_shape, self.spatial)
        elif grid > min(self.spatial):
            raise ValueError(
                f"grid={grid} asks for {grid} regions per side, but layer {layer!r} has only {self.spatial} positions; "
                f"pass grid <= {min(self.spatial)} or choose an earlier layer: {', '.join(conv_layer_names(teacher.module))}."
            )
        self.grid = int(grid)
        if positions is None:
            positions = self.grid == 1  # the grid already says where; a position inside it adds noise
        self.positions = positions
        self.receptive_field = self._receptive_field(dims)
        pos = ["position"] if dims == 1 else ["row", "column"]
        self.cells = cell_names(self.grid, dims)
        if self.grid == 1:
            self.names = [f"pattern {c}" for c in range(self.n_channels)]
        else:
            self.names = [f"pattern {c} @ {cell}" for c in range(self.n_channels) for cell in self.cells]
        if positions:
            self.names += [f"pattern {c} {p}" for p in pos for c in range(self.n_channels)]
        self.scale: np.ndarray | None = None
        if scale is not None:
            sc = np.asarray(scale, dtype=np.float64).reshape(-1)
            if len(sc) != self.n_channels or not np.isfinite(sc).all() or (sc <= 0).any():
                raise ValueError(
                    f"scale must hold {self.n_channels} positive finite numbers (one per channel of {layer!r}); "
                    f"received {len(sc)} values."
                )
            self.scale = sc.astype(np.float32)

    def fit(self, X: Any, *, quantile: float = 0.99) -> "PatternFeatures":
        """Set :attr:`scale` from the responses on ``X`` (usually the training inputs); returns self."""
        quantile = check_fraction(quantile, "quantile", inclusive=False)
        R, _ = self.responses(X)
        if len(R) == 0:
            raise ValueError("fit needs at least one input row to measure the channels' responses on.")
        q = np.quantile(R.astype(np.float64), quantile, axis=0)
        self.scale = np.where(q > 1e-12, q, 1.0).astype(np.float32)
        return self

    # -- structure
    @staticmethod
    def _feeding_conv(module: nn.Module, target: nn.Module) -> nn.Module | None:
        """The convolution whose weights make ``target``'s channels: itself, the one inside it, or the
        last conv before it (None for a block holding several, e.g. a residual block: no one filter)."""
        if isinstance(target, _CONVS):
            return target
        inside = [m for m in target.modules() if isinstance(m, _CONVS)]
        if len(inside) > 1:
            return None
        if inside:
            return inside[0]
        last = None
        for m in module.modules():
            if isinstance(m, _CONVS):
                last = m
            if m is target:
                return last
        return last

    def _receptive_field(self, dims: int) -> ReceptiveField:
        found = _analytic_rf(self.teacher.module, self._module, self.input_shape)
        if found is not None:
            rf, length = found
            if tuple(length) == self.spatial:
                return rf
        return self._gradient_rf(dims)

    def _gradient_rf(self, dims: int) -> ReceptiveField:
        """The receptive field from the input gradient of the centre position (any module)."""
        t = self.teacher
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(16, *self.input_shape, generator=gen).to(t.device, t.dtype).requires_grad_(True)
        centre = tuple(s // 2 for s in self.spatial)
        out: list[torch.Tensor] = []

        def hook(_m: nn.Module, _i: Any, o: torch.Tensor) -> None:
            out.append(o)
            raise _Stop

        h = self._module.register_forward_hook(own_thread(hook))
        try:
            with eval_mode(t.module), torch.enable_grad():
                try:
                    t.module(x)
                except _Stop:
                    pass
                a = out[0]
                a[(slice(None), slice(None)) + centre].abs().sum().backward()
        finally:
            h.remove()
        g = x.grad.detach().abs().sum(dim=(0, 1)).cpu().numpy()
        nz = np.nonzero(g > 0)
        size, jump, start = [], [], []
        for i in range(dims):
            if len(nz[i]) == 0:
                lo, hi = 0, self.input_shape[1 + i] - 1
            else:
                lo, hi = int(nz[i].min()), int(nz[i].max())
            j = self.input_shape[1 + i] / self.spatial[i]
            size.append(hi - lo + 1)
            jump.append(j)
            start.append((lo + hi) / 2 - centre[i] * j)
        logger.info("receptive field of %s found by gradient: size %s", self.layer, size)
        return ReceptiveField(tuple(size), tuple(jump), tuple(start), "gradient")

    # -- the map
    def _map_batches(self, X: np.ndarray, reduce: Callable[[torch.Tensor], Any]) -> list[Any]:
        """Run the teacher on ``X`` in batches up to the layer; ``reduce`` each batch's activations."""
        t = self.teacher
        captured: list[torch.Tensor] = []

        def hook(_m: nn.Module, _i: Any, o: torch.Tensor) -> None:
            captured.append(o)
            raise _Stop

        # On the CPU, batches whose activations fit in cache run several times faster than the
        # teacher's default 4096 rows (measured on mnist1d: 0.85 s vs 2.0 s for 24k rows).
        bs = t.batch_size if t.device.type == "cuda" else min(t.batch_size, 512)
        handle = self._module.register_forward_hook(own_thread(hook))
        out = []
        try:
            with eval_mode(t.module), torch.no_grad():
                for start in range(0, len(X), bs):
                    xn = np.ascontiguousarray(X[start : start + bs], dtype=np.float32)
                    xb = torch.from_numpy(xn).to(t.device).to(t.dtype).reshape(len(xn), *self.input_shape)
                    try:
                        t.module(xb)
                    except _Stop:
                        pass
                    if not captured:
                        raise ValueError(
                            f"Layer {self.layer!r} did not run in the teacher's forward pass; choose a layer the "
                            f"forward pass uses: {', '.join(conv_layer_names(t.module))}."
                        )
                    out.append(reduce(captured.pop()))
        finally:
            handle.remove()
        return out

    def _activations(self, X: np.ndarray) -> torch.Tensor:
        return torch.cat(self._map_batches(X, lambda a: a.float().cpu()))

    def _check_X(self, X: Any) -> np.ndarray:
        X = check_array_2d(X, name="X", dtype=None)
        check_n_features(X, self.n_features_in, what=f"the pattern features of layer {self.layer!r}")
        return X

    def responses(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """(max response (n, C) float32, argmax position (n, C, ndim) int64 in layer coordinates)."""
        X = self._check_X(X)
        dims = len(self.spatial)

        def reduce(a: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
            v, i = a.float().flatten(2).max(dim=2)
            return v.cpu().numpy(), i.cpu().numpy()

        parts = self._map_batches(X, reduce)
        if not parts:
            return np.empty((0, self.n_channels), np.float32), np.empty((0, self.n_channels, dims), np.int64)
        R = np.concatenate([p[0] for p in parts]).astype(np.float32)
        flat = np.concatenate([p[1] for p in parts]).astype(np.int64)
        pos = np.stack(np.unravel_index(flat, self.spatial), axis=-1) if dims > 1 else flat[..., None]
        return R, pos

    def grid_responses(self, X: Any) -> np.ndarray:
        """Each channel's maximum over each grid region: (n, n_channels, grid ** ndim) float32, raw.

        The regions split the layer's positions as adaptive max pooling does (``grid`` nearly
        equal bands per dimension, neighbours sharing a row when the size is not a multiple).
        """
        X = self._check_X(X)
        g = self.grid
        pool = F.adaptive_max_pool1d if len(self.spatial) == 1 else F.adaptive_max_pool2d

        def reduce(a: torch.Tensor) -> np.ndarray:
            return pool(a.float(), g).flatten(2).cpu().numpy()

        parts = self._map_batches(X, reduce)
        if not parts:
            return np.empty((0, self.n_channels, len(self.cells)), np.float32)
        return np.concatenate(parts).astype(np.float32)

    @contextlib.contextmanager
    def memoized(self) -> Iterator["PatternFeatures"]:
        """Within the block, the same inputs (by content) are mapped once: an analysis predicts every
        ``@patterns`` surrogate and every rung of their ladders on the same rows, each of which would
        run the teacher again (28x28 digits: four families, ~30 rungs, 0.08 s a pass)."""
        self._memo: dict[tuple, np.ndarray] | None = {}
        try:
            yield self
        finally:
            self._memo = None

    def transform(self, X: Any) -> np.ndarray:
        """Features (n, len(names)) float32: responses (divided by :attr:`scale` once fitted; one per
        channel and grid region, channel by channel), then positions (receptive-field centre / input
        extent, in [0, 1] up to edge padding) when :attr:`positions`."""
        memo = getattr(self, "_memo", None)
        if memo is None:
            return self._transform(X)
        arr = np.ascontiguousarray(X)
        key = (arr.shape, arr.dtype.str, hashlib.blake2b(memoryview(arr).cast("B"), digest_size=16).digest())
        if key not in memo:
            if len(memo) >= _MEMO_SIZE:
                memo.pop(next(iter(memo)))
            memo[key] = self._transform(arr)
        return memo[key].copy()

    def _transform(self, X: Any) -> np.ndarray:
        if self.grid > 1:
            G = self.grid_responses(X)
            if self.scale is not None:
                G = G / self.scale[None, :, None]
            G = G.reshape(len(G), -1)
            if not self.positions:
                return G
            _, pos = self.responses(X)
            centre = self.receptive_field.centre(pos)
            extent = self.input_shape[1:]
            return np.concatenate([G] + [(centre[..., i] / extent[i]).astype(np.float32) for i in range(centre.shape[-1])],
                                  axis=1)
        R, pos = self.responses(X)
        if self.scale is not None:
            R = R / self.scale
        if not self.positions:
            return R
        centre = self.receptive_field.centre(pos)  # (n, C, ndim), input coordinates
        extent = self.input_shape[1:]
        cols = [R] + [(centre[..., i] / extent[i]).astype(np.float32) for i in range(centre.shape[-1])]
        return np.concatenate(cols, axis=1)

    def describe(self, j: int) -> dict[str, Any]:
        """Column ``j``: ``{"name", "role", "channel"}``, with ``"cell"`` (e.g. ``"top-left"``) and
        ``"region"`` (per dimension, the [start, stop) fraction of the input it covers) on a grid."""
        j = int(j)
        C = self.n_channels
        dims = len(self.spatial)
        n_cells = len(self.cells)
        n_resp = C * n_cells
        if j < n_resp:
            if self.grid == 1:
                return {"name": self.names[j], "role": "response", "channel": j}
            c, k = divmod(j, n_cells)
            idx = np.unravel_index(k, (self.grid,) * dims)
            region = [[float(i) / self.grid, float(i + 1) / self.grid] for i in idx]
            return {"name": self.names[j], "role": "response", "channel": c, "cell": self.cells[k], "region": region}
        roles = ["position"] if dims == 1 else ["row", "column"]
        i = (j - n_resp) // C
        return {"name": self.names[j], "role": roles[i], "channel": (j - n_resp) % C,
                "extent": int(self.input_shape[1 + i])}

    def spec(self) -> dict[str, Any]:
        return {
            "kind": "patterns",
            "layer": self.layer,
            "positions": self.positions,
            "grid": self.grid,
            "scale": None if self.scale is None else [float(v) for v in self.scale],
        }

    # -- pictures
    def filters(self) -> np.ndarray | None:
        """The weights of the convolution that makes the layer's channels: (C, C_in, *kernel), or None."""
        if self._conv is None or self._conv.weight.shape[0] != self.n_channels:
            return None
        return self._conv.weight.detach().float().cpu().numpy().copy()

    def prototypes(
        self,
        X: Any,
        y: Any = None,
        *,
        class_names: Sequence[str] | None = None,
        channels: Sequence[int] | None = None,
        top_k: int = 8,
        fire_quantile: float = 0.9,
    ) -> "PatternPrototypes":
        """What each channel detects, as plain arrays (see :class:`PatternPrototypes`).

        Parameters
        ----------
        X : array (n, n_features_in)
            Inputs to search, usually the training split.
        y : array (n,) of class indices, optional
            Their classes, for the class mix (without it the mix is not computed).
        class_names : list of str, optional
        channels : list of int, optional
            Which channels (default: all).
        top_k : int, default=8
            Top-activating inputs kept per channel.
        fire_quantile : float in (0, 1), default=0.9
            A channel "fires" on an input when its response exceeds this quantile of its
            responses over ``X`` (and is above zero): the class mix is over those inputs.
        """
        X = self._check_X(X)
        top_k = check_int(top_k, "top_k", low=1)
        fire_quantile = check_fraction(fire_quantile, "fire_quantile", inclusive=False)
        if channels is None:
            chans = list(range(self.n_channels))
        else:
            chans = [check_int(c, "channels entries", low=0, high=self.n_channels - 1) for c in channels]
        yv = None
        if y is not None:
            yv = np.asarray(y).reshape(-1)
            if len(yv) != len(X):
                raise ValueError(f"y has {len(yv)} entries for {len(X)} inputs; pass one class index per row.")
            if yv.dtype.kind not in "iu" or (len(yv) and yv.min() < 0):
                raise ValueError(f"y must hold class indices >= 0; received dtype {yv.dtype}.")
        K = len(class_names) if class_names is not None else (int(yv.max()) + 1 if yv is not None and len(yv) else 0)
        names = list(class_names) if class_names is not None else [str(k) for k in range(K)]
        R, pos = self.responses(X)
        if self.scale is not None:
            R = R / self.scale
        rf = self.receptive_field
        dims = len(self.spatial)
        Xs = np.asarray(X, dtype=np.float32).reshape(len(X), *self.input_shape)
        k = min(top_k, len(X))
        seg_shape = (len(chans), k, self.input_shape[0], *rf.size)
        segments = np.full(seg_shape, np.nan, dtype=np.float32)
        indices = np.zeros((len(chans), k), dtype=np.int64)
        responses = np.zeros((len(chans), k), dtype=np.float32)
        starts = np.zeros((len(chans), k, dims), dtype=np.int64)
        thresholds = np.zeros(len(chans), dtype=np.float32)
        n_fire = np.zeros(len(chans), dtype=np.int64)
        mix = np.full((len(chans), K), np.nan, dtype=np.float64)
        base = np.bincount(yv, minlength=K)[:K] / max(len(yv), 1) if yv is not None else np.zeros(K)
        for row, c in enumerate(chans):
            order = np.argsort(-R[:, c], kind="stable")[:k]
            indices[row] = order
            responses[row] = R[order, c]
            for j, i in enumerate(order):
                lo = rf.window(pos[i, c])
                starts[row, j] = lo
                src, dst = [slice(None)], [row, j, slice(None)]
                for d in range(dims):
                    n_in = self.input_shape[1 + d]
                    a, b = max(lo[d], 0), min(lo[d] + rf.size[d], n_in)
                    if b <= a:
                        src = None
                        break
                    src.append(slice(a, b))
                    dst.append(slice(a - lo[d], b - lo[d]))
                if src is not None:
                    segments[tuple(dst)] = Xs[(i, *src)]
            q = float(np.quantile(R[:, c], fire_quantile)) if len(R) else 0.0
            thresholds[row] = max(q, 0.0)
            fires = R[:, c] > thresholds[row]
            n_fire[row] = int(fires.sum())
            if yv is not None and fires.any():
                mix[row] = np.bincount(yv[fires], minlength=K)[:K] / fires.sum()
        W = self.filters()
        return PatternPrototypes(
            layer=self.layer,
            channels=chans,
            names=[self.names[c] for c in chans],
            input_shape=self.input_shape,
            receptive_field=rf,
            segments=segments,
            indices=indices,
            responses=responses,
            starts=starts,
            filters=None if W is None else W[chans],
            class_names=names,
            class_mix=mix,
            base_mix=np.asarray(base, dtype=np.float64),
            fire_threshold=thresholds,
            n_fire=n_fire,
            n_searched=int(len(X)),
            max_response=R[:, chans].max(axis=0).astype(np.float32) if len(R) else np.zeros(len(chans), np.float32),
        )


@dataclass
class PatternPrototypes:
    """What each pattern detects, as plain arrays (one row per channel in ``channels``).

    Attributes
    ----------
    layer : str
    channels : list of int
    names : list of str
        ``"pattern c"`` per channel.
    input_shape : tuple of int
    receptive_field : ReceptiveField
    segments : ndarray (n_channels, top_k, C_in, *rf.size)
        The input windows each channel responds to most, aligned on its receptive field
        (NaN where the window reaches past the input's edge), strongest first.
    indices : ndarray (n_channels, top_k)
        Rows of the searched inputs the segments come from.
    responses : ndarray (n_channels, top_k)
    starts : ndarray (n_channels, top_k, ndim)
        First input index of each window (may be negative at the edge).
    filters : ndarray (n_channels, C_prev, *kernel) or None
        The convolution weights that make the channel.
    class_names : list of str
    class_mix : ndarray (n_channels, K)
        Share of each true class among the inputs where the channel fires (NaN when it never
        does or no labels were given).
    base_mix : ndarray (K,)
        The class shares over all searched inputs, to compare with.
    fire_threshold : ndarray (n_channels,)
        The response above which the channel is said to fire.
    n_fire : ndarray (n_channels,)
    n_searched : int
    max_response : ndarray (n_channels,)
    """

    layer: str
    channels: list[int]
    names: list[str]
    input_shape: tuple[int, ...]
    receptive_field: ReceptiveField
    segments: np.ndarray
    indices: np.ndarray
    responses: np.ndarray
    starts: np.ndarray
    filters: np.ndarray | None
    class_names: list[str]
    class_mix: np.ndarray
    base_mix: np.ndarray
    fire_threshold: np.ndarray
    n_fire: np.ndarray
    n_searched: int
    max_response: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self, channel: int) -> int:
        try:
            return self.channels.index(int(channel))
        except ValueError:
            raise KeyError(f"channel {channel} is not among the prototypes' channels {self.channels}") from None

    def pattern(self, channel: int) -> dict[str, Any]:
        """Everything about one channel as a plain dict (what ``viz.plots.pattern_figure`` draws)."""
        r = self.row(channel)
        return {
            "channel": int(channel),
            "name": self.names[r],
            "layer": self.layer,
            "input_shape": tuple(self.input_shape),
            "segments": self.segments[r],
            "responses": self.responses[r],
            "indices": self.indices[r],
            "starts": self.starts[r],
            "receptive_field": list(self.receptive_field.size),
            "filter": None if self.filters is None else self.filters[r],
            "class_names": list(self.class_names),
            "class_mix": self.class_mix[r],
            "base_mix": self.base_mix,
            "fire_threshold": float(self.fire_threshold[r]),
            "n_fire": int(self.n_fire[r]),
            "n_searched": int(self.n_searched),
            "max_response": float(self.max_response[r]),
        }

    def to_json(self) -> dict[str, Any]:
        """Summary numbers per channel (the arrays stay out of metrics.json)."""
        out = []
        for r, c in enumerate(self.channels):
            mix = self.class_mix[r]
            top = int(np.nanargmax(mix)) if np.isfinite(mix).any() else None
            out.append({
                "channel": int(c),
                "name": self.names[r],
                "fire_threshold": float(self.fire_threshold[r]),
                "n_fire": int(self.n_fire[r]),
                "max_response": float(self.max_response[r]),
                "top_class": None if top is None else self.class_names[top],
                "top_class_share": None if top is None else float(mix[top]),
                "top_inputs": [int(i) for i in self.indices[r]],
            })
        return {"layer": self.layer, "receptive_field": {"size": list(self.receptive_field.size),
                "jump": list(self.receptive_field.jump), "method": self.receptive_field.method}, "patterns": out}


# ---------------------------------------------------------------------------- user features
class FunctionFeatures(FeatureMap):
    """A user function from flat inputs to named features.

    Parameters
    ----------
    fn : callable
        ``fn(X)`` with X (n, n_features_in) float32 returns a mapping name -> array (n,), or an
        array (n, m) (then ``names`` names its columns).
    names : list of str, optional
        Column names for an array-returning ``fn``; required for it unless the default
        ``feature 0..m-1`` will do.
    n_features_in : int, optional
        Raw input width it expects (checked on every call).
    batch_size : int, default=4096
        ``fn`` is called on at most this many rows at a time.
    """

    label = "features"

    def __init__(
        self,
        fn: Callable[[np.ndarray], Any],
        *,
        names: Sequence[str] | None = None,
        n_features_in: int | None = None,
        batch_size: int = 4096,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"features must be a callable from inputs (n, d) to named features; received {type(fn).__name__}.")
        self.fn = fn
        self.batch_size = check_int(batch_size, "batch_size", low=1)
        self.n_features_in = None if n_features_in is None else check_int(n_features_in, "n_features_in", low=1)
        self._names = None if names is None else list(names)
        self.names = list(self._names) if self._names is not None else []

    def _call(self, xb: np.ndarray) -> tuple[np.ndarray, list[str]]:
        out = self.fn(xb)
        if isinstance(out, Mapping):
            keys = [str(k) for k in out]
            cols = []
            for k, v in out.items():
                v = np.asarray(v, dtype=np.float32).reshape(-1)
                if len(v) != len(xb):
                    raise ValueError(
                        f"The features function returned {len(v)} values for feature {k!r} on {len(xb)} inputs; "
                        f"return one value per input row."
                    )
                cols.append(v)
            return (np.stack(cols, axis=1) if cols else np.empty((len(xb), 0), np.float32)), keys
        arr = np.asarray(out, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or len(arr) != len(xb):
            raise ValueError(
                f"The features function returned shape {arr.shape} for {len(xb)} inputs; return an array "
                f"(n_inputs, n_features) or a dict name -> (n_inputs,) array."
            )
        return arr, [f"feature {j}" for j in range(arr.shape[1])]

    def transform(self, X: Any) -> np.ndarray:
        X = check_array_2d(X, name="X", dtype=np.float32, allow_empty=True)
        if self.n_features_in is not None:
            check_n_features(X, self.n_features_in, what="the features function")
        if len(X) == 0 and self.names:
            return np.empty((0, len(self.names)), dtype=np.float32)
        parts, names = [], None
        for start in range(0, max(len(X), 1), self.batch_size):
            arr, got = self._call(X[start : start + self.batch_size])
            if names is None:
                names = got
            elif got != names and self._names is None:
                raise ValueError(f"The features function returned different feature names across batches ({names} vs {got}).")
            parts.append(arr)
        F = np.concatenate(parts) if parts else np.empty((0, 0), np.float32)
        names = self._names if self._names is not None else names or []
        names = check_names(names, F.shape[1], what="feature names of the features function")
        if not np.isfinite(F).all():
            rows = np.unique(np.nonzero(~np.isfinite(F))[0])[:5].tolist()
            raise ValueError(f"The features function returned NaN or infinite values (rows {rows}); return finite numbers.")
        self.names = names
        return F[: len(X)]

    def spec(self) -> dict[str, Any]:
        return {"kind": "function", "names": list(self.names), "n_features_in": self.n_features_in}


def feature_map_from_spec(
    spec: Mapping[str, Any], teacher: Teacher, *, function: Callable[[np.ndarray], Any] | None = None
) -> FeatureMap:
    """Rebuild a map from its :meth:`FeatureMap.spec` (patterns: from the teacher; a function: ``function``)."""
    kind = spec.get("kind") if isinstance(spec, Mapping) else None
    if kind == "patterns":
        return PatternFeatures(
            teacher, layer=str(spec["layer"]), positions=bool(spec.get("positions", True)),
            grid=int(spec.get("grid", 1)), scale=spec.get("scale"),  # runs saved before the grid read the whole input
        )
    if kind == "function":
        if function is None:
            raise ValueError(
                "This run has surrogates over a user features function, which is not saved (no pickle); "
                "pass the same function again: ed.load(dir, features=my_function)."
            )
        fm = FunctionFeatures(function, names=spec.get("names"), n_features_in=spec.get("n_features_in"))
        return fm
    raise ValueError(f"Unknown feature map description {spec!r}; expected kind 'patterns' or 'function'.")


# ---------------------------------------------------------------------------- the surrogate wrapper
class FeatureSurrogate:
    """A surrogate fitted on feature columns that answers on raw inputs.

    ``predict_proba(X) = estimator.predict_proba(features.transform(X))``: fidelity, the audit,
    robustness and the report use it like any other surrogate.  ``estimator`` is an ordinary
    registry surrogate (it saves itself); ``features`` is rebuilt from the teacher on load.

    Parameters
    ----------
    features : FeatureMap
    estimator : fitted surrogate
        Fitted on ``features.transform(X_transfer)``.
    family : str
        Its registry name (``"tree"``, ``"rules"``, ...).
    """

    def __init__(self, features: FeatureMap, estimator: Any, *, family: str) -> None:
        if not isinstance(features, FeatureMap):
            raise TypeError(f"features must be a FeatureMap; received {type(features).__name__}.")
        if not hasattr(estimator, "predict_proba"):
            raise TypeError(f"estimator must be a fitted surrogate with predict_proba; received {type(estimator).__name__}.")
        self.features = features
        self.estimator = estimator
        self.family = str(family)

    @property
    def name(self) -> str:
        return f"{self.family}@{self.features.label}"

    @property
    def classes_(self) -> np.ndarray:
        return self.estimator.classes_

    @property
    def n_features_in_(self) -> int | None:
        return self.features.n_features_in

    @property
    def feature_names(self) -> list[str]:
        return list(self.features.names)

    @property
    def n_params_(self) -> int:
        return int(getattr(self.estimator, "n_params_", 0))

    def transform(self, X: Any) -> np.ndarray:
        return self.features.transform(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.estimator.predict_proba(self.transform(X))

    def predict(self, X: Any) -> np.ndarray:
        proba = np.asarray(self.predict_proba(X))
        return np.asarray(self.classes_)[np.argmax(proba, axis=1)]

    def __repr__(self) -> str:
        return f"FeatureSurrogate({self.name}: {type(self.estimator).__name__} on {self.features.n_features} features)"
