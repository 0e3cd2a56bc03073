"""Conditions true as printed: parse every printed rule back into a predicate over the data's raw values,
evaluate it on the raw test rows, and it selects exactly the rows the model routes there; no printed
rule states a feature twice.  On every built-in data set and on a CSV with 0/1, integer, one-hot and
real columns."""

from __future__ import annotations

import re

import numpy as np
import pytest

import explain_distill as ed
from explain_distill.data.csv import read_csv


def _mixed_csv(path, n=900, seed=0):
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 73, n)
    senior = (rng.random(n) < 0.2).astype(int)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], n, p=[0.55, 0.2, 0.25])
    support = rng.choice(["Yes", "No", "No internet service"], n)
    charges = np.round(rng.normal(65, 25, n), 2)
    z = -0.07 * tenure + 1.5 * (contract == "Month-to-month") + 0.6 * senior + 0.02 * charges + rng.normal(0, 0.5, n)
    label = np.where(z > np.quantile(z, 0.75), "Yes", "No")
    lines = ["tenure,senior_citizen,contract,tech_support,monthly_charges,churn"]
    lines += [f"{tenure[i]},{senior[i]},{contract[i]},{support[i]},{charges[i]:.2f},{label[i]}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _raw_test_rows(name, data, csv_path=None):
    """The test rows as the user wrote them (not reconstructed from the scaled floats)."""
    rows = np.asarray(data.source_rows["test"])
    if csv_path is not None:
        table = read_csv(csv_path, "churn", categorical="onehot", missing="error", max_categories=50)
        index = {int(line): i for i, line in enumerate(table.lines)}
        return table.X[[index[int(r)] for r in rows]]
    if name == "mnist1d":
        from explain_distill.data.builtin import _make_mnist1d

        return _make_mnist1d(1000, seed=0)[0][rows]
    from sklearn import datasets as skd

    return getattr(skd, f"load_{name}")().data[rows].astype(np.float64)


class _Predicate:
    """A printed conjunction read back, evaluated on raw rows."""

    def __init__(self, text, names, onehot):
        self.names, self.onehot = names, onehot  # onehot: column -> {level: feature index}
        self.parts = [] if text in ("", "True") else re.split(r" and | AND ", text)

    def features(self):
        out = []
        for part in self.parts:
            m = re.match(r"^\S+ < (.+) <= \S+$", part)
            name = m.group(1) if m else re.split(r" (?:<=|>|!=|=|not in) ", part)[0]
            out.append(name)
        return out

    def __call__(self, R):
        keep = np.ones(len(R), dtype=bool)
        for part in self.parts:
            keep &= self._one(part, R)
        return keep

    def _one(self, part, R):
        m = re.match(r"^(\S+) < (.+) <= (\S+)$", part)
        if m:
            col = R[:, self.names.index(m.group(2))]
            return (col > float(m.group(1))) & (col <= float(m.group(3)))
        m = re.match(r"^(.+) not in \{(.*)\}$", part)
        if m:
            levels = self.onehot[m.group(1)]
            hot = [lv for lv in levels if lv in [x.strip() for x in m.group(2).split(",")]]
            return ~np.any([R[:, levels[lv]] == 1 for lv in hot], axis=0)
        name, op, value = re.match(r"^(.+) (<=|>|!=|=) (.+)$", part).groups()
        if name in self.onehot:
            hit = R[:, self.onehot[name][value]] == 1
            return hit if op == "=" else ~hit
        col = R[:, self.names.index(name)]
        v = float(value)
        return {"<=": col <= v, ">": col > v, "=": col == v, "!=": col != v}[op]


def _onehot(data):
    return {g["column"]: {lv: j for lv, j in zip(g["levels"], g["features"])} for g in data.encoding.get("onehot", [])}


CASES = ["iris", "wine", "breast_cancer", "digits", "mnist1d", "mixed.csv"]


@pytest.fixture(scope="module", params=CASES)
def case(request, tmp_path_factory):
    name = request.param
    csv_path = None
    if name == "mixed.csv":
        csv_path = _mixed_csv(tmp_path_factory.mktemp("mixed") / "mixed.csv")
        data = ed.Dataset.from_csv(csv_path, target="churn")
    elif name == "mnist1d":
        data = ed.load_dataset("mnist1d", n_samples=1000)
    else:
        data = ed.load_dataset(name)
    teacher = ed.train_teacher(data, seed=0, epochs=6, progress=False)
    result = ed.distill(teacher, data, surrogates=["tree", "rules", "figs"], queries={"jitter": 600, "mixup": 600},
                        frontier=False, params={"tree": {"max_leaf_nodes": 24, "max_depth": None},
                                                "rules": {"max_rules": 12}, "figs": {"max_leaves": 12}}, seed=0)
    return name, data, result, _raw_test_rows(name, data, csv_path)


def test_every_leaf_rule_selects_exactly_the_rows_the_tree_routes_there(case):
    name, data, result, R = case
    view = ed.TreeView.of(result.surrogates["tree"])
    leaf_of = view.leaf_of(data.X_test)
    for leaf, text in view.rules():
        pred = _Predicate(text, data.feature_names, _onehot(data))
        feats = pred.features()
        assert len(feats) == len(set(feats)), f"{name}: a feature repeats in {text!r}"
        np.testing.assert_array_equal(pred(R), leaf_of == leaf, err_msg=f"{name}: leaf {leaf}: {text}")


def test_a_refined_trees_leaf_rules_are_true_as_printed(case):
    """The refined tree (distill's default, its thresholds re-chosen on binned midpoints) reads as true."""
    name, data, result, R = case
    refined = ed.distill(result.teacher, data, surrogates=["tree"], queries={"jitter": 600, "mixup": 600}, frontier=False,
                         params={"tree": {"max_leaf_nodes": 24, "max_depth": None, "refine": True}}, seed=0)
    tree = refined.surrogates["tree"]
    assert tree.refinement_["changed"] > 0 and tree.refinement_["kept"], name
    view = ed.TreeView.of(tree)
    leaf_of = view.leaf_of(data.X_test)
    for leaf, text in view.rules():
        pred = _Predicate(text, data.feature_names, _onehot(data))
        np.testing.assert_array_equal(pred(R), leaf_of == leaf, err_msg=f"{name}: leaf {leaf}: {text}")


def test_every_rule_of_the_list_fires_on_exactly_the_rows_the_model_sends_there(case):
    name, data, result, R = case
    view = result.surrogates["rules"].view()
    fired = view.rule_of(data.X_test)
    texts = [" AND ".join(view.writer().texts(view.decision_conditions(r))) for r in range(len(view.rules))]
    preds = [_Predicate(t, data.feature_names, _onehot(data)) for t in texts]
    for t, p in zip(texts, preds):
        feats = p.features()
        assert len(feats) == len(set(feats)), f"{name}: a feature repeats in {t!r}"
    first = np.full(len(R), -1)
    for r, p in enumerate(preds):
        first[(first < 0) & p(R)] = r
    np.testing.assert_array_equal(first, fired, err_msg=name)
    printed = str(result.surrogates["rules"])  # the text a person reads holds the same conditions
    for t in texts[:-1]:
        assert t in printed


def test_sum_of_trees_leaves_are_true_as_printed(case):
    name, data, result, R = case
    figs = result.surrogates["figs"].view()
    for tree in figs.trees:
        leaf_of = tree.leaf_of(data.X_test)
        for leaf, text in tree.rules():
            pred = _Predicate(text, data.feature_names, _onehot(data))
            np.testing.assert_array_equal(pred(R), leaf_of == leaf, err_msg=f"{name}: {text}")


def test_binary_integer_and_onehot_columns_read_as_such(case):
    name, data, result, _ = case
    kinds = dict(zip(data.feature_names, data.schema.kinds))
    text = result.surrogates["tree"].export_text() + "\n" + str(result.surrogates["rules"])
    for line in re.findall(r"(?:\|--- |IF |AND )([^|\n]+?)(?= THEN| AND |\n|$)", text):
        m = re.match(r"^(.+) (<=|>|=) (\S+)$", line.strip())
        if not m or m.group(1) not in kinds:
            continue
        kind, value = kinds[m.group(1)], m.group(3)
        if kind == "binary":
            assert m.group(2) == "=" and value in ("0", "1"), line
        if kind == "integer":
            assert re.fullmatch(r"-?\d+", value), line


def test_the_reports_rule_table_states_each_feature_once(case):
    from explain_distill.analysis.readable import rule_list_table

    name, data, result, _ = case
    table = rule_list_table(result.surrogates["rules"], data.X_test, result.teacher.predict(data.X_test))
    for row in table["rules"]:
        feats = _Predicate(" and ".join(row["conditions"]), data.feature_names, _onehot(data)).features()
        assert len(feats) == len(set(feats)), f"{name}: {row['conditions']}"
