"""Fidelity report: divergences and truth metrics against reference implementations, structure on a real run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from explain_distill._stats import wilson_interval
from explain_distill.analysis import FidelityReport, fidelity_report
from explain_distill.analysis.fidelity import divergences, truth_metrics


def _random_proba(rng, n, k, sharp=1.0):
    z = rng.normal(size=(n, k)) * sharp
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_divergences_match_scipy(rng):
    P = _random_proba(rng, 40, 5, 2.0)
    Q = _random_proba(rng, 40, 5, 2.0)
    d = divergences(P, Q)
    np.testing.assert_allclose(d["kl"], entropy(P, Q, axis=1), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(d["jensen_shannon"], jensenshannon(P, Q, axis=1) ** 2, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(d["total_variation"], 0.5 * np.abs(P - Q).sum(axis=1))
    np.testing.assert_allclose(d["brier"], ((P - Q) ** 2).sum(axis=1))
    assert np.all(d["jensen_shannon"] <= np.log(2) + 1e-12)


def test_divergences_zero_for_identical_and_finite_with_zeros():
    P = np.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    d = divergences(P, P)
    for v in d.values():
        np.testing.assert_allclose(v, 0.0, atol=1e-12)
    Q = np.array([[0.0, 1.0, 0.0], [0.2, 0.3, 0.5]])
    d = divergences(P, Q)
    assert np.isfinite(d["kl"]).all() and d["kl"][0] > 20  # q = 0 where p = 1: clipped, huge but finite
    assert d["total_variation"][0] == pytest.approx(1.0)
    assert d["jensen_shannon"][0] == pytest.approx(np.log(2))


@settings(max_examples=40, deadline=None)
@given(
    st.integers(2, 6).flatmap(
        lambda k: st.tuples(
            st.just(k),
            st.lists(st.integers(0, k - 1), min_size=1, max_size=60),
            st.lists(st.integers(0, k - 1), min_size=1, max_size=60),
        )
    )
)
def test_truth_metrics_equal_sklearn(args):
    k, a, b = args
    n = min(len(a), len(b))
    y, p = np.array(a[:n]), np.array(b[:n])
    names = [f"c{i}" for i in range(k)]
    got = truth_metrics(y, p, names)
    labels = list(range(k))
    prec, rec, f1, sup = precision_recall_fscore_support(y, p, labels=labels, zero_division=0)
    mp, mr, mf, _ = precision_recall_fscore_support(y, p, labels=labels, average="macro", zero_division=0)
    assert got["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert got["precision_macro"] == pytest.approx(mp)
    assert got["recall_macro"] == pytest.approx(mr)
    assert got["f1_macro"] == pytest.approx(mf)
    for i, row in enumerate(got["per_class"]):
        assert row["class"] == names[i]
        assert row["precision"] == pytest.approx(prec[i])
        assert row["recall"] == pytest.approx(rec[i])
        assert row["f1"] == pytest.approx(f1[i])
        assert row["support"] == sup[i]


@pytest.fixture(scope="module")
def tree_report(digits_run):
    d = digits_run.dataset
    est = digits_run.surrogates["tree"]
    from explain_distill.analysis import _tree_view

    P = digits_run.teacher.predict_proba(d.X_test)
    rep = fidelity_report(
        P,
        est.predict_proba(d.X_test),
        y_true=d.y_test,
        class_names=d.class_names,
        X=d.X_test,
        view=_tree_view(est, d),
        name="tree",
        params=est.n_params_,
        teacher_params=digits_run.teacher.n_params,
        max_cases=10,
        feature_names=d.feature_names,
    )
    return rep, P, est.predict_proba(d.X_test)


def test_report_agrees_with_distillation_and_confusion(tree_report, digits_run):
    rep, P, Q = tree_report
    assert isinstance(rep, FidelityReport)
    m = digits_run.metrics["surrogates"]["tree"]
    assert rep.agreement == pytest.approx(m["fidelity"])
    k = int(np.sum(P.argmax(1) == Q.argmax(1)))
    assert rep.interval == pytest.approx(wilson_interval(k, rep.n))
    np.testing.assert_array_equal(rep.confusion, confusion_matrix(P.argmax(1), Q.argmax(1), labels=range(P.shape[1])))
    assert np.trace(rep.confusion) == k
    assert sum(c["n"] for c in rep.per_class) == rep.n
    for c, row in zip(range(P.shape[1]), rep.per_class):
        mask = P.argmax(1) == c
        if mask.any():
            assert row["agreement"] == pytest.approx(np.mean(Q.argmax(1)[mask] == c))
    assert rep.kl == pytest.approx(np.mean(entropy(P, np.clip(Q, 1e-12, None), axis=1)), rel=1e-5)
    assert rep.truth["accuracy"] == pytest.approx(m["accuracy"])
    assert rep.compression["ratio"] == pytest.approx(digits_run.teacher.n_params / digits_run.surrogates["tree"].n_params_)


def test_disagreements_are_the_cases_where_argmax_differs(tree_report, digits_run):
    rep, P, Q = tree_report
    t, s = P.argmax(1), Q.argmax(1)
    dis = rep.disagreements
    assert dis["n"] == int(np.sum(t != s)) > 0
    assert len(dis["indices"]) == min(10, dis["n"])
    assert np.all(t[dis["indices"]] != s[dis["indices"]])
    np.testing.assert_array_equal(dis["teacher"], t[dis["indices"]])
    np.testing.assert_array_equal(dis["surrogate"], s[dis["indices"]])
    np.testing.assert_allclose(dis["X"], digits_run.dataset.X_test[dis["indices"]])
    assert np.all(np.diff(dis["teacher_proba"]) <= 1e-12)  # most confident teacher first
    assert "disagree" in dis["where"]


def test_leaves_cover_every_sample_least_faithful_first(tree_report):
    rep, P, Q = tree_report
    assert rep.leaves, "a tree surrogate must get per-leaf fidelity"
    assert sum(l["coverage"] for l in rep.leaves) == rep.n
    upper = [l["interval"][1] for l in rep.leaves]
    assert upper == sorted(upper)  # least faithful first, by the Wilson upper bound
    agreed = sum(round(l["agreement"] * l["coverage"]) for l in rep.leaves)
    assert agreed == int(np.trace(rep.confusion))
    assert all(isinstance(l["rule"], str) and l["rule"] for l in rep.leaves)
    assert all(l["agreement"] < rep.agreement for l in rep.least_faithful_leaves)


def test_to_json_is_strict_json(tree_report):
    rep, _, _ = tree_report
    doc = rep.to_json()
    text = json.dumps(doc, allow_nan=False)
    for key in ("kl", "jensen_shannon", "total_variation", "brier", "per_class", "confusion", "leaves", "disagreements"):
        assert key in doc
    assert json.loads(text)["agreement"] == pytest.approx(rep.agreement)


def test_empty_class_gives_nan_agreement_and_none_in_json():
    P = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.1, 0.9, 0.0]])
    Q = np.array([[0.6, 0.4, 0.0], [0.3, 0.7, 0.0], [0.2, 0.8, 0.0]])
    rep = fidelity_report(P, Q, class_names=["a", "b", "c"])
    assert rep.agreement == pytest.approx(2 / 3)
    assert np.isnan(rep.per_class[2]["agreement"]) and rep.per_class[2]["n"] == 0
    assert rep.to_json()["per_class"][2]["agreement"] is None
    assert rep.leaves is None and rep.disagreements["X"] is None and rep.disagreements["where"] is None


def test_bad_inputs_are_rejected_with_reasons():
    P = np.array([[0.9, 0.1], [0.2, 0.8]])
    with pytest.raises(ValueError, match="classes were expected"):
        fidelity_report(P, np.array([[0.5, 0.25, 0.25], [0.2, 0.4, 0.4]]), class_names=["a", "b"])
    with pytest.raises(ValueError, match="Inconsistent numbers of samples"):
        fidelity_report(P, P[:1], class_names=["a", "b"])
    with pytest.raises(ValueError, match="Did you pass logits"):
        fidelity_report(P, np.array([[2.0, -1.0], [0.0, 3.0]]), class_names=["a", "b"])
    with pytest.raises(ValueError, match="class indices"):
        fidelity_report(P, P, class_names=["a", "b"], y_true=[0, 5])
    with pytest.raises(ValueError, match="has 3 entries but the data has 2"):
        fidelity_report(P, P, class_names=["a", "b", "c"])


def test_least_faithful_leaves_rank_by_confidence():
    # A 40-sample leaf at 50% agreement is more worrying than a 1-sample leaf at 0%:
    # ranking by the Wilson upper bound lists the large one first.
    from explain_distill.analysis.fidelity import _leaf_fidelity

    class _View:
        def leaf_of(self, X):
            return np.array([7] + [3] * 40 + [5] * 30)

        def rule(self, leaf):
            return f"leaf {leaf}"

    same = np.array([False] + [True, False] * 20 + [True] * 30)
    leaves = _leaf_fidelity(_View(), np.zeros((71, 1)), same)
    assert [d["leaf"] for d in leaves] == [3, 7, 5]
    assert leaves[1]["agreement"] == 0.0 and leaves[1]["coverage"] == 1


def test_paired_difference_weights_count_as_repeated_rows_and_only_disagreements_widen_it():
    from explain_distill._stats import paired_difference

    a = np.array([1, 1, 0, 1, 0, 1], dtype=float)
    b = np.array([1, 0, 0, 1, 1, 1], dtype=float)
    w = np.array([1, 3, 1, 2, 1, 1], dtype=float)
    rep_a, rep_b = np.repeat(a, w.astype(int)), np.repeat(b, w.astype(int))
    diff, lo, hi = paired_difference(a, b, w)
    assert diff == pytest.approx(rep_a.mean() - rep_b.mean())
    # the spread is the weighted one; the count under the root is the rows given (6), not the weight
    d = rep_a - rep_b
    assert hi - diff == pytest.approx(1.959963984540054 * np.sqrt((np.mean(d**2) - d.mean() ** 2) / 6))
    assert lo < diff < hi
    assert paired_difference(a, a) == (0.0, 0.0, 0.0)  # no row disagrees: no width
    assert all(np.isnan(paired_difference(np.array([]), np.array([]))))
