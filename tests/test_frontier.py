"""The fidelity-size frontier: ladders fitted once, sizes chosen on a validation split, never the test split."""

from __future__ import annotations

import json

import numpy as np
import pytest

import explain_distill as ed
from explain_distill._gate import Gate, agreement_stats, decide
from explain_distill._stats import wilson_interval
from explain_distill.analysis import frontier_report, frontier_verdict, reasons_report
from explain_distill.surrogates import SoftDecisionTree, SoftLabelTreeClassifier

LADDERS = {"tree": [4, 8, 16, 32, 64], "rules": [3, 10, 30]}


@pytest.fixture(scope="module")
def front_run(digits, digits_teacher):
    return ed.distill(digits_teacher, digits, surrogates=["tree", "rules", "logistic"], queries={"jitter": 2000},
                      min_agreement=0.7, ladders=LADDERS, seed=0, gate="agreement")  # per-class: tests/test_certify.py


def test_validation_rows_are_held_out_of_the_transfer_set_and_the_test_split(front_run, digits):
    val = np.asarray(front_run.frontier["validation"]["rows"])
    assert front_run.frontier["validation"]["n"] == len(val) == pytest.approx(0.2 * len(digits.X_train), abs=1)
    real = front_run.transfer.X[front_run.transfer.source == 0]
    assert len(real) == len(digits.X_train) - len(val)
    held = {row.tobytes() for row in digits.X_train[val]}
    assert not any(row.tobytes() in held for row in real)  # no validation row is fitted on


def test_the_choice_is_the_smallest_size_clearing_the_bar_on_validation(front_run, digits, digits_teacher):
    val = np.asarray(front_run.frontier["validation"]["rows"])
    t_val = digits_teacher.predict(digits.X_train[val])
    for name in ("tree", "rules"):
        models = front_run.ladders[name]
        info = front_run.frontier["families"][name]
        sizes = [m.size_ for m in models]
        assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
        verdicts = []
        for m, rung in zip(models, info["rungs"]):
            pred = m.predict(digits.X_train[val])
            k = int(np.sum(pred == t_val))
            assert rung["validation"] == pytest.approx(k / len(val))
            assert rung["validation_interval"][0] == pytest.approx(wilson_interval(k, len(val))[0])
            verdict = decide(agreement_stats(t_val, pred, digits.n_classes), Gate(0.7, gate="agreement"), digits.class_names)
            assert rung["passed"] == verdict.passed and rung["reason"] == verdict.reason  # the one gate decides
            verdicts.append(verdict.passed)
        passing = [i for i, ok in enumerate(verdicts) if ok]
        assert info["chosen"] == (passing[0] if passing else None)
        if passing:
            assert front_run.surrogates[name] is models[passing[0]]  # the family's surrogate is the chosen size
    assert front_run.frontier["families"]["tree"]["chosen"] is not None  # digits: some tree clears 0.7


def test_frontier_report_scores_every_size_on_the_test_split(front_run, digits):
    rep = frontier_report(front_run)
    t_pred = front_run.teacher.predict(digits.X_test)
    for name, rows in rep["families"].items():
        assert [r["size"] for r in rows] == [m.size_ for m in front_run.ladders[name]]
        for r, m in zip(rows, front_run.ladders[name]):
            k = int(np.sum(m.predict(digits.X_test) == t_pred))
            assert r["fidelity"] == pytest.approx(k / len(t_pred))
            assert r["interval"] == pytest.approx(list(wilson_interval(k, len(t_pred))))
            unit = "leaves" if name == "tree" else "rules"
            assert r[unit] == r["size"]
    assert "smallest readable model that clears 0.700 on the validation split" in rep["verdict"]
    doc = ed.run_analyses(front_run, robustness=False, attributions=False).to_json()
    json.dumps(doc, allow_nan=False)
    assert {"size", "leaves", "fidelity", "interval"} <= set(doc["frontier"]["tree"][0])
    assert doc["frontier_summary"]["min_agreement"] == 0.7


def test_a_size_set_by_the_user_is_kept(digits, digits_teacher):
    run = ed.distill(digits_teacher, digits, surrogates=["tree"], params={"tree": {"max_depth": 3}}, queries=None,
                     min_agreement=0.5, ladders={"tree": [4, 16]}, seed=0)
    assert run.frontier["families"]["tree"]["explicit"] is True
    assert run.surrogates["tree"].max_depth == 3 and run.surrogates["tree"] not in run.ladders["tree"]
    assert run.surrogates["tree"].max_leaf_nodes is None  # its default size (best-first to 64 leaves) gave way


def test_no_bar_and_no_passing_size_are_said_plainly(digits, digits_teacher):
    run = ed.distill(digits_teacher, digits, surrogates=["tree"], queries=None, min_agreement=0.999,
                     ladders={"tree": [4, 8]}, seed=0)
    rep = frontier_report(run)
    assert rep["chosen"]["tree"] is None and rep["verdict"].startswith("No readable model clears 0.999")
    assert run.surrogates["tree"].max_leaf_nodes == 64  # the configured model stays (best-first, 64 leaves)
    free = {**rep, "min_agreement": None}
    assert frontier_verdict(free).startswith("No bar set")


def test_frontier_off_with_a_precomputed_transfer_set_unless_asked(digits_run, digits, digits_teacher):
    run = ed.distill(digits_teacher, digits, surrogates=["tree"], transfer=digits_run.transfer)
    assert run.ladders == {} and frontier_report(run) is None
    asked = ed.distill(digits_teacher, digits, surrogates=["tree"], transfer=digits_run.transfer, frontier=True,
                       ladders={"tree": [4, 8]})
    assert asked.frontier["validation"]["n"] > 0 and len(asked.transfer) < len(digits_run.transfer)


def test_ladder_arguments_are_checked(digits, digits_teacher):
    with pytest.raises(ValueError, match="not a readable family"):
        ed.distill(digits_teacher, digits, surrogates=["tree"], ladders={"logistic": [1]}, queries=None)
    with pytest.raises(ValueError, match="min_agreement must be in"):
        ed.distill(digits_teacher, digits, surrogates=["tree"], min_agreement=2, queries=None)


def test_tree_ladder_equals_separate_best_first_fits(digits, digits_run):
    X, P = digits_run.transfer.X[:3000], digits_run.transfer.P[:3000]
    big = SoftLabelTreeClassifier(max_depth=None, max_leaf_nodes=64, random_state=0).fit(X, P)
    for k, small in zip([4, 16, 64], big.ladder_([4, 16, 64])):
        ref = SoftLabelTreeClassifier(max_depth=None, max_leaf_nodes=k, random_state=0).fit(X, P)
        assert small.size_ == ref.size_ == k
        np.testing.assert_array_equal(small.predict_proba(digits.X_test), ref.predict_proba(digits.X_test))
    with pytest.raises(ValueError, match="max_leaf_nodes"):
        SoftLabelTreeClassifier(max_depth=3).fit(X, P).ladder_([4])


def test_soft_tree_ladder_cuts_the_fitted_tree(digits, digits_run):
    X, P = digits_run.transfer.X[:2000], digits_run.transfer.P[:2000]
    tree = SoftDecisionTree(depth=4, epochs=3, device="cpu", random_state=0).fit(X, P)
    full, one, two = tree.ladder_([4, 1, 2])
    np.testing.assert_allclose(full.predict_proba(digits.X_test), tree.predict_proba(digits.X_test), rtol=1e-9, atol=1e-12)
    assert (one.size_, two.size_) == (2, 4)
    # a depth-1 cut predicts, at each of its two leaves, the mass-weighted mixture of the 8 leaves below
    m = tree.leaf_mass_[:8]
    expected = (m[:, None] * tree.leaf_distributions_[:8]).sum(axis=0) / m.sum()
    np.testing.assert_allclose(one.leaf_distributions_[0], expected, rtol=1e-9)
    np.testing.assert_allclose(one.inner_weight_, tree.inner_weight_[:1])
    assert np.isclose(one.leaf_mass_.sum(), tree.leaf_mass_.sum())


def test_frontier_figure_and_report_section(front_run, tmp_path):
    from explain_distill.viz.frontier import frontier_figure

    analyses = ed.run_analyses(front_run, robustness=False, attributions=False)
    fig = frontier_figure(analyses.frontier["families"], min_agreement=0.7)
    ax = fig.axes[0]
    assert len([ln for ln in ax.get_lines() if ln.get_label() in ("tree (leaves)", "rules (rules)")]) == 2
    legend = ax.get_legend()
    assert legend.get_bbox_to_anchor().y0 < ax.get_window_extent().y0  # below the axes, not over the lines
    html = ed.build_report(front_run, tmp_path / "r", analyses=analyses, min_agreement=0.7).read_text()
    assert html.index('id="frontier"') < html.index('id="summary"')  # the report leads with it
    assert "The smallest readable model that clears 0.700 on the validation split" in html and 'id="frontier-table"' in html


def test_reasons_flag_same_answers_different_reasons():
    attribution = {"methods": {"a": "IntegratedGradients", "b": "FeatureAblation"},
                   "agreement": {"a": {"spearman": 0.08, "top_k": 0.1}, "b": {"spearman": 0.8, "top_k": 0.7}}}
    robustness = {"sigmas": [0.0, 0.25, 0.5], "noise": {"a": {"fidelity": [0.97, 0.42, 0.3]}, "b": {"fidelity": [0.95, 0.93, 0.8]}}}
    rep = reasons_report({"a": 0.97, "b": 0.95, "c": 0.5}, attribution, robustness)
    assert rep["a"]["flags"] == ["reasons", "robustness"] and "Spearman 0.08" in rep["a"]["flag"]
    assert "from 0.970 to 0.420 under noise sigma 0.25" in rep["a"]["flag"]
    assert rep["b"]["flags"] == [] and rep["b"]["flag"] is None and rep["b"]["noise_fidelity"] == 0.93
    assert rep["b"]["attribution_method"] == "FeatureAblation"
    assert rep["c"]["flags"] == [] and rep["c"]["attribution_spearman"] is None  # low fidelity: nothing to flag


def test_reasons_flag_is_calibrated_between_a_random_model_and_the_teacher_under_noise():
    def flags(sp, floor, ceiling):
        attribution = {"methods": {"a": "IntegratedGradients"}, "reference": {"teacher": {"floor": floor, "ceiling": ceiling}},
                       "agreement": {"a": {"spearman": sp, "against": "teacher", "k": 10}}}
        return reasons_report({"a": 0.95}, attribution)["a"]

    low = flags(0.15, 0.10, 0.90)  # just above what random models reach: the reasons differ
    assert low["flags"] == ["reasons"] and "random linear models reach 0.10" in low["flag"]
    assert low["attribution_calibrated"] == pytest.approx(0.0625)
    assert flags(0.15, -0.05, 0.60)["flags"] == []  # well above chance when chance is near 0
    assert flags(0.45, -0.05, 0.97)["flags"] == []  # 0.45 on digits' images: not flagged any more
    assert flags(0.05, 0.02, 0.15)["flags"] == [] and flags(0.05, 0.02, 0.15)["attribution_calibrated"] is None  # cannot judge


def test_cli_param_flags_are_checked_before_training(tmp_path, monkeypatch, capsys):
    import explain_distill.teacher as teacher_module
    from explain_distill.cli import main

    monkeypatch.setattr(teacher_module, "train_teacher", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    for argv, needle in (
        (["--param", "tree.depth=3"], "tree has no parameter 'depth'"),
        (["--param", "tree=3"], "NAME.KEY=VALUE"),
        (["--param", "forest.max_depth=3"], "'forest' is not among the surrogates"),
        (["--surrogates", "tree", "--max-rules", "10"], "'rules' is not among the surrogates"),
    ):
        assert main(["run", "--dataset", "iris", "--out", str(tmp_path / "o"), *argv]) == 2
        assert needle in capsys.readouterr().err


def test_cli_min_agreement_picks_and_metrics_carry_the_frontier(tmp_path, monkeypatch, iris_teacher):
    import explain_distill.teacher as teacher_module
    from explain_distill.cli import main

    monkeypatch.setattr(teacher_module, "train_teacher", lambda data, **kw: iris_teacher)
    out = tmp_path / "o"
    assert main(["run", "--dataset", "iris", "--surrogates", "tree,rules", "--min-agreement", "0.8",
                 "--param", "rules.max_rules=4", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["analysis"]["frontier"]) == {"tree", "rules"}
    assert m["analysis"]["frontier_summary"]["min_agreement"] == 0.8
    saved = ed.load(out, device="cpu")
    assert saved.surrogates["rules"].max_rules == 4
    assert saved.frontier["families"]["rules"]["explicit"] is True
    # re-rendering a saved run keeps its frontier (ladders are not saved, their figures are)
    assert main(["report", str(out)]) == 0
    assert 'id="frontier"' in (out / "index.html").read_text()


def test_frontier_figure_keeps_size_labels_apart():
    from explain_distill.viz.frontier import frontier_figure

    def rows(sizes, unit):
        return [{"size": s, unit: s, "fidelity": 0.5 + 0.001 * s, "interval": [0.4, 0.6]} for s in sizes]

    fig = frontier_figure({"tree": rows([4, 8, 16, 32, 64], "leaves"), "rules": rows([5, 10, 20, 30, 50], "rules")})
    labels = [int(t.get_text()) for t in fig.axes[0].get_xticklabels()]
    assert 32 in labels and 30 not in labels and 10 in labels and 8 in labels  # 30 would print over 32
    assert all(b / a >= 1.2 for a, b in zip(labels, labels[1:]))
