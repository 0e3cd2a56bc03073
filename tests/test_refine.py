"""Tree alternating optimisation (the tree's ``refine``): better splits for the same shape, and what it keeps."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeRegressor

from explain_distill.surrogates import SoftLabelTreeClassifier, load_surrogate, save_surrogate
from explain_distill.surrogates._refine import TreeRefiner, refine_splits
from explain_distill.surrogates._target import hard_targets


@pytest.fixture(scope="module")
def digits_teacher():
    """Digits rows, a logistic 'teacher''s soft labels on them, and held-out rows with theirs."""
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    teacher = LogisticRegression(max_iter=300).fit(X[:900], y[:900])
    P = teacher.predict_proba(X)
    return X[:1300], P[:1300], X[1300:], P[1300:]


def _agreement(reg, X, P):
    return float(np.mean(reg.predict(X).reshape(len(X), -1).argmax(1) == P.argmax(1)))


@pytest.mark.parametrize("leaves", [4, 12, 40])
def test_refining_keeps_the_shape_and_never_lowers_agreement_on_the_fitting_rows(digits_teacher, leaves):
    X, P, _, _ = digits_teacher
    H = hard_targets(P)
    reg = DecisionTreeRegressor(max_leaf_nodes=leaves, random_state=0).fit(X, H)
    new, info = refine_splits(reg, X, H, np.ones(len(X)))
    t0, t1 = reg.tree_, new.tree_
    np.testing.assert_array_equal(t0.children_left, t1.children_left)
    np.testing.assert_array_equal(t0.children_right, t1.children_right)
    assert new.get_n_leaves() == leaves
    # the record is what predict gives, and the agreement only goes up
    assert info.agreement_before == pytest.approx(_agreement(reg, X, P))
    assert info.agreement_after == pytest.approx(_agreement(new, X, P))
    assert info.agreement_after >= info.agreement_before
    if leaves >= 12:  # greedy impurity splits leave agreement on the table at these sizes
        assert info.changed > 0 and info.agreement_after > info.agreement_before
    # every node keeps rows, and every leaf holds the mean target of the rows that reach it
    assert (t1.n_node_samples > 0).all()
    leaf = new.apply(X)
    for node in np.unique(leaf):
        np.testing.assert_allclose(t1.value[node, :, 0], H[leaf == node].mean(0), atol=1e-12)
    assert t1.n_node_samples[0] == len(X) and t1.weighted_n_node_samples[0] == pytest.approx(len(X))


def test_a_refined_split_is_one_the_rows_can_read(digits_teacher):
    """Thresholds stay between observed values (the bins' float32 midpoints), split features stay real columns."""
    X, P, _, _ = digits_teacher
    reg = DecisionTreeRegressor(max_leaf_nodes=20, random_state=0).fit(X, hard_targets(P))
    new, _ = refine_splits(reg, X, hard_targets(P), np.ones(len(X)))
    t = new.tree_
    inner = t.children_left >= 0
    assert ((t.feature[inner] >= 0) & (t.feature[inner] < X.shape[1])).all()
    for f, thr in zip(t.feature[inner], t.threshold[inner]):
        col = X[:, f]
        assert col.min() <= thr < col.max()
        assert np.float32(thr) == thr  # exactly representable: float32 inputs compare as float64 ones


def test_sample_weights_weigh_the_objective(digits_teacher):
    """Rows of weight 0 do not count: the refined tree on weighted rows is the one on the rows kept."""
    X, P, _, _ = digits_teacher
    H = hard_targets(P)
    keep = np.arange(len(X)) % 3 != 0
    reg = DecisionTreeRegressor(max_leaf_nodes=16, random_state=0).fit(X[keep], H[keep])
    a, ia = refine_splits(reg, X[keep], H[keep], np.ones(int(keep.sum())), min_samples_leaf=0)
    b, ib = refine_splits(reg, X, H, keep.astype(np.float64), min_samples_leaf=0)
    assert ia.changed > 0 and (ia.changed, ia.agreement_after) == (ib.changed, pytest.approx(ib.agreement_after))
    np.testing.assert_array_equal(a.tree_.feature, b.tree_.feature)
    np.testing.assert_array_equal(a.tree_.threshold, b.tree_.threshold)
    np.testing.assert_allclose(a.predict(digits_teacher[2]), b.predict(digits_teacher[2]), atol=1e-12)


def test_tree_refine_ladder_rungs_equal_direct_fits_and_beat_the_greedy_tree_on_the_fitting_rows(digits_teacher):
    X, P, Xv, Pv = digits_teacher
    kw = dict(max_depth=None, target="auto", criterion="auto", random_state=0)
    big = SoftLabelTreeClassifier(max_leaf_nodes=64, refine=True, **kw).fit(X, P, validation=(Xv, Pv))
    plain = SoftLabelTreeClassifier(max_leaf_nodes=64, **kw).fit(X, P, validation=(Xv, Pv))
    assert big.refinement_ is not None and plain.refinement_ is None
    for rung, flat in zip(big.ladder_([8, 16, 64]), plain.ladder_([8, 16, 64])):
        direct = SoftLabelTreeClassifier(max_leaf_nodes=rung.max_leaf_nodes, refine=True, **kw).fit(X, P, validation=(Xv, Pv))
        np.testing.assert_array_equal(direct.predict_proba(X), rung.predict_proba(X))
        assert (direct.target_, direct.criterion_) == (rung.target_, rung.criterion_) == (flat.target_, flat.criterion_)
        r = rung.refinement_
        assert r["fit_after"] >= r["fit_before"]
        assert r["validation_before"] == pytest.approx(np.mean(flat.predict(Xv) == Pv.argmax(1)))
        if r["kept"]:
            assert r["fit_after"] == pytest.approx(np.mean(rung.predict(X) == P.argmax(1)))
        else:
            np.testing.assert_array_equal(rung.predict_proba(X), flat.predict_proba(X))
        assert rung.size_ == flat.size_


def test_a_refinement_worse_on_validation_beyond_chance_is_not_kept(digits_teacher):
    """Validation labelled by the unrefined tree itself: the refinement moves rows, so it loses there."""
    X, P, _, _ = digits_teacher
    H = hard_targets(P)
    reg = DecisionTreeRegressor(max_leaf_nodes=40, random_state=0).fit(X, H)
    own = np.eye(10)[reg.predict(X).argmax(1)]
    refined, info = TreeRefiner(X, P, np.ones(len(X)), None).refine(reg, "hard", "k")
    moved = np.mean(refined.predict(X).argmax(1) != reg.predict(X).argmax(1))
    assert info["kept"] and refined is not reg and moved > 0.02
    kept, info = TreeRefiner(X, P, np.ones(len(X)), (X, own, np.ones(len(X)))).refine(reg, "hard", "k")
    assert kept is reg and not info["kept"]
    assert info["validation_before"] == pytest.approx(1.0) and info["validation_after"] == pytest.approx(1.0 - moved)
    assert info["validation_upper"] < 0


def test_refine_is_checked_at_the_door_and_survives_a_round_trip(digits_teacher, tmp_path):
    X, P, Xv, Pv = digits_teacher
    with pytest.raises(TypeError, match="refine must be True or False; received 'yes'"):
        SoftLabelTreeClassifier(refine="yes").fit(X, P)
    est = SoftLabelTreeClassifier(max_leaf_nodes=16, max_depth=None, refine=True, random_state=0).fit(X, P)
    assert est.refinement_["kept"] and est.refinement_["changed"] > 0  # no validation rows: always kept
    save_surrogate(est, tmp_path / "t", name="tree")
    back = load_surrogate(tmp_path / "t")
    np.testing.assert_array_equal(back.predict_proba(Xv), est.predict_proba(Xv))
