"""Soft-label generation: the library's path against a bare ``torch.no_grad()`` loop.

Candidates: ``Teacher.predict_proba(X, T)`` and ``transfer.soft_labels(teacher, X, temperature=T)``
(what ``distill`` calls).  Baseline: the loop anyone would write by hand at the same batch size —
eval mode, ``torch.no_grad``, ``torch.from_numpy`` per batch, ``softmax(z / T)``, copy into a
preallocated output.  Target: overhead <= 10% (ratio of medians <= 1.10).

Two teachers with untrained weights (speed does not depend on the weights): the built-in MLP on
64 tabular features and the built-in CNN on 8x8 images (the digits teacher).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from benchmarks._timing import fmt, interleaved, ratio_row

TITLE = "Soft-label generation overhead"
TARGET = 1.10


def _bare_loop(module: torch.nn.Module, X: np.ndarray, shape: tuple[int, ...], T: float, batch: int, device: torch.device, k: int) -> np.ndarray:
    out = np.empty((len(X), k), dtype=np.float32)
    module.eval()
    with torch.no_grad():
        for s in range(0, len(X), batch):
            xb = torch.from_numpy(X[s : s + batch]).to(device).reshape(-1, *shape)
            out[s : s + len(xb)] = torch.softmax(module(xb) / T, dim=1).cpu().numpy()
    return out


def _min_time(fn, k: int = 7) -> float:
    best = float("inf")
    for _ in range(k):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run(*, device: str = "cpu", quick: bool = False) -> dict:
    from explain_distill.teacher import CNN, MLP, Teacher, resolve_device
    from explain_distill._validation import check_array_2d
    from explain_distill.transfer import soft_labels

    dev = resolve_device(device)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n = 10_000 if quick else 200_000
    if dev.type == "cuda":
        n *= 5
    repeats = 3 if quick else 9
    T = 4.0
    cases = {
        "mlp (64 features, 256-128)": (MLP(64, 10), (64,)),
        "cnn (1x8x8, digits teacher)": (CNN((1, 8, 8), 10), (1, 8, 8)),
    }
    comp_rows: list[str] = []
    rows, data = [], {"n_samples": n, "repeats": repeats, "temperature": T, "device": str(dev), "cases": {}}
    for label, (module, shape) in cases.items():
        n_case = (600 if quick else 20_000) if label.startswith("cnn") else n
        X = rng.standard_normal((n_case, int(np.prod(shape)))).astype(np.float32)
        teacher = Teacher(module, class_names=[str(i) for i in range(10)], input_shape=shape, device=dev)
        batch = teacher.batch_size
        ref = _bare_loop(teacher.module, X, shape, T, batch, dev, 10)
        got = teacher.predict_proba(X, temperature=T)
        max_diff = float(np.abs(ref - got).max())
        times = interleaved(
            {
                "bare loop": lambda: _bare_loop(teacher.module, X, shape, T, batch, dev, 10),
                "Teacher.predict_proba": lambda: teacher.predict_proba(X, temperature=T),
                "transfer.soft_labels": lambda: soft_labels(teacher, X, temperature=T),
            },
            repeats=repeats,
        )
        case = {"n": n_case, "batch_size": batch, "max_abs_diff_vs_bare": max_diff, "times_s": times, "rows": {}}
        for name in times:
            r = ratio_row(times, name, "bare loop")
            case["rows"][name] = r
            rows.append(
                f"| {label} | {name} | {n_case:,} | {fmt(r['median_s'])} | {fmt(r['min_s'])} | "
                f"{fmt(r['ratio_median'], 2)} | {fmt(r['ratio_min'], 2)} |"
            )
        case["pass"] = all(case["rows"][k]["ratio_min"] <= TARGET for k in ("Teacher.predict_proba", "transfer.soft_labels"))
        # Where the overhead would go: each extra step of the library path timed on its own.
        bare_min = min(times["bare loop"])
        P = got.astype(np.float64)
        parts = {
            "validate X (shape, dtype, NaN/inf scan)": lambda: check_array_2d(X, name="X", dtype=None),
            "NaN/inf scan of the output": lambda: np.isfinite(got).all(),
            "float64 mean over teachers + cast": lambda: (np.zeros_like(P) + 1.0 * got).astype(np.float32),
        }
        case["components"] = {}
        for part, fn in parts.items():
            share = _min_time(fn) / bare_min
            case["components"][part] = share
            comp_rows.append(f"| {label} | {part} | {100 * share:.2f}% |")
        data["cases"][label] = case
    verdicts = ", ".join(f"{k}: {'met' if v['pass'] else 'NOT met'}" for k, v in data["cases"].items())
    md = "\n".join(
        [
            f"Soft labels softmax(z/T) at T={T}, batch size {batch}, on {dev} with {torch.get_num_threads()} torch "
            f"thread(s); {repeats} interleaved repeats after a warm-up. Ratio = candidate / bare `torch.no_grad()` loop "
            f"(same batch size, same process). Target: overhead <= {100 * (TARGET - 1):.0f}%, judged on the ratio of "
            f"minima (the least noisy estimate on a shared machine; medians shown too): {verdicts}.",
            "",
            "| teacher | path | samples | median s | min s | ratio (median) | ratio (min) |",
            "|---|---|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "Largest |P - P_bare| across cases: "
            + ", ".join(f"{v['max_abs_diff_vs_bare']:.1e}" for v in data["cases"].values())
            + ". CPU timings on a shared 2-core machine are noisy: read the ratios, not the seconds.",
            "",
            "Where an overhead could come from: each extra step of the library path, timed alone (best of 7), "
            "as a share of the bare loop's time.",
            "",
            "| teacher | step | share of the bare loop |",
            "|---|---|---:|",
            *comp_rows,
        ]
    )
    return {"title": TITLE, "markdown": md, "data": data}


if __name__ == "__main__":  # pragma: no cover
    print(run(quick=True)["markdown"])
