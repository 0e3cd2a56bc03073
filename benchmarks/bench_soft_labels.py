"""Soft-label generation: the library's path against a bare ``torch.no_grad()`` loop.

Candidates: ``Teacher.predict_proba(X, T)`` and ``transfer.soft_labels(teacher, X, temperature=T)``
(what ``distill`` calls), and ``soft_labels`` of two teachers against the library path as it was at
commit 8d8999f (inlined below: host validation and NaN scans, one host copy per batch, a float64
average on the host).  Baseline: the loop anyone would write by hand at the same batch size —
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


def _old_predict_proba(teacher, X: np.ndarray, T: float) -> np.ndarray:
    """``Teacher.predict_proba`` as it was at 8d8999f: host NaN scan of X, pinned copy and host copy per batch."""
    from explain_distill._validation import check_array_2d

    X = check_array_2d(X, name="X", dtype=None)
    out = np.empty((len(X), teacher.n_classes), dtype=np.float32)
    on_cuda = teacher.device.type == "cuda"
    start = 0
    with torch.no_grad():
        teacher.module.eval()
        for s in range(0, len(X), teacher.batch_size):
            xb = torch.from_numpy(np.ascontiguousarray(X[s : s + teacher.batch_size]))
            if on_cuda:
                xb = xb.pin_memory().to(teacher.device, non_blocking=True)
            if teacher.input_shape is not None:
                xb = xb.reshape(len(xb), *teacher.input_shape)
            p = torch.softmax(teacher.module(xb).float() / T, dim=1)
            out[start : start + len(p)] = p.cpu().numpy()
            start += len(p)
    if not np.isfinite(out).all():
        raise ValueError("NaN")
    return out


def _old_soft_labels(teachers, X: np.ndarray, T: float) -> np.ndarray:
    """``transfer.soft_labels`` as it was at 8d8999f (validation, then each teacher, float64 mean on the host)."""
    from explain_distill._validation import check_array_2d

    X = check_array_2d(X, name="X", dtype=None)
    P = np.zeros((len(X), teachers[0].n_classes), dtype=np.float64)
    for t in teachers:
        P += (1.0 / len(teachers)) * _old_predict_proba(t, X, T)
    return P.astype(np.float32)


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
    old_rows: list[str] = []
    rows, data = [], {"n_samples": n, "repeats": repeats, "temperature": T, "device": str(dev), "cases": {}}
    for label, (module, shape) in cases.items():
        n_case = (600 if quick else 20_000) if label.startswith("cnn") else n
        X = rng.standard_normal((n_case, int(np.prod(shape)))).astype(np.float32)
        teacher = Teacher(module, class_names=[str(i) for i in range(10)], input_shape=shape, device=dev)
        batch = teacher.batch_size
        ref = _bare_loop(teacher.module, X, shape, T, batch, dev, 10)
        got = teacher.predict_proba(X, temperature=T)
        max_diff = float(np.abs(ref - got).max())
        pair = [teacher, Teacher(module, class_names=[str(i) for i in range(10)], input_shape=shape, device=dev)]
        two_new = soft_labels(pair, X, temperature=T)
        two_old = _old_soft_labels(pair, X, T)
        max_diff_two = float(np.abs(two_new - two_old).max())
        times = interleaved(
            {
                "bare loop": lambda: _bare_loop(teacher.module, X, shape, T, batch, dev, 10),
                "Teacher.predict_proba": lambda: teacher.predict_proba(X, temperature=T),
                "transfer.soft_labels": lambda: soft_labels(teacher, X, temperature=T),
                "predict_proba 8d8999f": lambda: _old_predict_proba(teacher, X, T),
                "soft_labels x2 teachers": lambda: soft_labels(pair, X, temperature=T),
                "soft_labels x2 teachers 8d8999f": lambda: _old_soft_labels(pair, X, T),
            },
            repeats=repeats,
        )
        case = {
            "n": n_case, "batch_size": batch, "max_abs_diff_vs_bare": max_diff, "max_abs_diff_two_teachers_vs_8d8999f": max_diff_two,
            "times_s": times, "rows": {},
        }
        for name in times:
            r = ratio_row(times, name, "bare loop")
            case["rows"][name] = r
            rows.append(
                f"| {label} | {name} | {n_case:,} | {fmt(r['median_s'])} | {fmt(r['min_s'])} | "
                f"{fmt(r['ratio_median'], 2)} | {fmt(r['ratio_min'], 2)} |"
            )
        case["pass"] = all(case["rows"][k]["ratio_min"] <= TARGET for k in ("Teacher.predict_proba", "transfer.soft_labels"))
        case["new_vs_8d8999f"] = {
            "predict_proba": ratio_row(times, "Teacher.predict_proba", "predict_proba 8d8999f"),
            "soft_labels x2 teachers": ratio_row(times, "soft_labels x2 teachers", "soft_labels x2 teachers 8d8999f"),
        }
        for k, r in case["new_vs_8d8999f"].items():
            old_rows.append(f"| {label} | {k} | {fmt(r['ratio_median'], 2)} | {fmt(r['ratio_min'], 2)} |")
        # Where the overhead would go: each extra step of the library path timed on its own.
        bare_min = min(times["bare loop"])
        P = got.astype(np.float64)
        parts = {
            "validate X (shape, dtype, NaN/inf scan): 8d8999f": lambda: check_array_2d(X, name="X", dtype=None),
            "validate X on the host now (shape, dtype; the scan runs on the device)": lambda: check_array_2d(
                X, name="X", dtype=None, finite=False
            ),
            "NaN/inf scan of the output": lambda: np.isfinite(got).all(),
            "float64 mean over teachers + cast (8d8999f, host)": lambda: (np.zeros_like(P) + 1.0 * got).astype(np.float32),
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
            "Against the library as it was at 8d8999f (same process, interleaved): time new / time old "
            "(< 1: faster now).  Largest |P_new - P_old| for two teachers: "
            + ", ".join(f"{v['max_abs_diff_two_teachers_vs_8d8999f']:.1e}" for v in data["cases"].values())
            + ".",
            "",
            "| teacher | path | new / 8d8999f (median) | new / 8d8999f (min) |",
            "|---|---|---:|---:|",
            *old_rows,
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
