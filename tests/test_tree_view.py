"""TreeView: one view over sklearn trees, the soft-label tree and the soft decision tree."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from explain_distill.analysis.tree_view import TreeNode, TreeView
from explain_distill.surrogates.shallow import SoftLabelTreeClassifier


@pytest.fixture(scope="module")
def Xy():
    X, y = make_classification(n_samples=300, n_features=6, n_informative=4, n_classes=3, random_state=0)
    return X.astype(np.float32), y


def _check_rule_matches_leaf(view: TreeView, X: np.ndarray) -> None:
    """Every sample satisfies the rule of the leaf it lands in (rules evaluated independently)."""
    leaves = view.leaf_of(X)
    for i in range(0, len(X), 7):
        for node, cond in view.conditions(int(leaves[i])):
            nd = view.nodes[node]
            if view.kind == "axis":
                val = np.float32(X[i, nd.feature])
                holds = val <= nd.threshold if "<=" in cond else val > nd.threshold
            else:
                resp = float(np.dot(X[i].astype(np.float64), nd.weights) + nd.bias)
                holds = resp <= 0 if "<=" in cond else resp > 0
            assert holds, (i, node, cond)


def test_classifier_view_matches_sklearn(Xy):
    X, y = Xy
    clf = DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, y)
    view = TreeView.of(clf, feature_names=[f"f{i}" for i in range(6)])
    assert view.kind == "axis"
    assert len(view.nodes) == clf.tree_.node_count
    assert view.depth == clf.get_depth()
    assert view.leaves() == [i for i in range(clf.tree_.node_count) if clf.tree_.children_left[i] == -1]
    np.testing.assert_array_equal(view.leaf_of(X), clf.apply(X))
    # leaf values are class distributions matching predict_proba
    leaf_vals = np.stack([view.nodes[l].value for l in view.leaf_of(X)])
    np.testing.assert_allclose(leaf_vals, clf.predict_proba(X), atol=1e-12)
    # path agrees with decision_path
    for i in (0, 5, 17):
        expected = np.nonzero(clf.decision_path(X[i : i + 1]).toarray()[0])[0].tolist()
        assert view.path(X[i]) == expected
    assert view.class_names == ["0", "1", "2"]
    assert view.nodes[0].n_samples == len(X)
    _check_rule_matches_leaf(view, X)


def test_rule_text_format(Xy):
    X, y = Xy
    clf = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y)
    names = ["alpha", "beta", "gamma", "delta", "eps", "zeta"]
    view = TreeView.of(clf, feature_names=names)
    root = view.nodes[0]
    leaf = view.path_to(view.leaves()[0])[-1]
    rule = view.rule(leaf)
    assert rule.startswith(f"{names[root.feature]} <= ")
    assert rule.count(" and ") == view.nodes[leaf].depth - 1
    rules = dict(view.rules())
    assert set(rules) == set(view.leaves())
    right_leaf = view.leaves()[-1]
    assert f"{names[root.feature]} > " in rules[right_leaf]


def test_soft_label_tree_view(Xy):
    X, y = Xy
    P = np.eye(3)[y] * 0.8 + 0.2 / 3
    est = SoftLabelTreeClassifier(max_depth=3, random_state=0).fit(X, P)
    view = TreeView.of(est)
    np.testing.assert_array_equal(view.leaf_of(X), est.apply(X))
    for nd in view.nodes:
        assert nd.value.shape == (3,)
        assert abs(nd.value.sum() - 1) < 1e-9
    leaf_vals = np.stack([view.nodes[l].value for l in view.leaf_of(X)])
    np.testing.assert_allclose(leaf_vals, est.predict_proba(X), atol=1e-6)
    assert view.feature_names == [f"x{i}" for i in range(6)]


def test_regressor_view(Xy):
    X, y = Xy
    reg = DecisionTreeRegressor(max_depth=3, random_state=0).fit(X, y.astype(float))
    view = TreeView.of(reg)
    assert view.class_names == ["value"]
    np.testing.assert_array_equal(view.leaf_of(X), reg.apply(X))
    np.testing.assert_allclose([view.nodes[l].value[0] for l in view.leaf_of(X)], reg.predict(X))


def test_single_node_tree():
    X = np.zeros((5, 2))
    clf = DecisionTreeClassifier().fit(X, [0, 1, 0, 1, 0])
    view = TreeView.of(clf)
    assert view.depth == 0 and view.leaves() == [0]
    assert view.rule(0) == "True"
    assert view.path(X[0]) == [0]


def test_bad_inputs(Xy):
    X, y = Xy
    with pytest.raises(TypeError, match="LogisticRegression"):
        TreeView.of(LogisticRegression().fit(X, y))
    with pytest.raises(NotFittedError):
        TreeView.of(DecisionTreeClassifier())
    clf = DecisionTreeClassifier(max_depth=2).fit(X, y)
    with pytest.raises(ValueError, match="feature_names has 2 entries"):
        TreeView.of(clf, feature_names=["a", "b"])
    with pytest.raises(ValueError, match="input_shape"):
        TreeView.of(clf, input_shape=(4, 4))
    view = TreeView.of(clf, input_shape=(2, 3))
    assert view.input_shape == (2, 3)
    with pytest.raises(ValueError, match="features"):
        view.leaf_of(X[:, :3])
    with pytest.raises(ValueError, match="node must be in"):
        view.rule(10_000)
    assert isinstance(view.nodes[0], TreeNode)
