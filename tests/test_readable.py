"""The readable families (tree, rules, figs, gam): scikit-learn conventions, the frontier protocol,
node-local queries, and what each model promises to a reader (its rules, trees and shapes)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.tree import DecisionTreeRegressor

from explain_distill.surrogates import (
    SURROGATES,
    AdditiveClassifier,
    RuleListClassifier,
    SoftLabelTreeClassifier,
    SumOfTreesClassifier,
)
from explain_distill.surrogates._queries import QueryBudget, RegionSampler
from explain_distill.surrogates._sktree import best_first_order, truncate

READABLE = {"tree": SoftLabelTreeClassifier, "rules": RuleListClassifier, "figs": SumOfTreesClassifier, "gam": AdditiveClassifier}

# scikit-learn's check_estimator runs over the whole registry, these families included, with no
# expected failures: tests/test_surrogate_contract.py.


def _soft(Z):
    P = np.exp(Z - Z.max(1, keepdims=True))
    return P / P.sum(1, keepdims=True)


@pytest.fixture(scope="module")
def blobs():
    """Four classes decided by two features each (plus three noise features), soft labels at T=2."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1500, 5))
    Z = np.stack([2 * X[:, 0], -2 * X[:, 0], 2 * X[:, 1], -2 * X[:, 1] + X[:, 0]], 1) * 2
    return X, _soft(Z / 2.0), np.argmax(Z, 1)


# ---------------------------------------------------------------------------- the frontier protocol
@pytest.mark.parametrize("name", sorted(READABLE))
def test_frontier_protocol(name, blobs):
    cls = SURROGATES[name]
    assert cls is READABLE[name]
    assert cls.size_unit in ("leaves", "rules", "terms")
    assert cls.size_param in cls().get_params()
    ladder = list(cls.size_ladder)
    assert ladder == sorted(ladder) and ladder[0] <= 8 and all(isinstance(s, int) for s in ladder)
    X, P, _ = blobs
    big = {"leaves": 32, "rules": 12, "terms": 5}[cls.size_unit]
    est = cls(random_state=0).set_params(**{cls.size_param: big}).fit(X, P)
    assert 1 <= est.size_ <= big
    sizes = [s for s in (2, 4, 8) if s < big]
    rungs = est.ladder_(sizes)
    assert len(rungs) == len(sizes)
    for s, r in zip(sizes, rungs):
        assert type(r) is cls and r.size_ <= s
        assert r.predict_proba(X[:7]).shape == (7, P.shape[1])
    assert [r.size_ for r in rungs] == sorted(r.size_ for r in rungs)
    # The ladder's models are copies: the fitted model itself is untouched.
    assert est.size_ <= big and getattr(est, cls.size_param) == big
    fid = [np.mean(r.predict(X) == P.argmax(1)) for r in rungs] + [np.mean(est.predict(X) == P.argmax(1))]
    assert fid[-1] >= fid[0] - 0.02 and fid[-1] > 0.85


# ---------------------------------------------------------------------------- tree
def test_tree_ladder_cuts_are_the_best_first_trees_sklearn_grows(rng):
    X = rng.normal(size=(600, 6)).astype(np.float32)
    P = _soft(np.stack([X[:, 0] + X[:, 1] * X[:, 2], X[:, 3] - X[:, 0], np.sin(2 * X[:, 4])], 1) * 2)
    full = SoftLabelTreeClassifier(max_depth=None, max_leaf_nodes=64, random_state=0).fit(X, P)
    assert full.size_ == 64
    for cut in full.ladder_([4, 9, 20]):
        ref = SoftLabelTreeClassifier(max_depth=None, max_leaf_nodes=cut.size_, random_state=0).fit(X, P)
        np.testing.assert_allclose(cut.predict_proba(X), ref.predict_proba(X), atol=1e-12)
        assert cut.n_params_ == ref.n_params_ == 2 * cut.size_ - 1


def test_a_tree_read_off_a_ladder_has_the_same_ladder_below_it(rng):
    # distill reads the configured tree (64 leaves) off its ladder's fit (256): a cut is renumbered, so
    # its own ladder must replay the best-first order rather than cut a prefix of the new numbering
    X = rng.normal(size=(600, 6)).astype(np.float32)
    P = _soft(np.stack([X[:, 0] + X[:, 1] * X[:, 2], X[:, 3] - X[:, 0], np.sin(2 * X[:, 4])], 1) * 2)
    full = SoftLabelTreeClassifier(max_depth=None, max_leaf_nodes=64, random_state=0).fit(X, P)
    mid = full.ladder_([32])[0]
    for k, below, direct in zip((2, 5, 16), mid.ladder_([2, 5, 16]), full.ladder_([2, 5, 16])):
        assert below.size_ == direct.size_ == k
        np.testing.assert_allclose(below.predict_proba(X), direct.predict_proba(X), atol=1e-12)


def test_truncate_keeps_the_first_splits(rng):
    X = rng.normal(size=(300, 3))
    reg = DecisionTreeRegressor(max_leaf_nodes=12, random_state=0).fit(X, X[:, 0] + X[:, 1] ** 2)
    order = best_first_order(reg.tree_)
    assert order[0] == 0 and len(order) == 11
    cut = truncate(reg, order[:3])
    assert cut.tree_.node_count == 7
    # every cut leaf predicts the mean its node had in the full tree
    leaf = cut.apply(X)
    for lf in np.unique(leaf):
        np.testing.assert_allclose(cut.predict(X[leaf == lf])[0], X[leaf == lf, 0].mean() + (X[leaf == lf, 1] ** 2).mean(), atol=1e-9)


def test_tree_auto_target_validates_both(blobs):
    X, P, _ = blobs
    est = SoftLabelTreeClassifier(max_leaf_nodes=16, max_depth=None, target="auto", random_state=0).fit(X, P)
    v = est.validation_
    assert est.target_ in ("soft", "hard") and set(v["scores"]) == {"soft/entropy", "hard/entropy"} and v["source"] == "carved"
    assert all(len(f) == len(v["sizes"]) and all(0 <= x <= 1 for x in f) for f in v["scores"].values())
    assert est.size_ <= 16


def test_tree_auto_keeps_the_candidate_most_faithful_on_the_given_validation_at_each_size(blobs):
    """With validation rows given, every (target, criterion) candidate fits on all rows, and each rung
    of the ladder is the candidate that agrees most with the teacher on the validation rows at that size."""
    from sklearn.tree import DecisionTreeClassifier

    X, P, _ = blobs
    rng = np.random.default_rng(3)
    Xv = rng.normal(size=(400, 5))
    Zv = np.stack([2 * Xv[:, 0], -2 * Xv[:, 0], 2 * Xv[:, 1], -2 * Xv[:, 1] + Xv[:, 0]], 1) * 2
    Pv = _soft(Zv / 2.0)
    est = SoftLabelTreeClassifier(max_leaf_nodes=32, max_depth=None, target="auto", criterion="auto",
                                  random_state=0).fit(X, P, validation=(Xv, Pv))
    v = est.validation_
    assert v["source"] == "given" and v["n"] == 400
    assert set(v["scores"]) == {"soft/entropy", "hard/entropy", "hard/squared_error"}
    for rung in est.ladder_([4, 8, 32]):
        mine = np.mean(rung.predict(Xv) == Pv.argmax(1))
        for crit in ("gini", "entropy"):  # scikit-learn's trees on the teacher's hard labels, the same rows
            sk = DecisionTreeClassifier(criterion=crit, max_leaf_nodes=rung.max_leaf_nodes, random_state=0).fit(X, P.argmax(1))
            assert mine >= np.mean(sk.predict(Xv) == Pv.argmax(1)) - 1e-12
        others = [v["scores"][k][v["sizes"].index(rung.max_leaf_nodes)] for k in v["scores"]]
        assert mine == pytest.approx(max(others))
    hard_gini = SoftLabelTreeClassifier(max_leaf_nodes=8, max_depth=None, target="hard", criterion="squared_error",
                                        random_state=0).fit(X, P)
    sk = DecisionTreeClassifier(criterion="gini", max_leaf_nodes=8, random_state=0).fit(X, P.argmax(1))
    assert np.mean(hard_gini.predict(X) == sk.predict(X)) > 0.99
    with pytest.raises(ValueError, match="validation"):
        SoftLabelTreeClassifier(target="auto").fit(X, P, validation=(Xv[:, :3], Pv))


# ---------------------------------------------------------------------------- node-local queries
def test_region_sampler_stays_inside_the_box(rng):
    X = rng.normal(size=(400, 3)).astype(np.float32)
    sampler = RegionSampler(X, jitter=0.5)
    lo = np.array([0.1, -np.inf, -0.5])
    hi = np.array([np.inf, 0.2, 0.3])
    inside = X[(X[:, 0] > lo[0]) & (X[:, 1] <= hi[1]) & (X[:, 2] > lo[2]) & (X[:, 2] <= hi[2])]
    Q = sampler.sample(inside, lo, hi, 2000, np.random.default_rng(1))
    assert Q.dtype == np.float32 and Q.shape == (2000, 3)
    assert (Q[:, 0].astype(np.float64) > lo[0]).all() and (Q[:, 1] <= hi[1]).all()
    assert (Q[:, 2] > lo[2]).all() and (Q[:, 2] <= hi[2]).all()
    assert (Q >= X.min(0)).all() and (Q <= X.max(0)).all()
    # drawn from the region's rows, not uniformly: the mean stays near theirs
    np.testing.assert_allclose(Q.mean(0), inside.mean(0), atol=0.15)
    budget = QueryBudget(10)
    assert budget.take(7) == 7 and budget.take(7) == 3 and budget.take(1) == 0 and budget.used == 10


def _oracle_for(f):
    calls = []

    def oracle(X):
        calls.append(np.array(X))
        return _soft(f(np.asarray(X, dtype=np.float64)))

    return oracle, calls


def test_tree_without_queries_drawn_grows_the_tree_sklearn_grows(rng):
    X = rng.normal(size=(500, 4)).astype(np.float32)
    f = lambda A: np.stack([A[:, 0] * 3, A[:, 1] * A[:, 2] * 3, -A[:, 0] - A[:, 3]], 1)
    P = _soft(f(X.astype(np.float64)))
    oracle, calls = _oracle_for(f)
    ours = SoftLabelTreeClassifier(max_depth=None, max_leaf_nodes=24, min_samples=1, random_state=0).fit(X, P, oracle=oracle)
    ref = SoftLabelTreeClassifier(max_depth=None, max_leaf_nodes=24, random_state=0).fit(X, P)
    assert not calls and ours.queries_["queries"] == 0
    splits = lambda t: sorted((int(f), round(float(v), 6)) for f, v in zip(t.feature, t.threshold) if f >= 0)
    assert splits(ours.tree_) == splits(ref.tree_)  # same splits (numbered in another order)
    # leaves: the mean soft label (scikit-learn's "entropy" tree means labels smoothed by 1e-4)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=2e-4)


def test_node_local_queries_fall_in_their_nodes_and_help_a_thin_tree(rng):
    # 150 rows of a 4-class checkerboard: deep nodes hold a handful; the oracle knows the truth.
    f = lambda A: 6 * np.stack([(A[:, 0] > 0) & (A[:, 1] > 0), (A[:, 0] <= 0) & (A[:, 1] > 0), (A[:, 0] > 0) & (A[:, 1] <= 0),
                                (A[:, 0] <= 0) & (A[:, 1] <= 0)], 1).astype(float) + A[:, 2:3] * np.array([[1, -1, 1, -1]])
    X = rng.normal(size=(150, 3)).astype(np.float32)
    P = _soft(f(X.astype(np.float64)))
    X_test = rng.normal(size=(3000, 3)).astype(np.float32)
    truth = f(X_test.astype(np.float64)).argmax(1)
    oracle, calls = _oracle_for(f)
    plain = SoftLabelTreeClassifier(max_depth=6, min_samples_leaf=2, random_state=0).fit(X, P)
    local = SoftLabelTreeClassifier(max_depth=6, min_samples_leaf=2, min_samples=60, query_budget=3000, random_state=0)
    local.fit(X, P, oracle=oracle)
    n = sum(len(c) for c in calls)
    assert 0 < n == local.queries_["queries"] <= 3000 and local.queries_["nodes_queried"] == len(calls)
    t = local.tree_
    leaves = t.children_left < 0
    assert t.n_node_samples[leaves].sum() == 150 + n  # every query ends in a leaf
    # the queries share their node's weight: every node keeps the share of the data that reaches it
    assert t.weighted_n_node_samples[0] == pytest.approx(150) and t.weighted_n_node_samples[leaves].sum() == pytest.approx(150)
    assert np.mean(local.predict(X_test) == truth) > np.mean(plain.predict(X_test) == truth)


def test_a_bad_oracle_is_named(rng):
    X = rng.normal(size=(60, 2))
    P = _soft(X)
    with pytest.raises(TypeError, match="oracle must be a callable"):
        SoftLabelTreeClassifier(min_samples=100).fit(X, P, oracle="teacher")
    with pytest.raises(ValueError, match="oracle's labels have 3 columns but 2"):
        SoftLabelTreeClassifier(min_samples=100).fit(X, P, oracle=lambda Q: np.full((len(Q), 3), 1 / 3))


# ---------------------------------------------------------------------------- figs
def test_figs_finds_an_additive_model_in_stumps(rng):
    X = rng.normal(size=(2000, 4))
    Z = np.stack([2 * (X[:, 0] > 0.5) + 2 * (X[:, 1] > -0.3), np.zeros(len(X))], 1) * 2 - 2
    P = _soft(Z)
    # stumps: with depth 2 allowed, the exact greedy (as FIGS) splits the first stump's side where the
    # other feature's gradient is largest (gain 150 against 128 for a new tree here) and grows one tree
    est = SumOfTreesClassifier(max_leaves=4, max_depth=1, random_state=0).fit(X, P)
    assert est.n_trees_ == 2 and est.size_ == 4
    trees = est.trees_
    assert sorted(int(t["feature"][0]) for t in trees) == [0, 1]
    thr = {int(t["feature"][0]): float(t["threshold"][0]) for t in trees}
    assert abs(thr[0] - 0.5) < 0.1 and abs(thr[1] + 0.3) < 0.1
    # leaf values add up to the logits the model predicts
    Zhat = est.bias_ + sum(t["value"][np.where(X[:, int(t["feature"][0])] <= t["threshold"][0], t["left"][0], t["right"][0])] for t in trees)
    np.testing.assert_allclose(est.predict_proba(X), _soft(Zhat), atol=1e-10)
    text = est.to_text(feature_names=list("abcd"), class_names=["yes", "no"])
    assert text.startswith("bias:") and "tree 2:" in text and "a <= " in text and "b >  " in text


def test_figs_ladder_rung_is_the_fit_with_that_budget(blobs):
    """Every rung equals a direct fit at that budget, also where the larger fit's next split started a tree
    that a fit at the smaller budget has no room for (it then takes a leaf split: the growth is rerun)."""
    X, P, _ = blobs
    est = SumOfTreesClassifier(max_leaves=24, random_state=0).fit(X, P)
    for k in range(3, 24):
        rung = est.ladder_([k])[0]
        ref = SumOfTreesClassifier(max_leaves=k, random_state=0).fit(X, P)
        assert rung.size_ == ref.size_ <= k
        np.testing.assert_allclose(rung.predict_proba(X), ref.predict_proba(X), atol=1e-8)


def test_figs_loss_auto_keeps_the_candidate_most_faithful_on_the_given_validation(blobs):
    X, P, _ = blobs
    rng = np.random.default_rng(3)
    Xv = rng.normal(size=(400, 5))
    Pv = _soft(np.stack([2 * Xv[:, 0], -2 * Xv[:, 0], 2 * Xv[:, 1], -2 * Xv[:, 1] + Xv[:, 0]], 1) * 2 / 2.0)
    est = SumOfTreesClassifier(max_leaves=16, loss="auto", random_state=0).fit(X, P, validation=(Xv, Pv))
    v = est.validation_
    assert v["source"] == "given" and set(v["scores"]) == {"soft/logistic/depth 3", "hard/squared_error/depth None"}
    for rung in est.ladder_([4, 8, 16]):
        mine = np.mean(rung.predict(Xv) == Pv.argmax(1))
        assert mine == pytest.approx(max(f[v["sizes"].index(rung.max_leaves)] for f in v["scores"].values()))
        assert rung.size_ <= rung.max_leaves
    figs_like = SumOfTreesClassifier(max_leaves=8, loss="squared_error", target="hard", max_depth=None, refit=False,
                                     random_state=0).fit(X, P)
    # FIGS's model: the scores are the class shares plus each leaf's mean residual of the one-hot labels
    assert figs_like.loss_ == "squared_error" and np.all(figs_like.predict_proba(X) > 0)
    np.testing.assert_allclose(figs_like.bias_, np.bincount(P.argmax(1), minlength=4) / len(P), atol=1e-12)


def test_figs_beats_one_tree_of_the_same_leaves(blobs):
    X, P, _ = blobs
    figs = SumOfTreesClassifier(max_leaves=8, random_state=0).fit(X, P)
    tree = SoftLabelTreeClassifier(max_leaf_nodes=8, max_depth=None, random_state=0).fit(X, P)
    y = P.argmax(1)
    assert np.mean(figs.predict(X) == y) > np.mean(tree.predict(X) == y)


# ---------------------------------------------------------------------------- gam
@pytest.mark.parametrize("method", ["boost", "spline"])
def test_gam_auto_target_fits_both_on_every_row_and_keeps_the_one_the_given_validation_prefers(blobs, method):
    X, P, _ = blobs
    rng = np.random.default_rng(5)
    Xv = rng.normal(size=(300, 5))
    Pv = _soft(np.stack([2 * Xv[:, 0], -2 * Xv[:, 0], 2 * Xv[:, 1], -2 * Xv[:, 1] + Xv[:, 0]], 1) * 2 / 2.0)
    est = AdditiveClassifier(target="auto", method=method, random_state=0).fit(X, P, validation=(Xv, Pv))
    v = est.validation_
    assert v["source"] == "given" and v["n"] == 300
    assert est.target_ == ("hard" if v["hard"] > v["soft"] else "soft")
    # the same target on every row (boosting stops on the same held-out rows)
    ref = AdditiveClassifier(target=est.target_, method=method, random_state=0).fit(X, P, validation=(Xv, Pv))
    np.testing.assert_allclose(est.predict_proba(Xv), ref.predict_proba(Xv), atol=1e-8)
    assert np.mean(est.predict(Xv) == Pv.argmax(1)) == pytest.approx(max(v["soft"], v["hard"]))


def test_gam_is_an_exact_sum_of_centred_shapes(rng):
    X = rng.normal(size=(1200, 3))
    Z = np.stack([np.sin(2 * X[:, 0]) * 2, X[:, 1] ** 2, np.zeros(len(X))], 1)
    est = AdditiveClassifier(method="spline", n_knots=12, C=10.0).fit(X, _soft(Z))
    shapes = est.shapes_
    assert [s["features"] for s in shapes] == [(0,), (1,), (2,)] and est.size_ == 3
    contrib = est.term_contributions(X)
    np.testing.assert_allclose(_soft(contrib.sum(1) + est.intercept_), est.predict_proba(X), atol=1e-10)
    np.testing.assert_allclose(contrib.mean(0), 0.0, atol=1e-10)  # centred over the training rows
    s0 = shapes[0]
    assert s0["kind"] == "main" and s0["form"] == "linear"
    assert s0["grid"].ndim == 1 and s0["contribution"].shape == (len(s0["grid"]), 3)
    # the shape of x0 for class 0 follows sin(2 x): up at 0.75, down at -0.75
    g, c = s0["grid"], s0["contribution"][:, 0] - s0["contribution"][:, 2]
    assert np.interp(0.75, g, c) - np.interp(-0.75, g, c) > 2.0
    assert est.importance_[2] < 0.2 * est.importance_[0]  # the noise feature barely matters


def test_boosted_gam_is_an_exact_sum_of_centred_steps_that_find_a_jump(rng):
    X = rng.normal(size=(3000, 3))
    Z = np.stack([3.0 * (X[:, 0] > 0.3), np.sin(2 * X[:, 1]), np.zeros(len(X))], 1)
    est = AdditiveClassifier(target="hard", random_state=0).fit(X, _soft(Z))
    assert est.method == "boost" and 1 <= est.n_iter_[0] < est.max_rounds  # stopped early, on held-out rows
    shapes = est.shapes_
    assert [s["features"] for s in shapes] == [(0,), (1,), (2,)]
    contrib = est.term_contributions(X)
    np.testing.assert_allclose(_soft(contrib.sum(1) + est.intercept_), est.predict_proba(X), atol=1e-10)
    s0 = shapes[0]
    g, c = s0["grid"], s0["contribution"]
    assert s0["form"] == "step" and g.ndim == 1 and c.shape == (len(g) - 1, 3) and np.all(np.diff(g) > 0)
    assert g[0] == pytest.approx(X[:, 0].min(), abs=0.5) and g[-1] <= X[:, 0].max() + 1e-9
    # the class-0 step: the biggest rise between neighbouring bins sits at the jump, x0 = 0.3
    d = c[:, 0] - c[:, 2]
    jump = int(np.argmax(np.diff(d)))
    assert abs(g[jump + 1] - 0.3) < 0.15 and d[-1] - d[0] > 1.5
    # a value on a boundary takes the bin below, as printed "x <= edge"
    edge = g[jump + 1]
    Xe = np.zeros((2, 3))
    Xe[:, 0] = [edge, np.nextafter(edge, np.inf)]
    ce = est.term_contributions(Xe)[:, 0, :]
    np.testing.assert_allclose(ce[0], c[jump])
    np.testing.assert_allclose(ce[1], c[jump + 1])
    assert est.importance_[2] < 0.2 * est.importance_[0]


def test_boosting_beats_the_spline_fit_where_neighbouring_features_carry_one_signal(rng):
    # a bump whose position varies, read by 12 correlated neighbouring features (mnist1d in small)
    n = 4000
    pos = rng.uniform(2, 10, size=n)
    grid = np.arange(12)
    X = np.exp(-0.5 * (grid[None, :] - pos[:, None]) ** 2) + 0.1 * rng.normal(size=(n, 12))
    X = np.cumsum(X, axis=1) / 3.0
    y = np.digitize(pos, [4.0, 6.0, 8.0])
    P = _soft(6.0 * np.eye(4)[y])
    tr, te = slice(0, 3000), slice(3000, None)
    boost = AdditiveClassifier(target="hard", random_state=0).fit(X[tr], P[tr])
    spline = AdditiveClassifier(target="hard", method="spline", random_state=0).fit(X[tr], P[tr])
    fid = {m: float(np.mean(e.predict(X[te]) == y[te])) for m, e in (("boost", boost), ("spline", spline))}
    assert fid["boost"] >= fid["spline"] - 0.01 and fid["boost"] > 0.8, fid


@pytest.mark.parametrize("method", ["boost", "spline"])
def test_gam_ladder_rungs_are_the_direct_fits_at_their_sizes(blobs, method):
    X, P, _ = blobs
    full = AdditiveClassifier(method=method, random_state=0).fit(X, P)
    rungs = full.ladder_([1, 2, 3])
    assert [r.size_ for r in rungs] == [1, 2, 3]
    for r in rungs:
        direct = AdditiveClassifier(method=method, max_terms=r.size_, random_state=0).fit(X, P)
        assert [s["features"] for s in direct.shapes_] == [s["features"] for s in r.shapes_]
        np.testing.assert_allclose(direct.predict_proba(X), r.predict_proba(X), atol=1e-10)
    # the two features the labels depend on are the two terms kept
    assert sorted(s["features"][0] for s in rungs[1].shapes_) == [0, 1]


@pytest.mark.parametrize("method", ["boost", "spline"])
def test_gam_pairs_capture_an_interaction_and_max_terms_keeps_the_strongest(rng, method):
    X = rng.uniform(-1, 1, size=(2000, 4))
    Z = np.stack([4 * np.sign(X[:, 0] * X[:, 1]) + 0.5 * X[:, 2], np.zeros(len(X))], 1)
    P = _soft(Z)
    y = P.argmax(1)
    mains = AdditiveClassifier(method=method, random_state=0).fit(X, P)
    pairs = AdditiveClassifier(interactions=1, pair_knots=6, method=method, random_state=0).fit(X, P)
    assert np.mean(mains.predict(X) == y) < 0.75
    assert np.mean(pairs.predict(X) == y) > 0.9
    pair = [s for s in pairs.shapes_ if s["kind"] == "pair"]
    assert len(pair) == 1 and pair[0]["features"] == (0, 1) and pair[0]["contribution"].shape == (6, 6, 2)
    # pairs are bilinear on 6 knots a side either way (boosted: fitted with the step mains held)
    assert pair[0]["form"] == "linear" and [len(g) for g in pair[0]["grid"]] == [6, 6]
    assert {s["form"] for s in pairs.shapes_ if s["kind"] == "main"} == {"step" if method == "boost" else "linear"}
    kept = AdditiveClassifier(interactions=1, pair_knots=6, max_terms=2, method=method, random_state=0).fit(X, P)
    assert kept.size_ == 2 and (0, 1) in [s["features"] for s in kept.shapes_]
    assert np.mean(kept.predict(X) == y) > 0.9


def test_boosted_gam_saves_and_loads_its_steps_and_pairs(rng, tmp_path):
    from explain_distill.surrogates import load_surrogate, save_surrogate

    X = rng.uniform(-1, 1, size=(1500, 3))
    P = _soft(np.stack([3 * np.sign(X[:, 0] * X[:, 1]) + X[:, 2], np.zeros(len(X))], 1))
    est = AdditiveClassifier(interactions=1, pair_knots=5, random_state=0).fit(X, P)
    save_surrogate(est, tmp_path / "gam", name="gam")
    back = load_surrogate(tmp_path / "gam")
    assert back.method == "boost" and [s["form"] for s in back.shapes_] == ["step"] * 3 + ["linear"]
    np.testing.assert_allclose(back.predict_proba(X), est.predict_proba(X), atol=1e-12)
    spline = AdditiveClassifier(method="spline").fit(X, P)
    save_surrogate(spline, tmp_path / "spline", name="gam")
    assert load_surrogate(tmp_path / "spline").method == "spline"


@pytest.mark.parametrize(("kw", "match"), [({"method": "ebm"}, "method"), ({"learning_rate": 0.0}, "learning_rate"),
                                            ({"learning_rate": 1.5}, r"learning_rate must be in \(0, 1\]"),
                                            ({"max_bins": 1}, "max_bins"), ({"early_stopping_rounds": 0}, "early_stopping_rounds")])
def test_gam_boosting_settings_are_checked_at_the_door(blobs, kw, match):
    X, P, _ = blobs
    with pytest.raises(ValueError, match=match):
        AdditiveClassifier(**kw).fit(X, P)


# ---------------------------------------------------------------------------- rules
def test_rule_list_reads_in_order_with_coverage_and_fidelity(digits):
    X, y = digits.X_train, digits.y_train
    rl = RuleListClassifier(max_rules=12, max_depth=4).fit(X, y)
    assert 1 <= rl.size_ <= 12 and len(rl.rules_) == rl.size_ + 1
    assert abs(sum(r["coverage"] for r in rl.rules_) - 1.0) < 1e-9
    assert all(r["coverage"] > 0 for r in rl.rules_[:-1])  # rules that decide nothing are dropped
    assert all(len(r["conditions"]) <= 4 for r in rl.rules_) and rl.rules_[-1]["conditions"] == []
    which = rl.rule_of(X)
    for r, rule in enumerate(rl.rules_):
        rows = which == r
        # coverage and fidelity are what the list does on its training rows
        assert rows.mean() == pytest.approx(rule["coverage"])
        k = int(np.argmax(rule["value"]))
        assert np.mean(y[rows] == k) == pytest.approx(rule["fidelity"])
        for f, op, t in rule["conditions"]:  # the first rule that fires decides
            assert np.all((X[rows, f] <= t) if op == "<=" else (X[rows, f] > t))
    text = rl.to_text(feature_names=digits.feature_names, class_names=digits.class_names)
    lines = text.splitlines()
    assert lines[0].startswith("IF ") and lines[1].startswith("ELSE IF ") and lines[-1].startswith("ELSE ")
    assert "coverage" in lines[1] and "fidelity" in lines[1] and len(lines) == len(rl.rules_)
    assert str(rl) == rl.to_text()
    assert rl.score(X, y) > 0.6


def test_rule_list_ladder_is_the_first_rules_learned(digits):
    X, y = digits.X_train, digits.y_train
    rl = RuleListClassifier(max_rules=20).fit(X, y)
    small = rl.ladder_([5])[0]
    ref = RuleListClassifier(max_rules=5).fit(X, y)
    assert small.size_ == ref.size_ <= 5
    np.testing.assert_allclose(small.predict_proba(X), ref.predict_proba(X))
    assert np.mean(rl.predict(X) == y) > np.mean(small.predict(X) == y)


def test_rule_list_exceptions_go_first(rng):
    # class 1 inside a square, class 0 around it and on a strip inside the square: the strip is best
    # told as an exception put in front of the square's rule.
    X = rng.uniform(-1, 1, size=(3000, 2))
    y = ((np.abs(X[:, 0]) < 0.5) & (np.abs(X[:, 1]) < 0.5) & ~((X[:, 0] > 0.3) & (X[:, 0] < 0.4))).astype(int)
    rl = RuleListClassifier(max_rules=6, min_samples_leaf=5).fit(X, y)
    assert rl.score(X, y) > 0.97


# ---------------------------------------------------------------------------- distill hands over the oracle
def test_distill_hands_an_oracle_at_the_run_temperature(iris, iris_teacher, monkeypatch):
    import explain_distill as ed
    from explain_distill import surrogates as S

    seen = {}

    class Probe(SoftLabelTreeClassifier):
        def fit(self, X, y, sample_weight=None, oracle=None):
            seen["oracle"] = oracle
            return super().fit(X, y, sample_weight=sample_weight, oracle=oracle)

    monkeypatch.setitem(S.SURROGATES, "probe", Probe)
    res = ed.distill(iris_teacher, iris, surrogates=["probe", "tree"], temperature=3.0, queries=None,
                     params={"tree": {"max_depth": 5, "min_samples": 40, "query_budget": 300}})
    X = iris.X_test
    np.testing.assert_allclose(seen["oracle"](X), iris_teacher.predict_proba(X, temperature=3.0), atol=1e-6)
    q = res.surrogates["tree"].queries_
    assert 0 < q["queries"] <= 300 and q["nodes_queried"] > 0


# ---------------------------------------------------------------------------- reading them: analysis, viz, report
@pytest.fixture(scope="module")
def readable_run(iris, iris_teacher):
    import explain_distill as ed

    return ed.distill(iris_teacher, iris, surrogates=["rules", "gam", "figs"], queries=None, frontier=False,
                      params={"rules": {"max_rules": 8}})


def test_rule_list_table_reads_in_order_with_test_coverage_and_fidelity(readable_run, iris):
    from explain_distill.analysis.readable import rule_list_table

    est = readable_run.surrogates["rules"]
    t = np.asarray(readable_run.teacher.predict(iris.X_test))
    doc = rule_list_table(est, iris.X_test, t)
    positions = [r["position"] for r in doc["rules"]]
    assert positions == sorted(positions) and doc["rules"][-1]["is_else"]
    assert len(doc["rules"]) + doc["hidden"] == len(est.rules_)
    assert sum(r["n"] for r in doc["rules"]) == len(iris.X_test)  # hidden rules decide no test row
    assert all(r["n"] > 0 for r in doc["rules"][:-1])
    which, pred = est.rule_of(iris.X_test), est.predict(iris.X_test)
    for r in doc["rules"]:
        rows = which == r["position"] - 1
        if r["n"]:
            assert r["agreement"] == pytest.approx(np.mean(pred[rows] == t[rows]))
        rule = est.rules_[r["position"] - 1]
        assert (r["train_coverage"], r["train_fidelity"]) == (pytest.approx(rule["coverage"]), pytest.approx(rule["fidelity"]))
    # conditions read in raw units (iris: centimetres), as the list prints them
    first = next(r for r in doc["rules"] if not r["is_else"])
    assert all(c in str(est) for c in first["conditions"])
    with pytest.raises(ValueError, match="teacher_pred has 2 entries"):
        rule_list_table(est, iris.X_test, t[:2])


def test_additive_shapes_are_in_raw_units_and_drawn(readable_run, iris):
    from matplotlib.figure import Figure

    from explain_distill.analysis.readable import additive_shapes
    from explain_distill.viz.plots import figure_to_svg, gam_shapes_figure

    gam = readable_run.surrogates["gam"]
    doc = additive_shapes(gam, max_terms=3)
    assert doc["raw"] and doc["shown"] == 3 and len(doc["shapes"]) == 3
    imps = [s["importance"] for s in doc["shapes"]]
    assert imps == sorted(imps, reverse=True)
    units = gam.input_units_
    for s in doc["shapes"]:
        j = s["feature_index"]
        shape = next(sh for sh in gam.shapes_ if sh["kind"] == "main" and sh["features"][0] == j)
        np.testing.assert_allclose(s["x"], shape["grid"] * units["scale"][j] + units["mean"][j])
        assert s["feature"] == iris.feature_names[j]
    raw = iris.inverse_transform(iris.X_train)
    lo, hi = raw.min(axis=0), raw.max(axis=0)
    assert all(lo[s["feature_index"]] - 1e-6 <= s["x"].min() and s["x"].max() <= hi[s["feature_index"]] + 1e-6 for s in doc["shapes"])
    # the default boosted shapes are steps: G + 1 bin boundaries for G values, drawn as stairs
    assert all(s["form"] == "step" and len(s["x"]) == len(s["contribution"]) + 1 for s in doc["shapes"])
    fig = gam_shapes_figure(doc["shapes"], class_names=doc["class_names"])
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert all(len(ax.patches) == len(doc["class_names"]) for ax in fig.axes)  # one stair line per class
    svg = figure_to_svg(fig)
    assert iris.feature_names[doc["shapes"][0]["feature_index"]] in svg
    bad = [{**doc["shapes"][0], "x": doc["shapes"][0]["x"][:-1]}]
    with pytest.raises(ValueError, match="bin boundaries"):
        gam_shapes_figure(bad, class_names=doc["class_names"])
    with pytest.raises(TypeError, match="additive model"):
        additive_shapes(readable_run.surrogates["rules"])


def test_report_shows_the_rule_list_and_the_shapes(readable_run):
    from explain_distill.report.html import render_html, report_context

    ctx = report_context(readable_run)
    assert [r["name"] for r in ctx["rule_lists"]] == ["rules"] and [g["name"] for g in ctx["additive"]] == ["gam"]
    assert ctx["additive"][0]["figure"]["uri"].startswith("data:image/")
    html = render_html(ctx)
    assert 'id="rule-list"' in html and 'id="additive"' in html and "Test fidelity" in html
    figs = readable_run.surrogates["figs"]
    text = str(figs)
    assert text.startswith("bias: ") and "petal" in text  # names and raw units from distill


def test_distill_fits_a_prefix_family_once_and_reads_the_configured_size_off_it(iris, iris_teacher, monkeypatch):
    import explain_distill as ed

    calls = []
    real = RuleListClassifier.fit

    def counting(self, X, y, sample_weight=None):
        calls.append(self.max_rules)
        return real(self, X, y, sample_weight=sample_weight)

    monkeypatch.setattr(RuleListClassifier, "fit", counting)
    res = ed.distill(iris_teacher, iris, surrogates=["rules"], queries=None, params={"rules": {"max_rules": 4}},
                     ladders={"rules": [2, 4, 8]})
    assert calls == [8]  # one fit, at the top of the ladder
    est = res.surrogates["rules"]
    assert est.max_rules == 4 and est.size_ <= 4
    monkeypatch.setattr(RuleListClassifier, "fit", real)
    ref = RuleListClassifier(max_rules=4).fit(res.transfer.X, res.transfer.P)
    np.testing.assert_allclose(est.predict_proba(iris.X_test), ref.predict_proba(iris.X_test))
    assert [e.size_ for e in res.ladders["rules"]] == sorted({e.size_ for e in res.ladders["rules"]})


def test_node_local_queries_stay_in_the_data_domain(tmp_path):
    # a table with a 0/1, an integer and a one-hot column: every input the tree asks the teacher about
    # is one the data could hold (one level hot, 0/1 and integers whole), and inside its node's box.
    import torch

    import explain_distill as ed
    from explain_distill import surrogates as S

    rng = np.random.default_rng(0)
    lines = ["tenure,senior,charges,contract,label"]
    for i in range(240):
        contract = ["month", "year", "two-year"][i % 3]
        tenure, senior = int(rng.integers(0, 72)), int(rng.integers(0, 2))
        label = "yes" if (tenure < 20) != (contract == "month") or senior else "no"
        lines.append(f"{tenure},{senior},{rng.normal(70, 20):.2f},{contract},{label}")
    path = tmp_path / "churn.csv"
    path.write_text("\n".join(lines) + "\n")
    data = ed.Dataset.from_csv(path, target="label")
    teacher = ed.train_teacher(data, epochs=30, seed=0)
    asked = []

    class Probe(SoftLabelTreeClassifier):
        def fit(self, X, y, sample_weight=None, oracle=None):
            def spy(Q):
                asked.append(np.array(Q))
                return oracle(Q)

            spy.project = oracle.project
            return super().fit(X, y, sample_weight=sample_weight, oracle=spy)

    S.SURROGATES["probe_domain"] = Probe
    try:
        with torch.no_grad():
            res = ed.distill(teacher, data, surrogates=["probe_domain"], queries=None, frontier=False,
                             params={"probe_domain": {"max_depth": 6, "min_samples": 60, "query_budget": 600}})
    finally:
        del S.SURROGATES["probe_domain"]
    assert asked, "no node-local query was drawn"
    Q = np.concatenate(asked)
    assert len(Q) == res.surrogates["probe_domain"].queries_["queries"]
    assert not data.domain().outside(Q).any()
    raw = data.inverse_transform(Q)
    names = data.feature_names
    assert set(np.unique(raw[:, names.index("senior")]).round(4)) <= {0.0, 1.0}
    assert np.allclose(raw[:, names.index("tenure")], np.round(raw[:, names.index("tenure")]), atol=1e-3)
    onehot = raw[:, [names.index(f"contract={lv}") for lv in ("month", "year", "two-year")]]
    assert np.allclose(onehot.sum(1), 1.0, atol=1e-4)
