"""Display and export of every tree and rule list: names by default, exact text, dicts, DOT, drawings.

Exact expected outputs are checked on hand-built trees (``tests/test_viz_trees.tiny``), the rest
against the models themselves (every exported threshold is the model's, every highlighted path
is the one the model takes).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.tree import DecisionTreeClassifier

import explain_distill as ed
from explain_distill.analysis.tree_view import RuleListView, TreeView
from explain_distill.surrogates import RuleListClassifier, SoftDecisionTree, SoftLabelTreeClassifier
from explain_distill.surrogates._base import set_names
from explain_distill.viz.trees import TreeDrawing, rules_to_dot

from test_viz_trees import tiny

FEATURES = ["sepal length", "sepal width", "petal length", "petal width"]
CLASSES = ["setosa", "versicolor", "virginica"]


@pytest.fixture(scope="module")
def iris_xy():
    from sklearn.datasets import load_iris

    d = load_iris()
    return d.data.astype(np.float32), d.target


@pytest.fixture(scope="module")
def named_tree(iris_xy):
    X, y = iris_xy
    return set_names(SoftLabelTreeClassifier(max_depth=3, random_state=0).fit(X, y), feature_names=FEATURES, class_names=CLASSES)


@pytest.fixture(scope="module")
def named_rules(iris_xy):
    X, y = iris_xy
    est = RuleListClassifier(max_rules=3, max_depth=3, random_state=0).fit(X, y)
    return set_names(est, feature_names=FEATURES, class_names=CLASSES)


# ---------------------------------------------------------------------------- exact text on a tiny tree
def test_export_text_of_a_tiny_tree_is_exact():
    assert tiny().export_text() == (
        "|--- petal <= 0.500\n"
        "|   |--- class: a (p=0.90, n=6)\n"
        "|--- petal >  0.500\n"
        "|   |--- sepal <= -1.250\n"
        "|   |   |--- class: a (p=0.50, n=1)\n"
        "|   |--- sepal >  -1.250\n"
        "|   |   |--- class: b (p=1.00, n=3)"
    )
    assert tiny().export_text(decimals=1, show_samples=False).splitlines()[1] == "|   |--- class: a (p=0.90)"


def test_export_text_matches_scikit_learns_layout(iris_xy):
    """Same lines as sklearn.tree.export_text but for the leaves, which name the class and its probability."""
    from sklearn.tree import export_text

    X, y = iris_xy
    clf = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    ours = TreeView.of(clf, feature_names=FEATURES, class_names=CLASSES).export_text(decimals=2)
    theirs = export_text(clf, feature_names=FEATURES, decimals=2)
    split = [line for line in theirs.splitlines() if "class:" not in line]
    assert [line for line in ours.splitlines() if "class:" not in line] == split
    assert [line.split("class: ")[1].split(" ")[0] for line in ours.splitlines() if "class:" in line] == [
        line.split("class: ")[1] for line in theirs.replace("class: 0", "class: setosa").replace("class: 1", "class: versicolor")
        .replace("class: 2", "class: virginica").splitlines() if "class:" in line
    ]


def test_inverse_prints_thresholds_in_other_units():
    view = tiny()
    by_callable = view.export_text(inverse=lambda j, v: v * 10 + j)
    assert "petal <= 5.000" in by_callable and "sepal <= -11.500" in by_callable
    by_name = view.export_text(inverse={"sepal": lambda v: f"{v:+.2f} cm"})
    assert "petal <= 0.500" in by_name and "sepal <= -1.25 cm" in by_name  # a string is printed as given
    by_feature = view.to_dict(inverse=[None, lambda v: 2 * v])
    right = by_feature["tree"]["right"]
    assert right["threshold"] == -2.5 and right["threshold_fitted"] == -1.25 and by_feature["tree"]["threshold"] == 0.5
    assert view.rule(4, inverse=lambda j, v: "T") == "petal > T and sepal > T"
    assert "petal &lt;= 50" in view.to_dot(inverse=lambda j, v: v * 100)
    with pytest.raises(ValueError, match="2 features"):
        view.export_text(inverse=[None])
    with pytest.raises(ValueError, match="neither a feature name"):
        view.export_text(inverse={"nope": abs})
    with pytest.raises(TypeError, match="callable"):
        view.export_text(inverse=3.0)


def test_to_dict_is_json_and_mirrors_the_nodes():
    doc = tiny().to_dict()
    json.dumps(doc)
    root = doc["tree"]
    assert (root["feature"], root["feature_index"], root["threshold"], root["samples"]) == ("petal", 0, 0.5, 10.0)
    assert root["left"]["leaf"] and root["left"]["class"] == "a" and root["left"]["value"] == [0.9, 0.1]
    assert root["right"]["right"]["class"] == "b" and root["right"]["right"]["probability"] == 1.0
    assert doc["feature_names"] == ["petal", "sepal"] and doc["class_names"] == ["a", "b"]


# ---------------------------------------------------------------------------- names by default
def test_surrogates_export_with_their_names(named_tree, iris_xy):
    X, _ = iris_xy
    text = named_tree.export_text()
    assert text.startswith("|--- petal") and "class: setosa" in text and "x0" not in text
    view = TreeView.of(named_tree)
    assert view.feature_names == FEATURES and view.class_names == CLASSES
    doc = named_tree.to_dict()
    assert doc["class_names"] == CLASSES and doc["tree"]["feature"] in FEATURES
    # every exported split is the model's own
    t = named_tree.tree_
    assert doc["tree"]["threshold"] == pytest.approx(float(t.threshold[0])) and doc["tree"]["feature_index"] == int(t.feature[0])
    # the names can still be overridden
    assert TreeView.of(named_tree, class_names=["a", "b", "c"]).class_names == ["a", "b", "c"]


def test_unnamed_surrogates_fall_back_to_positions(iris_xy):
    X, y = iris_xy
    est = SoftLabelTreeClassifier(max_depth=2, random_state=0).fit(X, y)
    assert est.export_text().startswith("|--- x") and TreeView.of(est).class_names == ["0", "1", "2"]


def test_soft_tree_exports_filters_with_weights(iris_xy):
    X, y = iris_xy
    est = set_names(SoftDecisionTree(depth=2, epochs=3, device="cpu", random_state=0).fit(X, y),
                    feature_names=FEATURES, class_names=CLASSES)
    text = est.export_text()
    assert text.splitlines()[0] == "|--- filter@0 <= 0" and text.count("class: ") == 4
    doc = est.to_dict()
    np.testing.assert_allclose(doc["tree"]["weights"], est.inner_weight_[0], rtol=1e-6)
    assert doc["tree"]["bias"] == pytest.approx(float(est.inner_bias_[0]), rel=1e-6)
    x = X[60]
    dot = est.to_dot(x)
    path = TreeView.of(est).path(x)
    red = sorted(int(line.split()[0][1:]) for line in dot.splitlines() if "->" not in line and 'color="#d62728"' in line)
    assert red == sorted(path)


# ---------------------------------------------------------------------------- highlight and drawings
def test_highlight_keeps_path_backward_compatible(named_tree, iris_xy):
    X, _ = iris_xy
    view = TreeView.of(named_tree)
    x = X[100]
    path = view.path(x)
    assert isinstance(path, list) and path[0] == 0 and view.nodes[path[-1]].is_leaf
    hl = view.highlight(x)
    assert hl.highlighted == path and view.highlighted is None  # the original view is untouched
    assert "highlighted=" in repr(hl) and "highlighted" not in repr(view)
    assert hl.to_dot() == view.to_dot(x) == named_tree.to_dot(x)
    assert hl.path(X[0]) == view.path(X[0])  # still the same tree


def test_svg_display_draws_the_tree_with_the_path(named_tree, iris_xy):
    X, _ = iris_xy
    svg = TreeView.of(named_tree).highlight(X[100])._repr_svg_()
    assert svg.lstrip().startswith("<svg") and "#d62728" in svg and "petal width" in svg
    drawing = named_tree.draw()
    assert isinstance(drawing, TreeDrawing) and "#d62728" not in drawing.svg()


def test_drawing_saves_svg_or_dot(named_tree, tmp_path, monkeypatch):
    drawing = named_tree.draw()
    assert drawing.save(tmp_path / "t.svg").read_text().lstrip().startswith("<svg")
    assert drawing.save(tmp_path / "t.dot").read_text() == drawing.dot
    with pytest.raises(ValueError, match=r"\.svg, \.dot or \.gv"):
        drawing.save(tmp_path / "t.png")
    import graphviz

    def missing(*args, **kwargs):
        raise graphviz.ExecutableNotFound(("dot",))

    monkeypatch.setattr(graphviz.Source, "pipe", missing)
    blind = named_tree.draw()
    assert blind._repr_svg_() is None and "not installed" in blind.problem  # the notebook falls back to text
    with pytest.raises(RuntimeError, match="not installed.*Save the DOT text instead: drawing.save"):
        blind.save(tmp_path / "u.svg")


def test_large_trees_display_their_top_levels():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(300, 4)), rng.integers(0, 3, size=300)  # noise: a full depth-8 tree
    est = SoftLabelTreeClassifier(max_depth=8, random_state=0).fit(X, y)
    view = TreeView.of(est)
    assert len(view.nodes) > 31
    auto = view.to_dot(X[0])
    full = view.to_dot(X[0], max_depth_shown=None)
    assert "hidden" in auto and "hidden" not in full
    for node in view.path(X[0]):  # the highlighted path is always drawn
        assert f"  n{node} [" in auto


# ---------------------------------------------------------------------------- rule lists
def test_rule_list_text_and_view_agree_with_the_model(named_rules, iris_xy):
    X, _ = iris_xy
    view = named_rules.view()
    assert isinstance(view, RuleListView)
    np.testing.assert_array_equal(view.rule_of(X), named_rules.rule_of(X))
    text = str(named_rules)
    assert text == named_rules.to_text() == named_rules.export_text() == view.export_text()
    assert text.startswith("IF petal") and "setosa" in text and text.splitlines()[-1].startswith("ELSE ")
    assert all("fidelity" in line for line in text.splitlines())  # each rule with its coverage and fidelity
    other = named_rules.to_text(feature_names=["a", "b", "c", "d"], class_names=["p", "q", "r"])
    assert "THEN p" in other or "THEN q" in other or "THEN r" in other
    with pytest.raises(ValueError, match="feature_names has 2 entries"):
        named_rules.to_text(feature_names=["a", "b"])


def test_rule_list_to_dict(named_rules):
    doc = named_rules.to_dict()
    json.dumps(doc)
    assert len(doc["rules"]) == len(named_rules.rules_) and doc["rules"][-1]["conditions"] == []
    first = doc["rules"][0]["conditions"][0]
    f, op, t = named_rules.rules_[0]["conditions"][0]
    assert (first["feature"], first["feature_index"], first["op"], first["threshold"]) == (FEATURES[f], f, op, t)
    assert sum(r["coverage"] for r in doc["rules"]) == pytest.approx(1.0)
    assert named_rules.to_dict(inverse=lambda j, v: f"{v} cm")["rules"][0]["conditions"][0]["threshold"] == f"{t} cm"


def test_rule_list_drawing_highlights_the_deciding_rule(named_rules, iris_xy):
    X, _ = iris_xy
    which = named_rules.rule_of(X)
    x = X[int(np.argmax(which == 1))]  # decided by the second rule: the first is passed
    dot = named_rules.to_dot(x)
    lines = dot.splitlines()
    red = lambda prefix: any(line.startswith(f"  {prefix} ") and "#d62728" in line for line in lines)  # noqa: E731
    assert red("r0") and red("r1") and red("c1") and not red("c0") and not red("r2")
    assert any(line.startswith("  r0 -> r1") and "#d62728" in line for line in lines)
    assert named_rules.view().highlight(x).highlighted == 1
    svg = named_rules.draw(x)._repr_svg_()
    assert svg.lstrip().startswith("<svg") and "setosa" in svg


def test_rules_to_dot_escapes_names():
    view = RuleListView(
        rules=[{"conditions": [(0, "<=", 0.5)], "value": [0.9, 0.1], "coverage": 0.6},
               {"conditions": [], "value": [0.2, 0.8], "coverage": 0.4}],
        feature_names=["<script>x</script>"], class_names=["a&b", '"q"'],
    )
    dot = rules_to_dot(view)
    assert "<script>" not in dot and "&lt;script&gt;x&lt;/script&gt; &lt;= 0.500" in dot and "a&amp;b" in dot
    assert "else: <B>&quot;q&quot;</B>" in dot
    with pytest.raises(TypeError, match="RuleListView"):
        rules_to_dot({"rules": []})
    with pytest.raises(ValueError, match="fired must be in"):
        rules_to_dot(view, fired=5)


# ---------------------------------------------------------------------------- another tree family
class _ArraysTree(BaseEstimator):
    """A stand-in for a tree surrogate of another family: it only speaks ``_tree_arrays``."""

    def fit(self, X, y):
        self.n_features_in_ = 2
        self.classes_ = np.array([0, 1])
        self.feature_names_in_ = np.array(["age", "income"], dtype=object)
        self.class_names_ = np.array(["no", "yes"], dtype=object)
        return self

    def _tree_arrays(self):
        return {
            "children_left": [1, -1, -1], "children_right": [2, -1, -1], "feature": [1, -2, -2],
            "threshold": [3.5, -2.0, -2.0], "value": [[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]], "n_samples": [10, 6, 4],
        }


def test_any_tree_family_joins_through_tree_arrays():
    view = TreeView.of(_ArraysTree().fit(None, None))
    assert view.kind == "axis" and view.feature_names == ["age", "income"] and view.class_names == ["no", "yes"]
    assert view.export_text() == (
        "|--- income <= 3.500\n|   |--- class: no (p=0.90, n=6)\n|--- income >  3.500\n|   |--- class: yes (p=0.80, n=4)"
    )
    assert view.leaf_of(np.array([[0.0, 1.0], [0.0, 9.0]])).tolist() == [1, 2]
    with pytest.raises(ValueError, match="pre-order"):  # node 0 pointing back at itself
        TreeView.from_arrays(children_left=[1, -1, -1], children_right=[0, -1, -1], feature=[0, 0, 0],
                             threshold=[0, 0, 0], value=np.ones((3, 2)), feature_names=["a"], class_names=["p", "q"])


# ---------------------------------------------------------------------------- through distill
def test_distilled_surrogates_carry_the_data_names(iris, iris_teacher, tmp_path):
    run = ed.distill(iris_teacher, iris, surrogates=["tree", "rules", "logistic"], queries=None, seed=0)
    for name, est in run.surrogates.items():
        assert list(est.feature_names_in_) == iris.feature_names, name
        assert list(est.class_names_) == iris.class_names, name
    assert "petal" in str(run.surrogates["rules"]) and any(c in str(run.surrogates["rules"]) for c in iris.class_names)
    view = TreeView.of(run.surrogates["tree"])
    assert view.feature_names == iris.feature_names and view.class_names == iris.class_names
    run.save(tmp_path / "run")
    # a run saved before names were stored per surrogate gets them from its data set on load
    for name in run.surrogates:
        path = tmp_path / "run" / "surrogates" / f"{name}.json"
        doc = json.loads(path.read_text())
        doc.pop("feature_names_in"), doc.pop("class_names")
        path.write_text(json.dumps(doc))
    again = ed.load(tmp_path / "run")
    assert list(again.surrogates["tree"].class_names_) == iris.class_names
    assert str(again.surrogates["rules"]) == str(run.surrogates["rules"])
