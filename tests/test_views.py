"""analysis.views: one protocol, one adapter per model kind, conditions written in one place."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import BaseEstimator

import explain_distill as ed
from explain_distill.analysis import views
from explain_distill.analysis.units import RawUnits
from explain_distill.analysis.views import (
    Condition,
    ConditionWriter,
    FeatureView,
    FilterCondition,
    RuleListView,
    SumOfTreesView,
    TreeView,
    family_of,
    register_adapter,
    tightest,
    tree_view_of,
    view_of,
)
from explain_distill.surrogates import RuleListClassifier, SoftLabelLogisticRegression, SoftLabelTreeClassifier, SumOfTreesClassifier
from explain_distill.surrogates._base import set_names

from test_exports import CLASSES, FEATURES, iris_xy  # noqa: F401  (iris_xy is a fixture)


@pytest.fixture(scope="module")
def figs(iris_xy):
    """A sum of two small trees over iris, with names."""
    fitted = SumOfTreesClassifier(max_leaves=6, max_depth=2, random_state=0).fit(*iris_xy)
    return set_names(fitted, feature_names=FEATURES, class_names=CLASSES)


def test_the_old_names_are_the_views():
    from explain_distill.analysis import tree_view

    assert tree_view.TreeView is views.TreeView is ed.TreeView is ed.analysis.TreeView
    assert tree_view.RuleListView is views.RuleListView and tree_view.TreeNode is views.TreeNode
    assert tree_view.Inverse is views.Inverse


def test_each_model_kind_finds_its_view(iris_xy, figs):
    X, y = iris_xy
    tree = SoftLabelTreeClassifier(max_depth=2, random_state=0).fit(X, y)
    rules = RuleListClassifier(max_rules=3, random_state=0).fit(X, y)
    assert isinstance(view_of(tree), TreeView) and view_of(tree).kind == "axis"
    assert isinstance(view_of(rules), RuleListView) and isinstance(view_of(figs), SumOfTreesView)
    assert [family_of(e) for e in (tree, rules, figs, SoftLabelLogisticRegression())] == ["tree", "rules", "figs", None]
    assert tree_view_of(figs) is None and tree_view_of(rules) is None  # single trees only
    with pytest.raises(TypeError, match="TreeView.of takes"):
        TreeView.of(figs)
    with pytest.raises(TypeError, match="No view reads a SoftLabelLogisticRegression"):
        view_of(SoftLabelLogisticRegression().fit(X, y))
    # the protocol: decisions, their conditions as data and what they predict, on every view
    for view in (view_of(tree), view_of(rules)):
        d = view.decision_of(X)
        assert set(np.unique(d)) <= set(view.decisions())
        assert all(isinstance(c, Condition) for c in view.decision_conditions(int(d[0])))
        assert view.decision_value(int(d[0])).shape == (3,)


class _Stump(BaseEstimator):
    """A family this package does not know: it joins with an adapter, not a branch in TreeView."""

    def fit(self, X, y):
        self.n_features_in_, self.classes_, self.cut_ = X.shape[1], np.unique(y), float(np.median(X[:, 0]))
        return self


def test_a_new_family_joins_by_registering_an_adapter(monkeypatch, iris_xy):
    from explain_distill.analysis.views import registry

    X, y = iris_xy
    monkeypatch.setattr(registry, "_ADAPTERS", list(registry._ADAPTERS))

    def build(est, feature_names=None, class_names=None, input_shape=None):
        return TreeView.from_arrays(children_left=[1, -1, -1], children_right=[2, -1, -1], feature=[0, -2, -2],
                                    threshold=[est.cut_, 0, 0], value=[[0.5, 0.5], [1, 0], [0, 1]],
                                    feature_names=feature_names or FEATURES, class_names=class_names or ["low", "high"])

    register_adapter("stump", "tree", lambda est: isinstance(est, _Stump), build)
    view = TreeView.of(_Stump().fit(X, y))
    assert view.rule(2) == f"sepal length > {float(np.median(X[:, 0])):.4g}"
    assert family_of(_Stump()) == "tree" and tree_view_of(_Stump().fit(X, y)).leaves() == [1, 2]


def test_one_place_writes_every_condition():
    w = ConditionWriter("scaled", None, ["petal", "<b>"])
    c = Condition(0, ">", 0.123456)
    assert w.text(c) == "petal > 0.1235"  # prose: 4 significant digits
    assert w.text(c, digits=3) == "petal > 0.123"  # drawings
    assert w.text(c, decimals=2) == "petal > 0.12"  # text exports
    assert w.text(FilterCondition(3, "<=")) == "filter@3 <= 0" and not w.converted
    units = RawUnits({"mean": [10.0, 0.0], "scale": [2.0, 0.5], "onehot": [{"column": "colour", "levels": ["red"], "features": [1]}]})
    raw = ConditionWriter(None, units, ["petal", "colour_red"])
    assert raw.converted and raw.value(0, 1.0) == 12.0
    assert raw.text(Condition(0, "<=", 1.0)) == "petal <= 12" and raw.text(Condition(0, "<=", 1.0), decimals=3) == "petal <= 12.000"
    assert raw.text(Condition(0, "<=", 1.0), decimals=3, raw_decimals=False) == "petal <= 12"
    assert raw.text(Condition(1, ">", 1.0)) == "colour = red" and raw.text(Condition(1, "<=", 1.0)) == "colour != red"
    assert raw.text(Condition(1, ">", 1.0), decimals=1, wording=False) == "colour_red > 0.5"
    by_name = ConditionWriter({"petal": lambda v: f"{v} cm"}, None, ["petal", "x"])
    assert by_name.texts([Condition(0, "<=", 2.0), Condition(1, ">", 3.0)]) == ["petal <= 2.0 cm", "x > 3"]
    assert tightest([(0, "<=", 3.0), (1, ">", 1.0), (0, "<=", 2.0), (1, ">", 1.5), (0, ">", -1.0)]) == [
        (0, "<=", 2.0), (1, ">", 1.5), (0, ">", -1.0)]


def test_figs_is_viewed_exported_and_drawn(figs, iris_xy):
    X, _ = iris_xy
    view = figs.view()
    assert isinstance(view, SumOfTreesView) and len(view.trees) == figs.n_trees_
    assert str(figs) == figs.to_text() == figs.export_text() == view.export_text()
    assert view.export_text().startswith("bias: setosa") and "tree 2:" in view.export_text()
    # one leaf per tree decides: the bias plus their values are the model's logits
    leaves = view.decision_of(X)
    logits = view.bias + np.stack([sum(view.decision_value(int(g)) for g in row) for row in leaves])
    np.testing.assert_allclose(logits, figs.decision_function(X), atol=1e-10)
    doc = figs.to_dict()
    json.dumps(doc)
    assert doc["kind"] == "sum" and len(doc["trees"]) == figs.n_trees_ and doc["bias"] == pytest.approx(list(figs.bias_))
    dot = figs.to_dot(X[100])
    red = [line.split()[0] for line in dot.splitlines() if "->" not in line and 'color="#d62728"' in line]
    assert len(red) == sum(len(p) for p in view.path(X[100]))  # the path in every tree
    assert view.highlight(X[100]).to_dot() == dot and "cluster_1" in dot
    assert figs.draw().svg().lstrip().startswith("<svg")


def test_a_surrogate_over_features_is_viewed_in_the_features_words(iris_xy):
    from explain_distill.features import FeatureSurrogate, FunctionFeatures

    X, y = iris_xy
    fmap = FunctionFeatures(lambda A: {"ink": A[:, 2] * 10, "width": A[:, 3]})
    F = fmap.transform(X)
    sur = FeatureSurrogate(fmap, SoftLabelTreeClassifier(max_depth=2, random_state=0).fit(F, y), family="tree")
    view = view_of(sur)
    assert isinstance(view, FeatureView) and view.kind == "axis" and view.feature_names == ["ink", "width"]
    np.testing.assert_array_equal(view.decision_of(X), sur.estimator.apply(F))  # raw inputs go through the map
    text = view.writer().texts(view.decision_conditions(view.decisions()[0]))
    assert text and all(t.startswith(("ink ≤", "ink >", "width ≤", "width >")) for t in text)
    assert family_of(sur) == "features" and tree_view_of(sur) is None
    with pytest.raises(TypeError, match="no view of its own"):
        view_of(FeatureSurrogate(fmap, SoftLabelLogisticRegression().fit(F, y), family="logistic"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_disagreement_tree_reads_as_scikit_learn_writes_it(seed):
    from sklearn.tree import DecisionTreeClassifier, export_text

    from explain_distill.analysis.fidelity import _where_tree

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 3)) * 5
    wrong = (X[:, seed] > 1) ^ (rng.random(300) < 0.15)
    clf = DecisionTreeClassifier(max_depth=2, min_samples_leaf=6, class_weight="balanced", random_state=0).fit(X, wrong.astype(int))
    for names in (["a", "b", "c"], None):
        assert _where_tree(X, wrong, names) == export_text(clf, feature_names=names, class_names=["agree", "disagree"], decimals=3)
