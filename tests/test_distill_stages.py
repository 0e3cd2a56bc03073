"""distill's stages one by one: the plan, the transfer stage, fitting, the ladders and the size choice."""

from __future__ import annotations

import math

import numpy as np
import pytest

from explain_distill import SURROGATES
from explain_distill.distill.fitting import Fitter, fit_families
from explain_distill.distill.ladders import choose_size, fit_ladder, fit_ladders, score_rungs
from explain_distill.distill.plan import VALIDATION_FRACTION, make_plan
from explain_distill.distill.transfer_set import feature_columns, transfer_stage

PLAN_DEFAULTS = dict(surrogates=None, temperature=4.0, params=None, weights=None, seed=0, min_agreement=None,
                     frontier=True, ladders=None, features="auto", feature_layer=None)


def _plan(teacher, data, **kw):
    return make_plan(teacher, data, **{**PLAN_DEFAULTS, **kw})


def test_plan_decides_names_families_and_checks_arguments(iris, iris_teacher):
    plan = _plan(iris_teacher, iris, surrogates=["tree", "logistic", "rules"], min_agreement=0.8)
    assert plan.names == ["tree", "logistic", "rules"] and plan.families == ["tree", "rules"]
    assert plan.min_agreement == 0.8 and plan.teacher is iris_teacher and plan.weights.tolist() == [1.0]
    assert plan.sizes("tree") == list(SURROGATES["tree"].size_ladder)
    with pytest.raises(ValueError, match="not among the requested"):
        _plan(iris_teacher, iris, surrogates=["tree"], params={"rules": {"max_rules": 3}})
    with pytest.raises(ValueError, match="min_agreement"):
        _plan(iris_teacher, iris, surrogates=["tree"], min_agreement=1.5)
    with pytest.raises(ValueError, match="not a readable family"):
        _plan(iris_teacher, iris, surrogates=["tree", "logistic"], ladders={"logistic": [2, 4]})
    assert _plan(iris_teacher, iris, surrogates=["tree"], frontier=False).families == []


def test_transfer_stage_holds_validation_rows_out_of_the_transfer_set(iris, iris_teacher):
    plan = _plan(iris_teacher, iris, surrogates=["tree"])
    stage = transfer_stage(plan, iris, transfer=None, queries={"jitter": 50})
    n = len(iris.X_train)
    assert len(stage.val_rows) == math.ceil(VALIDATION_FRACTION * n)
    assert stage.transfer.n_real == n - len(stage.val_rows) and len(stage.transfer) == stage.transfer.n_real + 50
    np.testing.assert_array_equal(stage.X_val, iris.X_train[stage.val_rows])
    fit_rows = np.setdiff1d(np.arange(n), stage.val_rows)
    np.testing.assert_array_equal(stage.transfer.X[: stage.transfer.n_real], iris.X_train[fit_rows])  # the rest, in order
    assert feature_columns(plan, iris, stage.transfer, {}) == {}


def test_choose_size_takes_the_smallest_rung_clearing_the_bar():
    rungs = [{"validation_interval": [lo, 1.0]} for lo in (0.5, 0.91, 0.89, 0.95)]
    assert choose_size(rungs, 0.9) == 1
    assert choose_size(rungs, 0.96) is None
    assert choose_size(rungs, None) is None


def test_fitting_and_ladders_choose_and_replace_the_family_model(iris, iris_teacher):
    plan = _plan(iris_teacher, iris, surrogates=["tree", "logistic"], min_agreement=0.5)
    stage = transfer_stage(plan, iris, transfer=None, queries=None)
    timings: dict = {}
    fitter = Fitter(plan, iris, stage.transfer, {}, timings)
    fitted = fit_families(fitter)
    assert list(fitted) == ["tree", "logistic"] and "fit_tree_s" in timings
    assert list(fitted["tree"].feature_names_in_) == iris.feature_names  # named by the fitter
    models = fit_ladder(fitter, "tree", fitted["tree"], [2, 3, 4, 64])
    sizes = [m.size_ for m in models]
    assert sizes == sorted(set(sizes)) and sizes[0] == 2  # smallest first, unreachable sizes collapse
    t_val = iris_teacher.predict(stage.X_val)
    rungs = score_rungs(models, models, "max_leaf_nodes", stage.X_val, t_val)
    assert all(0 <= r["validation_interval"][0] <= r["validation"] <= r["validation_interval"][1] for r in rungs)
    ladders, choice = fit_ladders(fitter, fitted, stage.X_val)
    chosen = choice["tree"]["chosen"]
    assert chosen == choose_size(choice["tree"]["rungs"], 0.5) and chosen is not None
    assert fitted["tree"] is ladders["tree"][chosen]  # the family's surrogate is its chosen rung
