"""Captum attributions as numpy, and how well a surrogate's attributions agree with the teacher's.

Gradient methods (``IntegratedGradients``, ``Saliency``, ``DeepLift``, ``GradientShap`` and
``NoiseTunnel`` = SmoothGrad over Saliency) run on the teacher (:meth:`Teacher.flat_module`) and on
every surrogate exposing ``torch_module()`` (an ``nn.Module`` from flat (n, d) float32 inputs to
logits).  Non-differentiable scikit-learn surrogates get Captum's ``FeatureAblation`` over their
``predict_proba``; their maps are compared with the teacher's ``FeatureAblation`` map, so the two
sides of each comparison use the same method.

Speed.  Used naively, Captum takes the gradient of every output element separately
(``torch.autograd.grad(torch.unbind(outputs), inputs)``: one autograd root per sample and step).
Samples are independent in eval mode, so the gradient of the *sum over the batch of the target
logits* with respect to the inputs is exactly the stack of per-sample gradients.  ``attribute``
therefore wraps the model in :class:`TargetSum`, whose forward returns that sum as one element
(the targets travel as an additional forward argument, which Captum expands alongside the inputs),
and Captum takes one gradient for the whole batch: the same attributions (``batched=False`` runs
plain Captum for comparison; the tests check ``allclose``), far fewer autograd roots.  Samples are
processed in chunks of ``batch_size`` so memory is bounded for any number of samples.

Attention maps for convolutional models: Grad-CAM (Captum ``LayerGradCam`` on the last convolution,
upsampled with ``LayerAttribution.interpolate``) and the activation-based attention map of attention
transfer (Zagoruyko & Komodakis 2017: mean over channels of the squared activations of the last
convolution, upsampled), for images (C, H, W) and 1-D signals (C, L).
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np
import torch
from torch import nn

from .._validation import check_array_2d, check_choice, check_int, check_n_features, check_positive
from ..teacher import Teacher, eval_mode, own_thread
from .fidelity import check_model_features, to_jsonable
from .robustness import differentiable_module

logger = logging.getLogger(__name__)

__all__ = [
    "ABLATION_GROUPS_ABOVE",
    "METHODS",
    "AttributionReport",
    "attribution_report",
    "attribute",
    "ablation_groups",
    "feature_ablation",
    "gradcam",
    "attention_map",
    "attribution_agreement",
    "TargetSum",
]

Method = Literal["IntegratedGradients", "Saliency", "DeepLift", "GradientShap", "NoiseTunnel"]
METHODS: tuple[str, ...] = ("IntegratedGradients", "Saliency", "DeepLift", "GradientShap", "NoiseTunnel")


# ---------------------------------------------------------------------------- the batching trick
class TargetSum(nn.Module):
    """``forward(x, target)`` -> the sum over the batch of ``module(x)[i, target[i]]``, one element.

    ``halves=True`` (for DeepLift, whose hooks run inputs and baselines as one batch and split the
    output in two) returns two elements: the sum over each half.
    """

    def __init__(self, module: nn.Module, *, halves: bool = False) -> None:
        super().__init__()
        self.module = module
        self.halves = halves

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        z = self.module(x)
        picked = z.gather(1, target.reshape(-1, 1).to(z.device)).squeeze(1)
        if self.halves:
            return picked.reshape(2, -1).sum(dim=1)
        return picked.sum().reshape(1)


def _device_of(module: nn.Module) -> torch.device:
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _resolve_module(model: Any) -> nn.Module:
    if isinstance(model, nn.Module):
        return model
    module = differentiable_module(model)
    if module is None:
        raise ValueError(
            f"{type(model).__name__} is not differentiable: it has no torch_module() method, so gradient "
            f"attributions cannot be computed. Use feature_ablation(model, X, target) for it instead."
        )
    return module


def _check_targets(target: Any, n: int, n_out: int) -> np.ndarray:
    t = np.asarray(target)
    if t.ndim == 0:
        t = np.full(n, t)
    if t.ndim != 1 or len(t) != n:
        raise ValueError(f"target must be one class index per sample, shape ({n},); received shape {t.shape}.")
    if t.dtype.kind not in "iu":
        if t.dtype.kind == "f" and np.all(np.isfinite(t)) and np.all(t == np.round(t)):
            t = t.astype(np.int64)
        else:
            raise TypeError(f"target must hold integer class indices; received dtype {t.dtype}.")
    if n and (t.min() < 0 or t.max() >= n_out):
        bad = t[(t < 0) | (t >= n_out)][:5].tolist()
        raise ValueError(
            f"target out of range: the model has {n_out} outputs (valid targets 0..{n_out - 1}) but received {bad}. "
            f"Pass class indices (positions in class_names)."
        )
    return t.astype(np.int64)


def _check_baselines(baselines: Any, d: int, method: str) -> np.ndarray:
    if baselines is None:
        return np.zeros((1, d), dtype=np.float32)
    b = np.asarray(baselines, dtype=np.float32)
    if b.ndim == 0:
        return np.full((1, d), float(b), dtype=np.float32)
    if b.ndim == 1:
        b = b.reshape(1, -1)
    if b.ndim != 2 or b.shape[1] != d:
        raise ValueError(
            f"baselines have shape {np.asarray(baselines).shape} but the inputs have {d} features; pass a scalar, "
            f"an array of shape ({d},) or (k, {d})" + (" (one row per sample, or a distribution for GradientShap)." if method != "GradientShap" else ".")
        )
    if not np.isfinite(b).all():
        raise ValueError("baselines contain NaN or infinity; pass finite reference inputs.")
    return b


class _restore_np_random:
    def __init__(self, state: Any) -> None:
        self.state = state

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        np.random.set_state(self.state)


def _n_outputs(module: nn.Module, x0: np.ndarray) -> int:
    dev = _device_of(module)
    with eval_mode(module), torch.no_grad():
        z = module(torch.from_numpy(np.ascontiguousarray(x0, dtype=np.float32)).to(dev))
    if z.ndim != 2:
        raise ValueError(f"The model must return (batch, n_classes) outputs; it returned shape {tuple(z.shape)}.")
    return int(z.shape[1])


def attribute(
    model: Any,
    X: Any,
    target: Any,
    *,
    method: Method = "IntegratedGradients",
    baselines: Any = None,
    n_steps: int = 32,
    batch_size: int = 64,
    seed: int = 0,
    nt_samples: int = 8,
    stdevs: float = 0.1,
    n_samples: int = 16,
    batched: bool = True,
) -> np.ndarray:
    """Attributions of ``model`` for class ``target`` of each row of ``X``; float32 (n, d).

    Parameters
    ----------
    model : Teacher, nn.Module or surrogate with ``torch_module()``
        An ``nn.Module`` is used as is (it must take flat (n, d) inputs).
    X : array (n, d)
    target : int or array (n,) of class indices
    method : {"IntegratedGradients", "Saliency", "DeepLift", "GradientShap", "NoiseTunnel"}
        ``Saliency`` keeps signs (``abs=False``); ``NoiseTunnel`` is SmoothGrad over it.
    baselines : scalar, (d,), (n, d) or — for GradientShap — (k, d), optional
        Reference inputs (zeros by default).
    n_steps : int
        Integration steps of IntegratedGradients.
    batch_size : int
        Samples per Captum call: memory is bounded by it (times ``n_steps`` for IG).
    batched : bool
        True: one gradient per chunk through :class:`TargetSum` (fast).  False: plain Captum.
    """
    check_choice(method, "method", METHODS)
    module = _resolve_module(model)
    X = check_array_2d(X, name="X", dtype=np.float32)
    n, d = X.shape
    if isinstance(model, Teacher) and model.n_features is not None:
        check_n_features(X, model.n_features, what="the teacher")
    n_steps = check_int(n_steps, "n_steps", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    nt_samples = check_int(nt_samples, "nt_samples", low=1)
    n_samples = check_int(n_samples, "n_samples", low=1)
    stdevs = check_positive(stdevs, "stdevs", strict=False)
    n_out = _n_outputs(module, X[:1])
    t = _check_targets(target, n, n_out)
    B = _check_baselines(baselines, d, method)
    if method != "GradientShap" and len(B) not in (1, n):
        raise ValueError(f"baselines have {len(B)} rows but X has {n}; pass one baseline, or one per sample.")

    dev = _device_of(module)
    out = np.empty((n, d), dtype=np.float32)
    # Captum draws GradientShap's baselines and alphas from numpy's global RNG: seed it for
    # repeatable maps, and put the caller's state back afterwards.
    np_state = np.random.get_state()
    fork = torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else [])
    with eval_mode(module), warnings.catch_warnings(), _restore_np_random(np_state), fork:
        warnings.filterwarnings("ignore", message=".*hooks.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*require.*grad.*", category=UserWarning)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            xb = torch.from_numpy(X[start:stop]).to(dev)
            tb = torch.from_numpy(t[start:stop]).to(dev)
            if method == "GradientShap" or len(B) == 1:
                bb = torch.from_numpy(B).to(dev)
                if method != "GradientShap":
                    bb = bb.expand(len(xb), d).contiguous()
            else:
                bb = torch.from_numpy(B[start:stop]).to(dev)
            torch.manual_seed(seed + start)
            np.random.seed((seed + start) % (2**32))
            attr = _captum_call(module, method, xb, tb, bb, n_steps, nt_samples, stdevs, n_samples, batched)
            out[start:stop] = attr.detach().float().cpu().numpy()
    return out


def _captum_call(
    module: nn.Module,
    method: str,
    x: torch.Tensor,
    t: torch.Tensor,
    b: torch.Tensor,
    n_steps: int,
    nt_samples: int,
    stdevs: float,
    n_samples: int,
    batched: bool,
) -> torch.Tensor:
    from captum.attr import DeepLift, GradientShap, IntegratedGradients, NoiseTunnel, Saliency

    if batched:
        fwd: nn.Module = TargetSum(module, halves=(method == "DeepLift"))
        kw: dict[str, Any] = {"target": None, "additional_forward_args": (t,)}
    else:
        fwd = module
        kw = {"target": t}
    if method == "IntegratedGradients":
        return IntegratedGradients(fwd).attribute(x, baselines=b, n_steps=n_steps, **kw)
    if method == "Saliency":
        return Saliency(fwd).attribute(x, abs=False, **kw)
    if method == "DeepLift":
        return DeepLift(fwd).attribute(x, baselines=b, **kw)
    if method == "GradientShap":
        return GradientShap(fwd).attribute(x, baselines=b, n_samples=n_samples, stdevs=0.0, **kw)
    # NoiseTunnel: SmoothGrad over signed Saliency.
    return NoiseTunnel(Saliency(fwd)).attribute(x, nt_type="smoothgrad", nt_samples=nt_samples, stdevs=stdevs, abs=False, **kw)


#: Above this many inputs, feature ablation removes groups of neighbouring inputs (patches of an
#: image, runs of a signal) instead of one input at a time: at most this many model calls per
#: example (28x28: 196 patches of 2x2 instead of 784 pixels).
ABLATION_GROUPS_ABOVE = 256


def ablation_groups(d: int, input_shape: Sequence[int] | None = None, *,
                    max_groups: int = ABLATION_GROUPS_ABOVE) -> tuple[np.ndarray | None, dict[str, Any] | None]:
    """The feature mask (d,) that groups ``d`` inputs into at most ``max_groups`` neighbourhoods, and its
    description; ``(None, None)`` when ``d <= max_groups`` (every input on its own).

    An image (C, H, W) is cut into square patches of side p (every channel of a patch together), the
    smallest p with at most ``max_groups`` patches; any other input into runs of consecutive features.
    """
    if d <= max_groups:
        return None, None
    shape = tuple(int(s) for s in input_shape) if input_shape is not None else None
    if shape is not None and len(shape) == 3 and int(np.prod(shape)) == d:
        _, H, W = shape
        p = 1
        while -(-H // p) * -(-W // p) > max_groups:
            p += 1
        rows, cols = np.arange(H) // p, np.arange(W) // p
        cell = rows[:, None] * (-(-W // p)) + cols[None, :]
        mask = np.broadcast_to(cell, shape).reshape(-1)
        return mask.astype(np.int64), {"kind": "patches", "side": p, "groups": int(mask.max()) + 1, "features": d}
    run = -(-d // max_groups)
    mask = np.arange(d) // run
    return mask.astype(np.int64), {"kind": "runs", "length": run, "groups": int(mask.max()) + 1, "features": d}


def feature_ablation(
    model: Any,
    X: Any,
    target: Any,
    *,
    baseline: float = 0.0,
    perturbations_per_eval: int = 16,
    batch_size: int = 256,
    feature_mask: Any = None,
) -> np.ndarray:
    """Captum ``FeatureAblation`` over ``model.predict_proba`` (any classifier, no gradient needed); (n, d).

    Each feature is replaced by ``baseline`` in turn; the attribution is the drop in the
    probability of ``target``.  ``feature_mask`` (d,) of group ids removes each group at once
    (every member gets the group's drop; see :func:`ablation_groups`).
    """
    from captum.attr import FeatureAblation

    X = check_array_2d(X, name="X", dtype=np.float32)
    n_in = getattr(model, "n_features_in_", None)
    if n_in is not None:
        check_n_features(X, int(n_in), what=f"the surrogate {type(model).__name__}")
    if isinstance(model, Teacher):
        proba: Callable[[np.ndarray], np.ndarray] = model.predict_proba
    elif hasattr(model, "predict_proba"):
        proba = model.predict_proba
    else:
        raise TypeError(f"{type(model).__name__} has no predict_proba; FeatureAblation needs class probabilities.")
    n_out = int(np.asarray(proba(X[:1])).shape[1])
    t = _check_targets(target, len(X), n_out)
    perturbations_per_eval = check_int(perturbations_per_eval, "perturbations_per_eval", low=1)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(proba(x.detach().cpu().numpy()), dtype=np.float32))

    batch_size = check_int(batch_size, "batch_size", low=1)
    mask = None
    if feature_mask is not None:
        mask = np.asarray(feature_mask, dtype=np.int64).reshape(-1)
        if mask.shape[0] != X.shape[1]:
            raise ValueError(f"feature_mask has {mask.shape[0]} entries for {X.shape[1]} features; pass one group id per feature.")
    fa = FeatureAblation(forward)
    out = np.empty(X.shape, dtype=np.float32)
    for start in range(0, len(X), batch_size):  # memory: batch_size * perturbations_per_eval rows
        stop = min(start + batch_size, len(X))
        attr = fa.attribute(
            torch.from_numpy(X[start:stop]),
            baselines=float(baseline),
            target=torch.from_numpy(t[start:stop]),
            perturbations_per_eval=perturbations_per_eval,
            **({} if mask is None else {"feature_mask": torch.from_numpy(mask)[None, :].expand(stop - start, -1)}),
        )
        out[start:stop] = attr.detach().float().numpy()
    return out


# ---------------------------------------------------------------------------- attention maps
def _last_conv(module: nn.Module) -> nn.Module | None:
    last = None
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            last = m
    return last


def _upsample(maps: torch.Tensor, input_shape: Sequence[int]) -> np.ndarray:
    """(m, 1, *spatial') -> (m, prod(input_shape)), broadcasting over the input's channels."""
    from captum.attr import LayerAttribution

    spatial = tuple(int(s) for s in input_shape[1:])
    mode = "bilinear" if len(spatial) == 2 else "linear"
    up = LayerAttribution.interpolate(maps, spatial, interpolate_mode=mode)
    up = up.expand(len(up), int(input_shape[0]), *spatial)
    return up.reshape(len(up), -1).detach().float().cpu().numpy()


def _check_conv_shape(input_shape: Sequence[int] | None, d: int) -> tuple[int, ...]:
    if input_shape is None or len(input_shape) not in (2, 3) or int(np.prod(input_shape)) != d:
        raise ValueError(
            f"Attention maps need the input shape of an image (C, H, W) or a signal (C, L) whose product is "
            f"{d}; received input_shape={input_shape}."
        )
    return tuple(int(s) for s in input_shape)


def _conv_inputs(model: Any, X: Any, input_shape: Sequence[int] | None, find_layer: Any, batch_size: int):
    """The shared door of the attention maps: (module, layer, X, input shape, batch size), or None
    when the model has no layer of the kind ``find_layer`` looks for."""
    module = _resolve_module(model)
    if input_shape is None and isinstance(model, Teacher):
        input_shape = model.input_shape
    layer = find_layer(module)
    if layer is None:
        return None
    X = check_array_2d(X, name="X", dtype=np.float32)
    shape = _check_conv_shape(input_shape, X.shape[1])
    return module, layer, X, shape, check_int(batch_size, "batch_size", low=1)


def gradcam(
    model: Any, X: Any, target: Any, *, input_shape: Sequence[int] | None = None, batch_size: int = 256
) -> np.ndarray | None:
    """Grad-CAM (Captum ``LayerGradCam``, ReLU'd) on the last convolution, upsampled to the input; (m, d).

    Returns None when the model has no convolution.
    """
    from captum.attr import LayerGradCam

    door = _conv_inputs(model, X, input_shape, _last_conv, batch_size)
    if door is None:
        return None
    module, layer, X, shape, batch_size = door
    t = _check_targets(target, len(X), _n_outputs(module, X[:1]))
    dev = _device_of(module)
    out = []
    with eval_mode(module):
        for start in range(0, len(X), batch_size):
            cam = LayerGradCam(module, layer).attribute(
                torch.from_numpy(X[start : start + batch_size]).to(dev),
                target=torch.from_numpy(t[start : start + batch_size]).to(dev),
                relu_attributions=True,
            )
            out.append(_upsample(cam, shape))
    return np.concatenate(out)


def _attention_layer(module: nn.Module) -> nn.Module | None:
    """The last convolution, or the activation module directly after it (as ``Teacher.attention_maps``)."""
    mods = list(module.modules())
    convs = [i for i, m in enumerate(mods) if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    if not convs:
        return None
    i = convs[-1]
    acts = (nn.ReLU, nn.GELU, nn.SiLU, nn.LeakyReLU, nn.ELU)
    return mods[i + 1] if i + 1 < len(mods) and isinstance(mods[i + 1], acts) else mods[i]


def attention_map(
    model: Any, X: Any, *, input_shape: Sequence[int] | None = None, upsample: bool = True, batch_size: int = 256
) -> np.ndarray | None:
    """Activation-based attention of attention transfer (Zagoruyko & Komodakis 2017); (m, d).

    The channel mean of the squared activations of the last convolution (after its activation
    function when one directly follows it), L2-normalised per sample, as
    :meth:`Teacher.attention_maps` computes it for the AT loss; then upsampled to the input with
    ``LayerAttribution.interpolate`` (``upsample=False`` keeps the layer's resolution).
    Returns None when the model has no convolution.
    """
    door = _conv_inputs(model, X, input_shape, _attention_layer, batch_size)
    if door is None:
        return None
    module, layer, X, shape, batch_size = door
    grabbed: list[torch.Tensor] = []
    handle = layer.register_forward_hook(own_thread(lambda _m, _i, o: grabbed.append(o.detach().float().pow(2).mean(dim=1, keepdim=True))))
    out = []
    try:
        with eval_mode(module), torch.no_grad():
            for start in range(0, len(X), batch_size):
                grabbed.clear()
                module(torch.from_numpy(X[start : start + batch_size]).to(_device_of(module)))
                a = grabbed[-1]
                flat = torch.nn.functional.normalize(a.flatten(1), p=2, dim=1)
                out.append(flat.cpu().numpy() if not upsample else _upsample(flat.reshape(a.shape), shape))
    finally:
        handle.remove()
    return np.concatenate(out)


# ---------------------------------------------------------------------------- agreement
def _rank(a: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(a, axis=1)


def attribution_agreement(
    reference: np.ndarray,
    other: np.ndarray,
    *,
    top_k: int = 10,
    classes: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """How well ``other``'s attribution maps agree with ``reference``'s (both (m, d)), per sample and per class.

    - ``spearman``: Spearman rank correlation of the two maps (nan when one map is constant);
    - ``top_k``: |top-k(|ref|) ∩ top-k(|other|)| / k, the overlap of the k most important features;
    - ``sign``: fraction of the reference's top-k features whose attribution has the same sign in both.

    Aggregates are means over the samples where the value is defined; ``n_defined`` says how many.
    Rows holding NaN attributions are left out of every aggregate and counted in ``nan_rows``.
    """
    A = np.asarray(reference, dtype=np.float64)
    B = np.asarray(other, dtype=np.float64)
    if A.shape != B.shape or A.ndim != 2:
        raise ValueError(f"Attribution maps must both be (m, d) and the same shape; received {A.shape} and {B.shape}.")
    m, d = A.shape
    k = max(1, min(int(top_k), d // 2))  # at most half the features: with k = d every overlap is trivially 1
    bad = ~(np.isfinite(A).all(axis=1) & np.isfinite(B).all(axis=1))
    rho = np.full(m, np.nan)
    topk = np.full(m, np.nan)
    sign = np.full(m, np.nan)
    ok = ~bad
    if ok.any():
        a, b = A[ok], B[ok]
        ra, rb = _rank(a), _rank(b)
        ra -= ra.mean(axis=1, keepdims=True)
        rb -= rb.mean(axis=1, keepdims=True)
        den = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            rho[ok] = np.where(den > 0, (ra * rb).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)
        ia = np.argsort(-np.abs(a), axis=1, kind="stable")[:, :k]
        ib = np.argsort(-np.abs(b), axis=1, kind="stable")[:, :k]
        topk[ok] = [len(np.intersect1d(x, y)) / k for x, y in zip(ia, ib)]
        sa = np.sign(np.take_along_axis(a, ia, axis=1))
        sb = np.sign(np.take_along_axis(b, ia, axis=1))
        sign[ok] = (sa == sb).mean(axis=1)

    def summary(mask: np.ndarray) -> dict[str, Any]:
        r = rho[mask]
        return {
            "spearman": float(np.nanmean(r)) if np.isfinite(r).any() else math.nan,
            "top_k": float(np.nanmean(topk[mask])) if np.isfinite(topk[mask]).any() else math.nan,
            "sign": float(np.nanmean(sign[mask])) if np.isfinite(sign[mask]).any() else math.nan,
            "n": int(mask.sum()),
            "n_defined": int(np.isfinite(r).sum()),
        }

    out = summary(np.ones(m, dtype=bool))
    out["k"] = k
    out["nan_rows"] = int(bad.sum())
    out["per_sample"] = {"spearman": rho.tolist(), "top_k": topk.tolist(), "sign": sign.tolist()}
    per_class: dict[str, Any] = {}
    if classes is not None:
        classes = np.asarray(classes)
        for c in np.unique(classes):
            label = class_names[int(c)] if class_names is not None else str(c)
            per_class[str(label)] = summary(classes == c)
    out["per_class"] = per_class
    return out


# ---------------------------------------------------------------------------- the report
@dataclass
class AttributionReport:
    """Attribution maps of the teacher and the surrogates on a few examples, and their agreement.

    Attributes
    ----------
    method : str
        The gradient method used for the teacher and the differentiable surrogates.
    indices : ndarray of int
        Test-sample indices of the examples.
    inputs : ndarray (m, d)
    maps : dict of model name -> (m, d)
        ``"teacher"`` (``method``), each surrogate (``method`` or FeatureAblation, see ``methods``),
        and ``"teacher:FeatureAblation"`` when a non-differentiable surrogate needs it.
    agreement : dict of surrogate name -> dict
        ``{"spearman", "top_k", "sign", "n_defined", "nan_rows", "per_sample", "per_class", "against"}``.
    gradcam, attention : dict of conv model name -> (m, d)
        Grad-CAM and activation-attention maps upsampled to the input (empty for MLPs).
    targets : ndarray of int
        The class explained for each example (the teacher's prediction).
    methods : dict of model name -> method used
    nan_count : dict of model name -> number of NaN attribution values (0 when clean)
    reference : dict of reference map name -> dict
        What agreement with each reference (``"teacher"``, ``"teacher:FeatureAblation"``) means:
        ``ceiling``, the mean Spearman between the teacher's map and its own map under small input
        noise (``noise_sigma``; a surrogate cannot be expected to agree better than the teacher does
        with itself), and ``floor``, the mean Spearman of random linear models' maps with it (what
        agreement by chance looks like: on images a map follows the input's intensities, so the
        floor is rarely 0).
    ablation_groups : dict or None
        When the inputs were ablated in groups (more than ``ABLATION_GROUPS_ABOVE`` inputs): the
        grouping (``kind`` "patches" with ``side``, or "runs" with ``length``; ``groups``, ``features``).
    """

    method: str
    indices: np.ndarray
    inputs: np.ndarray
    maps: dict[str, np.ndarray]
    agreement: dict[str, dict]
    gradcam: dict[str, np.ndarray]
    attention: dict[str, np.ndarray]
    targets: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    methods: dict[str, str] = field(default_factory=dict)
    nan_count: dict[str, int] = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None
    reference: dict[str, dict[str, float]] = field(default_factory=dict)
    ablation_groups: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        sp = {n: a.get("spearman") for n, a in self.agreement.items()}
        tk = {n: a.get("top_k") for n, a in self.agreement.items()}
        sg = {n: a.get("sign") for n, a in self.agreement.items()}
        return to_jsonable(
            {
                "method": self.method,
                "methods": self.methods,
                "indices": self.indices,
                "targets": self.targets,
                "input_shape": list(self.input_shape) if self.input_shape else None,
                "spearman": sp,
                "top_k": tk,
                "sign": sg,
                "agreement": self.agreement,
                "nan_count": self.nan_count,
                "reference": self.reference,
                "ablation_groups": self.ablation_groups,
                "gradcam": self.gradcam,
                "attention": self.attention,
            }
        )


def _count_nan(name: str, arr: np.ndarray, counts: dict[str, int]) -> None:
    c = int(np.sum(~np.isfinite(arr)))
    counts[name] = c
    if c:
        warnings.warn(
            f"{c} NaN/inf attribution values for {name!r}; those samples are excluded from the agreement "
            f"scores (see nan_count). Check the model's outputs and the baselines.",
            RuntimeWarning,
            stacklevel=3,
        )
        logger.warning("%d non-finite attribution values for %s", c, name)


def attribution_report(
    teacher: Teacher,
    surrogates: Mapping[str, Any],
    X: Any,
    *,
    indices: Any = None,
    class_names: Sequence[str] | None = None,
    method: Method = "IntegratedGradients",
    baselines: Any = None,
    n_steps: int = 32,
    top_k: int = 10,
    seed: int = 0,
    batch_size: int = 64,
) -> AttributionReport:
    """Attribute the teacher's predicted class on the examples ``X`` (m, d) for the teacher and each surrogate.

    The teacher and the surrogates with ``torch_module()`` use ``method``; the others use
    FeatureAblation and are compared with the teacher's FeatureAblation map.  Every input is
    checked (feature counts, baselines) before Captum runs.
    """
    if not isinstance(teacher, Teacher):
        raise TypeError(f"teacher must be an explain_distill Teacher; received {type(teacher).__name__}.")
    check_choice(method, "method", METHODS)
    X = check_array_2d(X, name="X", dtype=np.float32)
    check_model_features(X, teacher, surrogates)
    _check_baselines(baselines, X.shape[1], method)
    idx = np.arange(len(X)) if indices is None else np.asarray(indices, dtype=np.int64)
    if len(idx) != len(X):
        raise ValueError(f"indices has {len(idx)} entries but X has {len(X)} rows; pass one index per example.")
    targets = teacher.predict(X).astype(np.int64)
    names = class_names if class_names is not None else teacher.class_names

    kw = dict(method=method, baselines=baselines, n_steps=n_steps, seed=seed, batch_size=batch_size)
    mask, groups = ablation_groups(X.shape[1], teacher.input_shape)
    ablate = functools.partial(feature_ablation, feature_mask=mask)
    if groups is not None and any(differentiable_module(est) is None for est in surrogates.values()):
        logger.info("feature ablation over %d inputs: %d groups (%s) instead of one input at a time",
                    X.shape[1], groups["groups"], f"{groups['side']}x{groups['side']} patches" if groups["kind"] == "patches"
                    else f"runs of {groups['length']}")
    maps: dict[str, np.ndarray] = {"teacher": attribute(teacher, X, targets, **kw)}
    methods = {"teacher": method}
    nan_count: dict[str, int] = {}
    _count_nan("teacher", maps["teacher"], nan_count)
    agreement: dict[str, dict] = {}
    for name, est in surrogates.items():
        if differentiable_module(est) is not None:
            maps[name] = attribute(est, X, targets, **kw)
            methods[name] = method
            ref_name = "teacher"
        else:
            if "teacher:FeatureAblation" not in maps:
                maps["teacher:FeatureAblation"] = ablate(teacher, X, targets)
                methods["teacher:FeatureAblation"] = "FeatureAblation"
                _count_nan("teacher:FeatureAblation", maps["teacher:FeatureAblation"], nan_count)
            maps[name] = ablate(est, X, targets)
            methods[name] = "FeatureAblation"
            ref_name = "teacher:FeatureAblation"
        _count_nan(name, maps[name], nan_count)
        agreement[name] = attribution_agreement(maps[ref_name], maps[name], top_k=top_k, classes=targets, class_names=names)
        agreement[name]["against"] = ref_name

    reference = {ref: _reference(teacher, X, targets, maps[ref], methods[ref], {**kw, "feature_mask": mask}, top_k)
                 for ref in ("teacher", "teacher:FeatureAblation") if ref in maps and len(X) > 1}
    shape = teacher.input_shape
    cams: dict[str, np.ndarray] = {}
    atts: dict[str, np.ndarray] = {}
    if shape is not None and len(shape) in (2, 3):
        for name, model in {"teacher": teacher, **dict(surrogates)}.items():
            if differentiable_module(model) is None:
                continue
            cam = gradcam(model, X, targets, input_shape=shape)
            if cam is not None:
                cams[name] = cam
                atts[name] = attention_map(model, X, input_shape=shape)
    return AttributionReport(
        method=method,
        indices=idx,
        inputs=X,
        maps=maps,
        agreement=agreement,
        gradcam=cams,
        attention=atts,
        targets=targets,
        methods=methods,
        nan_count=nan_count,
        input_shape=tuple(shape) if shape is not None else None,
        reference=reference,
        ablation_groups=groups if "teacher:FeatureAblation" in maps else None,
    )


#: The noise (in the scaled units models see) under which the teacher's own attributions are compared.
REFERENCE_NOISE = 0.1
#: Random linear models averaged for the chance floor.
REFERENCE_RANDOM_MODELS = 3


class _RandomLinear:
    """A random linear classifier with ``predict_proba`` and a torch module: the chance reference."""

    def __init__(self, d: int, k: int, seed: int) -> None:
        import torch

        gen = torch.Generator().manual_seed(seed)
        self.module = torch.nn.Linear(d, k)
        with torch.no_grad():
            self.module.weight.copy_(torch.randn(k, d, generator=gen) / math.sqrt(d))
            self.module.bias.zero_()
        self.n_features_in_ = d

    def torch_module(self) -> Any:
        return self.module

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return torch.softmax(self.module(torch.as_tensor(np.asarray(X, dtype=np.float32))), dim=1).numpy()


def _reference(teacher: Teacher, X: np.ndarray, targets: np.ndarray, ref_map: np.ndarray, method: str,
               kw: dict[str, Any], top_k: int) -> dict[str, float]:
    """The ceiling and floor of agreement with ``ref_map`` (see :attr:`AttributionReport.reference`)."""
    rng = np.random.default_rng(int(kw.get("seed", 0)) + 7)
    noisy = (X + REFERENCE_NOISE * rng.standard_normal(X.shape)).astype(np.float32)
    mask = kw.pop("feature_mask", None)
    if method == "FeatureAblation":
        again = feature_ablation(teacher, noisy, targets, feature_mask=mask)
        chance = [feature_ablation(_RandomLinear(X.shape[1], teacher.n_classes, s), X, targets, feature_mask=mask)
                  for s in range(REFERENCE_RANDOM_MODELS)]
    else:
        again = attribute(teacher, noisy, targets, **kw)
        chance = [attribute(_RandomLinear(X.shape[1], teacher.n_classes, s).module, X, targets, **kw)
                  for s in range(REFERENCE_RANDOM_MODELS)]
    ceiling = attribution_agreement(ref_map, again, top_k=top_k)["spearman"]
    floor = float(np.nanmean([attribution_agreement(ref_map, c, top_k=top_k)["spearman"] for c in chance]))
    return {"ceiling": float(ceiling), "floor": floor, "noise_sigma": REFERENCE_NOISE}
