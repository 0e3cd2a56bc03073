"""How much smaller and faster the neural student is than its teacher (plain data, no drawing).

``compression_report(teacher, student)`` measures, for both: parameter count, FLOPs of one
forward pass per sample (``torch.utils.flop_counter.FlopCounterMode``), the safetensors file size
of the weights, and CPU latency per sample (median of repeated batched forward passes), plus the
teacher/student ratios.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from ..surrogates.student import NeuralStudent
from ..teacher import Teacher

logger = logging.getLogger(__name__)

__all__ = ["compression_report", "count_flops", "safetensors_bytes", "cpu_latency"]


def _first(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


def count_flops(module: nn.Module, example: torch.Tensor) -> int:
    """FLOPs of one forward pass of ``module`` on ``example`` (FlopCounterMode; 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    module = module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(example)
    return int(counter.get_total_flops())


def safetensors_bytes(module: nn.Module) -> int:
    """Size in bytes of the module's weights serialised with safetensors."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    return len(save(state))


def cpu_latency(module: nn.Module, example: torch.Tensor, *, batch: int = 256, repeats: int = 7) -> float:
    """Median seconds per sample of a batched CPU forward pass (one warm-up, ``repeats`` timed)."""
    module = module.eval()
    x = example.expand(batch, *example.shape[1:]).contiguous()
    times = []
    with torch.no_grad():
        module(x)
        for _ in range(repeats):
            t0 = time.perf_counter()
            module(x)
            times.append(time.perf_counter() - t0)
    return float(np.median(times) / batch)


def _measure(module: nn.Module, shape: tuple[int, ...], n_params: int) -> dict[str, Any]:
    cpu = copy.deepcopy(module).cpu().float().eval()
    example = torch.zeros(1, *shape)
    return {
        "params": int(n_params),
        "flops_per_sample": count_flops(cpu, example),
        "file_bytes": safetensors_bytes(cpu),
        "cpu_latency_s_per_sample": cpu_latency(cpu, example),
    }


def compression_report(teacher: Teacher, student: NeuralStudent) -> dict[str, Any]:
    """Teacher vs student: params, FLOPs/sample, safetensors bytes, CPU latency/sample, and ratios.

    Returns ``{"teacher": {...}, "student": {...}, "ratios": {metric: teacher / student},
    "student_fraction": {metric: student / teacher}, "caveat": str}``.
    """
    if not isinstance(teacher, Teacher):
        raise TypeError(f"teacher must be an explain_distill Teacher; received {type(teacher).__name__}.")
    if not isinstance(student, NeuralStudent) or not hasattr(student, "module_"):
        raise TypeError(
            f"student must be a fitted NeuralStudent (distill(..., surrogates=['student'])); received {type(student).__name__}."
        )
    t_shape = tuple(teacher.input_shape) if teacher.input_shape else (int(student.n_features_in_),)
    t = _measure(teacher.module, t_shape, teacher.n_params)
    s = _measure(student.module_, (int(student.n_features_in_),), student.n_params_)
    keys = ("params", "flops_per_sample", "file_bytes", "cpu_latency_s_per_sample")
    ratios = {k: (t[k] / s[k] if s[k] else float("inf")) for k in keys}
    fraction = {k: (s[k] / t[k] if t[k] else float("nan")) for k in keys}
    return {
        "teacher": t,
        "student": s,
        "ratios": ratios,
        "student_fraction": fraction,
        "caveat": "CPU latency is a median over a few batched passes on this machine; it is noisy when others share the cores.",
    }
