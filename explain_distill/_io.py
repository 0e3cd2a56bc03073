"""Safe writing and pickle-free reading (imports nothing of ours but ``_validation``).

Two promises every writer of this package keeps:

- **Never lose a user's file.**  An output directory may be created, filled when empty, or
  replaced when it holds an earlier output of this tool and nothing else.  Every directory we
  write carries a manifest (``.explain_distill.json``) listing what we wrote; anything not in it
  is the user's, and its presence makes :func:`check_output_dir` refuse the path, naming it and
  what is in it.  An existing file, the working directory or one of its parents, the home
  directory, the filesystem root and a directory holding the run's inputs are refused outright.
- **Crash safety.**  A run writes into a temporary sibling directory and renames it into place
  only once it is complete, so an interrupted run (Ctrl-C, SIGKILL, a full disk) leaves the
  previous one intact.
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

__all__ = [
    "MANIFEST",
    "OutputPathError",
    "atomic_directory",
    "check_output_dir",
    "clean_stale",
    "record_written",
    "write_json",
    "read_json",
    "save_arrays",
    "load_arrays",
]

#: The manifest each output directory carries: what this tool wrote there, and nothing else.
MANIFEST = ".explain_distill.json"
MANIFEST_FORMAT = "explain_distill.output/1"

#: Outputs written before manifests existed, recognised by their layout and a file only we write:
#: kind -> (identifying file, its JSON key, the value, the top-level entries such an output holds).
_LEGACY = {
    "run": ("metrics.json", "schema", "explain_distill.metrics/1", {"index.html", "metrics.json", "model"}),
    "saved_run": ("run.json", "format", "explain_distill.run/1", {"run.json", "teacher", "data", "surrogates"}),
    "label": ("transfer/transfer.json", "format", "explain_distill.transfer_shards/1", {"teacher", "transfer"}),
}
_SHOWN = 5


class OutputPathError(ValueError):
    """An output path this tool refuses to write to (it would lose or mix in the user's files)."""


def _listing(names: list[str], total: int | None = None) -> str:
    total = len(names) if total is None else total
    shown = ", ".join(repr(n) for n in sorted(names)[:_SHOWN])
    return shown + (f" and {total - _SHOWN} more" if total > _SHOWN else "")


def _read_manifest(directory: Path) -> dict[str, Any] | None:
    path = directory / MANIFEST
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT or not isinstance(doc.get("files"), list):
        return None
    return doc


def _entries(directory: Path) -> list[str]:
    """Every file and directory under ``directory``, relative, '/'-separated (the manifest excluded)."""
    out = []
    for root, dirs, files in os.walk(directory):
        rel = Path(root).relative_to(directory)
        for name in dirs + files:
            p = (rel / name).as_posix()
            if p != MANIFEST:
                out.append(p)
    return sorted(out)


def _legacy_kind(directory: Path, top: list[str]) -> str | None:
    for kind, (ident, key, value, layout) in _LEGACY.items():
        path = directory / ident
        if not path.is_file() or not set(top) <= layout:
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(doc, dict) and doc.get(key) == value:
            return kind
    return None


def _foreign(directory: Path) -> tuple[list[str], str | None]:
    """(what in ``directory`` this tool did not write, the kind of our earlier output there or None).

    With a manifest: every entry not listed in it.  Without one (outputs of earlier versions):
    an output recognised by its identifying file and layout counts as ours whole; anything else,
    the whole content.
    """
    entries = _entries(directory)
    manifest = _read_manifest(directory)
    if manifest is not None:
        ours = set(manifest["files"])
        return [e for e in entries if e not in ours], str(manifest.get("kind") or "output")
    top = sorted({e.split("/", 1)[0] for e in entries})
    kind = _legacy_kind(directory, top) if top else None
    if kind is not None:
        return [], kind
    return top, None


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _is_ancestor(parent: Path, child: Path) -> bool:
    try:
        parent, child = parent.resolve(), child.resolve()
    except OSError:
        return False
    return parent == child or parent in child.parents


def check_output_dir(
    target: str | os.PathLike,
    *,
    what: str = "output directory",
    inputs: tuple[str | os.PathLike | None, ...] = (),
    replace: bool = True,
    hint: str = "choose a new or empty directory",
) -> Path:
    """Refuse, before any work, an output path that would lose or mix in the user's files.

    Accepted: a path that does not exist yet, an empty directory, and a directory holding only
    an earlier output of this tool.  Refused with :class:`OutputPathError`, whose message names
    the path and what is in it: an existing file or symbolic link, the home directory, the
    filesystem root, a directory holding one of ``inputs`` (e.g. the CSV being read), a directory
    holding anything this tool did not write, and, when the output replaces the directory whole
    (``replace=True``), the working directory or one of its parents.  Returns ``target`` as a Path.
    """
    target = Path(target)
    label = f"The {what} {str(target)!r}"
    if target.is_symlink():
        raise OutputPathError(f"{label} is a symbolic link (to {os.readlink(target)!r}); pass the real path, or {hint}.")
    if target.exists() and not target.is_dir():
        raise OutputPathError(f"{label} is an existing file, not a directory, and will not be replaced; {hint}.")
    if _same(target, Path.home()):
        raise OutputPathError(f"{label} is the home directory; {hint}, e.g. reports/mine.")
    if _same(target, Path("/")):
        raise OutputPathError(f"{label} is the filesystem root; {hint}, e.g. reports/mine.")
    cwd = Path.cwd()
    if replace and _is_ancestor(target, cwd):
        where = "the working directory" if _same(target, cwd) else "a parent of the working directory"
        raise OutputPathError(f"{label} is {where}, and an output replaces its directory whole; {hint}, e.g. reports/mine.")
    for inp in inputs:
        if inp is not None and _is_ancestor(target, Path(inp)):
            top = sorted(p.name for p in target.iterdir()) if target.is_dir() else []
            held = f" (it holds {_listing(top)})" if top else ""
            raise OutputPathError(f"{label} holds the input {str(inp)!r}{held}; {hint}, e.g. reports/mine.")
    if not target.is_dir():
        return target
    try:
        foreign, kind = _foreign(target)
    except OSError as exc:
        raise OutputPathError(f"{label} cannot be read ({exc}); {hint}.") from exc
    if foreign:
        if kind:
            raise OutputPathError(
                f"{label} holds an earlier explain_distill output plus files it did not write: {_listing(foreign)}. "
                f"Nothing was written or deleted; move those files out of it, or {hint}."
            )
        raise OutputPathError(
            f"{label} already holds files this tool did not write: {_listing(foreign)}. "
            f"Nothing was written or deleted; {hint}."
        )
    return target


def _write_manifest(directory: Path, kind: str) -> None:
    write_json(
        directory / MANIFEST,
        {"format": MANIFEST_FORMAT, "kind": kind, "files": _entries(directory)},
    )


def record_written(directory: str | os.PathLike, names: list[str], *, kind: str) -> None:
    """Add ``names`` (paths relative to ``directory``, with their parents) to its manifest.

    For writers that add files to a directory in place (``build_report`` into a run directory,
    ``label``); the directory must have passed :func:`check_output_dir` first.
    """
    directory = Path(directory)
    manifest = _read_manifest(directory)
    if manifest is None:  # new, empty, or an output of an earlier version: all of it is ours
        files = set(_entries(directory))
    else:
        files = set(manifest["files"])
        kind = str(manifest.get("kind") or kind)
    for name in names:
        parts = Path(name).parts
        files.update(Path(*parts[: i + 1]).as_posix() for i in range(len(parts)))
        full = directory / name
        if full.is_dir():
            files.update(f"{Path(name).as_posix()}/{e}" for e in _entries(full))
    write_json(directory / MANIFEST, {"format": MANIFEST_FORMAT, "kind": kind, "files": sorted(files)})


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

    A ``.NAME.tmp-PID-*`` directory whose process is gone is deleted.  A ``.NAME.old-PID[-*]``
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
            if marker == ".old-" and p.is_dir() and _foreign(p)[0]:
                # a moved-aside output was ours whole when it was moved; anything else there is the user's
                logger.warning("left %s in place: it holds files this tool did not write", p.name)
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
def atomic_directory(
    target: str | os.PathLike,
    *,
    kind: str = "output",
    what: str = "output directory",
    inputs: tuple[str | os.PathLike, ...] = (),
) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces ``target`` only when the block completes.

    ``target`` must pass :func:`check_output_dir` (new, empty, or an earlier output of this
    tool and nothing else), checked on entry and again just before the swap, so a file the user
    puts there meanwhile is never deleted.  The manifest listing everything the block wrote is
    added before the swap.  On any exception (KeyboardInterrupt included) the temporary
    directory is removed and ``target`` is left exactly as it was.  The temporary directory is a
    sibling named ``.NAME.tmp-PID-xxxx``; ones left by killed processes are cleaned up first
    (:func:`clean_stale`).
    """
    target = Path(target)
    check_output_dir(target, what=what, inputs=inputs)
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
        _write_manifest(tmp, kind)
        check_output_dir(target, what=what, inputs=inputs)  # still ours (or gone) after the work?
        with _signals_deferred():
            if target.exists():
                # a fresh name (an empty directory the output is renamed over): a ``.NAME.old-PID`` left by
                # a dead run whose PID this process now has -- clean_stale skips our own PID -- is never
                # deleted unseen, whatever it holds
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-{os.getpid()}-", dir=target.parent))
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
