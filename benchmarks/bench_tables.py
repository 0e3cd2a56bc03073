"""Tables at 10k, 100k and 1M rows: the time and peak memory of every stage, and its slope against N.

A customer-churn CSV (benchmarks/_tables.churn_csv: integer, 0/1, text and real columns, an
imbalanced label) is written at each size, then the user's path runs stage by stage: read the CSV
(``Dataset.from_csv``), train the built-in teacher (with a fixed budget of sample-passes, as a user
with a large table would), ``distill`` with its defaults (its own stages from ``result.info``),
``run_analyses``, the CLI's curves, and the report.  The slope of log(time) against log(N) between
the two largest sizes says how each stage grows (1: linear); peak memory is the process's anonymous
resident memory above what it held before the stage (``bench_scaling._AnonPeak``).
"""

from __future__ import annotations

import gc
import math
import tempfile
import time
from pathlib import Path
from typing import Any

TITLE = "Tables at 10k, 100k and 1M rows: time and memory per stage, and the slope against N"
#: Sample-passes the teacher trains for at every size (epochs = this / training rows, at least 2).
TEACHER_PASSES = 600_000


def _stage(fn: Any) -> tuple[Any, float, float | None]:
    from benchmarks.bench_scaling import _AnonPeak

    gc.collect()
    peak = _AnonPeak()
    t0 = time.perf_counter()
    with peak.measure():
        out = fn()
    return out, time.perf_counter() - t0, peak.peak


def _one(n: int, tmp: Path) -> dict[str, Any]:
    import explain_distill as ed
    from benchmarks._tables import churn_csv
    from explain_distill.cli import _extras

    path = churn_csv(tmp / f"churn_{n}.csv", n=n, seed=0)
    rows: dict[str, dict[str, float | None]] = {}

    def record(name: str, seconds: float, mib: float | None) -> None:
        rows[name] = {"seconds": round(seconds, 2), "peak_mib": None if mib is None else round(mib, 1)}

    data, s, m = _stage(lambda: ed.Dataset.from_csv(path, target="churn"))
    record("read CSV", s, m)
    epochs = max(2, min(30, math.ceil(TEACHER_PASSES / len(data.X_train))))
    teacher, s, m = _stage(lambda: ed.train_teacher(data, seed=0, epochs=epochs, batch_size=256, progress=False))
    record("teacher", s, m)
    result, s, m = _stage(lambda: ed.distill(teacher, data, seed=0, min_agreement=0.9))
    record("distill", s, m)
    for key, v in result.info["timings"].items():
        if key.endswith("_s") and not key.startswith("ladder_"):
            rows[f"  {key[:-2].replace('_', ' ')}"] = {"seconds": round(v, 2), "peak_mib": None}
    analyses, s, m = _stage(lambda: ed.run_analyses(result, seed=0))
    record("analyses", s, m)
    extras, s, m = _stage(lambda: _extras(result))
    record("curves (CLI)", s, m)
    _, s, m = _stage(lambda: ed.build_report(result, tmp / f"report_{n}", analyses=analyses, min_agreement=0.9))
    record("report", s, m)
    total = sum(v["seconds"] for k, v in rows.items() if not k.startswith("  "))
    return {"n": n, "n_train": len(data.X_train), "n_features": data.n_features, "teacher_epochs": epochs,
            "budget": result.info.get("budget"), "stages": rows, "total_s": round(total, 1),
            "fidelity": {k: round(v["fidelity"], 3) for k, v in result.metrics["surrogates"].items()}}


def _slopes(results: list[dict[str, Any]]) -> dict[str, float | None]:
    if len(results) < 2:
        return {}
    a, b = results[-2], results[-1]
    out = {}
    for stage, row in b["stages"].items():
        ta, tb = (a["stages"].get(stage) or {}).get("seconds"), row["seconds"]
        out[stage] = (round(math.log(tb / ta) / math.log(b["n"] / a["n"]), 2)
                      if ta and tb and ta > 0.05 and tb > 0 else None)
    return out


def _markdown(results: list[dict[str, Any]], slopes: dict[str, float | None]) -> str:
    sizes = [r["n"] for r in results]
    head = "| stage | " + " | ".join(f"{n:,} rows: s (MiB)" for n in sizes) + \
        f" | slope {sizes[-2]:,} -> {sizes[-1]:,} |" if len(sizes) > 1 else "| stage | s |"
    lines = [
        f"The churn table (`benchmarks/_tables.churn_csv`, {results[0]['n_features']} columns after one-hot "
        "encoding) at each size, the user's path stage by stage on this machine; indented rows are `distill`'s own "
        "stages (`result.info['timings']`). Slope: d log(time) / d log(N) between the two largest sizes.",
        "",
        head,
        "|---|" + "---|" * (len(sizes) + (1 if len(sizes) > 1 else 0)),
    ]
    for stage in results[-1]["stages"]:
        cells = []
        for r in results:
            v = r["stages"].get(stage)
            cells.append("" if v is None else f"{v['seconds']:.1f}" + (f" ({v['peak_mib']:.0f})" if v["peak_mib"] is not None else ""))
        slope = slopes.get(stage)
        lines.append(f"| {stage} | " + " | ".join(cells) + (f" | {'' if slope is None else slope} |" if len(sizes) > 1 else " |"))
    lines.append("| **total** | " + " | ".join(f"**{r['total_s']:.1f}**" for r in results) + (" | |" if len(sizes) > 1 else " |"))
    lines += ["", "Budget decisions recorded in the result: " + "; ".join(
        f"{r['n']:,} rows: {r['budget'].get('epochs') or 'none'}" for r in results) + ".",
        "", "Fidelity at the largest size: " + ", ".join(f"{k} {v}" for k, v in results[-1]["fidelity"].items()) + "."]
    return "\n".join(lines)


def run(*, device: str = "cpu", quick: bool = False) -> dict:
    """The stages at 2k and 10k rows when quick, at 10k, 100k and 1M otherwise."""
    sizes = [2_000, 10_000] if quick else [10_000, 100_000, 1_000_000]
    with tempfile.TemporaryDirectory() as tmp:
        results = [_one(n, Path(tmp)) for n in sizes]
    slopes = _slopes(results)
    return {"title": TITLE, "markdown": _markdown(results, slopes), "data": {"results": results, "slopes": slopes}}


if __name__ == "__main__":
    import sys

    print(run(quick="--quick" in sys.argv)["markdown"])
