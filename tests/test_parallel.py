"""explain_distill.parallel: rank blocks, memory-mapped labelling, the on-disk transfer set, torchrun (explain-distill label)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from explain_distill.parallel import (
    ShardedTransferSet,
    label_memmap,
    run_distributed,
    open_transfer_shards,
    rank_block,
    write_transfer_shards,
)
from explain_distill.cli import main
from explain_distill.transfer import TransferSet, soft_labels

ROOT = Path(__file__).resolve().parents[1]
T = 4.0


@pytest.mark.parametrize("n", [0, 1, 5, 1347])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_rank_blocks_cover_every_row_once_in_order(n, world):
    blocks = [rank_block(n, r, world) for r in range(world)]
    rows = [i for a, b in blocks for i in range(a, b)]
    assert rows == list(range(n))
    sizes = [b - a for a, b in blocks]
    assert max(sizes) - min(sizes) <= 1


def test_rank_block_rejects_a_rank_outside_the_world():
    with pytest.raises(ValueError, match="rank"):
        rank_block(10, 2, 2)


def test_label_memmap_equals_in_memory(iris, iris_teacher, tmp_path):
    X = iris.X_train
    np.save(tmp_path / "X.npy", X)
    Xm = np.load(tmp_path / "X.npy", mmap_mode="r")
    # chunks smaller than, and not a divisor of, the teacher's batch: boundaries must not matter
    P = label_memmap(iris_teacher, Xm, tmp_path / "P.npy", temperature=T, chunk_rows=17)
    assert isinstance(P, np.memmap)
    expected = iris_teacher.predict_proba(X, temperature=T)
    np.testing.assert_allclose(np.load(tmp_path / "P.npy", mmap_mode="r"), expected, atol=1e-6, rtol=0)
    # in-memory output, only a block of rows
    out = np.zeros_like(expected)
    label_memmap(iris_teacher, Xm, out, temperature=T, start=30, stop=80, chunk_rows=16)
    np.testing.assert_allclose(out[30:80], expected[30:80], atol=1e-6, rtol=0)
    assert not out[:30].any() and not out[80:].any()


def test_label_memmap_names_the_bad_chunk(iris, iris_teacher, tmp_path):
    X = np.array(iris.X_train)
    X[50, 3] = np.nan
    np.save(tmp_path / "X.npy", X)
    with pytest.raises(ValueError, match=r"NaN.*rows 40\.\.79"):
        label_memmap(iris_teacher, np.load(tmp_path / "X.npy", mmap_mode="r"), temperature=T, chunk_rows=40)


def test_label_memmap_rejects_a_wrong_output(iris, iris_teacher):
    X = iris.X_train[:20]
    with pytest.raises(ValueError, match=r"out must have shape \(20, 3\)"):
        label_memmap(iris_teacher, X, np.zeros((20, 2), dtype=np.float32))
    read_only = np.zeros((20, 3), dtype=np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        label_memmap(iris_teacher, X, read_only)
    with pytest.raises(ValueError, match="2-D"):
        label_memmap(iris_teacher, X[0])


def test_write_then_open_gives_memmaps_equal_to_the_in_memory_set(iris, iris_teacher, tmp_path):
    from explain_distill.surrogates import SURROGATES

    out = write_transfer_shards(tmp_path / "ts", iris_teacher, iris.X_train, iris.y_train, temperature=T, chunk_rows=50)
    ts = open_transfer_shards(tmp_path / "ts")
    assert isinstance(ts, ShardedTransferSet) and isinstance(ts, TransferSet)
    assert isinstance(ts.X, np.memmap) and isinstance(ts.P, np.memmap)
    assert not ts.X.flags.writeable
    assert ts.directory == out and ts.class_names == iris_teacher.class_names
    assert len(ts) == len(iris.X_train) and ts.temperature == T and ts.counts() == {"train": len(iris.X_train)}
    np.testing.assert_array_equal(ts.X, iris.X_train)
    np.testing.assert_array_equal(ts.y, iris.y_train)
    np.testing.assert_allclose(ts.P, soft_labels(iris_teacher, iris.X_train, temperature=T), atol=1e-6, rtol=0)
    # a surrogate fitted on the memory-mapped set is the one fitted on the arrays in memory
    a = SURROGATES["tree"](max_depth=3, random_state=0).fit(ts.X, ts.P)
    mem = ts.load()
    assert type(mem) is TransferSet and not isinstance(mem.X, np.memmap)
    b = SURROGATES["tree"](max_depth=3, random_state=0).fit(mem.X, mem.P)
    np.testing.assert_array_equal(a.predict(iris.X_test), b.predict(iris.X_test))


def test_open_rejects_missing_foreign_and_pickled(iris, iris_teacher, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_transfer_shards(tmp_path / "nowhere")
    d = write_transfer_shards(tmp_path / "ts", iris_teacher, iris.X_train[:50], temperature=T)
    index = json.loads((d / "transfer.json").read_text())
    (d / "transfer.json").write_text(json.dumps({**index, "format": "something/else"}))
    with pytest.raises(ValueError, match="not an explain_distill transfer-set index"):
        open_transfer_shards(d)
    (d / "transfer.json").write_text(json.dumps(index))
    np.save(d / "y.npy", np.array([{"a": 1}] * 50, dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="never loaded"):
        open_transfer_shards(d)
    np.save(d / "y.npy", np.zeros(49, dtype=np.int64))
    with pytest.raises(ValueError, match="index says"):
        open_transfer_shards(d)


def test_several_ranks_need_a_barrier(iris, iris_teacher, tmp_path):
    with pytest.raises(ValueError, match="barrier"):
        write_transfer_shards(tmp_path, iris_teacher, iris.X_train[:10], rank=0, world_size=2)


def test_label_command_reports_a_missing_teacher(tmp_path, capsys):
    code = main(["label", "--dataset", "iris", "--out", str(tmp_path / "o"), "--teacher", str(tmp_path / "none"), "--device", "cpu"])
    assert code == 2
    err = capsys.readouterr().err
    assert "explain-distill label: error:" in err and "none" in err
    with pytest.raises(SystemExit) as exc:
        main(["label", "--dataset", "iris", "--out", str(tmp_path / "o")])  # neither --teacher nor --train-teacher
    assert exc.value.code == 2


def test_run_distributed_validates_at_the_door(tmp_path):
    with pytest.raises(ValueError, match="exactly one of train_teacher=True or teacher=DIR"):
        run_distributed("iris", tmp_path, device="cpu")
    with pytest.raises(ValueError, match="exactly one"):
        run_distributed("iris", tmp_path, train_teacher=True, teacher=tmp_path, device="cpu")
    with pytest.raises(ValueError, match="Unknown backend 'mpi'"):
        run_distributed("iris", tmp_path, train_teacher=True, backend="mpi", device="cpu")
    with pytest.raises(ValueError, match="temperature"):
        run_distributed("iris", tmp_path, train_teacher=True, temperature=0.0, device="cpu")


def test_one_process_label_command_writes_the_set(iris_teacher, tmp_path, capsys, monkeypatch):
    import explain_distill as ed

    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    iris_teacher.save(tmp_path / "teacher")
    code = main(["label", "--dataset", "iris", "--out", str(tmp_path / "o"), "--teacher", str(tmp_path / "teacher"),
                 "--device", "cpu", "--temperature", str(T)])
    assert code == 0
    index = capsys.readouterr().out.strip()
    assert index == str(tmp_path / "o" / "transfer" / "transfer.json")
    ts = open_transfer_shards(tmp_path / "o")
    data = ed.load_dataset("iris", seed=0)
    np.testing.assert_allclose(ts.P, soft_labels(iris_teacher, data.X_train, temperature=T), atol=1e-6, rtol=0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def torchrun_job(tmp_path_factory):
    """One 2-process gloo job on the CPU: DDP-train a teacher on wine (133 training rows: uneven blocks), label."""
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}", "-m", "explain_distill.cli", "label", "--dataset", "wine", "--out", str(out),
        "--train-teacher", "--epochs", "3", "--device", "cpu", "--temperature", str(T), "--chunk-rows", "50",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return out, proc


def test_torchrun_two_processes_label_like_one(torchrun_job):
    import explain_distill as ed
    from explain_distill.teacher import Teacher

    out, proc = torchrun_job
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("transfer.json")
    ts = open_transfer_shards(out)
    data = ed.load_dataset("wine", seed=0)
    n = len(data.X_train)
    assert n % 2 == 1  # the blocks are uneven: padding would show up here
    assert ts.index["world_size"] == 2
    assert [(b["start"], b["stop"]) for b in ts.index["blocks"]] == [rank_block(n, r, 2) for r in range(2)]
    history = ts.index["info"]["teacher_history"]
    assert history["world_size"] == 2 and history["replicas_identical"] is True
    np.testing.assert_array_equal(ts.X, data.X_train)
    np.testing.assert_array_equal(ts.y, data.y_train)
    teacher = Teacher.load(out / "teacher", device="cpu")
    assert teacher.fingerprint() == ts.index["info"]["teacher_sha256"]
    np.testing.assert_allclose(ts.P, teacher.predict_proba(data.X_train, temperature=T), atol=1e-6, rtol=0)


def test_distill_takes_the_memory_mapped_set(iris, iris_teacher, tmp_path):
    import explain_distill as ed
    from explain_distill.transfer import build_transfer_set

    write_transfer_shards(tmp_path / "ts", iris_teacher, iris.X_train, iris.y_train, temperature=T)
    ts = open_transfer_shards(tmp_path / "ts")
    on_disk = ed.distill(iris_teacher, iris, surrogates=["tree"], temperature=T, transfer=ts, seed=0)
    assert on_disk.transfer is ts and isinstance(on_disk.transfer.X, np.memmap)
    in_memory = ed.distill(
        iris_teacher, iris, surrogates=["tree"], temperature=T, seed=0,
        transfer=build_transfer_set(iris_teacher, iris.X_train, iris.y_train, temperature=T),
    )
    np.testing.assert_array_equal(
        on_disk.surrogates["tree"].predict(iris.X_test), in_memory.surrogates["tree"].predict(iris.X_test)
    )
    assert on_disk.metrics["surrogates"]["tree"]["fidelity"] == in_memory.metrics["surrogates"]["tree"]["fidelity"]
