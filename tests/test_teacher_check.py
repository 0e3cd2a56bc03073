"""A broken teacher is never certified: its accuracy is compared with trivial baselines first."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import explain_distill as ed
from explain_distill.analysis import teacher_check
from explain_distill.cli import main


class _AlwaysFirst(nn.Module):
    """A 'trained' network that answers class 0 whatever it sees (a broken teacher)."""

    def __init__(self, n_features: int, n_classes: int) -> None:
        super().__init__()
        self.lin = nn.Linear(n_features, n_classes)
        with torch.no_grad():
            self.lin.weight.zero_()
            self.lin.bias.copy_(torch.tensor([3.0] + [0.0] * (n_classes - 1)))

    def forward(self, x):
        return self.lin(x)


@pytest.fixture(scope="module")
def wine():
    return ed.load_dataset("wine", seed=0)


@pytest.fixture(scope="module")
def broken_run(wine):
    teacher = ed.Teacher(_AlwaysFirst(wine.n_features, wine.n_classes), class_names=wine.class_names, device="cpu")
    return ed.distill(teacher, wine, surrogates=["tree", "logistic"], queries=None, seed=0)


def test_a_broken_teacher_is_perfectly_copied_but_flagged(broken_run, wine):
    # the surrogates agree with it completely: fidelity alone would certify it
    assert all(row["fidelity"] == 1.0 for row in broken_run.fidelity())
    check = teacher_check(broken_run.teacher, wine)
    counts = np.bincount(wine.y_train)
    assert check.majority == pytest.approx(np.mean(wine.y_test == counts.argmax()))
    assert check.teacher_accuracy <= check.majority
    assert check.logistic is not None and check.logistic > 0.9
    assert check.warning and "majority-class baseline" in check.warning and "scaled" in check.warning


def test_a_good_teacher_passes_the_check(iris_teacher, iris):
    check = teacher_check(iris_teacher, iris)
    assert check.warning is None and check.ok
    assert check.teacher_accuracy > check.majority


def test_far_below_logistic_is_flagged_too(iris):
    class _Half(nn.Module):  # right on half the classes' territory, wrong elsewhere
        def forward(self, x):
            out = torch.zeros(len(x), 3)
            out[:, 0] = x[:, 2] * -4.0  # petal length small -> setosa, else class 0 never wins
            out[:, 2] = 0.1
            return out

    teacher = ed.Teacher(_Half(), class_names=iris.class_names, device="cpu")
    check = teacher_check(teacher, iris)
    assert check.teacher_accuracy > check.majority  # beats the majority class...
    assert check.warning and "far below a plain logistic regression" in check.warning  # ...but not logistic


def test_analyses_metrics_report_and_audit_carry_the_warning(broken_run, tmp_path, capsys):
    from explain_distill.cli import metrics_document

    analyses = ed.run_analyses(broken_run, attributions=False, robustness=False)
    assert analyses.teacher is not None and analyses.teacher.warning
    doc = metrics_document(broken_run, analyses=analyses)
    assert doc["teacher_warning"] == analyses.teacher.warning
    assert doc["teacher"]["baselines"]["logistic"] == analyses.teacher.logistic
    assert doc["analysis"]["teacher_check"]["warning"] == analyses.teacher.warning
    html = ed.build_report(broken_run, tmp_path / "report", analyses=analyses).read_text()
    assert 'id="teacher-warning"' in html and "Do not trust these explanations yet" in html


def test_audit_cli_reports_reason_and_teacher_warning(broken_run, tmp_path, capsys, monkeypatch):
    import importlib

    distill_module = importlib.import_module("explain_distill.distill")  # the attribute is the function

    run_dir = tmp_path / "run"
    broken_run.save(run_dir)
    real_load = distill_module.load
    module = _AlwaysFirst(broken_run.dataset.n_features, broken_run.dataset.n_classes)
    monkeypatch.setattr(distill_module, "load", lambda d, **kw: real_load(d, teacher_module=module, **kw))
    assert main(["audit", str(run_dir), "--min-agreement", "0.9", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] is True and doc["teacher_warning"]
    for r in doc["results"]:
        assert r["reason"].startswith("lower end ") and "clears the bar 0.900" in r["reason"]
        assert r["teacher_warning"] == doc["teacher_warning"]
    rc = main(["audit", str(run_dir), "--min-agreement", "0.9", "--json", "--require-teacher-better-than-baseline"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 1 and doc["passed"] is False
    assert all("does not beat its baselines" in r["reason"] for r in doc["results"])
    assert main(["audit", str(run_dir), "--min-agreement", "0.9"]) == 0
    text = capsys.readouterr().out
    assert "WARNING: The teacher's test accuracy" in text and "PASS: lower end" in text


def test_audit_reason_names_the_lower_end_and_the_bar(digits_run):
    res = ed.audit(digits_run.teacher, digits_run.surrogates["tree"], digits_run.dataset.X_test, min_agreement=0.99)
    lo = res.intervals["agreement"][0]
    assert not res.passed and res.reason.startswith(f"lower end {lo:.3f} of the 95% interval is below the bar 0.990")
    with pytest.raises(ValueError, match="needs teacher_baseline"):
        ed.audit(digits_run.teacher, digits_run.surrogates["tree"], digits_run.dataset.X_test,
                 require_teacher_better_than_baseline=True)


def test_audit_help_prints_a_plain_percent_sign(capsys):
    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    out = capsys.readouterr().out
    assert "95%" in out and "95%%" not in out
