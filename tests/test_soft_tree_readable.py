"""A soft tree a person can follow: sparse filters, each path node's filter beside it, labelled numbers."""

from __future__ import annotations

import re

import numpy as np
import pytest

import explain_distill as ed
from explain_distill.surrogates import SURROGATES, SoftDecisionTree, SparseSoftDecisionTree


@pytest.fixture(scope="module")
def sparse_tree(digits_run):
    X, P = digits_run.transfer.X, digits_run.transfer.P
    return SparseSoftDecisionTree(depth=4, epochs=8, device="cpu", random_state=0, input_shape=(1, 8, 8)).fit(X, P)


def test_sparse_filters_keep_at_most_k_weights_per_node(sparse_tree, digits_run, digits):
    assert SURROGATES["soft_tree_sparse"] is SparseSoftDecisionTree and sparse_tree.max_weights == 8
    nz = sparse_tree.nonzero_per_node_
    assert len(nz) == 15 and nz.max() <= 8 and nz.min() >= 1
    assert sparse_tree.n_params_ == int(np.count_nonzero(sparse_tree.inner_weight_)) + 15 + 15 + 16 * 10
    dense = SoftDecisionTree(depth=4, epochs=8, device="cpu", random_state=0).fit(digits_run.transfer.X, digits_run.transfer.P)
    assert dense.nonzero_per_node_.min() > 8  # the option is what makes them sparse
    t_pred = digits_run.teacher.predict(digits.X_test)
    assert np.mean(sparse_tree.predict(digits.X_test) == t_pred) > 0.6  # still a working tree at depth 4
    with pytest.raises(ValueError, match="max_weights must be in"):
        SoftDecisionTree(max_weights=0, device="cpu").fit(digits.X_train[:20], digits.y_train[:20])


def test_path_steps_label_the_filter_response_and_the_probability_of_going_right(sparse_tree, digits):
    view = ed.TreeView.of(sparse_tree)
    x = digits.X_test[3]
    steps = view.path_steps(x)
    assert [s["node"] for s in steps] == view.path(x)[:-1]
    for s in steps:
        nd = view.nodes[s["node"]]
        r = float(x @ nd.weights + nd.bias)
        assert s["response"] == pytest.approx(r)
        assert s["p_right"] == pytest.approx(1 / (1 + np.exp(-nd.beta * r)))
        assert s["direction"] == ("right" if r > 0 else "left")


def test_drawing_shows_each_path_node_filter_beside_it(sparse_tree, digits):
    view = ed.TreeView.of(sparse_tree).highlight(digits.X_test[3])
    drawing = view.draw()
    path = view.highlighted
    assert set(drawing.images) == {f"filter_{n}.png" for n in path[:-1]}
    assert all(png.startswith(b"\x89PNG") for png in drawing.images.values())
    assert 'IMG SRC="filter_0.png"' in drawing.dot
    notes = re.findall(r"response (-?\d+\.\d+), P\(right\) (\d\.\d+)", drawing.dot)
    assert len(notes) == len(path) - 1
    svg = drawing.svg()
    if svg is None:
        pytest.skip(f"Graphviz is not installed here: {drawing.problem}")
    assert svg.count("data:image/png;base64,") == len(path) - 1  # embedded: the SVG stands alone
    assert "filter_0.png" not in svg
    assert "4 nonzero weights" in drawing.dot or "8 nonzero weights" in drawing.dot or "nonzero weights" in drawing.dot


def test_tabular_thumbnails_name_features_in_full():
    from explain_distill.viz.plots import _filter_thumbnail_figure

    names = ["mean radius of the nucleus", "worst texture", "c", "d"]
    fig = _filter_thumbnail_figure(np.array([0.5, -1.0, 0.0, 0.2]), input_shape=None, kind="tabular", feature_names=names, top_k=8)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "mean radius of the nucleus" in labels and "c" not in labels  # zero weights are left out
    assert fig.axes[0].get_xlabel() == "weight"  # a scale


def test_report_soft_tree_sections_show_filters_on_the_path(digits_run, sparse_tree, tmp_path):
    run = ed.Distillation(teacher=digits_run.teacher, dataset=digits_run.dataset, surrogates={"soft_tree_sparse": sparse_tree},
                          metrics={}, seed=0)
    html = ed.build_report(run, tmp_path / "r").read_text()
    section = html[html.index('id="soft-tree"'):html.index('id="shallow-tree"')]
    assert "soft_tree_sparse" in section and "Sparse filters: at most 8 nonzero weights per node" in section
    assert "P(right)" in section and "response" in section
