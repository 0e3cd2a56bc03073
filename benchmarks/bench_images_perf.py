"""Cost of distill + run_analyses + curves + report on 28x28 images, stage by stage (issue 23, item 3).

Not the image benchmark (``bench_images``): this one only times the user's path on a fixed, offline
28x28 set so that a change in cost per stage can be compared before/after.  The data: scikit-learn's
8x8 digits upsampled to 28x28 (``scipy.ndimage.zoom``, bilinear), each copy shifted by a seeded
sub-pixel offset in [-2, 2] and given N(0, 0.3) noise (in units of the 0..16 grey levels), scaled
to [0, 1].  The teacher: a LeNet-style CNN (conv 5x5 1->20, pool, conv 5x5 20->48, pool, 768->115->10,
114,163 parameters) trained outside the toolkit with a plain torch loop (Adam, 6 epochs) and wrapped
with ``ed.Teacher(net, input_shape=(1, 28, 28))``.  Each stage reports wall and process CPU seconds
(the CPU time includes the student's thread beside the rest), the fidelity of every surrogate and the
budget decisions ``distill`` recorded.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TITLE = "28x28 images (digits upsampled, LeNet teacher): time per stage of distill, analyses, curves, report"


def digits28(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28x28 images (flat, in [0, 1]) and their digit labels (see the module docstring)."""
    from scipy.ndimage import shift, zoom
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    d = load_digits()
    base = np.stack([zoom(im, 28 / 8, order=1) for im in d.images])
    idx = rng.integers(0, len(base), n)
    X = np.empty((n, 28, 28), np.float32)
    for i, j in enumerate(idx):
        dx, dy = rng.uniform(-2, 2, 2)
        X[i] = shift(base[j], (dy, dx), order=1, mode="constant")
    X += rng.normal(0, 0.3, X.shape).astype(np.float32)
    return (np.clip(X, 0, 16) / 16.0).reshape(n, 784), d.target[idx]


def lenet_teacher(data: Any, *, epochs: int = 6, seed: int = 0) -> Any:
    """The user's own network, trained with a plain torch loop on ``data``'s scaled training split."""
    import torch
    from torch import nn

    import explain_distill as ed

    class LeNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
                                          nn.Conv2d(20, 48, 5), nn.ReLU(), nn.MaxPool2d(2))
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(48 * 16, 115), nn.ReLU(), nn.Linear(115, 10))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.features(x.reshape(-1, 1, 28, 28)))

    torch.manual_seed(seed)
    net = LeNet()
    Xt = torch.tensor(data.X_train, dtype=torch.float32)
    yt = torch.tensor(data.y_train)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(Xt))
        for b in range(0, len(Xt), 128):
            i = perm[b : b + 128]
            opt.zero_grad()
            nn.functional.cross_entropy(net(Xt[i]), yt[i]).backward()
            opt.step()
    net.eval()
    return ed.Teacher(net, input_shape=(1, 28, 28), class_names=data.class_names)


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def measure(n: int) -> dict[str, Any]:
    import explain_distill as ed
    from explain_distill.cli import _extras

    X, y = digits28(n)
    data = ed.Dataset.from_arrays(X, y, kind="image", input_shape=(1, 28, 28), name=f"digits28_{n}",
                                  class_names=[str(i) for i in range(10)])
    teacher = lenet_teacher(data)
    stages: dict[str, dict[str, float]] = {}

    def stage(name: str, fn: Any) -> Any:
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        stages[name] = {"wall_s": round(time.perf_counter() - t, 1), "cpu_s": round(time.process_time() - c, 1)}
        return out

    load0 = _loadavg()
    result = stage("distill", lambda: ed.distill(teacher, data, seed=0, min_agreement=0.9))
    analyses = stage("run_analyses", lambda: ed.run_analyses(result, seed=0))
    extras = stage("curves (CLI)", lambda: _extras(result))
    for k, v in extras.items():
        analyses.extras.setdefault(k, v)
    with tempfile.TemporaryDirectory() as tmp:
        stage("report", lambda: ed.build_report(result, tmp, analyses=analyses, min_agreement=0.9))
    return {
        "n": n, "stages": stages, "total_wall_s": round(sum(s["wall_s"] for s in stages.values()), 1),
        "distill_timings": {k: round(v, 2) for k, v in result.info["timings"].items()},
        "analysis_timings": {k: round(v, 2) for k, v in analyses.timings.items()},
        "budget": result.info.get("budget"), "transfer_set": result.info.get("transfer_set"),
        "fidelity": {r["surrogate"]: round(r["fidelity"], 3) for r in result.fidelity()},
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "loadavg": [load0, _loadavg()],
    }


def _markdown(r: dict[str, Any]) -> str:
    lines = [f"{r['n']:,} images; load average {r['loadavg'][0]} at the start, {r['loadavg'][1]} at the end; "
             f"peak RSS {r['peak_rss_mib']} MiB.", "", "| stage | wall s | cpu s |", "|---|---|---|"]
    lines += [f"| {k} | {v['wall_s']} | {v['cpu_s']} |" for k, v in r["stages"].items()]
    lines += [f"| **total** | **{r['total_wall_s']}** | |", "",
              "distill's stages (s): " + ", ".join(f"{k} {v}" for k, v in r["distill_timings"].items()), "",
              "Fidelity: " + ", ".join(f"{k} {v}" for k, v in r["fidelity"].items()), "",
              f"Budget decisions: {r['budget']}"]
    return "\n".join(lines)


def run(*, device: str = "cpu", quick: bool = False) -> dict:
    """5,000 images (1,000 when quick)."""
    r = measure(1000 if quick else 5000)
    return {"title": TITLE, "markdown": _markdown(r), "data": r}


if __name__ == "__main__":
    n = int(sys.argv[sys.argv.index("--n") + 1]) if "--n" in sys.argv else 5000
    out = measure(n)
    print(_markdown(out))
