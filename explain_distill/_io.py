"""Crash-safe writing and pickle-free reading (imports nothing of ours but ``_validation``).

A run writes into a temporary sibling directory and renames it into place only once it is
complete, so an interrupted run (Ctrl-C, SIGKILL, a full disk) leaves the previous one intact.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["atomic_directory", "clean_stale", "write_json", "read_json", "save_arrays", "load_arrays"]


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _owner_pid(path: Path, marker: str) -> int | None:
    """The pid encoded in ``.NAME.tmp-PID-xxxx`` / ``.NAME.old-PID``, or None."""
    rest = path.name.split(marker, 1)[1]
    head = rest.split("-", 1)[0]
    return int(head) if head.isdigit() else None


def clean_stale(target: str | os.PathLike) -> list[Path]:
    """Remove what runs killed mid-write (SIGKILL, power loss) left next to ``target``.

    A ``.NAME.tmp-PID-*`` directory whose process is gone is deleted.  A ``.NAME.old-PID``
    directory is the previous output a dead run had moved aside: it is put back when ``target``
    is missing (the run died between the two renames), deleted otherwise.  Returns what was removed.
    """
    target = Path(target)
    removed: list[Path] = []
    if not target.parent.is_dir():
        return removed
    for marker in (".tmp-", ".old-"):
        for p in sorted(target.parent.glob(f".{glob.escape(target.name)}{marker}*")):
            pid = _owner_pid(p, marker)
            if pid is None or pid == os.getpid() or _pid_alive(pid):
                continue
            if marker == ".old-" and not target.exists():
                os.replace(p, target)
                logger.warning("restored %s from %s, left by interrupted run %d", target, p.name, pid)
                continue
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
            logger.info("removed %s, left by interrupted run %d", p.name, pid)
    return removed


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM (delivered right after) so a Ctrl-C cannot split the two renames."""
    sigs = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces ``target`` only when the block completes.

    On any exception (KeyboardInterrupt included) the temporary directory is removed and
    ``target`` is left exactly as it was.  The temporary directory is a sibling named
    ``.NAME.tmp-PID-xxxx``; ones left by killed processes are cleaned up first (:func:`clean_stale`).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a report directory should read like any other
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    try:
        with _signals_deferred():
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
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
