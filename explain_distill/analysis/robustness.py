"""Accuracy and fidelity under perturbation: Gaussian noise and FGSM, measured, not assumed.

- Noise: every model (teacher and each surrogate) sees the same ``X + sigma * N(0, 1)``; accuracy is
  against the true labels, fidelity is top-1 agreement with the teacher on those same noisy inputs.
- FGSM (Goodfellow et al. 2015): only differentiable models, white-box, each attacked through its own
  gradient, ``x_adv = x + eps * sign(grad_x CE(f(x), y))`` (no clipping: the data are standardised).
  Accuracy is the model's own on its adversarial inputs; fidelity is its agreement with the teacher on
  the model's adversarial inputs (the teacher's is 1 by definition).

A surrogate is differentiable when it has a ``torch_module()`` method returning an ``nn.Module`` that
maps flat (n, d) float32 inputs to logits (or log-probabilities); the teacher through
:meth:`Teacher.flat_module`.  Noise inputs are drawn from ``seed`` so runs repeat exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .._validation import check_array_2d, check_consistent_length, check_int, check_labels, check_positive
from ..teacher import Teacher, eval_mode
from .fidelity import check_model_features, to_jsonable

logger = logging.getLogger(__name__)

__all__ = ["RobustnessReport", "robustness_report", "fgsm", "differentiable_module"]


@dataclass
class RobustnessReport:
    """Accuracy and fidelity per perturbation strength.

    Attributes
    ----------
    sigmas, epsilons : list of float
    noise : dict
        model name ("teacher", surrogate names) -> {"accuracy": [per sigma], "fidelity": [per sigma]}
    fgsm : dict
        differentiable models only -> {"accuracy": [per eps], "fidelity": [per eps]}
    n : int
        Number of samples the numbers are measured on.
    """

    sigmas: list[float]
    epsilons: list[float]
    noise: dict[str, dict[str, list[float]]]
    fgsm: dict[str, dict[str, list[float]]]
    n: int = 0
    notes: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return to_jsonable(
            {"sigmas": self.sigmas, "epsilons": self.epsilons, "noise": self.noise, "fgsm": self.fgsm, "n": self.n, "notes": self.notes}
        )


def differentiable_module(model: Any) -> nn.Module | None:
    """The ``nn.Module`` (flat inputs -> logits) of a Teacher or a surrogate with ``torch_module()``; else None."""
    if isinstance(model, Teacher):
        return model.flat_module()
    fn = getattr(model, "torch_module", None)
    if callable(fn):
        module = fn()
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"{type(model).__name__}.torch_module() must return a torch.nn.Module; received {type(module).__name__}."
            )
        return module
    return None


def _module_device(module: nn.Module) -> torch.device:
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def fgsm(module: nn.Module, X: np.ndarray, y: np.ndarray, eps: float, *, batch_size: int = 512) -> np.ndarray:
    """FGSM adversarial inputs for ``module`` (flat inputs -> logits), batched; returns float32 (n, d)."""
    eps = check_positive(eps, "eps", strict=False)
    dev = _module_device(module)
    out = np.empty(X.shape, dtype=np.float32)
    with eval_mode(module):
        for start in range(0, len(X), batch_size):
            xb = torch.from_numpy(np.ascontiguousarray(X[start : start + batch_size], dtype=np.float32)).to(dev)
            yb = torch.from_numpy(np.asarray(y[start : start + batch_size], dtype=np.int64)).to(dev)
            xb.requires_grad_(True)
            with torch.enable_grad():
                loss = nn.functional.cross_entropy(module(xb).float(), yb, reduction="sum")
                (grad,) = torch.autograd.grad(loss, xb)
            out[start : start + len(xb)] = (xb.detach() + eps * grad.sign()).cpu().numpy()
    return out


def _predict(model: Any, X: np.ndarray) -> np.ndarray:
    if isinstance(model, Teacher):
        return model.predict(X)
    return np.asarray(model.predict(X)).astype(np.int64)


def robustness_report(
    teacher: Teacher,
    surrogates: Mapping[str, Any],
    X: Any,
    y: Any,
    *,
    sigmas: Sequence[float] = (0.0, 0.25, 0.5, 1.0),
    epsilons: Sequence[float] = (0.0, 0.05, 0.1, 0.2),
    seed: int = 0,
    batch_size: int = 512,
) -> RobustnessReport:
    """Accuracy and fidelity of the teacher and every surrogate under Gaussian noise and FGSM.

    Parameters
    ----------
    teacher : Teacher
    surrogates : dict of name -> fitted estimator
        Those with ``torch_module()`` are also attacked with FGSM.
    X, y : held-out inputs (n, d) and class indices (n,)
    sigmas : noise standard deviations (in the units of X)
    epsilons : FGSM step sizes (L-infinity, in the units of X)
    """
    if not isinstance(teacher, Teacher):
        raise TypeError(f"teacher must be an explain_distill Teacher; received {type(teacher).__name__}.")
    X = check_array_2d(X, name="X", dtype=np.float32)
    y = check_labels(y, name="y")
    check_consistent_length(X=X, y=y)
    check_model_features(X, teacher, surrogates)
    sigmas = [check_positive(s, "sigma", strict=False) for s in sigmas]
    epsilons = [check_positive(e, "epsilon", strict=False) for e in epsilons]
    seed = check_int(seed, "seed")
    rng = np.random.default_rng(seed)

    models: dict[str, Any] = {"teacher": teacher, **dict(surrogates)}
    noise: dict[str, dict[str, list[float]]] = {m: {"accuracy": [], "fidelity": []} for m in models}
    clean: dict[str, np.ndarray] = {}  # predictions on X itself (sigma 0), which epsilon 0 asks for again
    for sigma in sigmas:
        Xn = X if sigma == 0 else (X + sigma * rng.standard_normal(X.shape)).astype(np.float32)
        t = teacher.predict(Xn)
        for m, model in models.items():
            p = t if m == "teacher" else _predict(model, Xn)
            if sigma == 0:
                clean[m] = p
            noise[m]["accuracy"].append(float(np.mean(p == y)))
            noise[m]["fidelity"].append(float(np.mean(p == t)))

    fg: dict[str, dict[str, list[float]]] = {}
    notes: dict[str, str] = {}
    for m, model in models.items():
        module = differentiable_module(model)
        if module is None:
            notes[m] = "not differentiable (no torch_module()): FGSM not applicable"
            continue
        fg[m] = {"accuracy": [], "fidelity": []}
        for eps in epsilons:
            if eps == 0 and m in clean:
                p, t = clean[m], clean["teacher"]
            else:
                Xa = X if eps == 0 else fgsm(module, X, y, eps, batch_size=batch_size)
                p = _predict(model, Xa)
                t = p if m == "teacher" else teacher.predict(Xa)
            fg[m]["accuracy"].append(float(np.mean(p == y)))
            fg[m]["fidelity"].append(float(np.mean(p == t)))
    logger.info("robustness measured on %d samples, %d sigmas, %d epsilons", len(X), len(sigmas), len(epsilons))
    return RobustnessReport(sigmas=sigmas, epsilons=epsilons, noise=noise, fgsm=fg, n=int(len(X)), notes=notes)
