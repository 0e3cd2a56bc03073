"""Run the benchmark suite and record it: ``python -m benchmarks.run [--device cpu|cuda] [--quick] [--only NAME,...] [--merge]``.

Every ``benchmarks/bench_<name>.py`` exposes ``run(*, device="cpu", quick=False) -> {"title", "markdown",
"data"}``.  This runner imports them, runs them one after the other in a fixed order, and writes
``benchmarks/RESULTS.md`` (the machine, the versions, the date, then one section per benchmark) and
``benchmarks/results.json`` (every benchmark's ``data``).  A benchmark that fails to import or raises is
recorded as failed with its error; the others still run.  ``--merge`` re-runs some benchmarks and
keeps the others already recorded (each section then says when it was measured).  Performance is always a ratio against a
baseline timed in the same process: the absolute seconds are only meaningful on a quiet machine.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import logging
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger("benchmarks.run")

HERE = Path(__file__).resolve().parent
#: The order sections appear in RESULTS.md; benchmarks not listed follow alphabetically.
ORDER = ("soft_labels", "soft_tree", "gpu_fit", "fidelity", "readable", "attribution", "report", "load", "e2e", "scaling",
         "images")


def discover(directory: Path = HERE) -> list[str]:
    """Names of the ``bench_<name>.py`` modules in ``directory``, in the fixed order."""
    found = sorted(p.stem[len("bench_") :] for p in directory.glob("bench_*.py"))
    ordered = [n for n in ORDER if n in found]
    return ordered + [n for n in found if n not in ordered]


# ---------------------------------------------------------------------------- the machine
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _version(module: str) -> str | None:
    try:
        return getattr(importlib.import_module(module), "__version__", "?")
    except Exception:  # noqa: BLE001 - a missing optional package is simply not listed
        return None


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """CPU model, cores, RAM, GPU, load, versions and date: the header of RESULTS.md."""
    import torch

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info: dict[str, Any] = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "ram_gib": _ram_gib(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "gpu": None,
        "device": device,
        "platform": platform.platform(),
        "git_commit": _git_commit(),
        "versions": {
            "python": platform.python_version(),
            **{m: _version(m) for m in ("explain_distill", "torch", "numpy", "sklearn", "captum", "jinja2", "safetensors")},
        },
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = f"{torch.cuda.device_count()} x {props.name} ({props.total_memory / 2**30:.0f} GiB)"
        info["versions"]["cuda"] = torch.version.cuda
    return info


def _measured(machine: dict[str, Any]) -> dict[str, Any]:
    """What a record keeps of the run that measured it."""
    return {k: machine.get(k) for k in ("date_utc", "git_commit", "load_average", "device", "gpu")}


# ---------------------------------------------------------------------------- running
def _check_result(name: str, result: Any) -> dict[str, Any]:
    if not isinstance(result, dict) or not {"title", "markdown", "data"} <= set(result):
        raise TypeError(
            f"bench_{name}.run() must return a dict with 'title', 'markdown' and 'data'; "
            f"received {type(result).__name__} with keys {sorted(result) if isinstance(result, dict) else None}."
        )
    json.dumps(result["data"], allow_nan=True, default=str)  # JSON-able (numpy scalars go through default=str)
    return result


def run_benchmarks(
    names: Sequence[str],
    *,
    device: str = "cpu",
    quick: bool = False,
    loader: Callable[[str], Any] | None = None,
) -> list[dict[str, Any]]:
    """Run each named benchmark; one record per name: name, status ("ok"/"failed"), seconds, title, markdown, data or error.

    On a device other than the CPU a record is named ``<name>_<device>`` (``soft_tree_cuda``), so that
    ``--merge`` keeps the CPU section of the same benchmark beside it instead of replacing it.
    """
    load = loader or (lambda n: importlib.import_module(f"benchmarks.bench_{n}"))
    records = []
    for module_name in names:
        name = module_name if device == "cpu" else f"{module_name}_{device}"
        t0 = time.perf_counter()
        logger.info("benchmark %s ...", name)
        try:
            module = load(module_name)
            result = _check_result(module_name, module.run(device=device, quick=quick))
            title = str(result["title"]) + ("" if device == "cpu" else f" ({device})")
            record = {"name": name, "status": "ok", "title": title, "markdown": str(result["markdown"]), "data": result["data"]}
        except Exception as exc:  # noqa: BLE001 - one failing benchmark must not sink the run
            tb = traceback.format_exc(limit=6)
            logger.error("benchmark %s failed: %s: %s", name, type(exc).__name__, exc)
            record = {"name": name, "status": "failed", "title": name, "error": f"{type(exc).__name__}: {exc}", "traceback": tb}
        record["seconds"] = round(time.perf_counter() - t0, 2)
        if module_name != name:
            record["source"] = f"benchmarks/bench_{module_name}.py"
        logger.info("benchmark %s %s in %.1fs", name, record["status"], record["seconds"])
        records.append(record)
    return records


def render_markdown(machine: dict[str, Any], records: Sequence[dict[str, Any]], *, quick: bool) -> str:
    v = machine["versions"]
    versions = ", ".join(f"{k} {val}" for k, val in v.items() if val)
    load = machine.get("load_average")
    commit = f" at commit {machine['git_commit']}" if machine.get("git_commit") else ""
    lines = [
        "# Benchmark results",
        "",
        f"Written by `python -m benchmarks.run{' --quick' if quick else ''} --device {machine['device']}` on "
        f"{machine['date_utc']}{commit}. "
        "Each benchmark is a ratio against a baseline timed side by side in the same process; absolute "
        "seconds are only comparable on the same, quiet machine (on a GPU they are the numbers to read).",
        "",
        "| machine | |",
        "|---|---|",
        f"| CPU | {machine['cpu']} |",
        f"| cores | {machine['cores']} ({machine['usable_cores']} usable, torch threads {machine['torch_threads']}) |",
        f"| RAM | {machine['ram_gib']} GiB |",
        f"| GPU | {machine['gpu'] or 'none'} |",
        f"| load average at start | {', '.join(map(str, load)) if load else 'n/a'} |",
        f"| platform | {machine['platform']} |",
        f"| versions | {versions} |",
        "",
    ]
    if load and machine.get("usable_cores") and load[0] > machine["usable_cores"]:
        lines += [
            f"> The machine was loaded (load {load[0]} on {machine['usable_cores']} cores) when this ran: "
            "timings are noisy; the ratios, timed interleaved, are what to read.",
            "",
        ]
    if any((r.get("measured") or {}).get("date_utc") != machine.get("date_utc") for r in records):
        lines += [
            "> Merged (`--merge`): some sections were measured in earlier runs; each says when, at which commit "
            "and under which load. The table above describes the latest run.",
            "",
        ]
    lines += ["| benchmark | status | seconds |", "|---|---|---:|"]
    for r in records:
        lines.append(f"| [{r['title']}](#{r['name']}) | {r['status']} | {r['seconds']} |")
    lines.append("")
    for r in records:
        when = r.get("measured") or {}
        where = ""
        if when and when.get("date_utc") != machine.get("date_utc"):  # a section kept from an earlier run
            load_r = when.get("load_average")
            where = (
                f"; measured {when.get('date_utc')}"
                + (f" at commit {when['git_commit']}" if when.get("git_commit") else "")
                + (f" on {when['gpu']}" if when.get("gpu") else "")
                + (f", load average {load_r[0]}" if load_r else "")
            )
        source = r.get("source") or f"benchmarks/bench_{r['name']}.py"
        lines += [f'<a id="{r["name"]}"></a>', f"## {r['title']}", "", f"`{source}`, {r['seconds']} s{where}.", ""]
        if r["status"] == "ok":
            lines += [r["markdown"].rstrip(), ""]
        else:
            lines += [f"**Failed**: `{r['error']}`", "", "```", r["traceback"].rstrip(), "```", ""]
    return "\n".join(lines)


_RECORD_KEYS = ("title", "status", "seconds", "data", "error", "markdown", "traceback", "measured", "source")


def merge_records(previous: dict[str, Any], records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of an earlier results.json with the new ones put in their place (new names appended)."""
    merged = {}
    for name, rec in (previous.get("benchmarks") or {}).items():
        if "markdown" not in rec and "traceback" not in rec:
            raise ValueError(
                f"Cannot merge into results.json: its entry {name!r} has no markdown (it was written before "
                f"--merge existed). Re-run it too (--only {name},...) or write without --merge."
            )
        merged[name] = {"name": name, **rec}
    for r in records:
        merged[r["name"]] = dict(r)
    return list(merged.values())


def write_results(
    output: Path, machine: dict[str, Any], records: Sequence[dict[str, Any]], *, quick: bool, merge: bool = False
) -> tuple[Path, Path]:
    """RESULTS.md at ``output`` and results.json beside it.

    ``merge=True`` keeps the benchmarks already recorded there and replaces only those in
    ``records``; each section then says when (date, commit, load) it was measured.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    js = output.with_name("results.json")
    records = [{**r, "measured": r.get("measured") or _measured(machine)} for r in records]
    if merge and js.is_file():
        records = merge_records(json.loads(js.read_text(encoding="utf-8")), records)
    output.write_text(render_markdown(machine, records, quick=quick) + "\n", encoding="utf-8")
    doc = {
        "machine": machine,
        "quick": quick,
        "benchmarks": {r["name"]: {k: r[k] for k in _RECORD_KEYS if k in r} for r in records},
    }
    js.write_text(json.dumps(doc, indent=2, allow_nan=True, default=str) + "\n", encoding="utf-8")
    return output, js


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the benchmarks run (default: cpu)")
    p.add_argument("--quick", action="store_true", help="small sizes: the whole suite in about a minute on a CPU")
    p.add_argument("--only", help="comma-separated benchmark names (e.g. soft_labels,e2e)")
    p.add_argument("--output", type=Path, default=HERE / "RESULTS.md", help="RESULTS.md path; results.json goes beside it")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own choice)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a benchmark failed")
    p.add_argument(
        "--merge", action="store_true",
        help="keep the other benchmarks already in OUTPUT and replace only those run now (each section says when it ran)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    available = discover()
    names = available
    if args.only:
        names = [n.strip().removeprefix("bench_") for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in available]
        if unknown or not names:
            print(f"benchmarks.run: error: unknown benchmark(s) {unknown or args.only!r}; available: {', '.join(available)}.", file=sys.stderr)
            return 2
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("benchmarks.run: error: --device cuda but no CUDA GPU is visible to torch; use --device cpu.", file=sys.stderr)
            return 2
    if args.threads is not None:
        import torch

        if args.threads < 1:
            print(f"benchmarks.run: error: --threads must be >= 1; received {args.threads}.", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
    machine = machine_info(args.device)
    records = run_benchmarks(names, device=args.device, quick=args.quick)
    try:
        md, js = write_results(args.output, machine, records, quick=args.quick, merge=args.merge)
    except ValueError as exc:
        print(f"benchmarks.run: error: {exc}", file=sys.stderr)
        return 2
    failed = [r["name"] for r in records if r["status"] != "ok"]
    logger.info("wrote %s and %s (%d ok, %d failed%s)", md, js, len(records) - len(failed), len(failed), f": {', '.join(failed)}" if failed else "")
    print(md)
    return 1 if failed and args.strict else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
