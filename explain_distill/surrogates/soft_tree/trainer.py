"""The optimisation of one fit: the step, its schedule and the epoch loop.

:class:`_Trainer` owns fused AdamW with the cosine-annealed step size, the balance penalty's
running averages, the sparse filters' mask and the static input buffers; on CUDA it captures the
whole step in one CUDA graph.  :meth:`_Trainer.run` is the epoch loop over a feed (pruning on the
schedule of :func:`_kept_weights`).  :class:`_threads` and :class:`_matmul_precision` set torch's
CPU threads and the CUDA matmul precision for the duration of a fit (inference uses the first too).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import torch

from .loss import _train_step_loss, _Workspace
from .module import _SoftTreeModule

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from .estimators import SoftDecisionTree
    from .feeds import _BlockStream, _InMemoryFeed

logger = logging.getLogger(__name__)

#: Capture the whole training step in a CUDA graph on CUDA (False: eager steps; for comparisons).
_CUDA_GRAPHS = True


def _kept_weights(epoch: int, epochs: int, d: int, k: int) -> int:
    """Weights kept per node at the start of ``epoch``: all of them at first, down to ``k`` by half
    the run on a cubic schedule (gradual magnitude pruning, Zhu & Gupta 2017), ``k`` after."""
    ramp = max(1, epochs // 2)
    if epoch >= ramp:
        return k
    return max(k, int(round(k + (d - k) * (1.0 - epoch / ramp) ** 3)))


class _threads:
    """Cap torch's CPU threads during a fit of small steps (restored afterwards).

    Steps of a few microseconds of work lose more to thread hand-offs than they gain, and
    on a shared, busy machine several threads per step can be ten times slower than one.
    """

    def __init__(self, n: int | None) -> None:
        self.n = n

    def __enter__(self) -> None:
        if self.n is not None:
            self._old = torch.get_num_threads()
            torch.set_num_threads(self.n)

    def __exit__(self, *exc: Any) -> None:
        if self.n is not None:
            torch.set_num_threads(self._old)


class _matmul_precision:
    """TF32 matmuls on CUDA for the duration of a fit, restored afterwards."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __enter__(self) -> None:
        if self.enabled:
            self._old = torch.get_float32_matmul_precision()
            torch.set_float32_matmul_precision("high")

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            torch.set_float32_matmul_precision(self._old)


class _Trainer:
    """The optimisation of one fit: fused AdamW with the cosine-annealed step size, the balance
    penalty's running averages, and the step on static input buffers ``xs``/``ps``.

    On CUDA the whole step (forward, hand-written backward, AdamW with ``capturable=True``) is
    captured in one CUDA graph after three warm-up steps on a side stream, and replayed for every
    full batch; the step size lives in a device tensor the schedule fills before each replay.  A
    short last batch runs eagerly; when capture fails (or with ``compile=True``) every step does.
    """

    WARMUP = 3

    def __init__(
        self, module: _SoftTreeModule, est: "SoftDecisionTree", *, steps_total: int, batch: int, n_features: int,
        n_classes: int, device: torch.device, x_dtype: torch.dtype, kernels: Any,
    ) -> None:
        self.module, self.device, self.batch, self.kernels = module, device, batch, kernels
        self.cuda = device.type == "cuda"
        self.graphs = self.cuda and _CUDA_GRAPHS and not est.compile and steps_total > self.WARMUP + 2
        self.base_lr = float(est.learning_rate)
        self.total = steps_total
        lr: Any = torch.tensor(self.base_lr, device=device) if self.graphs else self.base_lr
        groups = [{"params": [module.weight], "weight_decay": float(est.weight_decay)}]
        groups.append({"params": [p for p in (module.bias, module.log_beta, module.leaf_logits) if p.requires_grad], "weight_decay": 0.0})
        self.opt = torch.optim.AdamW(groups, lr=lr, fused=device.type in ("cpu", "cuda"), capturable=self.graphs)
        self.lr_t = lr if self.graphs else None
        node_depth = module.node_depth
        self.decay = (1.0 - 1.0 / (2.0**node_depth)).to(device)
        self.penalty_w = (float(est.lam) * 2.0 ** (-node_depth)).to(device)
        self.alpha_run = torch.full((module.weight.shape[0],), 0.5, device=device)
        self.fn = torch.compile(_train_step_loss) if est.compile else _train_step_loss
        if est.compile:
            self.kernels = None
        self.ws = _Workspace()
        self.xs = torch.empty(batch, n_features, dtype=x_dtype, device=device)
        self.ps = torch.empty(batch, n_classes, device=device)
        self.t = 0
        self.warm = 0
        self.graph: Any = None
        self.static_loss: torch.Tensor | None = None
        self.side = torch.cuda.Stream(device) if self.graphs else None
        # sparse filters: a 0/1 mask over the weights, applied after every step (inside the graph too)
        self.max_weights = est.max_weights
        self.mask = torch.ones_like(module.weight) if est.max_weights is not None else None

    def run(self, feed: "_InMemoryFeed | _BlockStream", gen: torch.Generator, *, epochs: int, threads: int | None) -> None:
        """Train for ``epochs`` passes over ``feed`` in the order ``gen`` draws, then close the feed.

        With sparse filters each epoch starts by pruning to :func:`_kept_weights`; ``threads`` caps
        torch's CPU threads (None: torch's default).  A progress bar shows on long runs only, and
        the loss is logged once per epoch at DEBUG level (one host sync, only when someone listens).
        """
        from tqdm.auto import tqdm

        n, d = feed.n, int(self.module.weight.shape[1])
        long_run = n * epochs * (2**self.module.depth) > 5e9
        bar = tqdm(range(epochs), desc="soft tree", unit="epoch", disable=None if long_run else True, leave=False)
        debug = logger.isEnabledFor(logging.DEBUG)
        self.module.train()
        try:
            with _matmul_precision(self.cuda), _threads(threads):
                for epoch in bar:
                    if self.max_weights is not None:
                        self.prune(_kept_weights(epoch, epochs, d, int(self.max_weights)))
                    running = torch.zeros((), device=self.device)
                    for rows in feed.epoch(gen, self.batch, self.xs, self.ps):
                        running += self.step(rows)
                    if debug:
                        logger.debug("epoch %d: loss %.5f", epoch, float(running) / math.ceil(n / self.batch))
        finally:
            feed.close()

    def prune(self, keep: int) -> None:
        """Keep the ``keep`` largest weights of every node (by magnitude), zero the rest from now on."""
        if self.mask is None:
            return
        w = self.module.weight.detach()
        keep = max(1, min(int(keep), w.shape[1]))
        idx = w.abs().topk(keep, dim=1).indices
        new = torch.zeros_like(self.mask)
        new.scatter_(1, idx, 1.0)
        self.mask.copy_(new)  # in place: a captured graph reads the same buffer
        with torch.no_grad():
            self.module.weight.mul_(self.mask)

    def _apply_mask(self) -> None:
        if self.mask is not None:
            with torch.no_grad():
                self.module.weight.mul_(self.mask)

    def _lr(self) -> None:
        # LambdaLR's arithmetic, so eager fits train exactly as before: base * lambda(t)
        lr = self.base_lr * (0.5 * (1 + math.cos(math.pi * min(self.t, self.total) / self.total)))
        if self.lr_t is not None:
            self.lr_t.fill_(lr)
        else:
            for g in self.opt.param_groups:
                g["lr"] = lr

    def _loss(self, rows: int) -> torch.Tensor:
        return self.fn(
            self.module, self.xs[:rows], self.ps[:rows], self.alpha_run, self.decay, self.penalty_w, self.cuda,
            self.ws, self.kernels,
        )

    def _eager(self, rows: int) -> torch.Tensor:
        loss = self._loss(rows)
        # after a capture the gradients are the graph's static buffers: zero them, never drop them
        self.opt.zero_grad(set_to_none=self.graph is None)
        loss.backward()
        self.opt.step()
        self._apply_mask()
        return loss.detach()

    def _capture(self) -> None:
        try:
            self.opt.zero_grad(set_to_none=True)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                loss = self._loss(self.batch)
                loss.backward()
                self.opt.step()
                self._apply_mask()
            self.graph, self.static_loss = graph, loss.detach()
        except Exception as exc:  # noqa: BLE001 - any capture failure: keep training eagerly
            torch.cuda.synchronize(self.device)
            self.graphs = False
            self.opt.zero_grad(set_to_none=True)
            logger.info("CUDA graph capture of the soft-tree step failed (%s: %s); training eagerly", type(exc).__name__, exc)

    def step(self, rows: int) -> torch.Tensor:
        """One optimisation step on ``xs[:rows]``, ``ps[:rows]``; returns the (device) loss."""
        self._lr()
        self.t += 1
        if self.graph is not None and rows == self.batch:
            self.graph.replay()
            return self.static_loss
        if self.graphs and self.graph is None and rows == self.batch:
            self.side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side):
                loss = self._eager(rows)
            torch.cuda.current_stream().wait_stream(self.side)
            self.warm += 1
            if self.warm == self.WARMUP:
                self._capture()
            return loss
        return self._eager(rows)
