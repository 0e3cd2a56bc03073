"""Load: memory stays bounded by the batch size over a million samples.

Synthetic tabular data, 1e6 x 40 float32 (1e5 with ``quick=True``), a built-in MLP teacher
(40 -> 256 -> 128 -> 10, random weights: inference memory does not depend on training).  For each
stage the peak resident-memory growth is measured exactly: Linux's peak counter (VmHWM) is reset
through ``/proc/self/clear_refs`` before the stage and read after it, relative to the resident
size at the start.  Each bounded stage is set side by side with its naive baseline in the same
process (one unbatched forward pass; Captum on all rows at once).  Where the peak counter cannot
be reset (not Linux) the monotonic ``ru_maxrss`` is used and only growth beyond earlier peaks shows.

Run: ``python -c "from benchmarks.bench_load import run; print(run()['markdown'])"``.
"""

from __future__ import annotations

import gc
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

MB = 1024 * 1024


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _rss_mb() -> float:
    kb = _status_kb("VmRSS")
    if kb is not None:
        return kb / 1024
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / MB if sys.platform == "darwin" else rss / 1024


def _peak_mb() -> float:
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb / 1024
    return _rss_mb()


def measure(fn: Callable[[], Any], *, cuda: bool = False) -> tuple[Any, dict[str, float]]:
    """Run ``fn`` once; return its result and {seconds, peak_growth_mb[, cuda_peak_mb]}."""
    gc.collect()
    exact = _reset_peak()
    start = _rss_mb()
    if cuda:
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        cuda0 = torch.cuda.memory_allocated()
    t0 = time.perf_counter()
    out = fn()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    row = {"seconds": seconds, "peak_growth_mb": max(0.0, _peak_mb() - start), "exact_peak": exact}
    if cuda:
        row["cuda_peak_mb"] = (torch.cuda.max_memory_allocated() - cuda0) / MB
    return out, row


def _interleaved(fns: dict[str, Callable[[], Any]], *, repeats: int) -> dict[str, list[float]]:
    try:
        from benchmarks._timing import interleaved
    except ImportError:  # run from elsewhere
        interleaved = None
    if interleaved is not None:
        return interleaved(fns, repeats=repeats, warmup=0)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def run(*, device: str = "cpu", quick: bool = False) -> dict[str, Any]:
    import torch

    import explain_distill as ed
    from explain_distill._validation import check_array_2d
    from explain_distill.teacher import MLP

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    on_cuda = device.startswith("cuda")
    n = 100_000 if quick else 1_000_000
    d, k, batch = 40, 10, 4096
    n_sal = 5_000 if quick else 100_000  # Saliency rows
    n_ig, ig_steps, ig_batch = (500 if quick else 20_000), 32, 64

    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d), dtype=np.float32)
    torch.manual_seed(0)
    teacher = ed.Teacher(MLP(d, k), class_names=[f"c{i}" for i in range(k)], device=device, batch_size=batch)
    module = teacher.module.eval()
    teacher.predict_proba(X[:batch])  # warm up thread pools and allocator outside the measurements

    rows: dict[str, dict[str, float]] = {}
    out_bytes = n * k * 4

    def record(name: str, fn: Callable[[], Any], *, expected_mb: float, what: str) -> Any:
        out, row = measure(fn, cuda=on_cuda)
        row.update(expected_mb=expected_mb, what=what)
        rows[name] = row
        return out

    record("check_array_2d(X float32)", lambda: check_array_2d(X, dtype=np.float32),
           expected_mb=0.0, what="no copy of X")

    act = batch * (d + 256 + 128 + 2 * k) * 4  # one batch through the MLP, fp32
    P = record("Teacher.predict_proba (batched)", lambda: teacher.predict_proba(X, temperature=4.0),
               expected_mb=(out_bytes + act) / MB, what="output + one batch")

    def naive() -> np.ndarray:
        with torch.no_grad():
            xt = torch.from_numpy(X).to(teacher.device)
            return torch.softmax(module(xt) / 4.0, dim=1).cpu().numpy()

    P_naive = record("baseline: one unbatched forward", naive,
                     expected_mb=(out_bytes + n * (256 + 128 + k) * 4) / MB, what="activations of all rows")
    max_diff = float(np.abs(P - P_naive).max())
    del P_naive

    X64 = X.astype(np.float64)
    record("Teacher.predict_proba (float64 X, cast per batch)", lambda: teacher.predict_proba(X64),
           expected_mb=(out_bytes + act) / MB, what="output + one batch")
    del X64

    record("soft_labels (transfer set labels)", lambda: ed.soft_labels(teacher, X, temperature=4.0),
           expected_mb=(out_bytes * 3) / MB, what="output (float64 accumulator + float32)")

    # fidelity: audit of a surrogate over all rows, and the full fidelity report
    from explain_distill.analysis import audit
    from explain_distill.surrogates import SoftLabelTreeClassifier

    sub = X[:5000]
    tree = SoftLabelTreeClassifier(max_depth=6, random_state=0).fit(sub, teacher.predict_proba(sub, 4.0))
    record("audit (teacher + tree over all rows)", lambda: audit(teacher, tree, X, min_agreement=0.5),
           expected_mb=(n * k * 8 * 5) / MB, what="n x K float64: proba, divergences")
    S = tree.predict_proba(X)
    try:
        from explain_distill.analysis.fidelity import fidelity_report

        record("fidelity_report (n x K inputs)",
               lambda: fidelity_report(P, S, class_names=teacher.class_names, describe_disagreements=False),
               expected_mb=(n * k * 8 * 4) / MB, what="a few n x K float64 temporaries")
    except ImportError:  # pragma: no cover - the analysis helper's module
        pass
    del S

    # attribution through Captum, bounded by batch_size
    attr_note = ""
    try:
        from captum.attr import IntegratedGradients, Saliency

        from explain_distill.analysis.attribution import attribute

        Xs = X[:n_sal]
        target = P[:n_sal].argmax(1)
        record(f"attribute Saliency ({n_sal:,} rows, batch 256)",
               lambda: attribute(teacher, Xs, target, method="Saliency", batch_size=256),
               expected_mb=(Xs.nbytes + 256 * (d + 256 + 128 + k) * 4 * 3) / MB, what="output + one batch")

        def sal_all() -> np.ndarray:
            x = torch.from_numpy(Xs).requires_grad_(True)
            return Saliency(module).attribute(x, target=torch.from_numpy(target), abs=False).numpy()

        record(f"baseline: Captum Saliency on all {n_sal:,} rows", sal_all,
               expected_mb=(Xs.nbytes * 2 + n_sal * (256 + 128 + k) * 4 * 3) / MB, what="activations + grads of all rows")
        Xi = X[:n_ig]
        ti = P[:n_ig].argmax(1)
        record(f"attribute IntegratedGradients ({n_ig:,} rows, {ig_steps} steps, batch {ig_batch})",
               lambda: attribute(teacher, Xi, ti, method="IntegratedGradients", n_steps=ig_steps, batch_size=ig_batch),
               expected_mb=(Xi.nbytes + ig_batch * ig_steps * (d + 256 + 128 + k) * 4 * 3) / MB,
               what="output + batch x steps")

        def ig_all() -> np.ndarray:
            x = torch.from_numpy(Xi)
            return IntegratedGradients(module).attribute(x, target=torch.from_numpy(ti), n_steps=ig_steps).detach().numpy()

        record(f"baseline: Captum IG on all {n_ig:,} rows at once", ig_all,
               expected_mb=(n_ig * ig_steps * (d + 256 + 128 + k) * 4 * 3) / MB, what="all rows x steps")
    except ImportError as exc:  # pragma: no cover
        attr_note = f"(attribution skipped: {exc})"

    # Time, batched vs unbatched, interleaved repeats (A B A B) on up to 2e5 rows, with the thread
    # count in use and with one thread: on an oversubscribed machine every parallel region of a
    # small batch waits for descheduled threads, which a single large op amortises.
    Xt = X[: min(n, 200_000)]
    timing: dict[str, dict[str, float]] = {}
    threads = torch.get_num_threads()
    for nthreads in sorted({threads, 1}, reverse=True):
        torch.set_num_threads(nthreads)

        def unbatched() -> None:
            with torch.no_grad():
                torch.softmax(module(torch.from_numpy(Xt).to(teacher.device)) / 4.0, dim=1).cpu()

        times = _interleaved({"batched": lambda: teacher.predict_proba(Xt, 4.0), "unbatched": unbatched},
                             repeats=1 if quick else 3)
        med = {k: float(np.median(v)) for k, v in times.items()}
        timing[f"{nthreads} thread(s)"] = {**med, "ratio": med["batched"] / med["unbatched"]}
    torch.set_num_threads(threads)

    exact = all(r["exact_peak"] for r in rows.values())
    b, nb = rows["Teacher.predict_proba (batched)"], rows["baseline: one unbatched forward"]
    lines = [
        f"Synthetic X: {n:,} x {d} float32 ({X.nbytes / MB:,.0f} MiB); MLP teacher {d}-256-128-{k}; "
        f"inference batch {batch}; device `{device}`; {platform.machine()} with {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__}.",
        "",
        "Peak resident-memory growth of each stage over the memory at its start "
        + ("(exact: the kernel's peak counter reset per stage)." if exact else
           "(ru_maxrss: monotonic, so a stage only shows growth beyond earlier peaks)."),
        "",
        "| stage | peak growth (MiB) | expected (MiB) | expected = | peak / size of X | seconds |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['peak_growth_mb']:,.1f} | {r['expected_mb']:,.1f} | {r['what']} | "
            f"{r['peak_growth_mb'] / (X.nbytes / MB):.3f} | {r['seconds']:.2f} |"
        )
    lines += [
        "",
        f"Teacher inference time on {len(Xt):,} rows, batched (4096) vs one unbatched forward, interleaved repeats:",
        "",
        "| torch threads | batched (s) | unbatched (s) | ratio |",
        "|---|---:|---:|---:|",
    ]
    for label, r in timing.items():
        lines.append(f"| {label} | {r['batched']:.2f} | {r['unbatched']:.2f} | {r['ratio']:.2f} |")
    lines += [
        "",
        f"Batched teacher inference vs the unbatched baseline: memory ratio "
        f"{b['peak_growth_mb'] / max(nb['peak_growth_mb'], 1e-9):.3f}, time ratio "
        f"{b['seconds'] / max(nb['seconds'], 1e-9):.2f} (same outputs: max |difference| {max_diff:.1e}).",
        "",
        "Peak growth is measured against the resident size at the stage's start, so memory the allocator kept "
        "from an earlier stage and reuses is not counted again (small stages can read below their estimate). "
        "Reading: the bounded stages grow by about their output plus one batch, never by a copy of X "
        "(the float32 input is validated without a copy and finiteness is scanned in blocks; float64 input is "
        "cast per batch). Stages that return an (n, K) or (n, d) result grow with that result, as they must. "
        "The stage timings are single runs on a shared, noisy 2-core CPU machine (other jobs ran alongside): read "
        "them as rough ratios only; on an oversubscribed machine multi-threaded small batches lose to one big op, "
        "with one thread batching wins (table above). "
        + attr_note,
    ]
    data = {
        "n": n, "d": d, "k": k, "batch_size": batch, "device": device, "quick": quick,
        "x_mib": X.nbytes / MB, "exact_peak": exact, "stages": rows, "timing": timing, "max_abs_diff_batched_vs_naive": max_diff,
    }
    return {"title": "Load: memory bounded by the batch size", "markdown": "\n".join(lines), "data": data}


if __name__ == "__main__":  # pragma: no cover
    print(run(quick="--quick" in sys.argv)["markdown"])
