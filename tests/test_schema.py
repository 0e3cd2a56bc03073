"""The column schema: each column's kind (real, integer, binary, one-hot level) and observed range,
inferred from the raw training values, kept through save/load."""

from __future__ import annotations

import numpy as np
import pytest

import explain_distill as ed
from explain_distill.data import Schema, infer_schema, load_saved_dataset, save_dataset


def _mixed_csv(tmp_path):
    rng = np.random.default_rng(0)
    n = 120
    lines = ["tenure,senior,charges,contract,label"]
    for i in range(n):
        contract = ["month", "year", "two-year"][i % 3]
        lines.append(f"{rng.integers(0, 72)},{i % 2},{rng.normal(70, 20):.2f},{contract},{'yes' if i % 4 else 'no'}")
    path = tmp_path / "churn.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_columns_get_their_kinds_and_training_ranges(tmp_path):
    data = ed.Dataset.from_csv(_mixed_csv(tmp_path), target="label")
    kinds = dict(zip(data.feature_names, data.schema.kinds))
    assert kinds["tenure"] == "integer" and kinds["senior"] == "binary" and kinds["charges"] == "real"
    assert {kinds[f"contract={lv}"] for lv in ("month", "year", "two-year")} == {"onehot"}
    col = data.schema.columns[data.feature_names.index("contract=year")]
    assert (col.group, col.level) == ("contract", "year")
    raw = data.inverse_transform(data.X_train)
    j = data.feature_names.index("tenure")
    assert data.schema.columns[j].low == pytest.approx(raw[:, j].min(), abs=1e-4)
    assert data.schema.columns[j].high == pytest.approx(raw[:, j].max(), abs=1e-4)
    assert data.schema.counts() == {"real": 1, "integer": 1, "binary": 1, "onehot": 3}


def test_integral_values_after_float32_round_trip_still_count_as_integers():
    data = ed.load_dataset("digits")
    again = ed.Dataset(X_train=data.X_train, y_train=data.y_train, X_test=data.X_test, y_test=data.y_test,
                       feature_names=data.feature_names, class_names=data.class_names, kind="image",
                       input_shape=data.input_shape, scaling=data.scaling)  # no schema: inferred from scaled floats
    assert again.schema.kinds == data.schema.kinds
    assert set(data.schema.kinds) <= {"integer", "binary"}


def test_real_column_is_not_mistaken_for_integer():
    X = np.column_stack([np.arange(40) + 0.5, np.arange(40) % 2, np.arange(40) * 3])
    s = infer_schema(X, ["a", "b", "c"])
    assert s.kinds == ["real", "binary", "integer"]
    assert s.low.tolist() == [0.5, 0.0, 0.0] and s.high.tolist() == [39.5, 1.0, 117.0]


def test_amounts_in_cents_are_real_however_large():
    """Incomes of tens of thousands with cents: no cent amount within a relative 1e-4 of a whole number
    may make the column integer (its printed thresholds would be rounded, and false)."""
    rng = np.random.default_rng(0)
    cents = np.round(rng.uniform(5_000, 90_000, 500), 2)
    cents[np.abs(cents - np.round(cents)) < 0.005] += 0.37  # no whole amounts at all
    s = infer_schema(np.column_stack([cents, np.round(cents)]), ["income", "income_rounded"])
    assert s.kinds == ["real", "integer"]
    # whole numbers stored as float32 and scaled to unit variance and back still read as integers
    big = rng.integers(0, 2_000_000, 500).astype(np.float64)
    back = ((big - big.mean()) / big.std()).astype(np.float32).astype(np.float64) * big.std() + big.mean()
    assert infer_schema(back[:, None], ["count"]).kinds == ["integer"]


def test_schema_survives_save_and_load(tmp_path):
    data = ed.Dataset.from_csv(_mixed_csv(tmp_path), target="label")
    save_dataset(data, tmp_path / "d")
    back = load_saved_dataset(tmp_path / "d")
    assert back.schema.to_json() == data.schema.to_json()


def test_schema_from_json_refuses_unknown_kinds():
    with pytest.raises(ValueError, match="kinds"):
        Schema.from_json({"columns": [{"name": "a", "kind": "fraction", "low": 0, "high": 1}]})
