"""Data sets: built-ins load offline, splits are stratified and seeded, scaling is fitted on the
training split only, CSV files load with clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import explain_distill as ed
from explain_distill.data import load_saved_dataset, save_dataset

EXPECTED = {
    # name: (kind, n_features, n_classes, input_shape)
    "digits": ("image", 64, 10, (1, 8, 8)),
    "breast_cancer": ("tabular", 30, 2, (30,)),
    "wine": ("tabular", 13, 3, (13,)),
    "iris": ("tabular", 4, 3, (4,)),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_builtin_loads_with_kind_shape_and_names(name):
    kind, d, k, shape = EXPECTED[name]
    data = ed.load_dataset(name, seed=0)
    assert data.kind == kind and data.n_features == d and data.n_classes == k
    assert data.input_shape == shape and data.name == name
    assert data.X_train.dtype == np.float32 and data.X_train.shape[1] == d == len(data.feature_names)
    assert len(set(data.feature_names)) == d and all(isinstance(f, str) for f in data.feature_names)
    assert set(np.unique(data.y_train)) == set(range(k))
    assert np.isfinite(data.X_train).all() and np.isfinite(data.X_test).all()


def test_mnist1d_generated_offline_and_restores_numpy_global_rng(monkeypatch):
    import urllib.request

    def no_network(*a, **k):  # make_dataset must not download
        raise AssertionError("network access attempted")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    np.random.seed(1234)
    expected_next = np.random.RandomState(1234).rand(3)
    data = ed.load_dataset("mnist1d", n_samples=400, seed=0)
    np.testing.assert_array_equal(np.random.rand(3), expected_next)  # global RNG state untouched
    assert data.kind == "signal" and data.input_shape == (1, 40) and data.n_classes == 10
    assert len(data.X_train) + len(data.X_test) == 400
    again = ed.load_dataset("mnist1d", n_samples=400, seed=0)
    np.testing.assert_array_equal(data.X_train, again.X_train)


@pytest.mark.parametrize("name,shape", [("digits28", (1, 28, 28)), ("digits32_rgb", (3, 32, 32))])
def test_rendered_image_sets_are_real_sized_distinct_seeded_and_split_by_source(monkeypatch, name, shape):
    import urllib.request

    from explain_distill.data.builtin import _render_digits

    def no_network(*a, **k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    data = ed.load_dataset(name, n_samples=300, seed=0)
    d = int(np.prod(shape))
    assert data.kind == "image" and data.input_shape == shape and data.n_features == d == len(data.feature_names)
    assert len(set(data.feature_names)) == d and data.n_classes == 10
    assert len(data.X_train) + len(data.X_test) == 300
    raw = data.inverse_transform(np.concatenate([data.X_train, data.X_test]))
    assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5  # intensities in [0, 1]
    assert len(np.unique(raw.round(4), axis=0)) == 300  # every image distinct
    X, y, groups = _render_digits(name, 300, seed=0)
    np.testing.assert_array_equal(X, _render_digits(name, 300, seed=0)[0])  # seeded
    assert not np.array_equal(X, _render_digits(name, 300, seed=1)[0])
    tr, te = data.source_rows["train"], data.source_rows["test"]
    assert not set(groups[tr]) & set(groups[te])  # no source digit on both sides of the split
    if shape[0] == 3:  # colour: the stroke and background colours vary from image to image
        means = raw.reshape(300, 3, -1).mean(axis=2)
        assert means.std(axis=0).min() > 0.1


def test_rendered_sources_are_reused_on_one_side_of_the_split():
    from explain_distill.data.builtin import _render_digits

    _, _, groups = _render_digits("digits28", 2500, seed=0)  # 2,500 > 1,797 sources: some appear twice
    data = ed.load_dataset("digits28", n_samples=2500, seed=0)
    assert len(np.unique(groups)) == 1797
    tr, te = data.source_rows["train"], data.source_rows["test"]
    assert not set(groups[tr]) & set(groups[te])
    assert 0.2 < len(te) / 2500 < 0.3


def test_scaling_is_fitted_on_the_training_split_only():
    rng = np.random.default_rng(0)
    X = rng.normal(5.0, 3.0, size=(200, 3))
    y = (X[:, 0] > 5).astype(int)
    data = ed.Dataset.from_arrays(X, y, test_size=0.3, seed=1)
    mean = np.asarray(data.scaling["mean"])
    scale = np.asarray(data.scaling["scale"])
    raw_train = data.X_train * scale + mean  # undo the scaling
    np.testing.assert_allclose(mean, raw_train.mean(axis=0), rtol=1e-5, atol=1e-5)
    assert not np.allclose(mean, X.mean(axis=0), atol=1e-6)  # not the full data's mean
    np.testing.assert_allclose(data.X_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(data.X_train.std(axis=0), 1, atol=1e-4)


def test_images_are_scaled_globally_so_a_picture_stays_a_picture(digits):
    assert digits.scaling["mode"] == "global"
    assert len(set(digits.scaling["mean"])) == 1 and len(set(digits.scaling["scale"])) == 1


def test_split_is_stratified_and_seeded():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2))
    y = np.r_[np.zeros(300, int), np.ones(80, int), np.full(20, 2)]
    a = ed.Dataset.from_arrays(X, y, seed=3, test_size=0.25)
    b = ed.Dataset.from_arrays(X, y, seed=3, test_size=0.25)
    c = ed.Dataset.from_arrays(X, y, seed=4, test_size=0.25)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.X_train, c.X_train)
    for part in (a.y_train, a.y_test):
        np.testing.assert_allclose(np.bincount(part) / len(part), [0.75, 0.2, 0.05], atol=0.011)


def test_string_labels_map_to_sorted_class_names():
    X = np.random.default_rng(0).normal(size=(40, 2))
    y = np.array(["cat", "dog"] * 20)
    data = ed.Dataset.from_arrays(X, y)
    assert data.class_names == ["cat", "dog"]


# ----------------------------------------------------------------------------- CSV
def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def _csv_rows(n=40):
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        lines.append(f"{rng.normal():.3f},{['red', 'blue', 'green'][i % 3]},{i % 2}")
    return "\n".join(lines)


def test_from_csv_one_hot_encodes_and_says_so(tmp_path):
    path = _write(tmp_path / "pets.csv", "weight,colour,label\n" + _csv_rows())
    data = ed.Dataset.from_csv(path, target="label")
    assert data.feature_names == ["weight", "colour=blue", "colour=green", "colour=red"]
    assert any("colour" in note and "one-hot" in note for note in data.notes)
    assert data.n_classes == 2 and data.name == "pets"


def test_from_csv_categorical_error_names_the_columns(tmp_path):
    path = _write(tmp_path / "pets.csv", "weight,colour,label\n" + _csv_rows())
    with pytest.raises(ValueError, match=r"\['colour'\] are not numeric.*categorical='onehot'"):
        ed.Dataset.from_csv(path, target="label", categorical="error")


def test_from_csv_missing_target_lists_the_columns(tmp_path):
    path = _write(tmp_path / "pets.csv", "weight,colour,label\n" + _csv_rows())
    with pytest.raises(ValueError) as e:
        ed.Dataset.from_csv(path, target="species")
    msg = str(e.value)
    assert "'species'" in msg and "'weight', 'colour', 'label'" in msg


def test_from_csv_fewer_than_two_classes(tmp_path):
    path = _write(tmp_path / "one.csv", "a,b,label\n" + "\n".join(f"{i},{i * 2},x" for i in range(10)))
    with pytest.raises(ValueError, match="at least 2"):
        ed.Dataset.from_csv(path, target="label")


def test_from_csv_nan_and_inf_name_row_and_column(tmp_path):
    body = "\n".join(f"{i % 5},{'inf' if i == 6 else i},{i % 2}" for i in range(20))
    path = _write(tmp_path / "inf.csv", "a,b,label\n" + body)
    with pytest.raises(ValueError, match=r"infinite values: line 8, column 'b'"):
        ed.Dataset.from_csv(path, target="label")
    body = "\n".join(f"{'' if i == 3 else i},{'nan' if i == 4 else i},{i % 2}" for i in range(20))
    path = _write(tmp_path / "nan.csv", "a,b,label\n" + body)
    with pytest.raises(ValueError, match=r"line 5, column 'a' is empty; line 6, column 'b' = 'nan' \(line 1 is the header"):
        ed.Dataset.from_csv(path, target="label")


@pytest.mark.parametrize(
    "text,needle",
    [
        ("", "is empty"),
        ("a,label\n", "no data rows"),
        ("a,b,label\n1,2,0\n1,2\n", "different number of fields"),
        ("a,label\n1,\n2,1\n", "target column 'label' has missing labels on 1 rows: line 2 ('')"),
        ("label\n0\n1\n", "no feature columns"),
    ],
)
def test_from_csv_malformed_files(tmp_path, text, needle):
    path = _write(tmp_path / "bad.csv", text)
    with pytest.raises(ValueError) as e:
        ed.Dataset.from_csv(path, target="label")
    assert needle in str(e.value)


def test_from_csv_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ed.Dataset.from_csv(tmp_path / "nope.csv", target="y")


def test_unknown_builtin_lists_the_available_ones():
    with pytest.raises(ValueError) as e:
        ed.load_dataset("imagenet")
    assert "'imagenet'" in str(e.value)
    for name in ed.DATASETS:
        assert name in str(e.value)


def test_save_and_load_round_trip(tmp_path, iris):
    save_dataset(iris, tmp_path / "d")
    again = load_saved_dataset(tmp_path / "d")
    for attr in ("X_train", "y_train", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(again, attr), getattr(iris, attr))
    assert again.feature_names == iris.feature_names and again.class_names == iris.class_names
    assert again.fingerprint() == iris.fingerprint()


def test_fingerprint_changes_with_data(iris):
    import dataclasses

    other = dataclasses.replace(iris, X_test=iris.X_test + 1.0)
    assert other.fingerprint() != iris.fingerprint()
