"""Soft decision tree: how faithful it is, and how fast it trains against a per-node implementation.

Faithfulness (held-out test split, fidelity = top-1 agreement with the teacher):
digits (CNN teacher, soft labels at T=4) and mnist1d (CNN teacher), depths 4..8, the tree trained on
the teacher's soft labels vs the same tree trained on the hard labels; the mixture prediction vs the
single max path (greedy, and the paper's argmax-leaf).

Speed: training samples/s of the library's step (one matrix product for all inner nodes, path
probabilities level by level into one buffer, a hand-derived backward sweep, reused buffers)
against two baselines timed side by side in one process, interleaved: a per-node implementation in
the shape of the public PyTorch versions (a Python recursion over nodes, each node its own
``nn.Linear``) and the same loss written plainly with autograd (vectorised, no hand-derived
backward).  A fourth contestant runs only the step's two large matrix products (forward and
filter gradient): the arithmetic floor on this machine, so "ours / floor" says how much of the
step is anything else.  D=784, K=10, depth 5 and 8, batch 128 / 4096 / 65536.
"""

from __future__ import annotations

import math
import os
import statistics
import time

import numpy as np
import torch

from benchmarks._timing import interleaved

TITLE = "Soft decision tree: faithfulness and training speed"


# --------------------------------------------------------------------------- per-node baseline
class PerNodeSoftTree(torch.nn.Module):
    """The straightforward implementation: one ``nn.Linear(D, 1)`` per inner node, recursion over nodes."""

    def __init__(self, n_features: int, depth: int, n_classes: int) -> None:
        super().__init__()
        self.depth = depth
        self.n_inner = 2**depth - 1
        self.inner = torch.nn.ModuleList([torch.nn.Linear(n_features, 1) for _ in range(self.n_inner)])
        self.leaves = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.randn(n_classes) * 0.01) for _ in range(2**depth)]
        )
        self.beta = torch.nn.Parameter(torch.ones(()))

    def loss(self, x: torch.Tensor, t: torch.Tensor, lam: float) -> torch.Tensor:
        def walk(node: int, mu: torch.Tensor, d: int) -> tuple[torch.Tensor, torch.Tensor]:
            if node >= self.n_inner:
                q = torch.log_softmax(self.leaves[node - self.n_inner], dim=0)
                return mu * -(t @ q), torch.zeros((), device=x.device)
            p = torch.sigmoid(self.beta * self.inner[node](x)).squeeze(1)
            alpha = ((mu * p).sum() / mu.sum()).clamp(1e-6, 1 - 1e-6)
            pen = -lam * 2.0**-d * 0.5 * (torch.log(alpha) + torch.log(1 - alpha))
            l_left, p_left = walk(2 * node + 1, mu * (1 - p), d + 1)
            l_right, p_right = walk(2 * node + 2, mu * p, d + 1)
            return l_left + l_right, pen + p_left + p_right

        data, pen = walk(0, torch.ones(x.shape[0], device=x.device), 0)
        return data.mean() + pen


def plain_vectorised_loss(module, x, t, alpha_run, decay, penalty_w) -> torch.Tensor:
    """The same loss written plainly and differentiated by autograd (the library's step before the
    hand-derived backward): one matrix product for all nodes, levels stacked and concatenated."""
    p = torch.sigmoid(torch.nn.functional.linear(x, module.weight, module.bias) * module.log_beta.exp())
    mu = torch.ones(x.shape[0], 1, device=x.device)
    reach = []
    for d in range(module.depth):
        lo, hi = 2**d - 1, 2 ** (d + 1) - 1
        reach.append(mu)
        mu = torch.stack((mu * (1 - p[:, lo:hi]), mu * p[:, lo:hi]), dim=2).reshape(x.shape[0], -1)
    reach = torch.cat(reach, dim=1)
    data = (mu * -(t @ torch.log_softmax(module.leaf_logits, dim=1).T)).sum(dim=1).mean()
    alpha_b = (reach * p).sum(dim=0) / reach.sum(dim=0).clamp_min(1e-12)
    with torch.no_grad():
        alpha_run.mul_(decay).add_((1 - decay) * alpha_b)
    alpha = (alpha_b + (alpha_run - alpha_b).detach()).clamp(1e-6, 1 - 1e-6)
    return data - (penalty_w * 0.5 * (torch.log(alpha) + torch.log1p(-alpha))).sum()


def _cuda_ms(fn, reps: int = 20, warmup: int = 3) -> float:
    """Median milliseconds of ``fn`` between CUDA events (no host timer, no per-call synchronisation)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def _speed(device: torch.device, quick: bool) -> tuple[list[dict], list[str]]:
    from benchmarks._baseline import soft_tree_baseline
    from explain_distill.surrogates import soft_tree as st
    from explain_distill.surrogates.soft_tree import _SoftTreeModule, _Trainer, _train_step_loss, _Workspace

    old = soft_tree_baseline()
    D, K = 784, 10
    configs = [(5, 128), (8, 4096)] if quick else [(5, 128), (5, 4096), (5, 65536), (8, 128), (8, 4096), (8, 65536)]
    rows, lines = [], []
    on_cuda = device.type == "cuda"
    for depth, batch in configs:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(batch, D, generator=gen).to(device)
        t = torch.softmax(torch.randn(batch, K, generator=gen), dim=1).to(device)
        vec = _SoftTreeModule(D, depth, K, 1.0, True, gen).to(device)
        opt_v = torch.optim.Adam(vec.parameters(), lr=1e-3)
        plain = _SoftTreeModule(D, depth, K, 1.0, True, gen).to(device)
        opt_p = torch.optim.Adam(plain.parameters(), lr=1e-3)
        base_mod = old._SoftTreeModule(D, depth, K, 1.0, True, gen).to(device)
        opt_o = torch.optim.Adam(base_mod.parameters(), lr=1e-3)
        nd = vec.node_depth.to(device)
        decay, pen_w = 1.0 - 1.0 / 2.0**nd, 0.1 * 2.0**-nd
        alpha_run = torch.full((2**depth - 1,), 0.5, device=device)
        alpha_plain = alpha_run.clone()
        alpha_old = alpha_run.clone()
        ws, ws_old = _Workspace(), old._Workspace()
        # the step as fit runs it: on CUDA a CUDA graph of (fused kernels when Triton is there) + AdamW
        fit_mod = _SoftTreeModule(D, depth, K, 1.0, True, gen).to(device)
        est = st.SoftDecisionTree(depth=depth, batch_size=batch, device=str(device))
        kernels = st._fused_kernels(depth, K, torch.float32, device) if on_cuda else None
        trainer = _Trainer(
            fit_mod, est, steps_total=10**6, batch=batch, n_features=D, n_classes=K, device=device,
            x_dtype=torch.bfloat16 if on_cuda else torch.float32, kernels=kernels,
        )
        trainer.xs.copy_(x)
        trainer.ps.copy_(t)
        # the arithmetic floor of a step: its two large matrix products alone, operands cast beforehand
        xm = x.bfloat16() if on_cuda else x
        wm = torch.randn(2**depth, D, generator=gen).to(device).to(xm.dtype)
        bm = torch.zeros(2**depth, device=device, dtype=xm.dtype)
        torch.manual_seed(0)
        base = PerNodeSoftTree(D, depth, K).to(device)
        opt_b = torch.optim.Adam(base.parameters(), lr=1e-3)
        # steps per timed call: enough to get past timer noise, few enough for the 2-core CPU
        work = batch * (2**depth) * D
        steps = 1 if (quick or work > 5e9) else max(1, min(20, int(2e9 // work)))
        if on_cuda:
            steps = max(steps, 10)  # launch-bound small batches: time several steps per call

        def sync() -> None:
            if on_cuda:
                torch.cuda.synchronize()

        def step_vec() -> None:
            for _ in range(steps):
                loss = _train_step_loss(vec, x, t, alpha_run, decay, pen_w, on_cuda, ws)
                opt_v.zero_grad(set_to_none=True)
                loss.backward()
                opt_v.step()
            sync()

        def step_old() -> None:
            for _ in range(steps):
                loss = old._train_step_loss(base_mod, x, t, alpha_old, decay, pen_w, on_cuda, ws_old)
                opt_o.zero_grad(set_to_none=True)
                loss.backward()
                opt_o.step()
            sync()

        def step_fit() -> None:
            for _ in range(steps):
                trainer.step(batch)
            sync()

        def step_plain() -> None:
            for _ in range(steps):
                with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=on_cuda):
                    loss = plain_vectorised_loss(plain, x, t, alpha_plain, decay, pen_w)
                opt_p.zero_grad(set_to_none=True)
                loss.backward()
                opt_p.step()
            sync()

        def gemms() -> None:
            for _ in range(steps):
                z = torch.addmm(bm, xm, wm.T)
                z.T @ xm
            sync()

        def step_base() -> None:
            for _ in range(steps):
                loss = base.loss(x, t, 0.1)
                opt_b.zero_grad(set_to_none=True)
                loss.backward()
                opt_b.step()
            sync()

        repeats = 2 if quick else 3
        fns = {"fit_step": step_fit, "vectorised": step_vec, "old": step_old, "plain": step_plain, "per_node": step_base, "gemms": gemms}
        times = interleaved(fns, repeats=repeats, warmup=2 if on_cuda else 1)
        med = {k: statistics.median(v) for k, v in times.items()}
        best = {k: min(v) for k, v in times.items()}
        if on_cuda:  # the floor and the fit step by CUDA events: no host timer in the figure
            floor_s = _cuda_ms(lambda: (torch.addmm(bm, xm, wm.T).T @ xm)) / 1e3
            fit_s = _cuda_ms(lambda: trainer.step(batch)) / 1e3
            med["gemms"] = best["gemms"] = floor_s * steps
            med["fit_step_events"] = fit_s * steps
        info = {"cuda_graph": trainer.graph is not None, "fused_kernels": trainer.kernels is not None}
        row = {
            "depth": depth,
            "batch": batch,
            "steps_per_call": steps,
            "fit_step_samples_per_s": batch * steps / med["fit_step"],
            "fit_step_samples_per_s_events": batch * steps / med["fit_step_events"] if on_cuda else None,
            "fit_step_path": info,
            "vectorised_samples_per_s": batch * steps / med["vectorised"],
            "vectorised_samples_per_s_best": batch * steps / best["vectorised"],
            "old_samples_per_s": batch * steps / med["old"],
            "plain_vectorised_samples_per_s": batch * steps / med["plain"],
            "per_node_samples_per_s": batch * steps / med["per_node"],
            "gemm_floor_samples_per_s": batch * steps / med["gemms"],
            "speedup_median": med["per_node"] / med["vectorised"],
            "speedup_min": best["per_node"] / best["vectorised"],
            "speedup_vs_plain_median": med["plain"] / med["vectorised"],
            "fit_step_vs_old_median": med["old"] / med["fit_step"],
            "eager_vs_old_median": med["old"] / med["vectorised"],
            "fraction_of_gemm_floor": med["gemms"] / med["fit_step"],
        }
        rows.append(row)
    lines.append(
        "| depth | batch | per-node loop | plain vectorised | 8d8999f step | eager step (median) | eager (best) | "
        "step as fit runs it | fit step / 8d8999f | eager / 8d8999f | vs per-node | vs plain | two-GEMM floor | fit step / floor |"
    )
    lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        fit = r["fit_step_samples_per_s_events"] or r["fit_step_samples_per_s"]
        lines.append(
            f"| {r['depth']} | {r['batch']} | {r['per_node_samples_per_s']:.3g} | {r['plain_vectorised_samples_per_s']:.3g} | "
            f"{r['old_samples_per_s']:.3g} | {r['vectorised_samples_per_s']:.3g} | {r['vectorised_samples_per_s_best']:.3g} | "
            f"{fit:.3g} | {r['fit_step_vs_old_median']:.2f}x | {r['eager_vs_old_median']:.2f}x | {r['speedup_median']:.1f}x | "
            f"{r['speedup_vs_plain_median']:.2f}x | {r['gemm_floor_samples_per_s']:.3g} | {r['fraction_of_gemm_floor']:.0%} |"
        )
    if on_cuda:
        r0 = rows[0]["fit_step_path"]
        lines += [
            "",
            f"Step as fit runs it: `_Trainer.step` (CUDA graph: {r0['cuda_graph']}, fused Triton kernels: {r0['fused_kernels']} "
            "at depth 5; depth 8 the same), timed by CUDA events over 20 replays; the floor is the two bf16 GEMMs with "
            "operands cast beforehand, also by CUDA events.  Target: >= 1e8 samples/s at depth 8, batch 65536.",
        ]
    return rows, lines


# --------------------------------------------------------------------------- faithfulness
def _faithfulness(name: str, device: str, quick: bool) -> tuple[dict, list[str]]:
    import explain_distill as ed
    from explain_distill.surrogates.soft_tree import SoftDecisionTree

    t0 = time.perf_counter()
    data = ed.load_dataset(name, seed=0)
    teacher_epochs = {"digits": 30, "mnist1d": 40, "iris": 60}[name]
    teacher = ed.train_teacher(data, device=device, seed=0, epochs=teacher_epochs, progress=False)
    teacher_s = time.perf_counter() - t0
    P = ed.soft_labels(teacher, data.X_train, temperature=4.0)
    t_test = teacher.predict(data.X_test)
    depths = [3, 4] if quick else [4, 5, 6, 7, 8]
    variants = [("soft (T=4)", data.X_train, P, {}, (0,)), ("hard", data.X_train, data.y_train, {}, (0,))]
    if not quick:
        # what `explain-distill run` trains on: the training split plus the default synthesized queries
        from explain_distill.distill import DEFAULT_QUERIES, EPOCHS_WITH_QUERIES
        from explain_distill.transfer import build_transfer_set

        ts = build_transfer_set(teacher, data.X_train, data.y_train, temperature=4.0, queries=dict(DEFAULT_QUERIES), seed=0)
        n_q = len(ts.X) - len(data.X_train)
        label = f"soft + {n_q // 1000}k queries (T=4), mean of 3 seeds"
        variants.append((label, ts.X, ts.P, {"epochs": EPOCHS_WITH_QUERIES["soft_tree"]}, (0, 1, 2)))
    rows = []
    for depth in depths:
        for labels, X_fit, y, params, seeds in variants:
            per_seed = []
            for seed in seeds:
                t1 = time.perf_counter()
                m = SoftDecisionTree(depth=depth, random_state=seed, device=device, **params).fit(X_fit, y)
                fit_s = time.perf_counter() - t1
                mix = m.predict(data.X_test)
                greedy = m.predict_max_path(data.X_test)
                argmax = m.predict_max_path(data.X_test, how="argmax")
                per_seed.append(
                    {
                        "fidelity_mixture": float(np.mean(mix == t_test)),
                        "fidelity_max_path": float(np.mean(greedy == t_test)),
                        "fidelity_argmax_leaf": float(np.mean(argmax == t_test)),
                        "accuracy_mixture": float(np.mean(mix == data.y_test)),
                        "greedy_equals_argmax_leaf": float(
                            np.mean(m.apply(data.X_test) == m.apply(data.X_test, how="argmax"))
                        ),
                        "fit_s": fit_s,
                    }
                )
            row = {"depth": depth, "labels": labels, "seeds": list(seeds)}
            row.update({k: float(np.mean([r[k] for r in per_seed])) for k in per_seed[0]})
            row["fidelity_mixture_per_seed"] = [r["fidelity_mixture"] for r in per_seed]
            rows.append(row)
    out = {
        "dataset": name,
        "n_train": int(len(data.X_train)),
        "n_test": int(len(data.X_test)),
        "teacher_accuracy": float(np.mean(t_test == data.y_test)),
        "teacher_train_s": teacher_s,
        "rows": rows,
    }
    lines = [
        f"**{name}** — {out['n_train']} train / {out['n_test']} test, teacher test accuracy "
        f"{out['teacher_accuracy']:.4f}; soft tree with default parameters except depth.",
        "",
        "| depth | trained on | fidelity (mixture) | fidelity (max path) | gap | fidelity (argmax leaf) | accuracy | fit (s) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        fid = f"{r['fidelity_mixture']:.4f}"
        if len(r["seeds"]) > 1:
            fid += f" ({min(r['fidelity_mixture_per_seed']):.3f}-{max(r['fidelity_mixture_per_seed']):.3f})"
        lines.append(
            f"| {r['depth']} | {r['labels']} | {fid} | {r['fidelity_max_path']:.4f} | "
            f"{r['fidelity_mixture'] - r['fidelity_max_path']:+.4f} | {r['fidelity_argmax_leaf']:.4f} | "
            f"{r['accuracy_mixture']:.4f} | {r['fit_s']:.1f} |"
        )
    soft = {r["depth"]: r["fidelity_mixture"] for r in rows if r["labels"] == "soft (T=4)"}
    hard = {r["depth"]: r["fidelity_mixture"] for r in rows if r["labels"] == "hard"}
    wins = sum(soft[d] > hard[d] for d in soft)
    ties = sum(soft[d] == hard[d] for d in soft)
    lines += ["", f"Soft labels vs hard labels (same data, seed 0): soft ahead at {wins} of {len(soft)} depths, tied at {ties}."]
    best = max((r for r in rows if r["labels"] != "hard"), key=lambda r: r["fidelity_mixture"])
    lines.append(
        f"Most faithful soft-label tree at depth <= 8: {best['fidelity_mixture']:.4f} (depth {best['depth']}, {best['labels']})."
    )
    return out, lines


def run(*, device: str = "cpu", quick: bool = False) -> dict:
    from explain_distill.surrogates.soft_tree import _resolve_device

    dev = _resolve_device(device)
    torch.manual_seed(0)
    md: list[str] = []
    data: dict = {"device": str(dev), "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "quick": quick}

    datasets = ["iris"] if quick else ["digits", "mnist1d"]
    data["faithfulness"] = []
    md.append("### Faithfulness (held-out test split)")
    md.append("")
    for name in datasets:
        res, lines = _faithfulness(name, str(dev), quick)
        data["faithfulness"].append(res)
        md += lines + [""]
    md.append(
        "Fidelity = top-1 agreement with the teacher on the test split.  *gap* = mixture minus max path "
        "(the price of one readable path).  *max path* follows the more probable branch at every node "
        "(exactly the TreeView rule); *argmax leaf* is the paper's leaf of greatest path probability."
    )
    md.append("")

    load_before = os.getloadavg()[0]
    rows, lines = _speed(dev, quick)
    data["speed"] = rows
    data["load_average_1min"] = [load_before, os.getloadavg()[0]]
    md.append(f"### Training speed: samples/s against a per-node loop and plain autograd ({dev.type}, D=784, K=10)")
    md.append("")
    md += lines
    md.append("")
    md.append(
        f"Measured on {os.cpu_count()} CPU cores shared with other jobs ({torch.get_num_threads()} torch threads; "
        f"1-minute load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after): "
        "absolute samples/s are noisy, the side-by-side ratio less so.  One step = forward, loss with the "
        "balance penalty, backward, Adam update.  *8d8999f step* is the code before issue 16 "
        "(`benchmarks/baseline/`); *step as fit runs it* is `_Trainer.step` (on CUDA: CUDA graph + fused "
        "Triton kernels; on a CPU: the eager step plus the schedule)."
        + (
            ""
            if dev.type == "cuda"
            else "  No GPU here: see the H100 section for the figures measured there (target >= 1e8 samples/s at "
            "depth 8, batch 65536).  CPU target: >= 1.5e5 samples/s at depth 8, batch 4096."
        )
    )
    target = next((r for r in rows if r["depth"] == 8 and r["batch"] == 4096), None)
    if target is not None and dev.type == "cpu":
        verdict = "met" if target["fit_step_samples_per_s"] >= 1.5e5 else "not met"
        md.append("")
        md.append(
            f"CPU target (>= 1.5e5 samples/s at depth 8, batch 4096): {verdict} — step as fit runs it "
            f"{target['fit_step_samples_per_s']:.3g} (median), eager step {target['vectorised_samples_per_s']:.3g}; the two "
            f"matrix products alone run at {target['gemm_floor_samples_per_s']:.3g} samples/s in the same run, so the "
            f"step is at {target['fraction_of_gemm_floor']:.0%} of its arithmetic floor on this machine."
        )
    return {"title": TITLE, "markdown": "\n".join(md), "data": data}


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(run(quick="--quick" in sys.argv)["markdown"])
