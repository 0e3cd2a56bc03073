"""Crash safety: an interrupted run never damages the previous output.

A run writes into ``.DIR.tmp-PID-*`` next to ``DIR`` and renames it into place only when
complete.  These tests interrupt real ``explain-distill run`` subprocesses (SIGINT, SIGTERM,
SIGKILL) and check what is left on disk.  To hit the narrow write phase every time, one variant
wraps the real CLI with a ``build_report`` that pauses after the model files are written (the
code under test, ``atomic_directory`` and ``main``, is unchanged); the other sends SIGINT to
``python -m explain_distill.cli`` itself while the teacher trains.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from explain_distill._io import atomic_directory, clean_stale

ROOT = Path(__file__).resolve().parents[1]

# The real CLI, with the report step paused: the temporary directory then holds a partial run.
STALLED_CLI = """
import sys, time
import explain_distill.report.html as report
real = report.write_report
def stalled(*args, **kwargs):
    print("STALLED", file=sys.stderr, flush=True)
    time.sleep(120)
    return real(*args, **kwargs)
report.write_report = stalled
from explain_distill.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _previous_run(out: Path) -> dict[str, bytes]:
    """An earlier run's output as older versions wrote it (recognised by metrics.json's schema)."""
    out.mkdir(parents=True)
    (out / "index.html").write_text("<html>previous report</html>")
    (out / "metrics.json").write_text('{"schema": "explain_distill.metrics/1", "previous": true}')
    (out / "model").mkdir()
    (out / "model" / "run.json").write_text('{"format": "explain_distill.run/1"}')
    return _snapshot(out)


def _snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


# A child started from a background job inherits SIGINT *ignored* (POSIX shells do that for `&`
# without job control) and Python then installs no KeyboardInterrupt handler, so a Ctrl-C test
# would pass or fail with the way the suite was launched.  Give every child Python's own handler.
RESTORE_SIGINT = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def _spawn(args: list[str], tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    if args[0] == "-m":
        code = f"import runpy; runpy.run_module({args[1]!r}, run_name='__main__', alter_sys=True)"
        args = ["-c", RESTORE_SIGINT + code, *args[2:]]
    elif args[0] == "-c":
        args = ["-c", RESTORE_SIGINT + args[1], *args[2:]]
    err = tmp_path / "stderr.txt"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    with open(err, "wb") as fh:
        proc = subprocess.Popen([sys.executable, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=fh, env=env)
    return proc, err


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc={proc.returncode}) before it could be interrupted")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("the run never reached the point to interrupt")


def _stalled_run(tmp_path: Path, out: Path) -> tuple[subprocess.Popen, Path]:
    proc, err = _spawn(
        ["-c", STALLED_CLI, "run", "--dataset", "iris", "--surrogates", "tree", "--out", str(out)], tmp_path
    )
    # wait until the partial run sits in the temporary directory and the report step has begun
    _wait_for(lambda: "STALLED" in err.read_text(errors="replace"), proc)
    tmps = list(out.parent.glob(f".{out.name}.tmp-{proc.pid}-*"))
    assert len(tmps) == 1 and (tmps[0] / "model" / "run.json").is_file(), _leftovers(out)
    return proc, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_mid_write_keeps_previous_run_and_cleans_up(tmp_path, sig):
    out = tmp_path / "reports" / "iris"
    before = _previous_run(out)
    proc, err = _stalled_run(tmp_path, out)
    proc.send_signal(sig)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert stdout == b""  # no report path claimed
    text = err.read_text()
    assert "Traceback" not in text
    assert text.strip().splitlines()[-1] == (
        "explain-distill: interrupted; nothing was written over the previous output."
    )
    assert _snapshot(out) == before
    assert _leftovers(out) == []


def test_sigkill_mid_write_keeps_previous_run_and_next_run_cleans_stale(tmp_path):
    out = tmp_path / "reports" / "iris"
    before = _previous_run(out)
    proc, _ = _stalled_run(tmp_path, out)
    proc.kill()
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert _snapshot(out) == before
    stale = _leftovers(out)
    assert len(stale) == 1 and stale[0].startswith(f".iris.tmp-{proc.pid}-")  # nothing could clean it
    # the next run (same code path as cli run) removes it and replaces the output
    with atomic_directory(out, kind="run") as tmp:
        (tmp / "index.html").write_text("new")
    assert _leftovers(out) == []
    assert (out / "index.html").read_text() == "new" and not (out / "metrics.json").exists()


def test_ctrl_c_on_the_real_cli_during_training(tmp_path):
    out = tmp_path / "out"
    before = _previous_run(out)
    proc, err = _spawn(["-m", "explain_distill.cli", "run", "--dataset", "iris", "--out", str(out)], tmp_path)
    _wait_for(lambda: "data: iris" in err.read_text(errors="replace"), proc)
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.read_text()
    assert stdout == b""
    text = err.read_text()
    assert "Traceback" not in text and text.strip().splitlines()[-1].startswith("explain-distill: interrupted")
    assert _snapshot(out) == before
    assert _leftovers(out) == []


# ----------------------------------------------------------------------------- in-process
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_exception_inside_the_block_leaves_target_untouched(tmp_path):
    out = tmp_path / "run"
    before = _previous_run(out)
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(out) as tmp:
            (tmp / "index.html").write_text("half")
            raise KeyboardInterrupt
    assert _snapshot(out) == before and _leftovers(out) == []


def test_clean_stale_spares_live_runs_and_restores_a_moved_aside_output(tmp_path):
    out = tmp_path / "run"
    dead = _dead_pid()
    live = os.getppid()
    (tmp_path / f".run.tmp-{dead}-abc").mkdir()
    (tmp_path / f".run.tmp-{live}-def").mkdir()
    (tmp_path / ".run.tmp-notapid").mkdir()  # not ours: left alone
    old = tmp_path / f".run.old-{dead}"
    old.mkdir()
    (old / "index.html").write_text("previous")
    removed = clean_stale(out)
    assert [p.name for p in removed] == [f".run.tmp-{dead}-abc"]
    # the dead run had moved the previous output aside and died before the second rename
    assert (out / "index.html").read_text() == "previous"
    assert _leftovers(out) == sorted([f".run.tmp-{live}-def", ".run.tmp-notapid"])
    # with the output present, a stale .old copy is deleted instead
    (tmp_path / f".run.old-{dead}").mkdir()
    clean_stale(out)
    assert not (tmp_path / f".run.old-{dead}").exists() and (out / "index.html").read_text() == "previous"
    # a directory of that name holding files this tool did not write is the user's: never deleted
    theirs = tmp_path / f".run.old-{dead}"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    clean_stale(out)
    assert (theirs / "notes.txt").read_text() == "mine"


def test_a_dead_runs_old_directory_under_this_process_pid_is_never_deleted_unseen(tmp_path):
    # PIDs repeat (containers start every run near the same number): a ``.run.old-PID`` that a dead run
    # with this process's PID left, which clean_stale skips as ours, is not deleted by the next swap
    out = tmp_path / "run"
    with atomic_directory(out) as tmp:
        (tmp / "index.html").write_text("first")
    theirs = tmp_path / f".run.old-{os.getpid()}"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    with atomic_directory(out) as tmp:
        (tmp / "index.html").write_text("second")
    assert (out / "index.html").read_text() == "second"
    assert (theirs / "notes.txt").read_text() == "mine"
    assert _leftovers(out) == [theirs.name]  # the moved-aside first output went; nothing else was left
