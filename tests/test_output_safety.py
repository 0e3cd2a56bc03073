"""Never lose a user's file: every writer refuses a path that holds anything it did not write.

Each reproduction of the data-loss report is here: ``--out`` pointed at a folder with the user's
CSV, at an existing file, at ``.``, at the home directory; a stray file inside an earlier run;
the same rule for ``report``, ``label``, ``Distillation.save`` and ``build_report``; and every
argument checked before the teacher trains.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import explain_distill as ed
import explain_distill.teacher as teacher_module
from explain_distill._io import MANIFEST, OutputPathError, atomic_directory, check_output_dir
from explain_distill.cli import main


def _csv(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("a,b,label\n" + "\n".join(f"{i},{(i * 7) % 5},{i % 2}" for i in range(60)) + "\n")
    return path


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def no_training(monkeypatch):
    """Fail loudly if a refused run gets as far as training a teacher."""

    def trained(*args, **kwargs):
        raise AssertionError("the teacher was trained before the arguments were checked")

    monkeypatch.setattr(teacher_module, "train_teacher", trained)


@pytest.fixture
def fast_teacher(monkeypatch, iris_teacher):
    monkeypatch.setattr(teacher_module, "train_teacher", lambda data, **kw: iris_teacher)


# ----------------------------------------------------------------------------- run --out
def test_out_holding_the_users_csv_and_readme_is_refused_before_any_work(tmp_path, no_training, capsys):
    sandbox = tmp_path / "sandbox"
    csv = _csv(sandbox / "my.csv")
    (sandbox / "README.txt").write_text("keep\n")
    before = _snapshot(sandbox)
    rc = main(["run", "--csv", str(csv), "--target", "label", "--out", str(sandbox)])
    err = capsys.readouterr().err
    assert rc == 2
    assert str(sandbox) in err and "my.csv" in err  # names the path and what is in it
    assert _snapshot(sandbox) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sandbox"]  # no temporary or hidden leftovers


def test_out_that_is_an_existing_file_is_refused_and_left_alone(tmp_path, no_training, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    assert main(["run", "--dataset", "iris", "--out", str(notes)]) == 2
    err = capsys.readouterr().err
    assert "notes.txt" in err and "existing file" in err
    assert notes.read_text() == "my notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # no .notes.txt.old-NNNN


@pytest.mark.parametrize("where", [".", ".."])
def test_out_dot_and_parents_of_the_working_directory_are_refused(tmp_path, monkeypatch, no_training, capsys, where):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["run", "--dataset", "iris", "--out", where]) == 2
    assert "working directory" in capsys.readouterr().err


def test_home_directory_is_refused_even_when_empty(tmp_path, monkeypatch, no_training, capsys):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    assert main(["run", "--dataset", "iris", "--out", str(home)]) == 2
    assert "home directory" in capsys.readouterr().err


def test_out_holding_the_input_csv_deeper_down_names_the_input(tmp_path):
    csv = _csv(tmp_path / "project" / "data" / "my.csv")
    with pytest.raises(OutputPathError, match="holds the input"):
        check_output_dir(tmp_path / "project", inputs=(csv,))


def test_new_and_empty_directories_are_accepted(tmp_path):
    assert check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    (tmp_path / "empty").mkdir()
    check_output_dir(tmp_path / "empty")
    with atomic_directory(tmp_path / "empty", kind="run") as tmp:
        (tmp / "index.html").write_text("x")
    manifest = json.loads((tmp_path / "empty" / MANIFEST).read_text())
    assert manifest["kind"] == "run" and manifest["files"] == ["index.html"]


def test_symlink_out_is_refused(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(OutputPathError, match="symbolic link"):
        check_output_dir(tmp_path / "link")


def test_earlier_run_with_a_stray_file_is_refused_then_replaced_once_it_is_gone(tmp_path, fast_teacher, capsys):
    out = tmp_path / "iris"
    assert main(["run", "--dataset", "iris", "--surrogates", "tree", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"report written to {out / 'index.html'}" in err and ".tmp-" not in err  # the final path, not the temp
    (out / "my-notes.txt").write_text("mine")
    (out / "model" / "extra.csv").write_text("mine too")
    before = _snapshot(out)
    assert main(["run", "--dataset", "iris", "--surrogates", "tree", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "my-notes.txt" in err and "model/extra.csv" in err and "earlier explain_distill output" in err
    assert _snapshot(out) == before  # the stray files and the earlier run survive
    (out / "my-notes.txt").unlink()
    (out / "model" / "extra.csv").unlink()
    assert main(["run", "--dataset", "iris", "--surrogates", "logistic", "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["surrogates"].keys() == {"logistic"}


def test_a_file_added_while_the_run_works_is_never_deleted(tmp_path):
    out = tmp_path / "run"
    with atomic_directory(out, kind="run") as tmp:
        (tmp / "index.html").write_text("first")
    with pytest.raises(OutputPathError, match="late.txt"):
        with atomic_directory(out, kind="run") as tmp:
            (tmp / "index.html").write_text("second")
            (out / "late.txt").write_text("the user's")  # appears during the work
    assert (out / "late.txt").read_text() == "the user's" and (out / "index.html").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".run.")] == []


# ----------------------------------------------------------------------------- other writers
def test_report_out_refuses_a_foreign_directory_and_in_place_keeps_the_run(tmp_path, fast_teacher, capsys):
    run = tmp_path / "run"
    assert main(["run", "--dataset", "iris", "--surrogates", "tree", "--out", str(run)]) == 0
    foreign = tmp_path / "docs"
    foreign.mkdir()
    (foreign / "paper.tex").write_text("mine")
    capsys.readouterr()
    assert main(["report", str(run), "--out", str(foreign)]) == 2
    assert "paper.tex" in capsys.readouterr().err and (foreign / "paper.tex").read_text() == "mine"
    assert sorted(p.name for p in foreign.iterdir()) == ["paper.tex"]
    model = _snapshot(run / "model")
    assert main(["report", str(run)]) == 0  # in place: only index.html is rewritten
    assert _snapshot(run / "model") == model
    (run / "scratch.txt").write_text("mine")
    assert main(["report", str(run)]) == 2 and "scratch.txt" in capsys.readouterr().err


def test_save_and_build_report_follow_the_same_rule(tmp_path, digits_run):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.pdf").write_text("mine")
    with pytest.raises(OutputPathError, match="thesis.pdf"):
        digits_run.save(foreign)
    with pytest.raises(OutputPathError, match="thesis.pdf"):
        ed.build_report(digits_run, foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.pdf"]
    # an earlier saved run is replaced whole: a surrogate that is no longer there leaves no file behind
    saved = tmp_path / "saved"
    digits_run.save(saved)
    assert {p.name for p in (saved / "surrogates").iterdir()} >= {"tree.json", "logistic.json"}
    smaller = ed.Distillation(teacher=digits_run.teacher, dataset=digits_run.dataset,
                              surrogates={"tree": digits_run.surrogates["tree"]}, metrics=digits_run.metrics)
    smaller.save(saved)
    assert {p.name for p in (saved / "surrogates").iterdir()} == {"tree.json", "tree.safetensors"}
    assert ed.load(saved, device="cpu").surrogates.keys() == {"tree"}
    # build_report into a saved run adds index.html and records it; a second render replaces only that
    ed.build_report(digits_run, saved)
    ed.build_report(digits_run, saved)
    assert "index.html" in json.loads((saved / MANIFEST).read_text())["files"]
    check_output_dir(saved)  # still entirely ours


def test_label_out_refuses_a_foreign_directory_before_labelling(tmp_path, iris_teacher, capsys):
    teacher_dir = tmp_path / "teacher"
    iris_teacher.save(teacher_dir)
    out = tmp_path / "labels"
    out.mkdir()
    (out / "data.csv").write_text("mine")
    rc = main(["label", "--dataset", "iris", "--teacher", str(teacher_dir), "--out", str(out), "--device", "cpu"])
    assert rc == 2 and "data.csv" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["data.csv"]
    (out / "data.csv").unlink()
    assert main(["label", "--dataset", "iris", "--teacher", str(teacher_dir), "--out", str(out), "--device", "cpu"]) == 0
    # a second label run into its own earlier output is accepted
    assert main(["label", "--dataset", "iris", "--teacher", str(teacher_dir), "--out", str(out), "--device", "cpu"]) == 0
    assert (out / "transfer" / "transfer.json").is_file()


# ----------------------------------------------------------------------------- arguments first
@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--surrogates", "tree,forest"], "forest"),
        (["--surrogates", "tree,tree"], "repeat"),
        (["--temperature", "-1"], "--temperature must be > 0"),
        (["--temperature", "nan"], "--temperature must be a finite number"),
        (["--min-agreement", "1.5"], "--min-agreement must be in [0, 1]"),
        (["--device", "cuda"], "no CUDA GPU"),
        (["--missing", "drop"], "only apply with --csv"),
    ],
)
def test_every_argument_is_checked_before_training(tmp_path, no_training, capsys, argv, needle):
    import torch

    if argv[:2] == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("this machine has a GPU, so --device cuda is valid here")
    rc = main(["run", "--dataset", "iris", "--out", str(tmp_path / "o"), *argv])
    assert rc == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
