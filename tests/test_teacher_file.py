"""The user's own network from the command line: a torch.export archive or a TorchScript file, its outputs
checked against the classes first, a pickled checkpoint refused; `run --teacher` then `audit` gate it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import explain_distill as ed
from explain_distill.cli import main
from explain_distill.teacher import Teacher, network_format


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A digits CSV of pixel columns (0..1) and a small CNN trained on it outside the toolkit, shipped three ways."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = (d.data / 16.0).astype(np.float32), d.target
    root = tmp_path_factory.mktemp("shipped")
    header = ",".join([f"p{i}" for i in range(64)] + ["label"])
    rows = [",".join(f"{v:.4f}" for v in x) + f",{t}" for x, t in zip(X[:600], y[:600])]
    (root / "digits.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                              torch.nn.Flatten(), torch.nn.Linear(8 * 16, 10))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    Xt, yt = torch.tensor(X).reshape(-1, 1, 8, 8), torch.tensor(y)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(Xt), yt).backward()
        opt.step()
    net.eval()
    program = torch.export.export(net, (Xt[:2],), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(root / "net.pt2"))
    torch.jit.script(net).save(str(root / "net.pt"))
    torch.save(net, str(root / "pickled.pt"))
    torch.save(net.state_dict(), str(root / "weights.pt"))
    return root, net


def test_formats_are_recognised_and_pickles_refused(shipped):
    root, _ = shipped
    assert network_format(root / "net.pt2") == "torch.export" and network_format(root / "net.pt") == "torchscript"
    for name in ("pickled.pt", "weights.pt"):
        with pytest.raises(ValueError, match="pickled PyTorch checkpoint.*never unpickles.*torch.export.save"):
            network_format(root / name)
    (root / "old.pt").write_bytes(b"\x80\x02}q\x00.")  # a legacy (non-zip) pickle
    with pytest.raises(ValueError, match="not a zip archive.*never unpickles"):
        network_format(root / "old.pt")


@pytest.mark.parametrize("name, shape", [("net.pt2", None), ("net.pt", (1, 8, 8))])
def test_a_file_teacher_predicts_as_the_module_and_round_trips(shipped, tmp_path, name, shape):
    root, net = shipped
    teacher = Teacher.from_file(root / name, class_names=[str(i) for i in range(10)], input_shape=shape)
    assert teacher.input_shape == (1, 8, 8)  # the export records it; TorchScript needs it given
    X = np.random.default_rng(0).random((7, 64), dtype=np.float32)
    with torch.no_grad():
        expected = torch.softmax(net(torch.tensor(X).reshape(-1, 1, 8, 8)), dim=1).numpy()
    np.testing.assert_allclose(teacher.predict_proba(X), expected, atol=1e-5)
    back = Teacher.load(teacher.save(tmp_path / "t"))
    np.testing.assert_allclose(back.predict_proba(X), expected, atol=1e-5)
    assert back.network["format"] == teacher.network["format"]


def test_cli_distills_the_users_network_and_audit_gates_it(shipped, tmp_path, capsys):
    root, _ = shipped
    out = tmp_path / "out"
    assert main(["run", "--csv", str(root / "digits.csv"), "--target", "label", "--teacher", str(root / "net.pt2"),
                 "--surrogates", "tree,logistic", "--min-agreement", "0.5", "--out", str(out)]) == 0
    capsys.readouterr()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["teacher"]["accuracy"] > 0.85 and metrics["teacher_warning"] is None  # values passed as they are
    assert (out / "model" / "teacher" / "network.pt2").is_file()
    rc = main(["audit", str(out), "--json"])  # the run's own bar (0.5), no Python needed
    doc = json.loads(capsys.readouterr().out)
    assert doc["min_agreement"] == 0.5 and rc == (0 if doc["passed"] else 1)
    assert {r["surrogate"] for r in doc["results"]} == {"tree", "logistic"}


def test_cli_refuses_a_pickle_and_wrong_outputs_before_work(shipped, tmp_path, capsys):
    root, _ = shipped
    csv = str(root / "digits.csv")
    assert main(["run", "--csv", csv, "--target", "label", "--teacher", str(root / "pickled.pt"), "--out",
                 str(tmp_path / "o")]) == 2
    assert "pickled PyTorch checkpoint" in capsys.readouterr().err and not (tmp_path / "o").exists()
    three = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3)).eval()
    torch.jit.script(three).save(str(tmp_path / "three.pt"))
    assert main(["run", "--csv", csv, "--target", "label", "--teacher", str(tmp_path / "three.pt"), "--out",
                 str(tmp_path / "o")]) == 2
    assert "outputs 3 values per sample but the data 'digits' has 10 classes" in capsys.readouterr().err
    assert main(["run", "--csv", csv, "--target", "label", "--teacher", str(root / "net.pt2"), "--features", "patterns",
                 "--out", str(tmp_path / "o")]) == 2
    assert "exported or TorchScript network has none to hook" in capsys.readouterr().err
