"""The data's own units everywhere: thresholds print as the user wrote the data, never as z-scores."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import explain_distill as ed
from explain_distill.analysis.units import RawUnits, format_value

NUMBER = r"-?\d+(?:\.\d+)?(?:e-?\d+)?"


@pytest.fixture(scope="module")
def units_run(digits, digits_teacher):
    return ed.distill(digits_teacher, digits, surrogates=["tree", "rules"], queries=None, seed=0,
                      params={"tree": {"max_depth": 4}, "rules": {"max_rules": 6}})


def _thresholds(text: str) -> list[float]:
    return [float(m) for m in re.findall(rf"(?:<=|>|&lt;=|&gt;)\s+({NUMBER})", text)]


def test_tree_rules_exports_and_drawings_are_in_pixel_values(units_run, digits):
    tree = units_run.surrogates["tree"]
    view = ed.TreeView.of(tree)
    # integer pixels: a split at 8.5 reads "<= 8" / "> 8" (the Dataset's own inverse); where no pixel of
    # that feature takes 8, or the fitted cut sits a float32 step under 9, the value printed is a whole
    # number between the largest value the data takes under the cut and the cut: the same rows each side.
    X = np.concatenate([digits.X_train, digits.X_test]).astype(np.float32)  # compared as the model compares
    allowed = set()
    for f, t in {(nd.feature, nd.threshold) for nd in view.nodes if not nd.is_leaf}:
        below = X[:, f][X[:, f] <= t]
        low = round(float(digits.inverse_transform(np.full(64, below.max()))[f])) if len(below) else 0
        cut = float(digits.inverse_transform(np.full(64, t))[f])
        allowed |= {float(v) for v in range(low, int(np.floor(cut + 1e-6)) + 1)}
    cuts = allowed
    for text in (" ".join(r for _, r in view.rules()), tree.export_text(), view.to_dot()):
        values = _thresholds(text)
        assert values and all(0.0 <= v <= 16.0 for v in values), text[:300]  # pixel values 0..16, never negative
        assert set(values) <= cuts and all(v == int(v) for v in values), text[:300]
    doc = tree.to_dict()
    conditions = re.findall(r'"condition": "([^"]+)"', json.dumps(doc))
    assert conditions and {float(c.split()[-1]) for c in conditions} <= cuts  # the text of each split, as printed
    d = tree.to_dict()
    assert d["tree"]["threshold"] == pytest.approx(digits.inverse_transform(np.full(64, d["tree"]["threshold_fitted"]))[0])
    # z-scores only when asked for
    scaled = _thresholds(" ".join(r for _, r in view.rules(inverse="scaled")))
    assert any(v < 0 for v in scaled) or min(scaled) < 0.5


def test_print_of_the_rule_list_is_in_raw_units(units_run, digits):
    text = str(units_run.surrogates["rules"])
    values = _thresholds(text)
    assert values and all(0.0 <= v <= 16.0 for v in values)
    assert "pixel_" in text
    rules = units_run.surrogates["rules"].rules_
    f, op, t = rules[0]["conditions"][0]
    cut = int(np.floor(digits.inverse_transform(np.full(64, t))[f]))  # integer pixels print as integers
    assert f"{digits.feature_names[f]} {op} {cut}" in text


def test_analysis_and_report_thresholds_are_raw(units_run, digits, tmp_path):
    analyses = ed.run_analyses(units_run, robustness=False, attributions=False)
    doc = analyses.to_json()
    for leaf in doc["fidelity"]["tree"]["leaves"]:
        assert all(0 <= v <= 16 for v in _thresholds(leaf["rule"]))
    where = doc["fidelity"]["tree"]["disagreements"]["where"]
    assert where is None or all(0 <= v <= 16 for v in _thresholds(where))
    X = np.asarray(doc["fidelity"]["tree"]["disagreements"]["X"], dtype=float)
    assert X.min() >= -1e-5 and X.max() <= 16 + 1e-5  # disagreement cases in pixel values (float32 round-off)
    html = ed.build_report(units_run, tmp_path / "r", analyses=analyses).read_text()
    section = html[html.index('id="shallow-tree"'):]
    values = _thresholds(section[: section.index("</section>")])
    assert values and all(0 <= v <= 16 for v in values)
    assert "(row " in html  # test samples traced to their row of the user's array


def test_units_survive_save_and_load(units_run, tmp_path):
    units_run.save(tmp_path / "run")
    back = ed.load(tmp_path / "run", device="cpu")
    assert str(back.surrogates["rules"]) == str(units_run.surrogates["rules"])
    np.testing.assert_allclose(back.surrogates["tree"].input_units_["scale"], units_run.surrogates["tree"].input_units_["scale"])


def test_one_hot_columns_read_as_column_equals_level(tmp_path, iris_teacher, monkeypatch):
    path = tmp_path / "d.csv"
    colours = ["red", "green", "blue"]
    rows = [f"{colours[i % 3]},{(i * 7) % 11 + 0.5},{'yes' if i % 3 == 0 else 'no'}" for i in range(150)]
    path.write_text("colour,size,label\n" + "\n".join(rows) + "\n")
    data = ed.Dataset.from_csv(path, target="label")
    from explain_distill.surrogates import SoftLabelTreeClassifier
    from explain_distill.surrogates._base import set_names, set_units

    tree = SoftLabelTreeClassifier(max_depth=2, random_state=0).fit(data.X_train, data.y_train)
    set_names(tree, feature_names=data.feature_names, class_names=data.class_names)
    set_units(tree, data.units())
    text = " ".join(r for _, r in ed.TreeView.of(tree).rules())
    assert re.search(r"colour (=|!=) (red|green|blue)", text), text
    assert "colour=red <=" not in text and "colour=red >" not in text
    assert data.source_row("test", 0).startswith("CSV line ")


def test_raw_units_helpers():
    u = RawUnits({"mean": [10.0, 0.5], "scale": [2.0, 0.5], "onehot": [{"column": "c", "levels": ["x"], "features": [1]}]})
    assert u(0, 1.5) == 13.0
    assert u.condition(0, "<=", 1.5, "size") == "size <= 13"
    assert u.condition(1, ">", 0.0, "c=x") == "c = x" and u.condition(1, "<=", 0.0, "c=x") == "c != x"
    assert format_value(8.5) == "8.5" and format_value(0.012341) == "0.01234" and format_value(123456.0) == "123456"
    with pytest.raises(ValueError, match="3 feature names"):
        RawUnits({"mean": [0.0, 1.0], "scale": [1.0, 1.0]}, ["a", "b", "c"])
