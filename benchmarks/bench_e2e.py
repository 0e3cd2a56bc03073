"""End to end: ``explain-distill run --dataset digits`` as a user runs it, in a subprocess.

Wall time and peak resident memory of the whole command (target on CPU: <= 60 s on 2 cores),
and the per-stage times it logs (data, teacher, each surrogate fit, distillation, report).  The
baseline timed in the same run is the floor every command pays: a fresh interpreter importing
``explain_distill``, torch and scikit-learn.  Peak memory is the child's own ``ru_maxrss``
(``os.wait4`` on its pid: what ``getrusage(RUSAGE_CHILDREN)`` reports, for this child alone).
``quick=True`` runs the same command on iris with the tree surrogate only, on one thread.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TITLE = "End-to-end run (CLI)"
TARGET_S = 60.0
TIMEOUT_S = 900.0  # a run this slow is stopped and reported as such, with the stages it finished
ROOT = Path(__file__).resolve().parents[1]

_STAMP = re.compile(r"^(?P<label>.*?)\s*\[(?P<t>\d+(?:\.\d+)?)s\]\s*$")
_FITTED = re.compile(r"fitted (?P<name>\S+) in (?P<t>\d+(?:\.\d+)?)s")
_DONE = re.compile(r"done in (?P<t>\d+(?:\.\d+)?)s")


def _run_child(cmd: list[str], *, timeout: float, env: dict[str, str] | None = None, source: Path = ROOT) -> dict[str, Any]:
    """Run ``cmd`` in ``source`` with it first on the import path; wall and CPU seconds, exit code, the
    child's peak RSS in MiB, and its stdout and stderr."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=source, stdout=out, stderr=err, env={**os.environ, "PYTHONPATH": str(source), **(env or {})})
        deadline = t0 + timeout
        timed_out = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                timed_out = True
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        rss = usage.ru_maxrss / (1024 * 1024) if sys.platform == "darwin" else usage.ru_maxrss / 1024
        return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "timed_out": timed_out, "returncode": proc.returncode,
                "peak_rss_mib": rss, "stdout": out.read(), "stderr": err.read()}


def parse_stages(stderr: str) -> dict[str, float]:
    """The CLI's log lines -> seconds spent per stage (its stamps are cumulative since the start)."""
    stages: dict[str, float] = {}
    last = 0.0
    for line in stderr.splitlines():
        line = line.strip()
        m = _FITTED.search(line)
        if m:
            stages[f"fit {m['name']}"] = float(m["t"])
            continue
        m = _STAMP.match(line)
        if m:
            label = m["label"].split(":")[0].strip() or "stage"
            t = float(m["t"])
            stages[label] = round(t - last, 3)
            last = t
            continue
        m = _DONE.search(line)
        if m:
            stages["save + report"] = round(float(m["t"]) - last, 3)
            stages["total (logged)"] = float(m["t"])
    return stages


def run(*, device: str = "cpu", quick: bool = False) -> dict:
    dataset = "iris" if quick else "digits"
    with tempfile.TemporaryDirectory(prefix="bench_e2e_") as tmp:
        floor = _run_child([sys.executable, "-c", "import explain_distill, torch, sklearn"], timeout=300)
        cmd = [sys.executable, "-m", "explain_distill.cli", "run", "--dataset", dataset, "--out", str(Path(tmp) / "out"),
               "--device", "cuda" if device == "cuda" else "cpu"]
        if quick:
            cmd += ["--surrogates", "tree"]
        # quick mode only proves the path runs: one thread keeps it fast on a crowded machine
        res = _run_child(cmd, timeout=TIMEOUT_S, env={"OMP_NUM_THREADS": "1"} if quick else None)
        wrote = (Path(tmp) / "out" / "index.html").is_file()
    if res["returncode"] != 0 and not res["timed_out"]:
        raise RuntimeError(f"`{' '.join(cmd[1:])}` exited with {res['returncode']}: {res['stderr'][-2000:]}")
    return summarize(res, floor, dataset=dataset, device=device, quick=quick, wrote=wrote)


def summarize(res: dict[str, Any], floor: dict[str, Any], *, dataset: str, device: str, quick: bool, wrote: bool, note: str = "") -> dict:
    """The section for RESULTS.md from a run's record (``_run_child``'s dict) and the import floor's."""
    stages = parse_stages(res["stderr"])
    data = {
        "dataset": dataset,
        "command": f"explain-distill run --dataset {dataset}" + (" --surrogates tree" if quick else ""),
        "device": device,
        "wall_s": round(res["wall_s"], 2),
        "peak_rss_mib": round(res["peak_rss_mib"], 1),
        "import_floor_s": round(floor["wall_s"], 2),
        "import_floor_rss_mib": round(floor["peak_rss_mib"], 1),
        "ratio_to_import_floor": round(res["wall_s"] / floor["wall_s"], 2),
        "target_s": TARGET_S,
        "timed_out_after_s": TIMEOUT_S if res["timed_out"] else None,
        "meets_target": (res["wall_s"] <= TARGET_S and not res["timed_out"]) if not quick else None,
        "report_written": wrote,
        "stages_s": stages,
        "note": note or None,
    }
    verdict = (
        f"target <= {TARGET_S:.0f} s: **{'met' if data['meets_target'] else 'NOT met'}**"
        + (f" (stopped after {TIMEOUT_S:.0f} s: the stages below are those it finished)" if res["timed_out"] else "")
        if not quick
        else "quick mode (iris, tree only): the 60 s target applies to the full digits run"
    )
    stage_rows = [f"| {k} | {v:.2f} |" for k, v in stages.items()]
    md = "\n".join(
        [
            f"`{data['command']}` in a subprocess, on {device}: **{data['wall_s']:.1f} s** wall, peak RSS "
            f"**{data['peak_rss_mib']:.0f} MiB**; {verdict}. The floor (a fresh interpreter importing "
            f"explain_distill, torch and scikit-learn) took {data['import_floor_s']:.1f} s and {data['import_floor_rss_mib']:.0f} MiB "
            f"in the same run: the run costs {data['ratio_to_import_floor']:.1f}x that floor.",
            "",
            "| stage (from the CLI's log) | seconds |",
            "|---|---:|",
            *stage_rows,
            "",
            "Surrogate fits are part of the distillation stage; on two cores or more the student trains beside the other fits, so the fits add up to more than the stage. On a shared 2-core machine wall times vary "
            "with the neighbours' load (see the load average above)." + (f" {note}" if note else ""),
        ]
    )
    return {"title": TITLE, "markdown": md, "data": data}


if __name__ == "__main__":  # pragma: no cover
    print(run(quick=True)["markdown"])
