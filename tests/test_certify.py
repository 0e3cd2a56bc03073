"""Fidelity a constant cannot pass: the constant baseline, kappa, balanced agreement and the per-class gate,
on an imbalanced table built the way people's tables are; and the teacher check on the Python path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score

import explain_distill as ed
from explain_distill._gate import Gate, agreement_stats, cohen_kappa, decide


# ---------------------------------------------------------------------------- the statistics
def test_kappa_and_balanced_agreement_equal_sklearn_and_the_kappa_interval_matches_a_bootstrap():
    rng = np.random.default_rng(0)
    t = rng.choice(4, size=600, p=[0.55, 0.25, 0.15, 0.05])
    s = np.where(rng.random(600) < 0.8, t, rng.choice(4, size=600))
    stats = agreement_stats(t, s, 4)
    assert stats.kappa == pytest.approx(cohen_kappa_score(t, s))
    assert stats.balanced == pytest.approx(balanced_accuracy_score(t, s))  # the teacher's classes as truth
    assert stats.constant_baseline == pytest.approx(np.mean(t == 0)) and stats.constant_class == 0
    boot = [cohen_kappa_score(t[i], s[i]) for i in rng.integers(0, 600, size=(1500, 600))]
    lo, hi = stats.kappa_interval
    assert lo < stats.kappa < hi
    assert (hi - lo) / 2 == pytest.approx(1.96 * np.std(boot), rel=0.15)  # the large-sample variance holds
    assert stats.balanced_interval[0] < stats.balanced < stats.balanced_interval[1]


def test_a_constant_has_kappa_zero_and_fails_the_gate_naming_the_class():
    t = np.r_[np.zeros(910, int), np.ones(90, int)]
    const = np.zeros(1000, int)
    stats = agreement_stats(t, const, 2)
    assert stats.agreement == stats.constant_baseline == 0.91 and stats.kappa == 0.0
    assert cohen_kappa(const, const, 2) == (0.0, (0.0, 0.0))  # both constant: no information either way
    verdict = decide(stats, Gate(0.85), ["stays", "churns"])
    assert not verdict.passed and verdict.failed_classes == ["churns"]
    assert "class 'churns'" in verdict.reason and "90 of the 1000 rows" in verdict.reason
    assert decide(stats, Gate(0.85, gate="agreement")).passed  # the old rule is kept as an option, and is fooled
    assert not decide(stats, Gate(0.95, gate="agreement")).passed


def test_small_classes_are_not_held_to_the_floor_and_the_gate_checks_its_arguments():
    t = np.r_[np.zeros(990, int), np.ones(8, int), np.full(2, 2)]  # classes under 5% / 10 rows say too little
    verdict = decide(agreement_stats(t, np.zeros(1000, int), 3), Gate(0.95))
    assert verdict.passed and verdict.failed_classes == []
    with pytest.raises(ValueError, match="gate must be one of"):
        Gate(0.9, gate="strict")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bar"):
        Gate(1.2)


# ---------------------------------------------------------------------------- an imbalanced table
class _Rule(torch.nn.Module):
    """A teacher with a known rule on scaled inputs: class 1 when tenure < 12 months on a monthly contract."""

    def __init__(self, tenure_cut: float) -> None:
        super().__init__()
        self.cut = tenure_cut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = 10.0 * (self.cut - x[:, 0]) + 10.0 * x[:, 2] - 9.0
        return torch.stack([torch.zeros_like(z), z], dim=1)


@pytest.fixture(scope="module")
def churn():
    rng = np.random.default_rng(0)
    n = 3000
    tenure = rng.integers(0, 72, n).astype(float)              # integer column
    senior = (rng.random(n) < 0.16).astype(float)               # 0/1 column
    monthly = (rng.random(n) < 0.55).astype(float)              # one level of a contract column
    charges = np.round(rng.normal(65, 30, n), 2)               # real column
    X = np.column_stack([tenure, senior, monthly, charges])
    y = ((tenure < 12) & (monthly == 1)).astype(int)
    y = np.where(rng.random(n) < 0.03, 1 - y, y)               # a little label noise
    data = ed.Dataset.from_arrays(X, y, feature_names=["tenure", "senior", "monthly", "charges"],
                                  class_names=["stays", "churns"], seed=0)
    mean, scale = np.asarray(data.scaling["mean"]), np.asarray(data.scaling["scale"])
    teacher = ed.Teacher(_Rule(float((11.5 - mean[0]) / scale[0])), class_names=["stays", "churns"])
    share = float(np.mean(teacher.predict(data.X_test) == 1))
    assert 0.05 < share < 0.15  # an imbalanced teacher, as on a real churn table
    return data, teacher


class _Constant:
    """A surrogate that predicts one class for every row."""

    classes_ = np.array([0, 1])
    n_features_in_ = 4

    def predict(self, X):
        return np.zeros(len(X), dtype=np.int64)


def test_a_constant_surrogate_fails_audit_on_the_imbalanced_table(churn):
    data, teacher = churn
    const = _Constant()
    gate = ed.audit(teacher, const, data.X_test, min_agreement=0.8)
    assert gate.metrics["agreement"] > 0.85 and gate.intervals["agreement"][0] > 0.8  # agreement alone would pass
    assert not gate.passed and gate.failed_classes == ["churns"] and "class 'churns'" in gate.reason
    assert gate.metrics["kappa"] == 0.0 and gate.metrics["constant_baseline"] == gate.metrics["agreement"]
    assert ed.audit(teacher, const, data.X_test, min_agreement=0.8, gate="agreement").passed
    assert not gate.teacher_checked and "not checked against trivial baselines" in str(gate)


def test_the_smallest_faithful_model_is_never_one_that_ignores_a_class(churn):
    data, teacher = churn
    result = ed.distill(teacher, data, surrogates=["tree", "rules", "logistic"], queries=None, min_agreement=0.8, seed=0)
    val_rows = np.asarray(result.frontier["validation"]["rows"])
    t_val = teacher.predict(data.X_train[val_rows])
    for name, models in result.ladders.items():
        info = result.frontier["families"][name]
        for model, rung in zip(models, info["rungs"]):
            pred = model.predict(data.X_train[val_rows])
            if np.all(pred == 0):
                assert rung["passed"] is False and "churns" in rung["reason"]
            ignored = np.mean(pred[t_val == 1] == 1) < 0.3
            if ignored:
                assert rung["passed"] is False
        chosen = info["chosen"]
        if chosen is not None:
            assert info["rungs"][chosen]["passed"]
            row = result.metrics["surrogates"][name]
            assert row["per_class"][1]["agreement"] > 0.3
    row = result.metrics["surrogates"]["tree"]
    assert {"constant_baseline", "kappa", "kappa_interval", "balanced_agreement", "balanced_interval", "gate"} <= set(row)
    assert row["constant_baseline"] == pytest.approx(result.metrics["constant"]["agreement"])


# ---------------------------------------------------------------------------- the teacher check on every path
def test_distill_names_a_broken_teacher_in_python(churn):
    data, _ = churn
    torch.manual_seed(0)

    class Flip(torch.nn.Module):  # predicts the wrong class: below the majority baseline
        def forward(self, x):
            return torch.stack([x[:, 0] * 0 - 1.0, x[:, 0] * 0 + 1.0], dim=1)

    broken = ed.Teacher(Flip(), class_names=["stays", "churns"])
    result = ed.distill(broken, data, surrogates=["tree"], queries=None, seed=0)
    assert result.teacher_warning and "majority-class baseline" in result.teacher_warning
    text = repr(result)
    assert text.splitlines()[1].strip().startswith("WARNING: The teacher's test accuracy")
    assert "WARNING" in result._repr_html_()
    gate = ed.audit(result, "tree")
    assert gate.teacher_checked and gate.teacher_warning == result.teacher_warning and "WARNING" in str(gate)
    assert gate.min_agreement == 0.95  # the run set no bar: ed.audit's default


def test_audit_a_run_uses_its_bar_and_saved_teacher_check(churn, tmp_path):
    data, teacher = churn
    result = ed.distill(teacher, data, surrogates=["tree"], queries=None, min_agreement=0.7, seed=0)
    assert result.teacher_check is not None and result.teacher_warning is None
    gate = ed.audit(result, "tree")
    assert gate.min_agreement == 0.7 and gate.n == len(data.X_test)
    result.save(tmp_path / "run")
    back = ed.load(tmp_path / "run", teacher_module=_Rule(teacher.module.cut))
    assert back.min_agreement == 0.7 and back.gate == "per_class"
    assert back.teacher_check.to_json() == result.teacher_check.to_json()
    with pytest.raises(ValueError, match="not a surrogate of this run"):
        ed.audit(result, "forest")


# ---------------------------------------------------------------------------- targets and ids
def _penguins(tmp_path, n=342):
    rng = np.random.default_rng(0)
    lines = ["rownames,species,bill_length_mm,body_mass_g,island"]
    for i in range(n):
        lines.append(f"{i + 1},{['Adelie', 'Gentoo', 'Chinstrap'][i % 3]},{rng.normal(44, 5):.1f},"
                     f"{int(rng.normal(4200, 800))},{['Biscoe', 'Dream'][i % 2]}")
    path = tmp_path / "penguins.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("target", ["bill_length_mm", "body_mass_g"])
def test_a_continuous_target_is_refused_before_training(tmp_path, target, capsys):
    from explain_distill.cli import main

    path = _penguins(tmp_path)
    with pytest.raises(ValueError, match=f"the target column '{target}' is numeric with .* distinct values .* Bin it"):
        ed.Dataset.from_csv(path, target=target, keep_columns=["rownames"])
    assert main(["run", "--csv", str(path), "--target", target, "--keep-column", "rownames",
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "looks continuous" in err and "--max-classes" in err and not (tmp_path / "out").exists()
    y = np.round(np.random.default_rng(1).normal(size=400), 3)  # from arrays too
    with pytest.raises(ValueError, match="y is numeric"):
        ed.Dataset.from_arrays(np.zeros((400, 2)), y)


def test_a_categorical_numeric_target_and_max_classes_are_accepted(tmp_path):
    X = np.random.default_rng(0).normal(size=(600, 3))
    y = np.arange(600) % 25  # 25 whole-number classes, 24 rows each: classes, not a measurement
    assert ed.Dataset.from_arrays(X, y).n_classes == 25
    data = ed.Dataset.from_csv(_penguins(tmp_path), target="body_mass_g", keep_columns=["rownames"], max_classes=400)
    assert data.n_classes > 100
    with pytest.raises(ValueError, match="max_classes=2"):
        ed.Dataset.from_csv(_penguins(tmp_path), target="species", keep_columns=["rownames"], max_classes=2)


def test_a_numeric_row_id_is_refused_unless_kept(tmp_path):
    path = _penguins(tmp_path)
    with pytest.raises(ValueError, match=r"column 'rownames' holds a different number on every one of its 342 rows, "
                                         r"increasing with the line \(1, 2, 3, \.\.\.\).*keep_columns=\['rownames'\]"):
        ed.Dataset.from_csv(path, target="species")
    data = ed.Dataset.from_csv(path, target="species", keep_columns=["rownames"])
    assert "rownames" in data.feature_names
    with pytest.raises(ValueError, match="not columns of penguins.csv"):
        ed.Dataset.from_csv(path, target="species", keep_columns=["row_id"])


def test_a_constant_fails_when_the_small_class_is_under_5_percent_but_has_rows_enough():
    """91/9 table, a teacher that gives the small class 27 of 750 rows (3.6%): the constant answer agrees on
    96.4% and has kappa 0; the small class, missed on all 27 rows, fails it (it passed while classes under 5%
    of the rows went unchecked)."""
    t = np.r_[np.zeros(723, int), np.ones(27, int)]
    stats = agreement_stats(t, np.zeros(750, int), 2)
    assert stats.agreement == pytest.approx(0.964) and stats.kappa == 0.0
    verdict = decide(stats, Gate(0.9), ["stays", "leaves"])
    assert not verdict.passed and verdict.failed_classes == ["leaves"]
    assert "27 of the 750 rows" in verdict.reason
    # a surrogate that reproduces the small class passes on the same rows
    good = t.copy()
    good[:5] = 1  # five false alarms on the large class
    assert decide(agreement_stats(t, good, 2), Gate(0.9)).passed
