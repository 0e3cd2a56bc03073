"""The command line, called in-process through ``explain_distill.cli.main``.

One real ``run`` on iris (teacher trained); the other run tests reuse the session's iris teacher
by patching ``train_teacher`` so they stay fast.  Interrupting real subprocesses is in
tests/test_crash_safety.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import explain_distill.teacher as teacher_module
from explain_distill import DATASETS
from explain_distill.cli import main

DOCUMENTED = {"teacher": {"accuracy", "params"}, "surrogate": {"accuracy", "fidelity", "params"}}


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "iris"
    import contextlib
    import io

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rc = main(["run", "--dataset", "iris", "--surrogates", "tree,logistic", "--out", str(out), "--seed", "0"])
    return rc, out, stdout.getvalue(), stderr.getvalue()


@pytest.fixture
def fast_teacher(monkeypatch, iris_teacher):
    """Skip training: `run` gets the session's iris teacher."""
    monkeypatch.setattr(teacher_module, "train_teacher", lambda data, **kw: iris_teacher)


def test_run_writes_report_metrics_and_model(real_run):
    rc, out, stdout, stderr = real_run
    assert rc == 0, stderr
    assert stdout.strip() == str(out / "index.html")  # the path on stdout, nothing else
    assert (out / "index.html").is_file() and (out / "index.html").stat().st_size > 0
    m = json.loads((out / "metrics.json").read_text())
    assert DOCUMENTED["teacher"] <= set(m["teacher"])
    assert set(m["surrogates"]) == {"tree", "logistic"}
    for name, row in m["surrogates"].items():
        assert DOCUMENTED["surrogate"] <= set(row), name
        assert 0.0 <= row["fidelity"] <= 1.0 and 0.0 <= row["accuracy"] <= 1.0 and row["params"] > 0
    assert m["teacher"]["accuracy"] >= 0.85 and m["teacher"]["params"] > 0
    assert (out / "model" / "run.json").is_file()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".iris.")]  # no temp left


def test_metrics_run_block_records_seed_versions_and_hashes(real_run):
    import explain_distill as ed

    _, out, _, _ = real_run
    m = json.loads((out / "metrics.json").read_text())
    run = m["run"]
    assert run["seed"] == 0 and run["temperature"] == 4.0
    assert {"explain_distill", "torch", "numpy", "sklearn", "python"} <= set(run["versions"])
    assert run["versions"]["explain_distill"] == ed.__version__
    saved = ed.load(out, device="cpu")
    assert run["data_sha256"] == saved.dataset.fingerprint() == m["data"]["sha256"]
    assert run["teacher_sha256"] == saved.teacher.fingerprint()
    assert len(run["teacher_sha256"]) == 64


def test_audit_and_report_on_the_saved_run(real_run, capsys):
    _, out, _, _ = real_run
    assert main(["audit", str(out), "--min-agreement", "0.0", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] is True and {r["surrogate"] for r in doc["results"]} == {"tree", "logistic"}
    assert main(["audit", str(out), "--min-agreement", "1.0"]) == 1  # the lower bound never reaches 1
    capsys.readouterr()
    assert main(["audit", str(out), "--min-agreement", "1.5"]) == 2
    assert "--min-agreement must be in [0, 1]" in capsys.readouterr().err
    assert main(["audit", str(out), "--min-agreement", "0.5", "--surrogate", "forest"]) == 2
    assert "not in this run" in capsys.readouterr().err
    again = out.parent / "rerendered"
    assert main(["report", str(out), "--out", str(again)]) == 0
    assert capsys.readouterr().out.strip() == str(again / "index.html")
    assert (again / "index.html").is_file() and (again / "metrics.json").is_file()


def test_unknown_dataset_exits_2_listing_the_available_ones(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "--dataset", "imagenet"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "imagenet" in err and all(name in err for name in DATASETS)


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["audit", "--help"], ["report", "--help"], ["label", "--help"]])
def test_help_on_every_command(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: explain-distill")
    assert (argv[0] if argv[0] != "--help" else "{run,audit,report,label}") in out


def test_missing_run_directory_is_a_usage_error(tmp_path, capsys):
    assert main(["audit", str(tmp_path / "none"), "--min-agreement", "0.9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("explain-distill audit: error:") and "does not exist" in err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback


def test_csv_needs_target(tmp_path, capsys):
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,y\n" + "\n".join(f"{i},{i % 3},{i % 2}" for i in range(30)))
    assert main(["run", "--csv", str(csv), "--out", str(tmp_path / "o")]) == 2
    assert "--target" in capsys.readouterr().err
    assert main(["run", "--csv", str(csv), "--target", "label", "--out", str(tmp_path / "o")]) == 2
    assert "'a', 'b', 'y'" in capsys.readouterr().err  # lists the columns it has
    assert not (tmp_path / "o").exists()


def test_existing_output_replaced_only_when_the_new_run_is_complete(tmp_path, fast_teacher, monkeypatch, capsys):
    import explain_distill.report.html as report

    out = tmp_path / "iris"
    assert main(["run", "--dataset", "iris", "--surrogates", "tree,logistic", "--out", str(out)]) == 0
    previous = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()

    def broken(*args, **kwargs):
        raise ValueError("report failed half-way")

    real = report.write_report
    monkeypatch.setattr(report, "write_report", broken)
    assert main(["run", "--dataset", "iris", "--surrogates", "tree", "--out", str(out)]) == 2
    assert "report failed half-way" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iris"]  # no temp dir left

    monkeypatch.setattr(report, "write_report", real)
    assert main(["run", "--dataset", "iris", "--surrogates", "tree", "--out", str(out)]) == 0
    assert (out / "index.html").read_bytes() != previous["index.html"]
    assert json.loads((out / "metrics.json").read_text())["surrogates"].keys() == {"tree"}
    assert not (out / "model" / "surrogates" / "logistic.json").exists()  # replaced as a whole, not merged


def test_keyboard_interrupt_exits_130_with_one_line(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(teacher_module, "train_teacher", interrupted)
    assert main(["run", "--dataset", "iris", "--out", str(tmp_path / "o")]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "explain-distill: interrupted; nothing was written over the previous output."
    assert not (tmp_path / "o").exists()


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(FileNotFoundError):
        main(["--debug", "audit", str(tmp_path / "none"), "--min-agreement", "0.9"])


def test_hostile_csv_names_reach_metrics_unchanged(tmp_path, monkeypatch, capsys):
    """Names from a user's file flow through to metrics.json literally (escaping is the report's job)."""
    import torch

    import explain_distill as ed

    hostile_col = "<img src=x onerror=alert(1)>"
    hostile_cls = ["</script><b>", "{{ 7*7 }}"]
    rng = np.random.default_rng(0)
    rows = [f"{rng.normal():.3f},{rng.normal():.3f},{hostile_cls[i % 2]}" for i in range(60)]
    csv = tmp_path / "h.csv"
    csv.write_text(f'"{hostile_col}",plain,label\n' + "\n".join(rows))

    def tiny(data, **kw):
        torch.manual_seed(0)
        return ed.Teacher(torch.nn.Linear(data.n_features, data.n_classes), class_names=data.class_names, device="cpu")

    monkeypatch.setattr(teacher_module, "train_teacher", tiny)
    out = tmp_path / "o"
    assert main(["run", "--csv", str(csv), "--target", "label", "--surrogates", "tree", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"]["class_names"] == sorted(hostile_cls)
    saved = ed.load(out, teacher_module=torch.nn.Linear(2, 2), device="cpu")
    assert saved.dataset.feature_names == [hostile_col, "plain"]
