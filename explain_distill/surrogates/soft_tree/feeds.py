"""Where the transfer set lives during a fit, and how each batch reaches the step.

:func:`_open_feed` decides: the data are copied once to the device and standardised there
(:class:`_InMemoryFeed`; on a CPU fit, kept on the host) when they fit, and streamed from the host
in contiguous blocks through two buffers otherwise (:class:`_BlockStream`, following
:func:`_epoch_plan`).  Both write each batch into the trainer's static input buffers and carry the
standardisation statistics (:func:`_statistics`, :func:`_device_statistics`), which the fitted
filters fold back in.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch

from .loss import _BUFFERS_PER_NODE

#: Rows per chunk for inference and for statistics over streamed inputs.
_CHUNK = 65536
#: Block layout of streamed fits (``block_rows``/``unit_blocks`` of :class:`_BlockStream`); tests shrink it.
_STREAM_BLOCKS: dict[str, int] = {}


def _host_tensor(a: np.ndarray, dtype: Any = np.float32) -> torch.Tensor:
    """A CPU tensor over ``a`` (no copy when it is already contiguous, writable and of ``dtype``)."""
    a = np.ascontiguousarray(a, dtype=dtype)
    if not a.flags.writeable:  # a read-only memmap: torch only wraps writable memory
        a = a.copy()
    return torch.from_numpy(a)


def _statistics(chunks: Any, n: int, d: int, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std (float64 sums on the device) from float32 row chunks."""
    s1 = torch.zeros(d, dtype=torch.float64, device=device)
    s2 = torch.zeros(d, dtype=torch.float64, device=device)
    for c in chunks:
        c = c.double()
        s1 += c.sum(dim=0)
        s2 += (c * c).sum(dim=0)
    mean = (s1 / n).cpu().numpy()
    std = np.sqrt(np.maximum((s2 / n).cpu().numpy() - mean**2, 0.0))
    std = np.where(std > 1e-8 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    return mean, std


def _device_statistics(X: np.ndarray, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Standardisation statistics of host rows, computed on the device chunk by chunk."""
    n, d = X.shape
    chunks = (_host_tensor(X[s : s + _CHUNK]).to(device) for s in range(0, n, _CHUNK))
    return _statistics(chunks, n, d, device)


def _standardize(src: torch.Tensor, mean: torch.Tensor, inv: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``(src - mean) * inv`` in float32 (``src`` is overwritten), written to ``out`` (whose dtype may
    be bfloat16): the same two operations as for data copied once, so both give the same bits."""
    torch.sub(src, mean, out=src)
    return torch.mul(src, inv, out=out)


def _fits_on_device(n: int, d: int, K: int, x_dtype: torch.dtype, batch: int, depth: int, device: torch.device) -> bool:
    """Whether the transfer set, its float32 staging copy and the step's buffers fit in the GPU's free memory."""
    free, _ = torch.cuda.mem_get_info(device)
    xb = torch.empty((), dtype=x_dtype).element_size()
    work = 4 * _BUFFERS_PER_NODE * batch * (2 ** (depth + 1)) + batch * d * (4 + xb)
    need = n * K * 4 + max(n * d * (4 + xb), n * d * xb + work)
    return need < 0.8 * free


def _epoch_plan(n: int, block_rows: int, unit_blocks: int, gen: torch.Generator) -> list[tuple[list[tuple[int, int]], torch.Tensor]]:
    """One epoch's order of the rows ``0..n-1``, in contiguous blocks.

    The ``ceil(n / block_rows)`` blocks are taken in a random order and grouped ``unit_blocks`` at a
    time into units (what one pinned buffer holds); the rows of each unit are shuffled.  Returns, per
    unit in order, its blocks' row ranges and the permutation of its rows.  One block covering all
    rows gives ``torch.randperm(n, generator=gen)``: the order of a fit whose data sit in memory.
    """
    n_blocks = math.ceil(n / block_rows)
    order = torch.randperm(n_blocks, generator=gen).tolist() if n_blocks > 1 else [0]
    plan = []
    for u in range(0, n_blocks, unit_blocks):
        ranges = [(b * block_rows, min(n, (b + 1) * block_rows)) for b in order[u : u + unit_blocks]]
        rows = sum(hi - lo for lo, hi in ranges)
        plan.append((ranges, torch.randperm(rows, generator=gen)))
    return plan


def _open_feed(
    X: np.ndarray, P: np.ndarray, *, streamed: bool, batch: int, depth: int, device: torch.device, x_dtype: torch.dtype
) -> "_InMemoryFeed | _BlockStream":
    """The feed of one fit: copied once when the data fit where the step runs, else streamed in blocks.

    On CUDA the data are copied to the GPU when they fit in its free memory (:func:`_fits_on_device`);
    on a CPU they are used in place unless ``streamed`` (memory maps and inputs over 1 GiB).
    """
    n, d = X.shape
    if device.type == "cuda":
        in_memory = _fits_on_device(n, d, P.shape[1], x_dtype, batch, depth, device)
    else:
        in_memory = not streamed
    if in_memory:
        return _InMemoryFeed(X, P, device=device, x_dtype=x_dtype)
    mean, std = _device_statistics(X, device)
    return _BlockStream(X, P, batch=batch, device=device, x_dtype=x_dtype, mean=mean, std=std, **_STREAM_BLOCKS)


class _InMemoryFeed:
    """The transfer set copied once to the device (the GPU, or kept on the host for a CPU fit),
    standardised there and stored in the step's input dtype; batches are gathered by index."""

    in_memory = True

    def __init__(self, X: np.ndarray, P: np.ndarray, *, device: torch.device, x_dtype: torch.dtype) -> None:
        n, d = X.shape
        self.n = n
        if device.type == "cpu":
            raw = _host_tensor(X)  # the caller's memory when it is float32: never written
            self.mean, self.std = _statistics((raw[s : s + _CHUNK] for s in range(0, n, _CHUNK)), n, d, device)
            mean_t, inv_t = self._constants(device)
            self.X = torch.empty(n, d, dtype=x_dtype)
            torch.sub(raw, mean_t, out=self.X)
            self.X.mul_(inv_t)
        else:
            raw = torch.empty(n, d, dtype=torch.float32, device=device)
            for s in range(0, n, _CHUNK):
                raw[s : s + _CHUNK].copy_(_host_tensor(X[s : s + _CHUNK]))
            self.mean, self.std = _statistics((raw[s : s + _CHUNK] for s in range(0, n, _CHUNK)), n, d, device)
            mean_t, inv_t = self._constants(device)
            raw.sub_(mean_t)
            if x_dtype == torch.float32:
                self.X = raw.mul_(inv_t)
            else:
                self.X = torch.empty(n, d, dtype=x_dtype, device=device)
                torch.mul(raw, inv_t, out=self.X)
            del raw
        self.P = _host_tensor(P).to(device)
        self.device = device

    def _constants(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        mean32 = torch.from_numpy(self.mean.astype(np.float32)).to(device)
        inv32 = torch.from_numpy((1.0 / self.std).astype(np.float32)).to(device)
        return mean32, inv32

    def epoch(self, gen: torch.Generator, batch: int, xs: torch.Tensor, ps: torch.Tensor):
        """Write each batch of a fresh random order into ``xs``/``ps`` and yield its row count."""
        perm = torch.randperm(self.n, generator=gen).to(self.device)
        for s in range(0, self.n, batch):
            idx = perm[s : s + batch]
            r = len(idx)
            torch.index_select(self.X, 0, idx, out=xs[:r])
            torch.index_select(self.P, 0, idx, out=ps[:r])
            yield r

    def close(self) -> None:
        pass


class _BlockStream:
    """Streams a transfer set that stays on the host through the step in contiguous blocks.

    Each epoch follows :func:`_epoch_plan`: blocks of ``block_rows`` consecutive rows in a random
    order, ``unit_blocks`` of them per unit, rows shuffled within each unit.  A unit is read block
    by block (sequential reads, kind to memory maps) into one of two host buffers and copied to the
    device as a whole; batches are gathered from the unit on the device, and a batch may run on
    into the next unit.  On CUDA the host buffers are pinned and a unit is read (a few threads)
    and copied (a side stream) while the step works on the one before; events order the reuse of
    every buffer.  On a CPU the same code runs without pinned memory, threads or streams.
    """

    in_memory = False

    def __init__(
        self, X: np.ndarray, P: np.ndarray, *, batch: int, device: torch.device, x_dtype: torch.dtype,
        mean: np.ndarray, std: np.ndarray, block_rows: int | None = None, unit_blocks: int = 8,
    ) -> None:
        self.X, self.P = X, P
        n, d = X.shape
        K = P.shape[1]
        self.n, self.device = n, device
        self.mean, self.std = mean, std
        self.unit_blocks = int(unit_blocks)
        self.block_rows = int(block_rows) if block_rows is not None else max(1, math.ceil(batch / self.unit_blocks))
        unit_rows = min(n, self.block_rows * self.unit_blocks)
        self.cuda = device.type == "cuda"
        self.host_x = [torch.empty(unit_rows, d, pin_memory=self.cuda) for _ in range(2)]
        self.host_p = [torch.empty(unit_rows, K, pin_memory=self.cuda) for _ in range(2)]
        if self.cuda:
            self.dev_x = [torch.empty(unit_rows, d, device=device) for _ in range(2)]
            self.dev_p = [torch.empty(unit_rows, K, device=device) for _ in range(2)]
            self.copy_stream = torch.cuda.Stream(device)
            self.ready = [torch.cuda.Event() for _ in range(2)]
            self.host_free = [torch.cuda.Event() for _ in range(2)]
            self.dev_free = [torch.cuda.Event() for _ in range(2)]
            from concurrent.futures import ThreadPoolExecutor

            self.stager = ThreadPoolExecutor(max_workers=1, thread_name_prefix="soft-tree-stage")
            self.readers = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="soft-tree-read")
        else:
            self.dev_x, self.dev_p = self.host_x, self.host_p
        self.tmp = torch.empty(batch, d, device=device)
        self.mean_t = torch.from_numpy(np.asarray(mean, dtype=np.float32)).to(device)
        self.inv_t = torch.from_numpy((1.0 / np.asarray(std, dtype=np.float64)).astype(np.float32)).to(device)

    def _read(self, ranges: list[tuple[int, int]], slot: int) -> int:
        hx, hp = self.host_x[slot].numpy(), self.host_p[slot].numpy()
        jobs, o = [], 0
        for lo, hi in ranges:
            jobs.append((o, lo, hi))
            o += hi - lo

        def copy(job: tuple[int, int, int]) -> None:
            off, lo, hi = job
            hx[off : off + hi - lo] = self.X[lo:hi]
            hp[off : off + hi - lo] = self.P[lo:hi]

        if self.cuda:
            list(self.readers.map(copy, jobs))
        else:
            for job in jobs:
                copy(job)
        return o

    def _stage(self, ranges: list[tuple[int, int]], perm: torch.Tensor, slot: int) -> torch.Tensor:
        """Read a unit into host buffer ``slot`` and (on CUDA) copy it to the device on the side stream."""
        if not self.cuda:
            self._read(ranges, slot)
            return perm
        self.host_free[slot].synchronize()  # the last copy out of this host buffer is done
        rows = self._read(ranges, slot)
        with torch.cuda.stream(self.copy_stream):
            self.copy_stream.wait_event(self.dev_free[slot])  # the step is done with this device buffer
            self.dev_x[slot][:rows].copy_(self.host_x[slot][:rows], non_blocking=True)
            self.dev_p[slot][:rows].copy_(self.host_p[slot][:rows], non_blocking=True)
            perm_dev = perm.pin_memory().to(self.device, non_blocking=True)
            self.ready[slot].record(self.copy_stream)
            self.host_free[slot].record(self.copy_stream)
        return perm_dev

    def _submit(self, plan: list, u: int) -> Any:
        ranges, perm = plan[u]
        if self.cuda:
            return self.stager.submit(self._stage, ranges, perm, u % 2)
        return self._stage(ranges, perm, u % 2)

    def _wait(self, staged: Any, slot: int) -> torch.Tensor:
        if not self.cuda:
            return staged
        perm = staged.result()
        torch.cuda.current_stream().wait_event(self.ready[slot])
        perm.record_stream(torch.cuda.current_stream())
        return perm

    def epoch(self, gen: torch.Generator, batch: int, xs: torch.Tensor, ps: torch.Tensor):
        """Write each batch of this epoch's order into ``xs``/``ps`` (standardised) and yield its row count."""
        plan = _epoch_plan(self.n, self.block_rows, self.unit_blocks, gen)
        staged = {u: self._submit(plan, u) for u in range(min(2, len(plan)))}
        perms: dict[int, torch.Tensor] = {}
        u, off = 0, 0
        while u < len(plan):
            r = 0
            while r < batch and u < len(plan):
                if u not in perms:
                    perms[u] = self._wait(staged.pop(u), u % 2)
                perm = perms[u]
                take = min(batch - r, len(perm) - off)
                idx = perm[off : off + take]
                torch.index_select(self.dev_x[u % 2], 0, idx, out=self.tmp[r : r + take])
                torch.index_select(self.dev_p[u % 2], 0, idx, out=ps[r : r + take])
                r += take
                off += take
                if off == len(perm):  # unit u is used up: free its buffers for unit u + 2
                    if self.cuda:
                        self.dev_free[u % 2].record(torch.cuda.current_stream())
                    del perms[u]
                    if u + 2 < len(plan):
                        staged[u + 2] = self._submit(plan, u + 2)
                    u, off = u + 1, 0
            _standardize(self.tmp[:r], self.mean_t, self.inv_t, xs[:r])
            yield r

    def close(self) -> None:
        if self.cuda:
            self.stager.shutdown(wait=True)
            self.readers.shutdown(wait=True)
