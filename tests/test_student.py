"""NeuralStudent: the KD loss against a hand computation, attention transfer, conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

import explain_distill as ed
from explain_distill.surrogates import NeuralStudent, load_surrogate, save_surrogate
from explain_distill.surrogates.student import attention_loss, attention_map, kd_loss

FAST = dict(epochs=20, random_state=0, device="cpu", progress=False)


@parametrize_with_checks([NeuralStudent(**FAST)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _softmax(z):
    e = [math.exp(v - max(z)) for v in z]
    return [v / sum(e) for v in e]


def test_kd_loss_matches_a_hand_computation():
    zs = [[2.0, 0.5, -1.0], [0.0, 1.0, 0.3]]
    zt = [[3.0, 1.0, 0.0], [-1.0, 2.0, 0.5]]
    T, alpha = 3.0, 0.25
    y = [0, -1]  # the second row is a synthesized query: no CE term
    pt = [_softmax([v / T for v in r]) for r in zt]
    # KL(p_T || p_S(T)) per row, averaged over both rows.
    kl = 0.0
    for s, p in zip(zs, pt):
        ps = _softmax([v / T for v in s])
        kl += sum(pi * math.log(pi / qi) for pi, qi in zip(p, ps))
    kl /= 2
    ce = -math.log(_softmax(zs[0])[0])  # only the labelled row
    expected = alpha * ce + (1 - alpha) * T * T * kl
    got = kd_loss(torch.tensor(zs), torch.tensor(pt), torch.tensor(y), temperature=T, alpha=alpha)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    # No labelled rows: the KL term alone.
    only_kl = kd_loss(torch.tensor(zs), torch.tensor(pt), torch.tensor([-1, -1]), temperature=T, alpha=alpha)
    assert float(only_kl) == pytest.approx((1 - alpha) * T * T * kl, rel=1e-5)
    # alpha = 1 is plain cross-entropy on the labelled rows.
    assert float(kd_loss(torch.tensor(zs), torch.tensor(pt), torch.tensor(y), temperature=T, alpha=1.0)) == pytest.approx(ce, rel=1e-5)


def test_attention_map_and_loss_by_hand():
    act = torch.tensor([[[[1.0, -2.0], [0.0, 2.0]], [[3.0, 0.0], [0.0, 0.0]]]])  # (1, C=2, 2, 2)
    a = attention_map(act)
    raw = np.array([(1 + 9) / 2, 4 / 2, 0, 4 / 2])
    np.testing.assert_allclose(a.numpy()[0], raw / np.linalg.norm(raw), rtol=1e-6)
    b = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    assert float(attention_loss(a, b)) == pytest.approx(np.linalg.norm(raw / np.linalg.norm(raw) - b.numpy()[0]), rel=1e-6)


@pytest.mark.parametrize("kw, match", [({"alpha": 1.5}, "alpha"), ({"alpha": -0.1}, "alpha"), ({"temperature": 0.0}, "temperature"),
                                       ({"arch": "rnn"}, "arch"), ({"input_shape": (3, 3)}, "input_shape")])
def test_bad_parameters_are_rejected(kw, match, rng):
    X, y = rng.normal(size=(20, 4)).astype(np.float32), np.arange(20) % 2
    with pytest.raises(ValueError, match=match):
        NeuralStudent(**FAST, **kw).fit(X, y)


def test_bad_y_true_is_rejected(rng):
    X, y = rng.normal(size=(20, 4)).astype(np.float32), np.arange(20) % 2
    with pytest.raises(ValueError, match="y_true"):
        NeuralStudent(**FAST).fit(X, y, y_true=np.full(20, 7))


def test_seeded_and_save_load(tmp_path, rng):
    X = rng.normal(size=(120, 16)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    a = NeuralStudent(**FAST, input_shape=(1, 4, 4), arch="cnn").fit(X, y)
    b = NeuralStudent(**FAST, input_shape=(1, 4, 4), arch="cnn").fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    c = NeuralStudent(**{**FAST, "random_state": 1}, input_shape=(1, 4, 4), arch="cnn").fit(X, y)
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))
    save_surrogate(a, tmp_path / "s", name="student")
    back = load_surrogate(tmp_path / "s")
    np.testing.assert_allclose(back.predict_proba(X), a.predict_proba(X), rtol=1e-6)
    assert back.arch_ == "cnn" and back.n_params_ == a.n_params_


def test_cnn_student_pools_each_channel_and_old_layouts_still_load(tmp_path, rng):
    X = rng.normal(size=(80, 40)).astype(np.float32)
    y = (X[:, :20].max(1) > X[:, 20:].max(1)).astype(int)
    st = NeuralStudent(**{**FAST, "epochs": 2}, input_shape=(1, 40)).fit(X, y)
    # the default CNN: convolutions (1->16->32, k=5), a global max per channel, one linear layer
    assert st.arch_ == "cnn" and st.n_params_ == (16 * 5 + 16) + (32 * 16 * 5 + 32) + (32 * 2 + 2)
    # shift-invariant: a shape moved within the signal (away from the edges) gives the same logits
    a = np.zeros((1, 40), dtype=np.float32)
    a[0, 15:20] = [1.0, -2.0, 3.0, 0.5, 2.0]
    b = np.roll(a, 3, axis=1)
    np.testing.assert_allclose(st.logits(a), st.logits(b), rtol=1e-6, atol=1e-6)
    mlp = NeuralStudent(**{**FAST, "epochs": 1}).fit(X, y)
    assert mlp.arch_ == "mlp" and mlp.n_params_ == 40 * 64 + 64 + 64 * 2 + 2  # hidden None -> (64,) for the MLP
    # A CNN student saved before `pool` existed (flatten layout, no "pool" in its file) loads as such.
    old = NeuralStudent(**{**FAST, "epochs": 2}, input_shape=(1, 40), channels=(8, 16), hidden=(64,), pool="flatten").fit(X, y)
    save_surrogate(old, tmp_path / "old", name="student")
    import json

    doc = json.loads((tmp_path / "old.json").read_text())
    del doc["meta"]["pool"], doc["params"]["pool"]
    (tmp_path / "old.json").write_text(json.dumps(doc))
    back = load_surrogate(tmp_path / "old")
    assert back.pool == "flatten" and back.n_params_ == old.n_params_
    np.testing.assert_allclose(back.predict_proba(X), old.predict_proba(X), rtol=1e-6)


def test_kd_student_is_small_and_faithful(iris, iris_teacher):
    from explain_distill.transfer import build_transfer_set

    ts = build_transfer_set(iris_teacher, iris.X_train, iris.y_train, temperature=4.0, queries={"jitter": 1000}, seed=0)
    st = NeuralStudent(**{**FAST, "epochs": 40}, hidden=(16,), batch_size=64, learning_rate=1e-2, temperature=4.0)
    st.fit(ts.X, ts.P, y_true=ts.y)
    assert st.n_params_ <= 0.1 * iris_teacher.n_params
    fidelity = np.mean(st.predict(iris.X_test) == iris_teacher.predict(iris.X_test))
    assert fidelity > 0.9


@pytest.fixture(scope="module")
def cnn_teacher(digits):
    """A small convolutional teacher (untrained weights are enough to test the attention plumbing)."""
    from explain_distill.teacher import CNN

    torch.manual_seed(0)
    module = CNN(digits.input_shape, digits.n_classes, channels=(4, 8, 8), hidden=16)
    return ed.Teacher(module, class_names=digits.class_names, input_shape=digits.input_shape, device="cpu")


def test_teacher_attention_maps_and_attention_transfer(digits, cnn_teacher):
    X = digits.X_train[:200]
    maps = cnn_teacher.attention_maps(X)
    assert maps.shape[0] == 200 and maps.ndim == 2
    np.testing.assert_allclose(np.linalg.norm(maps, axis=1), 1.0, atol=1e-5)
    P = cnn_teacher.predict_proba(X, temperature=4.0)
    kw = dict(**{**FAST, "epochs": 10}, input_shape=digits.input_shape, arch="cnn", temperature=4.0)
    plain = NeuralStudent(**kw).fit(X, P)
    at = NeuralStudent(**kw, attention_weight=50.0).fit(X, P, teacher_attention=maps)

    def gap(st):
        s = torch.from_numpy(st.attention_maps(X))
        from explain_distill.surrogates.student import _resize_map

        s = _resize_map(s, digits.input_shape[1:], maps.shape[1])
        return float(attention_loss(s, torch.from_numpy(maps)))

    assert gap(at) < gap(plain)  # the attention term pulls the student's maps toward the teacher's
    with pytest.raises(ValueError, match="teacher_attention"):
        NeuralStudent(**kw, attention_weight=1.0).fit(X, P)


def test_attention_maps_need_a_conv_teacher(iris, iris_teacher):
    with pytest.raises(ValueError, match="convolutional"):
        iris_teacher.attention_maps(iris.X_train)


def test_distill_passes_attention_and_y_true(digits, cnn_teacher, monkeypatch):
    seen = {}
    orig = NeuralStudent.fit

    def spy(self, X, y, **kw):
        seen.update(kw)
        return orig(self, X, y, **kw)

    monkeypatch.setattr(NeuralStudent, "fit", spy)
    res = ed.distill(cnn_teacher, digits, surrogates=["student"], queries={"jitter": 100},
                     params={"student": {"epochs": 1, "attention_weight": 1.0, "arch": "cnn"}})
    assert seen["teacher_attention"].shape[0] == len(digits.X_train) + 100
    assert (seen["y_true"][-100:] == -1).all()
    st = res.surrogates["student"]
    assert st.temperature == 4.0 and st.input_shape_ == tuple(digits.input_shape)


def test_compression_report_counts_against_references(iris, iris_teacher):
    from explain_distill.analysis.compression import compression_report

    st = NeuralStudent(**{**FAST, "epochs": 2}, hidden=(8,)).fit(iris.X_train, iris.y_train)
    rep = compression_report(iris_teacher, st)
    assert rep["student"]["params"] == st.n_params_ == 4 * 8 + 8 + 8 * 3 + 3
    assert rep["teacher"]["params"] == iris_teacher.n_params
    # An MLP's forward FLOPs are 2 * multiply-adds of its Linear layers.
    assert rep["student"]["flops_per_sample"] == 2 * (4 * 8 + 8 * 3)
    lin = [m for m in iris_teacher.module.modules() if isinstance(m, torch.nn.Linear)]
    assert rep["teacher"]["flops_per_sample"] == 2 * sum(m.in_features * m.out_features for m in lin)
    # safetensors stores float32 weights plus a small header.
    assert 4 * st.n_params_ < rep["student"]["file_bytes"] < 4 * st.n_params_ + 2048
    assert rep["ratios"]["params"] == pytest.approx(iris_teacher.n_params / st.n_params_)
    assert rep["student"]["cpu_latency_s_per_sample"] > 0
    with pytest.raises(TypeError, match="NeuralStudent"):
        compression_report(iris_teacher, object())


def test_student_capacity_follows_the_input_size(tmp_path, rng):
    from explain_distill.surrogates.student import GRID, GRID_ABOVE, resolve_pool

    assert resolve_pool("auto", (1, 8, 8)) == "max" and resolve_pool("auto", (1, 40)) == "max"
    assert resolve_pool("auto", (1, 28, 28)) == "grid" and 28 * 28 > GRID_ABOVE
    assert resolve_pool("max", (1, 28, 28)) == "max"  # an explicit choice is kept
    X = rng.normal(size=(60, 400)).astype(np.float32)
    y = (X[:, :200].sum(1) > X[:, 200:].sum(1)).astype(int)
    st = NeuralStudent(**{**FAST, "epochs": 1}, input_shape=(1, 20, 20), channels=(4, 8)).fit(X, y)
    # 20x20: conv 1->4, 2x pool, conv 4->8, 2x pool (5x5), a max per cell of a 4x4 grid, one linear layer
    assert st.n_params_ == (4 * 9 + 4) + (8 * 4 * 9 + 8) + (8 * GRID * GRID * 2 + 2)
    small = NeuralStudent(**{**FAST, "epochs": 1}, input_shape=(1, 10, 10), channels=(4, 8)).fit(X[:, :100], y)
    assert small.n_params_ == (4 * 9 + 4) + (8 * 4 * 9 + 8) + (8 * 2 + 2)  # 100 positions: the global max
    save_surrogate(st, tmp_path / "grid", name="student")
    back = load_surrogate(tmp_path / "grid")
    assert back.n_params_ == st.n_params_
    np.testing.assert_allclose(back.predict_proba(X), st.predict_proba(X), rtol=1e-5, atol=1e-6)
