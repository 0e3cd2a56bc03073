"""distill's stages one by one: the plan, the transfer stage, fitting, the ladders and the size choice."""

from __future__ import annotations

import math

import numpy as np
import pytest

from explain_distill import SURROGATES
from explain_distill._gate import Gate
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


def test_choose_size_takes_the_smallest_rung_that_passes():
    assert choose_size([{"passed": p} for p in (False, True, False, True)]) == 1
    assert choose_size([{"passed": False}, {"passed": None}]) is None  # None: no bar was set


def test_rungs_are_held_to_the_gate_and_a_constant_rung_fails_on_an_imbalanced_split():
    class Const:
        size_ = 1

        def __init__(self, c):
            self.c = c

        def predict(self, X):
            return np.full(len(X), self.c)

        def get_params(self):
            return {"max_leaf_nodes": 2}

    t_val = np.r_[np.zeros(93, int), np.ones(7 * 3, int)]  # 93 : 21
    X_val = np.zeros((len(t_val), 2))
    rungs = score_rungs([Const(0)], [Const(0)], "max_leaf_nodes", X_val, t_val, Gate(0.7), ["no", "yes"])
    assert rungs[0]["validation"] > 0.8 and rungs[0]["validation_interval"][0] > 0.7  # agreement alone would pass
    assert rungs[0]["passed"] is False and "class 'yes'" in rungs[0]["reason"] and rungs[0]["validation_kappa"] == 0
    loose = score_rungs([Const(0)], [Const(0)], "max_leaf_nodes", X_val, t_val, Gate(0.7, gate="agreement"), ["no", "yes"])
    assert loose[0]["passed"] is True
    assert choose_size(rungs) is None


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
    rungs = score_rungs(models, models, "max_leaf_nodes", stage.X_val, t_val, Gate(0.5), iris.class_names)
    assert all(0 <= r["validation_interval"][0] <= r["validation"] <= r["validation_interval"][1] for r in rungs)
    ladders, choice = fit_ladders(fitter, fitted, stage.X_val)
    chosen = choice["tree"]["chosen"]
    assert chosen == choose_size(choice["tree"]["rungs"]) and chosen is not None
    assert fitted["tree"] is ladders["tree"][chosen]  # the family's surrogate is its chosen rung


def test_network_surrogates_spend_a_sample_budget_on_large_transfer_sets(iris, iris_teacher, monkeypatch):
    import importlib

    fitting = importlib.import_module("explain_distill.distill.fitting")  # ed.distill is the function

    monkeypatch.setattr(fitting, "SAMPLE_BUDGET", 500)  # iris: 112 rows x 40 epochs = 4,480 passes
    plan = _plan(iris_teacher, iris, surrogates=["soft_tree", "tree"], frontier=False)
    stage = transfer_stage(plan, iris, transfer=None, queries=None)
    fitter = Fitter(plan, iris, stage.transfer, {}, {})
    est = fitter.configured("soft_tree")
    assert est.epochs == -(-500 // len(stage.transfer)) == 5  # 112 rows: 5 epochs of 500 passes
    assert fitter.budget["epochs"]["soft_tree"] == {"default": 40, "used": 5}
    assert "epochs" not in fitter.budget["epochs"].get("tree", {})  # families without epochs are untouched
    plan = _plan(iris_teacher, iris, surrogates=["soft_tree"], frontier=False, params={"soft_tree": {"epochs": 30}})
    assert Fitter(plan, iris, stage.transfer, {}, {}).configured("soft_tree").epochs == 30  # the user's choice is kept


def test_default_queries_are_sized_to_the_data_and_the_decision_is_recorded(iris, iris_teacher, monkeypatch):
    import importlib

    from explain_distill.distill.plan import DEFAULT_QUERIES, QUERY_CELLS, sized_queries

    # up to QUERY_CELLS / 20,000 features the default stays; 784 pixels get a quarter, same proportions
    assert sized_queries(64) == (dict(DEFAULT_QUERIES), None)
    q, note = sized_queries(784)
    assert sum(q.values()) == note["used"] <= QUERY_CELLS // 784 < note["default"] == sum(DEFAULT_QUERIES.values())
    assert q["jitter"] == q["mixup"] and note["n_features"] == 784
    # through the stage: iris has 4 features, so a budget of 4 x 300 cells leaves 300 queries
    plan_mod = importlib.import_module("explain_distill.distill.plan")
    monkeypatch.setattr(plan_mod, "QUERY_CELLS", 1200)
    plan = _plan(iris_teacher, iris, surrogates=["tree"], frontier=False)
    stage = transfer_stage(plan, iris, transfer=None, queries=DEFAULT_QUERIES)
    assert len(stage.transfer) - stage.transfer.n_real == 300 == stage.queries["used"]
    # queries the user passes are kept as given, even when equal to the default
    stage = transfer_stage(plan, iris, transfer=None, queries=dict(DEFAULT_QUERIES))
    assert len(stage.transfer) - stage.transfer.n_real == 20000 and stage.queries is None


def test_feature_columns_are_mapped_in_blocks_equal_to_one_pass(digits, digits_teacher, monkeypatch):
    import importlib

    ts_mod = importlib.import_module("explain_distill.distill.transfer_set")
    monkeypatch.setattr(ts_mod, "FEATURE_BLOCK", 300)  # digits: 1,437 rows in 5 blocks
    plan = _plan(digits_teacher, digits, surrogates=["tree@patterns"], frontier=False)
    stage = transfer_stage(plan, digits, transfer=None, queries=None)
    cols = feature_columns(plan, digits, stage.transfer, {})
    assert len(stage.transfer) > 300
    np.testing.assert_allclose(cols["patterns"], plan.maps["patterns"].transform(stage.transfer.X), rtol=1e-6, atol=1e-6)


def test_soft_trees_keep_the_sample_passes_of_the_default_queries_when_they_are_sized_down(iris, iris_teacher,
                                                                                          monkeypatch):
    import importlib

    from explain_distill.distill.plan import DEFAULT_QUERIES

    monkeypatch.setattr(importlib.import_module("explain_distill.distill.plan"), "QUERY_CELLS", 1200)  # 300 queries
    plan = _plan(iris_teacher, iris, surrogates=["soft_tree", "student"], frontier=False)
    stage = transfer_stage(plan, iris, transfer=None, queries=DEFAULT_QUERIES)
    fitter = Fitter(plan, iris, stage.transfer, {}, {}, queries=stage.queries)
    rows, full = len(stage.transfer), stage.transfer.n_real + 20000
    assert fitter.configured("soft_tree").epochs == min(-(-10 * full // rows), -(-fitting_budget() // rows))
    assert fitter.configured("student").epochs == 12  # the student keeps its epochs
    assert Fitter(plan, iris, stage.transfer, {}, {}).configured("soft_tree").epochs == 10  # queries not sized: as before


def fitting_budget():
    from explain_distill.distill.fitting import SAMPLE_BUDGET

    return SAMPLE_BUDGET
