"""Crash-safe writing and pickle-free reading (imports nothing of ours but ``_validation``).

A run writes into a temporary sibling directory and renames it into place only once it is
complete, so an interrupted run (Ctrl-C, SIGKILL, a full disk) leaves the previous one intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_directory", "write_json", "read_json", "save_arrays", "load_arrays"]


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces ``target`` only when the block completes.

    On any exception (KeyboardInterrupt included) the temporary directory is removed and
    ``target`` is left exactly as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a report directory should read like any other
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=False, allow_nan=True) + "\n", encoding="utf-8")


def read_json(path: str | os.PathLike, *, what: str = "file") -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Missing {what}: {path} does not exist. Was the run saved completely?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a valid JSON {what} ({exc}); the file is truncated or not ours.") from exc


def save_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write numeric arrays with safetensors (no pickle, no code)."""
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path))


def load_arrays(path: str | os.PathLike, *, what: str = "array file") -> dict[str, np.ndarray]:
    """Read a safetensors file; anything else (a pickle, a truncated file) fails with a clear error."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Missing {what}: {path} does not exist.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(
            f"{path} is not a valid safetensors {what} ({exc}). It may be truncated, or a file of "
            f"another format (pickles are never loaded). Re-create it with the matching save()."
        ) from exc
