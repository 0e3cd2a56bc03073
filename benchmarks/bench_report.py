"""Report rendering: time and size of the digits report, and a 12-deep soft tree.

Budgets (issue 6): rendering the digits report takes <= 10 s on the 2-core machine, the file is
<= 5 MB, and a 12-deep soft tree (8,191 nodes) still renders.

Measured side by side in one process, repeats interleaved (benchmarks/_timing.py):

- the full digits report (``build_report`` with ``run_analyses`` results: confusions,
  disagreement images, soft tree with filters and leaf glyphs, shallow tree, saliency and Grad-CAM,
  robustness curves) against the baseline of the summary-only report of the spine (no analyses);
- the report of a run holding a 12-deep soft tree against the same run with a 4-deep soft tree
  (the report draws the top levels plus the highlighted path, so the deep tree should cost about
  the same).

Training and analysis time is excluded: only ``build_report`` is timed.

Run: ``python -c "from benchmarks.bench_report import run; print(run()['markdown'])"``.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from ._timing import fmt, interleaved, ratio_row


def _digits_run(quick: bool, device: str) -> Any:
    import explain_distill as ed
    from explain_distill.surrogates.soft_tree import SoftDecisionTree

    data = ed.load_dataset("digits", seed=0)
    if quick:
        data = ed.Dataset(X_train=data.X_train[:300], y_train=data.y_train[:300], X_test=data.X_test[:150],
                          y_test=data.y_test[:150], feature_names=data.feature_names, class_names=data.class_names,
                          kind="image", input_shape=data.input_shape, name="digits (subset)")
    teacher = ed.train_teacher(data, device=device, seed=0, epochs=2 if quick else 15, progress=False)
    run = ed.distill(teacher, data, surrogates=["tree", "logistic"], seed=0, queries=None)
    soft = {}
    for depth in ((4, 12) if not quick else (3, 12)):
        soft[depth] = SoftDecisionTree(depth=depth, epochs=1 if depth == 12 or quick else 20, device=device,
                                       input_shape=tuple(data.input_shape), random_state=0).fit(run.transfer.X, run.transfer.P)
    return run, soft


def run(*, device: str = "cpu", quick: bool = False) -> dict[str, Any]:
    import explain_distill as ed
    from explain_distill.analysis import run_analyses
    from explain_distill.report import build_report

    t0 = time.perf_counter()
    base_run, soft = _digits_run(quick, device)
    shallow_depth = min(soft)
    full = ed.Distillation(teacher=base_run.teacher, dataset=base_run.dataset,
                           surrogates={**base_run.surrogates, "soft_tree": soft[shallow_depth]},
                           temperature=base_run.temperature, seed=0, info=base_run.info)
    full.evaluate()
    deep = ed.Distillation(teacher=base_run.teacher, dataset=base_run.dataset,
                           surrogates={**base_run.surrogates, "soft_tree": soft[12]},
                           temperature=base_run.temperature, seed=0, info=base_run.info)
    deep.evaluate()
    analyses = run_analyses(full, robustness=not quick, n_examples=6 if not quick else 3)
    # the tree comparison needs no attributions; quick mode skips the per-leaf analyses too
    deep_analyses = None if quick else run_analyses(deep, robustness=False, attributions=False)
    shallow_analyses = None if quick else run_analyses(full, robustness=False, attributions=False)
    setup_s = time.perf_counter() - t0

    tmp = Path(tempfile.mkdtemp(prefix="bench_report_"))
    paths: dict[str, Path] = {}

    def make(name: str, dist: Any, an: Any) -> Any:
        def fn() -> None:
            paths[name] = build_report(dist, tmp / name, analyses=an, min_agreement=0.9)
        return fn

    repeats = 1 if quick else 3
    times = interleaved(
        {
            "summary only (baseline)": make("summary", full, None),
            "full digits report": make("full", full, analyses),
        },
        repeats=repeats,
        warmup=0 if quick else 1,
    )
    tree_times = interleaved(
        {
            f"soft tree depth {shallow_depth} (baseline)": make("shallow", full, shallow_analyses),
            "soft tree depth 12": make("deep", deep, deep_analyses),
        },
        repeats=repeats,
        warmup=0,
    )
    sizes = {k: p.stat().st_size for k, p in paths.items()}
    deep_html = paths["deep"].read_text(encoding="utf-8")
    deep_ok = "soft_tree tree" in deep_html and "nodes are hidden" in deep_html
    full_row = ratio_row(times, "full digits report", "summary only (baseline)")
    deep_row = ratio_row(tree_times, "soft tree depth 12", f"soft tree depth {shallow_depth} (baseline)")
    budget_ok = full_row["median_s"] <= 10.0 and sizes["full"] <= 5 * 1024 * 1024

    cpus = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"Machine: {platform.machine()}, {cpus} CPU cores, load average {load:.1f} at the start of timing "
        f"(other jobs share the cores, so absolute times are noisy; ratios are taken side by side). "
        f"Data: digits{' subset (300 train / 150 test)' if quick else ' (1,347 train / 450 test)'}; "
        f"{repeats} interleaved repeat(s); setup (training, analyses) {setup_s:.1f} s, not timed.",
        "",
        "| report | median s | min s | ratio to baseline (median) | size |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, key in (("summary only (baseline)", "summary"), ("full digits report", "full")):
        r = ratio_row(times, name, "summary only (baseline)")
        lines.append(f"| {name} | {fmt(r['median_s'], 2)} | {fmt(r['min_s'], 2)} | {fmt(r['ratio_median'], 2)} | {sizes[key] / 1024:.0f} KiB |")
    for name, key in ((f"soft tree depth {shallow_depth} (baseline)", "shallow"), ("soft tree depth 12", "deep")):
        r = ratio_row(tree_times, name, f"soft tree depth {shallow_depth} (baseline)")
        lines.append(f"| {name} | {fmt(r['median_s'], 2)} | {fmt(r['min_s'], 2)} | {fmt(r['ratio_median'], 2)} | {sizes[key] / 1024:.0f} KiB |")
    lines += [
        "",
        f"Budget (digits report <= 10 s, <= 5 MB): {'met' if budget_ok else 'NOT met'} "
        f"({fmt(full_row['median_s'], 2)} s, {sizes['full'] / 1024 / 1024:.2f} MB). "
        f"12-deep soft tree ({2 ** 13 - 1:,} nodes) rendered: {'yes' if deep_ok else 'NO'}, "
        f"{fmt(deep_row['ratio_median'], 2)}x the time of the depth-{shallow_depth} tree "
        f"(the drawing shows the top 3 levels plus the highlighted path).",
    ]
    return {
        "title": "HTML report rendering",
        "markdown": "\n".join(lines),
        "data": {
            "quick": quick,
            "device": device,
            "cpus": cpus,
            "load_average": load,
            "times_s": {**times, **tree_times},
            "sizes_bytes": sizes,
            "full_vs_summary": full_row,
            "deep_vs_shallow_tree": deep_row,
            "budget_met": budget_ok,
            "deep_tree_rendered": deep_ok,
            "setup_s": setup_s,
        },
    }


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(run(quick="--quick" in sys.argv)["markdown"])
