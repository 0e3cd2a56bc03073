"""Fidelity of the distilled surrogates: soft labels + query synthesis vs hard labels, the neural
student (KD vs hard labels, compression), and fidelity against temperature and size.

Targets (issue 4): digits depth-8 ``tree`` >= 0.90 fidelity (hard-label tree: ~0.83) and >= 5 points
above the hard-label tree at every depth 4..8; the student <= 10% of the teacher's parameters with
fidelity >= 0.98 on digits, and the KD student above the hard-label student on digits and mnist1d.
Fidelity = top-1 agreement with the teacher on the held-out test split (Wilson 95% intervals).
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from typing import Any

import numpy as np
import torch

TITLE = "Fidelity: soft labels, query synthesis, the neural student"


@contextlib.contextmanager
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # small nets on a shared 2-core box: intra-op threads only add sync cost
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _wilson(k: float, n: int) -> tuple[float, float]:
    from explain_distill._stats import wilson_interval

    return wilson_interval(int(round(k * n)), n)


def _pct(x: float) -> str:
    return f"{x:.3f}"


def _run_dataset(name: str, device: str, quick: bool, seed: int = 0) -> dict[str, Any]:
    import explain_distill as ed
    from explain_distill.analysis.compression import compression_report
    from explain_distill.analysis.curves import kd_vs_hard, size_curve, temperature_curve
    from explain_distill.distill import DEFAULT_QUERIES

    t0 = time.perf_counter()
    data = ed.load_dataset(name, seed=seed)
    teacher = ed.train_teacher(data, device=device, seed=seed, epochs=8 if quick else 30, progress=False)
    t_teacher = time.perf_counter() - t0
    queries = {"jitter": 300, "mixup": 300} if quick else dict(DEFAULT_QUERIES)
    student_params = {"epochs": 3 if quick else 30, "device": device, "arch": "mlp"}
    res = ed.distill(teacher, data, surrogates=["tree", "logistic", "naive_bayes", "rules"], queries=queries,
                     params={"tree": {"max_depth": 8}}, seed=seed)
    t_distill = time.perf_counter() - t0 - t_teacher
    out: dict[str, Any] = {
        "dataset": name,
        "n_train": int(len(data.X_train)),
        "n_test": int(len(data.X_test)),
        "teacher_accuracy": res.metrics["teacher"]["accuracy"],
        "teacher_params": teacher.n_params,
        "queries": queries,
        "temperature": res.temperature,
        "surrogates": res.metrics["surrogates"],
        "seconds": {"teacher": round(t_teacher, 1), "distill": round(t_distill, 1)},
    }
    depths = [2, 4] if quick else list(range(2, 11))
    out["size_curve"] = size_curve(res, depths=depths, surrogates=("tree", "rules"))
    kd = kd_vs_hard(res, params=student_params)
    out["kd_vs_hard"] = kd
    if name == "digits" or quick:
        temps = [1, 4] if quick else [1, 2, 4, 8, 20]
        out["temperature_curve"] = temperature_curve(res, temperatures=temps, surrogates=("tree", "logistic", "naive_bayes", "rules"),
                                                     params={"tree": {"max_depth": 8}})
        from explain_distill.surrogates import NeuralStudent

        st = NeuralStudent(**{**student_params, "input_shape": tuple(data.input_shape), "temperature": res.temperature,
                              "random_state": seed, "progress": False})
        st.fit(res.transfer.X, res.transfer.P, y_true=res.transfer.y)
        out["compression"] = compression_report(teacher, st)
    out["seconds"]["total"] = round(time.perf_counter() - t0, 1)
    return out


def _markdown(results: list[dict[str, Any]], quick: bool) -> str:
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores shared with other jobs, torch {torch.__version__}, "
        f"CPU only{' (quick mode: tiny settings, numbers not meaningful)' if quick else ''}. Fidelity = top-1 agreement "
        "with the teacher on the test split; intervals are 95% Wilson. One seed (0): differences of 1-2 points are "
        "within the noise of a 360-450 sample test split.",
        "",
    ]
    for r in results:
        n = r["n_test"]
        lines += [f"#### {r['dataset']} (teacher accuracy {_pct(r['teacher_accuracy'])}, {r['teacher_params']} params; "
                  f"transfer set: train + queries {r['queries']}, T={r['temperature']})", ""]
        sc = r["size_curve"]
        lines += ["Tree fidelity by depth: soft labels + queries (`tree`, entropy criterion) vs trees on the true hard labels "
                  "(scikit-learn's default Gini tree, and our tree's entropy criterion); the difference is against the Gini tree.", "",
                  "| depth | hard-label tree (Gini) | hard-label tree (entropy) | soft + queries `tree` | difference (points) | `rules` | tree nodes |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for i, k in enumerate(sc["depths"]):
            h = sc["surrogates"]["tree_hard_gini"]["fidelity"][i]
            he = sc["surrogates"]["tree_hard"]["fidelity"][i]
            s = sc["surrogates"]["tree"]["fidelity"][i]
            lo, hi = _wilson(s, n)
            ru = sc["surrogates"]["rules"]["fidelity"][i]
            lines.append(f"| {k} | {_pct(h)} | {_pct(he)} | {_pct(s)} [{lo:.3f}, {hi:.3f}] | {100 * (s - h):+.1f} | {_pct(ru)} | "
                         f"{sc['surrogates']['tree']['params'][i]} |")
        lines.append("")
        lines += ["All surrogates of the run (depth-8 tree):", "", "| surrogate | fidelity | 95% interval | accuracy | size |", "|---|---:|---:|---:|---:|"]
        for s, m in r["surrogates"].items():
            lo, hi = m["fidelity_interval"]
            lines.append(f"| {s} | {_pct(m['fidelity'])} | [{lo:.3f}, {hi:.3f}] | {_pct(m['accuracy'])} | {m['params']} |")
        lines.append("")
        kd = r["kd_vs_hard"]
        lines += ["Neural student (MLP), KD loss on the soft transfer set vs the same student on hard labels:", "",
                  "| student | fidelity | accuracy | params | params / teacher |", "|---|---:|---:|---:|---:|"]
        for key in ("soft", "hard"):
            m = kd[key]
            lines.append(f"| {'KD (soft, T=' + str(r['temperature']) + ')' if key == 'soft' else 'hard labels'} | {_pct(m['fidelity'])} | "
                         f"{_pct(m['accuracy'])} | {m['params']} | {m['params'] / r['teacher_params']:.1%} |")
        lines.append("")
        if "temperature_curve" in r:
            tc = r["temperature_curve"]
            lines += ["Fidelity vs temperature (refit on the training split only, no queries; depth-8 tree):", "",
                      "| surrogate | " + " | ".join(f"T={t:g}" for t in tc["temperatures"]) + " |",
                      "|---|" + "---:|" * len(tc["temperatures"])]
            for s, v in tc["surrogates"].items():
                lines.append(f"| {s} | " + " | ".join(_pct(x) for x in v["fidelity"]) + " |")
            lines.append("")
        if "compression" in r:
            c = r["compression"]
            lines += ["Compression (student vs teacher):", "", "| | teacher | student | teacher / student |", "|---|---:|---:|---:|"]
            for k, label in (("params", "parameters"), ("flops_per_sample", "FLOPs / sample"), ("file_bytes", "safetensors bytes"),
                             ("cpu_latency_s_per_sample", "CPU latency / sample (s)")):
                fmt = (lambda v: f"{v:.2e}") if "latency" in k else (lambda v: f"{int(v):,}")
                lines.append(f"| {label} | {fmt(c['teacher'][k])} | {fmt(c['student'][k])} | {c['ratios'][k]:.1f}x |")
            lines += ["", "Latency is noisy on this shared CPU.", ""]
        lines.append(f"Wall time: {r['seconds']}.")
        lines.append("")
    return "\n".join(lines)


def run(*, device: str = "cpu", quick: bool = False) -> dict:
    """Distill digits and mnist1d (iris only in quick mode) and report the fidelity tables."""
    datasets = ["iris"] if quick else ["digits", "mnist1d"]
    with _one_thread():
        results = [_run_dataset(n, device, quick) for n in datasets]
    return {"title": TITLE, "markdown": _markdown(results, quick), "data": {"results": _jsonable(results), "quick": quick}}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


if __name__ == "__main__":
    import json
    import sys

    r = run(quick="--quick" in sys.argv)
    print(r["markdown"])
    json.dump(r["data"], open("/tmp/bench_fidelity.json", "w"))
