"""Scale: several processes (GPUs) through ``torch.distributed``, and transfer sets larger than memory.

One command trains the teacher with DistributedDataParallel and labels the transfer set, each
rank labelling one contiguous block of rows::

    torchrun --nproc_per_node=4 -m explain_distill.cli label --dataset digits --out runs/big \\
        --train-teacher --temperature 4

(the command line front end is ``explain-distill label`` in :mod:`explain_distill.cli`; the work is
:func:`run_distributed` here)
(backend ``nccl`` on CUDA, ``gloo`` on the CPU; ``--teacher DIR`` labels with a saved teacher
instead of training one; ``--inputs X.npy`` labels rows of a memory-mapped ``.npy`` file instead
of the data set's training split.)  What lands in ``OUT``:

- ``OUT/teacher/``: the teacher (safetensors + JSON), when trained here;
- ``OUT/transfer/X.npy``, ``P.npy``, ``y.npy``: one ``.npy`` file per array, each rank writing its
  block at its row offset (the blocks are in rank order, so every row appears once and in
  order; nothing is padded the way ``DistributedSampler`` pads);
- ``OUT/transfer/transfer.json``: the index (shapes, temperature, class names, which rank wrote
  which rows), written last: its presence means the set is complete.

:func:`open_transfer_shards` opens such a directory as a :class:`ShardedTransferSet` whose ``X``
and ``P`` are read-only ``np.memmap`` arrays (``np.load(mmap_mode="r", allow_pickle=False)``):
nothing is loaded until a surrogate reads it, and ``distill(..., transfer=...)`` can take it.

:func:`label_memmap` is the larger-than-memory path on one process: it streams ``X`` (a memmap)
chunk by chunk through the teachers and writes ``P`` into a memmap, so memory stays bounded by the
chunk whatever the number of rows.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._io import check_output_dir, read_json, record_written, write_json
from ._validation import check_choice, check_int, check_positive
from .data import Dataset, load_dataset
from .teacher import Teacher, _enable_tf32, build_module, default_config, resolve_device, validation_split
from .transfer import TransferSet, check_teachers, soft_labels

logger = logging.getLogger(__name__)

__all__ = [
    "ShardedTransferSet",
    "open_transfer_shards",
    "write_transfer_shards",
    "label_memmap",
    "rank_block",
    "train_teacher_ddp",
    "run_distributed",
]

INDEX_NAME = "transfer.json"
INDEX_FORMAT = "explain_distill.transfer_shards/1"
DEFAULT_CHUNK_ROWS = 65536


# ---------------------------------------------------------------------------- blocks and streaming
def rank_block(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` that ``rank`` of ``world_size`` handles: contiguous, in rank order.

    The first ``n % world_size`` ranks get one row more; together the blocks cover ``range(n)``
    exactly once (unlike ``DistributedSampler``, which pads every rank to the same length).
    """
    n = check_int(n, "n", low=0)
    world_size = check_int(world_size, "world_size", low=1)
    rank = check_int(rank, "rank", low=0, high=world_size - 1)
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def _check_rows(X: Any, name: str = "X") -> tuple[int, int]:
    """Shape of a 2-D array-like without reading its values (a memmap stays on disk)."""
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) != 2:
        raise ValueError(
            f"{name} must be a 2-D array (n_samples, n_features) such as an np.memmap or "
            f"np.load(path, mmap_mode='r'); received {type(X).__name__} with shape {shape}."
        )
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"{name} has shape {tuple(shape)}; at least one sample and one feature are required.")
    return int(shape[0]), int(shape[1])


def label_memmap(
    teachers: Teacher | Sequence[Teacher],
    X: Any,
    out: np.ndarray | str | os.PathLike | None = None,
    *,
    temperature: float = 1.0,
    weights: Sequence[float] | None = None,
    start: int = 0,
    stop: int | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> np.ndarray:
    """Soft labels of ``X[start:stop]`` streamed chunk by chunk into ``out[start:stop]``.

    Parameters
    ----------
    teachers : Teacher or list of Teacher
    X : array-like (n, n_features)
        Typically ``np.load("X.npy", mmap_mode="r")``: only ``chunk_rows`` rows are in memory at once.
    out : ndarray, path or None
        Where P goes: a writable (n, K) float32 array or memmap, a path for a new ``.npy`` file
        (created as a memmap), or None for a new in-memory array.
    temperature, weights
        As in :func:`explain_distill.transfer.soft_labels` (the same code labels every chunk).
    start, stop : int
        The rows to label (a rank's block); the default is all of them.
    chunk_rows : int
        Rows per chunk; memory is bounded by it (times the features and classes).

    Returns
    -------
    ndarray (n, K) float32 — ``out`` itself (flushed when it is a memmap).
    """
    teachers, w = check_teachers(teachers, weights)
    temperature = check_positive(temperature, "temperature")
    n, d = _check_rows(X)
    k = teachers[0].n_classes
    stop = n if stop is None else stop
    start = check_int(start, "start", low=0, high=n)
    stop = check_int(stop, "stop", low=start, high=n)
    chunk_rows = check_int(chunk_rows, "chunk_rows", low=1)
    if out is None:
        out = np.empty((n, k), dtype=np.float32)
    elif isinstance(out, (str, os.PathLike)):
        out = np.lib.format.open_memmap(str(out), mode="w+", dtype=np.float32, shape=(n, k))
    if getattr(out, "shape", None) != (n, k):
        raise ValueError(
            f"out must have shape ({n}, {k}) (one row per row of X, one column per class); "
            f"received shape {getattr(out, 'shape', None)}."
        )
    if not out.flags.writeable:
        raise ValueError("out is read-only; open it with mode 'r+' or 'w+' (np.lib.format.open_memmap).")
    for s in range(start, stop, chunk_rows):
        e = min(s + chunk_rows, stop)
        try:
            out[s:e] = soft_labels(teachers, X[s:e], temperature=temperature, weights=w)
        except ValueError as exc:
            raise ValueError(f"{exc} (in the chunk of X holding rows {s}..{e - 1}; row numbers above count from {s})") from exc
    if isinstance(out, np.memmap):
        out.flush()
    return out


# ---------------------------------------------------------------------------- the on-disk set
@dataclass
class ShardedTransferSet(TransferSet):
    """A transfer set on disk: ``X`` and ``P`` are read-only memory maps, read only when used.

    Same fields as :class:`explain_distill.transfer.TransferSet` (``X``, ``P``, ``temperature``,
    ``y``, ``source``, ``source_names``) plus where it lives.  Validation checks shapes and
    dtypes only: reading every value would defeat the memory map (the writer checked them).

    Attributes
    ----------
    directory : Path
    index : dict
        The parsed ``transfer.json`` (class names, blocks written by each rank, provenance).
    """

    directory: Path | None = None
    index: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, _ = _check_rows(self.X, "ShardedTransferSet.X")
        n_p, k = _check_rows(self.P, "ShardedTransferSet.P")
        if n_p != n or len(self.y) != n or len(self.source) != n:
            raise ValueError(
                f"The transfer set's arrays disagree on the number of rows: X {n}, P {n_p}, y {len(self.y)}, "
                f"source {len(self.source)}. The directory is incomplete or was written by two different runs."
            )
        if k < 2:
            raise ValueError(f"P must have one column per class (at least 2); received shape {self.P.shape}.")
        check_positive(self.temperature, "temperature")

    @property
    def class_names(self) -> list[str]:
        return list(self.index.get("class_names", []))

    def load(self) -> TransferSet:
        """Everything in memory as a plain (fully validated) :class:`TransferSet`."""
        return TransferSet(
            X=np.array(self.X), P=np.array(self.P), temperature=self.temperature, y=np.array(self.y),
            source=np.array(self.source), source_names=list(self.source_names),
        )


def _open_npy(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"Missing {what}: {path} does not exist. Was the transfer set written completely?")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise ValueError(
            f"{path} is not a numeric .npy array ({exc}); object arrays (pickles) are never loaded. "
            f"Re-create the transfer set with write_transfer_shards or `explain-distill label`."
        ) from exc


def open_transfer_shards(directory: str | os.PathLike) -> ShardedTransferSet:
    """Open a transfer set written by :func:`write_transfer_shards` (or the torchrun entry point).

    ``directory`` is the one holding ``transfer.json`` (or its parent, the ``--out`` of a run).
    ``X`` and ``P`` come back as read-only ``np.memmap`` arrays; nothing is loaded yet.
    """
    directory = Path(directory)
    if not (directory / INDEX_NAME).is_file() and (directory / "transfer" / INDEX_NAME).is_file():
        directory = directory / "transfer"
    if not directory.is_dir():
        raise FileNotFoundError(f"Transfer set directory {str(directory)!r} does not exist.")
    index = read_json(directory / INDEX_NAME, what="transfer-set index")
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
        raise ValueError(
            f"{directory / INDEX_NAME} is not an explain_distill transfer-set index "
            f"(expected format {INDEX_FORMAT!r}, received {index.get('format') if isinstance(index, dict) else index!r})."
        )
    arrays = {name: _open_npy(directory / index["files"][name], f"transfer-set array {name}") for name in ("X", "P", "y")}
    n, d, k = int(index["n"]), int(index["n_features"]), int(index["n_classes"])
    expected = {"X": (n, d), "P": (n, k), "y": (n,)}
    for name, arr in arrays.items():
        if arr.shape != expected[name]:
            raise ValueError(
                f"{directory / index['files'][name]} has shape {arr.shape} but the index says {expected[name]}; "
                f"the directory mixes files from different runs. Write it again."
            )
    source_file = index["files"].get("source")
    source = _open_npy(directory / source_file, "source array") if source_file else np.zeros(n, dtype=np.int8)
    return ShardedTransferSet(
        X=arrays["X"], P=arrays["P"], temperature=float(index["temperature"]), y=arrays["y"], source=source,
        source_names=list(index.get("source_names", ["train"])), directory=directory, index=index,
    )


def write_transfer_shards(
    directory: str | os.PathLike,
    teachers: Teacher | Sequence[Teacher],
    X: Any,
    y: Any = None,
    *,
    temperature: float = 4.0,
    weights: Sequence[float] | None = None,
    rank: int = 0,
    world_size: int = 1,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    barrier: Callable[[], None] | None = None,
    info: dict[str, Any] | None = None,
) -> Path:
    """Label ``X`` and write the transfer set to ``directory`` (``X.npy``, ``P.npy``, ``y.npy``, index).

    Every rank calls it with the same arguments and its own ``rank``; rank 0 creates the files,
    each rank writes its :func:`rank_block` of rows at their offset, and rank 0 writes the index
    last.  ``barrier`` synchronises the ranks (``torch.distributed.barrier``); on one process
    leave it None.  Memory is bounded by ``chunk_rows`` whatever the size of ``X``.
    """
    teachers, w = check_teachers(teachers, weights)
    temperature = check_positive(temperature, "temperature")
    world_size = check_int(world_size, "world_size", low=1)
    rank = check_int(rank, "rank", low=0, high=world_size - 1)
    if world_size > 1 and barrier is None:
        raise ValueError(f"world_size={world_size} needs a barrier (torch.distributed.barrier) to order the writes.")
    sync = barrier or (lambda: None)
    n, d = _check_rows(X)
    k = teachers[0].n_classes
    y_arr = np.full(n, -1, dtype=np.int64) if y is None else np.asarray(y, dtype=np.int64)
    if y_arr.shape != (n,):
        raise ValueError(f"y must have one label per row of X, shape ({n},); received shape {y_arr.shape}.")
    directory = Path(directory)
    files = {"X": "X.npy", "P": "P.npy", "y": "y.npy"}
    if rank == 0:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / INDEX_NAME).unlink(missing_ok=True)  # the index marks completeness: gone until we finish
        np.lib.format.open_memmap(directory / files["X"], mode="w+", dtype=np.float32, shape=(n, d)).flush()
        np.lib.format.open_memmap(directory / files["P"], mode="w+", dtype=np.float32, shape=(n, k)).flush()
        np.save(directory / files["y"], y_arr, allow_pickle=False)
    sync()
    start, stop = rank_block(n, rank, world_size)
    t0 = time.perf_counter()
    X_out = np.lib.format.open_memmap(directory / files["X"], mode="r+")
    P_out = np.lib.format.open_memmap(directory / files["P"], mode="r+")
    chunk_rows = check_int(chunk_rows, "chunk_rows", low=1)
    for s in range(start, stop, chunk_rows):
        e = min(s + chunk_rows, stop)
        X_out[s:e] = np.asarray(X[s:e], dtype=np.float32)
    label_memmap(teachers, X, P_out, temperature=temperature, weights=w, start=start, stop=stop, chunk_rows=chunk_rows)
    X_out.flush()
    del X_out, P_out
    logger.info("rank %d/%d labelled rows %d..%d in %.2fs", rank, world_size, start, stop, time.perf_counter() - t0)
    sync()
    if rank == 0:
        write_json(
            directory / INDEX_NAME,
            {
                "format": INDEX_FORMAT,
                "n": n,
                "n_features": d,
                "n_classes": k,
                "temperature": temperature,
                "class_names": teachers[0].class_names,
                "teacher_weights": w.tolist(),
                "files": files,
                "source_names": ["train"],
                "blocks": [
                    {"rank": r, "start": a, "stop": b}
                    for r, (a, b) in enumerate(rank_block(n, r, world_size) for r in range(world_size))
                ],
                "world_size": world_size,
                "info": info or {},
            },
        )
    sync()
    return directory


# ---------------------------------------------------------------------------- DDP training
def train_teacher_ddp(
    dataset: Dataset,
    *,
    device: str | torch.device = "auto",
    seed: int = 0,
    epochs: int = 100,
    batch_size: int = 64,
    learning_rate: float = 2e-3,
    weight_decay: float = 1e-4,
    patience: int = 12,
    val_fraction: float = 0.1,
    config: dict[str, Any] | None = None,
) -> Teacher:
    """Train the built-in teacher with DistributedDataParallel; every rank returns the same teacher.

    Call it on every rank of an initialised process group (``torchrun``); without one it trains on
    this process alone (world size 1).  ``batch_size`` is per rank, the data are split with a
    ``DistributedSampler`` (reshuffled each epoch), gradients are averaged by DDP.  The validation
    score is rank 0's, broadcast, so every rank keeps the same best checkpoint and stops together.
    Fused AdamW; on CUDA also bf16 autocast, TF32, pinned memory and non-blocking copies.
    """
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be an explain_distill Dataset; received {type(dataset).__name__}.")
    epochs = check_int(epochs, "epochs", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    patience = check_int(patience, "patience", low=1)
    check_positive(learning_rate, "learning_rate")
    dist_on = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist_on else (0, 1)
    dev = resolve_device(device)
    t0 = time.perf_counter()
    torch.manual_seed(seed)  # identical initial weights on every rank (DDP also broadcasts rank 0's)

    X_tr, y_tr, X_val, y_val = validation_split(dataset, seed=seed, val_fraction=val_fraction)
    config = dict(config or default_config(dataset))
    module = build_module(config).to(dev)
    shape = tuple(dataset.input_shape) if config["arch"] == "cnn" else (dataset.n_features,)
    on_cuda = dev.type == "cuda"
    ddp = DDP(module, device_ids=[dev.index] if on_cuda else None) if dist_on else module
    train_set = TensorDataset(torch.from_numpy(X_tr).reshape(len(X_tr), *shape), torch.from_numpy(y_tr))
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=seed)
    loader = DataLoader(train_set, batch_size=batch_size, sampler=sampler, pin_memory=on_cuda)
    Xv = torch.from_numpy(X_val).reshape(len(X_val), *shape).to(dev)
    yv = torch.from_numpy(y_val).to(dev)
    opt = torch.optim.AdamW(module.parameters(), lr=learning_rate, weight_decay=weight_decay, fused=dev.type in ("cpu", "cuda"))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    loss_fn = nn.CrossEntropyLoss()
    restore_math = _enable_tf32(dev)
    min_steps = 300
    best = (math.inf, -1)
    best_state = copy.deepcopy(module.state_dict())
    val_acc_best = float("nan")
    epoch = 0
    try:
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            ddp.train()
            for xb, yb in loader:
                xb = xb.to(dev, non_blocking=True)
                yb = yb.to(dev, non_blocking=True)
                with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=on_cuda):
                    loss = loss_fn(ddp(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            sched.step()
            module.eval()
            with torch.no_grad(), torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=on_cuda):
                acc = (module(Xv).float().argmax(1) == yv).float().mean().reshape(1)
            if dist_on:
                dist.broadcast(acc, src=0)  # every rank acts on rank 0's score: one decision
            val_acc = float(acc)  # one host sync per epoch, for early stopping
            score = 1.0 - val_acc
            if score <= best[0]:
                best = (score, epoch)
                best_state = copy.deepcopy(module.state_dict())
                val_acc_best = val_acc
            elif epoch - best[1] >= patience and (epoch + 1) * len(loader) >= min_steps:
                break
    finally:
        restore_math()
    module.load_state_dict(best_state)
    module.eval()
    teacher = Teacher(module, class_names=dataset.class_names, input_shape=dataset.input_shape, device=dev, config=config)
    teacher.history = {
        "device": str(dev),
        "world_size": world,
        "epochs_run": epoch + 1,
        "best_epoch": best[1] + 1,
        "best_val_score": best[0],
        "val_accuracy": val_acc_best,
        "seed": seed,
        "seconds": round(time.perf_counter() - t0, 3),
        "arch": config["arch"],
    }
    if dist_on:
        fp = teacher.fingerprint()
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, fp)
        teacher.history["replicas_identical"] = all(g == fp for g in gathered)
        if not teacher.history["replicas_identical"]:
            logger.warning("the DDP replicas ended with different weights; the teacher of rank 0 is saved")
    logger.info("teacher trained with DDP on %d x %s in %.1fs (%d epochs)", world, dev, teacher.history["seconds"], epoch + 1)
    return teacher


# ---------------------------------------------------------------------------- one distributed job
def run_distributed(
    dataset: str,
    out: str | os.PathLike,
    *,
    train_teacher: bool = False,
    teacher: str | os.PathLike | None = None,
    inputs: str | os.PathLike | None = None,
    temperature: float = 4.0,
    epochs: int = 100,
    batch_size: int = 64,
    seed: int = 0,
    device: str = "auto",
    backend: str = "auto",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Path:
    """One process's share of a ``torchrun`` job: train the teacher with DDP (``train_teacher``) or
    load a saved one (``teacher``), then label this rank's block of the training split (or of the
    rows of the ``.npy`` file ``inputs``) into ``out/transfer``.  Returns the index path.

    Reads ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` from the environment (one process without
    them), joins the process group when there are several (``nccl`` on CUDA, ``gloo`` on the CPU,
    unless ``backend`` says otherwise) and always leaves it.
    """
    import torch.distributed as dist

    if train_teacher == (teacher is not None):
        raise ValueError(
            f"Give exactly one of train_teacher=True or teacher=DIR; received train_teacher={train_teacher!r}, "
            f"teacher={teacher!r}."
        )
    check_positive(temperature, "temperature")
    check_choice(device, "device", ("auto", "cpu", "cuda"))
    check_choice(backend, "backend", ("auto", "gloo", "nccl"))
    out = check_output_dir(out, what="--out directory", replace=False, inputs=(inputs,),
                           hint="choose a new or empty directory, or the --out of an earlier `label` run")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    want_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    dev = resolve_device(f"cuda:{local_rank}" if want_cuda else "cpu")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    backend = backend if backend != "auto" else ("nccl" if dev.type == "cuda" else "gloo")
    dist_on = world > 1
    if dist_on:
        dist.init_process_group(backend=backend, **({"device_id": dev} if dev.type == "cuda" else {}))
    try:
        data = load_dataset(dataset, seed=seed)
        if train_teacher:
            model = train_teacher_ddp(data, device=dev, seed=seed, epochs=epochs, batch_size=batch_size)
            if rank == 0:
                model.save(out / "teacher")
        else:
            model = Teacher.load(teacher, device=dev)
        if inputs is not None:
            X = _open_npy(Path(inputs), "inputs array")
            y = None
        else:
            X, y = data.X_train, data.y_train
        written = write_transfer_shards(
            out / "transfer", model, X, y, temperature=temperature, rank=rank, world_size=world,
            chunk_rows=chunk_rows, barrier=dist.barrier if dist_on else None,
            info={"dataset": data.name, "backend": backend if dist_on else None, "device": str(dev),
                  "teacher_sha256": model.fingerprint(), "teacher_history": model.history},
        )
        if rank == 0:
            record_written(out, ["transfer"] + (["teacher"] if train_teacher else []), kind="label")
        return written / INDEX_NAME
    finally:
        if dist_on and dist.is_initialized():
            dist.destroy_process_group()
