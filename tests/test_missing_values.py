"""Reading data the way people write it: missing-value markers, ids and free text, single-row classes."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

import explain_distill as ed
from explain_distill.data import MISSING_MARKERS

MARKERS = ["NA", "N/A", "?", "null", "-", "None", "#N/A", "", "nan"]


def _bc_csv(path, marks):
    """breast_cancer as a CSV, with ``marks`` {(row, column): marker} written into numeric cells."""
    from sklearn.datasets import load_breast_cancer

    b = load_breast_cancer()
    names = [n.replace(" ", "_") for n in b.feature_names]
    lines = [",".join(names + ["label"])]
    for i, (x, y) in enumerate(zip(b.data, b.target)):
        cells = [repr(float(v)) for v in x]
        for (r, c), m in marks.items():
            if r == i:
                cells[c] = m
        lines.append(",".join(cells + [str(y)]))
    path.write_text("\n".join(lines) + "\n")
    return path, names, b.data


def test_the_usual_markers_are_listed():
    assert {"NA", "N/A", "?", "null", "-", "None", "#N/A", ""} <= MISSING_MARKERS


@pytest.mark.parametrize("marker", MARKERS)
def test_a_marker_in_a_numeric_column_is_a_missing_value_named_by_line_and_column(tmp_path, marker):
    path, names, _ = _bc_csv(tmp_path / "bc.csv", {(5, 0): marker})
    with pytest.raises(ValueError) as e:
        ed.Dataset.from_csv(path, target="label")
    msg = str(e.value)
    assert "line 7" in msg and repr(names[0]) in msg and "missing" in msg  # line 7: header + 0-based row 5
    assert "--missing" in msg  # says how to fix
    # never categories: with drop or impute the column stays one numeric feature
    for policy in ("drop", "impute"):
        data = ed.Dataset.from_csv(path, target="label", missing=policy)
        assert data.n_features == 30 and data.feature_names[0] == names[0]


def test_drop_removes_the_rows_and_records_what_it_did(tmp_path):
    path, names, _ = _bc_csv(tmp_path / "bc.csv", {(5, 0): "NA", (9, 3): "?", (9, 4): "-"})
    data = ed.Dataset.from_csv(path, target="label", missing="drop")
    assert len(data.X_train) + len(data.X_test) == 569 - 2
    m = data.missing
    assert m["policy"] == "drop" and m["dropped_rows"] == 2 and m["cells"] == 3 and m["rows"] == 2
    assert m["by_column"] == {names[0]: 1, names[3]: 1, names[4]: 1}
    assert m["markers"] == {"NA": 1, "?": 1, "-": 1}
    assert any("dropped 2" in n for n in data.notes)
    # the dropped CSV lines (7 and 11) are not among the rows traced back to the file
    lines = set(data.source_rows["train"]) | set(data.source_rows["test"])
    assert data.source_rows["kind"] == "csv_line" and 7 not in lines and 11 not in lines and 8 in lines


def test_impute_uses_the_training_split_median_only(tmp_path):
    path, names, raw = _bc_csv(tmp_path / "bc.csv", {(5, 0): "NA", (300, 0): "NA"})
    data = ed.Dataset.from_csv(path, target="label", missing="impute")
    assert len(data.X_train) + len(data.X_test) == 569
    train_lines = np.asarray(data.source_rows["train"])
    train_rows = train_lines - 2  # CSV line -> row of the original data
    observed = [r for r in train_rows if r not in (5, 300)]
    median = float(np.median(raw[observed, 0]))
    for split, lines in (("train", data.source_rows["train"]), ("test", data.source_rows["test"])):
        X = data.X_train if split == "train" else data.X_test
        for row_in_file in (7, 302):
            if row_in_file in lines:
                value = data.inverse_transform(X[lines.index(row_in_file)])[0]
                assert value == pytest.approx(median, rel=1e-5)
    assert data.missing["policy"] == "impute" and data.missing["imputed"]["fitted_on"] == "training split"


def test_missing_labels_are_an_error_unless_dropped(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,label\n" + "\n".join(f"{i % 9},{'NA' if i == 4 else i % 2}" for i in range(40)) + "\n")
    with pytest.raises(ValueError, match=r"target column 'label' has missing labels on 1 rows: line 6"):
        ed.Dataset.from_csv(path, target="label", missing="impute")
    data = ed.Dataset.from_csv(path, target="label", missing="drop")
    assert len(data.X_train) + len(data.X_test) == 39 and data.class_names == ["0", "1"]


def test_an_id_column_is_refused_with_its_name_and_count(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("customer,a,label\n" + "\n".join(f"c{i:04d},{i % 7},{i % 2}" for i in range(300)) + "\n")
    with pytest.raises(ValueError, match=r"column 'customer' has 300 distinct text values in 300 rows"):
        ed.Dataset.from_csv(path, target="label")
    data = ed.Dataset.from_csv(path, target="label", max_categories=400)  # the user says it is a category
    assert data.n_features == 301


def test_numbers_with_a_stray_word_are_refused_not_one_hot_encoded(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,label\n" + "\n".join(f"{'twelve' if i == 9 else i * 1.5},{i % 2}" for i in range(100)) + "\n")
    with pytest.raises(ValueError, match=r"column 'a' is numeric in 99 of 100 filled rows .*'twelve' on line 11"):
        ed.Dataset.from_csv(path, target="label")


def test_a_real_category_is_still_one_hot_encoded_and_recorded(tmp_path):
    path = tmp_path / "d.csv"
    colours = ["red", "green", "blue"]
    path.write_text("colour,a,label\n" + "\n".join(f"{colours[i % 3]},{i % 7},{i % 2}" for i in range(60)) + "\n")
    data = ed.Dataset.from_csv(path, target="label")
    assert data.feature_names[:3] == ["colour=blue", "colour=green", "colour=red"]
    assert data.encoding["onehot"] == [{"column": "colour", "levels": ["blue", "green", "red"], "features": [0, 1, 2]}]


def test_a_single_row_class_is_named_with_its_count(tmp_path, caplog):
    path = tmp_path / "d.csv"
    path.write_text("a,label\n" + "\n".join(f"{i % 11},{'rare' if i == 7 else i % 2}" for i in range(50)) + "\n")
    with caplog.at_level(logging.WARNING, logger="explain_distill.data"):
        ed.Dataset.from_csv(path, target="label")
    text = caplog.text
    assert "class 'rare' has a single row" in text and "of 50 rows" in text


def test_transform_scales_new_raw_samples_like_the_training_data(iris):
    from sklearn.datasets import load_iris

    raw = load_iris().data[:5]
    scaled = iris.transform(raw)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(iris.inverse_transform(scaled), raw, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="X_raw has 3 columns but this data set has 4 features"):
        iris.transform(raw[:, :3])


def test_cli_run_with_impute_records_the_policy_in_metrics_and_report(tmp_path, monkeypatch, iris_teacher):
    import explain_distill.teacher as teacher_module
    from explain_distill.cli import main

    path = tmp_path / "d.csv"
    rows = [f"{i % 5 + 0.5},{'NA' if i in (3, 8) else (i * 3) % 7},{i % 4 + 1.0},{(i % 3) * 0.7},{i % 3}" for i in range(90)]
    path.write_text("a,b,c,d,label\n" + "\n".join(rows) + "\n")
    monkeypatch.setattr(teacher_module, "train_teacher", lambda data, **kw: iris_teacher)
    out = tmp_path / "out"
    assert main(["run", "--csv", str(path), "--target", "label", "--missing", "impute", "--surrogates", "tree", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"]["missing"]["policy"] == "impute" and m["data"]["missing"]["by_column"] == {"b": 2}
    html = (out / "index.html").read_text()
    assert "imputed 2 missing cells in 2 rows" in html
    saved = ed.load(out, device="cpu")
    assert saved.dataset.missing["policy"] == "impute" and saved.dataset.source_rows["kind"] == "csv_line"
