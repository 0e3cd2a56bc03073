"""End to end with pattern surrogates: ``explain-distill run --dataset mnist1d`` (and digits) as a user runs it.

Targets (issue 15): mnist1d <= 120 s on 2 CPU cores, and digits still <= 60 s, now that the run
also fits ``tree/rules/logistic@patterns``, draws the patterns and trains the convolutional
student.  Each command runs in a subprocess; wall seconds, the child's CPU seconds (user + system,
from ``os.wait4``: far less sensitive to a neighbour's load than wall time) and peak memory are
recorded with the load average before and after.

The machine is shared, so absolute seconds depend on the neighbours.  The baseline is timed side
by side: set ``BENCH_BASELINE_SRC`` to the source tree of an earlier commit (``git archive COMMIT |
tar -x -C DIR``) and each command also runs from there, alternating with this tree, under the same
load; the section then reports the ratio.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.bench_e2e import _run_child

TITLE = "End-to-end run with pattern surrogates (CLI, mnist1d and digits)"
ROOT = Path(__file__).resolve().parents[1]
TARGET_S = {"mnist1d": 120.0, "digits": 60.0}
TIMEOUT_S = 1200.0


def _run(cmd: list[str], *, source: Path, timeout: float) -> dict[str, Any]:
    """Run ``cmd`` with ``source`` first on the import path: wall and CPU seconds, peak RSS, exit code, load."""
    load = os.getloadavg()[0]
    r = _run_child(cmd, timeout=timeout, source=source)
    return {"wall_s": round(r["wall_s"], 1), "cpu_s": round(r["cpu_s"], 1), "peak_rss_mib": round(r["peak_rss_mib"]),
            "returncode": r["returncode"], "timed_out": r["timed_out"], "load_before": round(load, 2),
            "load_after": round(os.getloadavg()[0], 2), "stderr": r["stderr"]}


def _command(name: str, out: Path, device: str, quick: bool) -> list[str]:
    cmd = [sys.executable, "-m", "explain_distill.cli", "run", "--dataset", name, "--out", str(out),
           "--device", "cuda" if device == "cuda" else "cpu"]
    return cmd + (["--surrogates", "tree,tree@patterns"] if quick else [])


def run(*, device: str = "cpu", quick: bool = False) -> dict:
    from benchmarks.bench_e2e import parse_stages

    baseline = os.environ.get("BENCH_BASELINE_SRC")
    base_src = Path(baseline) if baseline else None
    if base_src is not None and not (base_src / "explain_distill" / "cli.py").is_file():
        raise ValueError(f"BENCH_BASELINE_SRC={baseline!r} is not a source tree of explain_distill (no explain_distill/cli.py).")
    rows = []
    for name in ("mnist1d",) if quick else ("mnist1d", "digits"):
        with tempfile.TemporaryDirectory(prefix="bench_patterns_e2e_") as tmp:
            row: dict[str, Any] = {"dataset": name, "target_s": TARGET_S[name]}
            if base_src is not None and not quick:
                row["baseline"] = _run(_command(name, Path(tmp) / "base", device, quick), source=base_src, timeout=TIMEOUT_S)
            res = _run(_command(name, Path(tmp) / "out", device, quick), source=ROOT, timeout=TIMEOUT_S)
            html = Path(tmp) / "out" / "index.html"
            res["report_has_patterns"] = html.is_file() and 'id="patterns"' in html.read_text(encoding="utf-8")
        if res["returncode"] != 0 and not res["timed_out"]:
            raise RuntimeError(f"explain-distill run --dataset {name} exited with {res['returncode']}: {res['stderr'][-2000:]}")
        res["stages_s"] = parse_stages(res.pop("stderr"))
        row.update(res)
        row["meets_target"] = None if quick else bool(res["wall_s"] <= TARGET_S[name] and not res["timed_out"])
        if "baseline" in row:
            row["baseline"].pop("stderr", None)
            row["wall_ratio"] = round(res["wall_s"] / row["baseline"]["wall_s"], 3)
            row["cpu_ratio"] = round(res["cpu_s"] / row["baseline"]["cpu_s"], 3)
        rows.append(row)
    lines = [
        "| command | wall s | CPU s | target (wall) | met | peak RSS MiB | load before / after | patterns section |",
        "|---|---:|---:|---:|---|---:|---|---|",
    ]
    for r in rows:
        met = "n/a" if r["meets_target"] is None else ("**yes**" if r["meets_target"] else "**NO**")
        lines.append(f"| `explain-distill run --dataset {r['dataset']}` | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['target_s']:.0f} | "
                     f"{met} | {r['peak_rss_mib']} | {r['load_before']} / {r['load_after']} | {'yes' if r['report_has_patterns'] else 'no'} |")
    if any("baseline" in r for r in rows):
        lines += ["", f"Side by side with the baseline source tree `{baseline}` (the same command, run just before, under the same load):", "",
                  "| data set | baseline wall s | baseline CPU s | this tree wall s | this tree CPU s | wall ratio | CPU ratio |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            b = r.get("baseline")
            if b:
                lines.append(f"| {r['dataset']} | {b['wall_s']:.1f} | {b['cpu_s']:.1f} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
                             f"{r['wall_ratio']:.2f} | {r['cpu_ratio']:.2f} |")
    for r in rows:
        if r.get("stages_s"):
            lines += ["", f"Stages of the {r['dataset']} run (seconds, from its log): "
                      + ", ".join(f"{k} {v:.1f}" for k, v in r["stages_s"].items()) + "."]
    lines += ["", "Wall time is what the target is about; on a shared machine it is inflated by the neighbours' load "
              "(the load average is on 2 cores). CPU seconds are the child's own work, summed over its threads: with the "
              "machine to itself the wall time of a run is at most about that."]
    return {"title": TITLE, "markdown": "\n".join(lines), "data": {"runs": rows, "baseline_src": baseline}}


if __name__ == "__main__":  # pragma: no cover
    print(run(quick=True)["markdown"])
