"""Where work runs: one resolver of torch devices for the teacher, the soft tree and the student, and the
CPU cores this process may use (imports nothing of ours)."""

from __future__ import annotations

import os

import torch

__all__ = ["resolve_device", "cpu_cores"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU is an error that says so."""
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be 'auto', 'cpu' or 'cuda[:N]'; received {device!r}.")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but no CUDA GPU is available (torch {torch.__version__}, "
            f"CUDA build: {torch.version.cuda}). Use device='cpu' or 'auto', or install a CUDA build of torch."
        )
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]'; received {device!r}.") from exc


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system says, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
