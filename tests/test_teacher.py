"""The Teacher wrapper over a user nn.Module, and the built-in teachers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import explain_distill as ed


class Net(nn.Module):
    def __init__(self, d=6, k=3):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Dropout(0.5), nn.BatchNorm1d(16))
        self.head = nn.Linear(16, k)
        self.calls = []

    def forward(self, x):
        self.calls.append(len(x))
        return self.head(self.body(x)) * 3.0


@pytest.fixture
def net():
    return Net()


@pytest.fixture
def X():
    return np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)


def test_logits_and_proba_are_batched_and_consistent(net, X):
    t = ed.Teacher(net, class_names=["a", "b", "c"], device="cpu", batch_size=16)
    z = t.logits(X)
    assert net.calls == [16, 16, 16, 2]
    assert z.shape == (50, 3) and z.dtype == np.float32
    P = t.predict_proba(X)
    ref = torch.softmax(torch.from_numpy(z).double(), 1).numpy()
    np.testing.assert_allclose(P, ref, atol=1e-6)
    np.testing.assert_allclose(P.sum(1), 1, atol=1e-6)
    np.testing.assert_array_equal(t.predict(X), z.argmax(1))
    # same answer whatever the batch size
    t.batch_size = 50
    np.testing.assert_allclose(t.logits(X), z, atol=1e-5)


def test_temperature_softens(net, X):
    t = ed.Teacher(net, class_names=["a", "b", "c"], device="cpu")
    p1, p4 = t.predict_proba(X, temperature=1.0), t.predict_proba(X, temperature=4.0)
    z = t.logits(X).astype(np.float64)
    e = np.exp(z / 4 - (z / 4).max(1, keepdims=True))
    np.testing.assert_allclose(p4, e / e.sum(1, keepdims=True), atol=1e-6)
    assert np.all(p4.max(1) <= p1.max(1) + 1e-7)
    entropy = lambda p: -(p * np.log(p + 1e-12)).sum(1)  # noqa: E731
    assert entropy(p4).mean() > entropy(p1).mean()
    np.testing.assert_array_equal(p4.argmax(1), p1.argmax(1))


def test_eval_mode_during_inference_and_train_mode_restored(net, X):
    net.train()
    net.body[2].eval()  # a mixed state must come back exactly
    seen = []
    net.register_forward_pre_hook(lambda m, inp: seen.append(m.training))
    t = ed.Teacher(net, class_names=["a", "b", "c"], device="cpu")
    a = t.predict_proba(X)
    b = t.predict_proba(X)
    np.testing.assert_array_equal(a, b)  # dropout and batch statistics off
    assert seen and not any(seen)
    assert net.training and net.body[0].training and not net.body[2].training
    assert net.body[3].training


def test_no_gradients_recorded(net, X):
    t = ed.Teacher(net, class_names=["a", "b", "c"], device="cpu")
    t.logits(X)
    assert all(p.grad is None for p in net.parameters())


def test_float64_input_float32_module_is_cast(net, X):
    t = ed.Teacher(net, class_names=["a", "b", "c"], device="cpu")
    np.testing.assert_allclose(t.logits(X.astype(np.float64)), t.logits(X), atol=1e-6)
    assert t.dtype == torch.float32
    # and a torch tensor in works too
    np.testing.assert_allclose(t.logits(torch.from_numpy(X)), t.logits(X), atol=1e-6)


def test_float64_module_gets_float64_input(X):
    net = Net().double()
    t = ed.Teacher(net, class_names=["a", "b", "c"], device="cpu")
    assert t.logits(X).shape == (50, 3)


def test_input_shape_reshapes_flat_inputs():
    class Conv(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.fc = nn.Linear(2 * 2 * 2, 2)

        def forward(self, x):
            assert x.shape[1:] == (1, 4, 4)
            return self.fc(self.conv(x).flatten(1))

    t = ed.Teacher(Conv(), class_names=["a", "b"], input_shape=(1, 4, 4), device="cpu")
    assert t.n_features == 16
    assert t.predict_proba(np.zeros((3, 16))).shape == (3, 2)
    with pytest.raises(ValueError, match="X has 15 features, but the teacher is expecting 16"):
        t.logits(np.zeros((3, 15)))


def test_save_load_round_trip_for_a_user_module(tmp_path, net, X):
    t = ed.Teacher(net, class_names=["a", "b", "c"], device="cpu")
    t.save(tmp_path / "t")
    # the message names ed.load's keyword (teacher_module=) as well as Teacher.load's (module=)
    with pytest.raises(ValueError, match=r"ed\.load\(run_dir, teacher_module=MyNet\(\)\).*Teacher\.load\(teacher_dir, module=MyNet\(\)\)"):
        ed.Teacher.load(tmp_path / "t", device="cpu")
    fresh = Net()
    torch.nn.init.zeros_(fresh.head.weight)
    again = ed.Teacher.load(tmp_path / "t", module=fresh, device="cpu")
    np.testing.assert_allclose(again.predict_proba(X), t.predict_proba(X), atol=1e-7)
    assert again.class_names == ["a", "b", "c"] and again.fingerprint() == t.fingerprint()


def test_save_load_round_trip_for_a_builtin_teacher(tmp_path, iris_teacher, iris):
    iris_teacher.save(tmp_path / "t")
    files = sorted(p.name for p in (tmp_path / "t").iterdir())
    assert files == ["teacher.json", "teacher.safetensors"]
    again = ed.Teacher.load(tmp_path / "t", device="cpu")
    np.testing.assert_array_equal(again.logits(iris.X_test), iris_teacher.logits(iris.X_test))
    assert again.history == iris_teacher.history


def test_builtin_teacher_on_digits_reaches_095(digits, digits_teacher):
    assert digits_teacher.config["arch"] == "cnn" and digits_teacher.input_shape == (1, 8, 8)
    acc = float(np.mean(digits_teacher.predict(digits.X_test) == digits.y_test))
    assert acc >= 0.95, acc
    assert digits_teacher.history["device"] == "cpu" and digits_teacher.history["seed"] == 0


def test_builtin_cnn_reads_each_channel_through_a_global_max(digits_teacher):
    from explain_distill.teacher import CNN, build_module

    assert digits_teacher.config["pool"] == "max" and isinstance(digits_teacher.module.classifier[0], torch.nn.AdaptiveMaxPool2d)
    # configs saved before "pool" existed rebuild the flatten head
    old = {k: v for k, v in digits_teacher.config.items() if k != "pool"}
    m = build_module(old)
    assert m.pool == "flatten" and m.classifier[2].in_features == 64 * 4 * 4
    assert build_module(digits_teacher.config).classifier[3].in_features == 64
    with pytest.raises(ValueError, match="pool must be"):
        CNN((1, 8, 8), 10, pool="mean")


def test_builtin_teacher_on_tabular_is_an_mlp(iris, iris_teacher):
    assert iris_teacher.config["arch"] == "mlp"
    assert float(np.mean(iris_teacher.predict(iris.X_test) == iris.y_test)) >= 0.9
    assert not iris_teacher.module.training  # handed back in eval mode


def test_fingerprint_tracks_the_weights(net):
    t = ed.Teacher(net, class_names=["a", "b", "c"], device="cpu")
    before = t.fingerprint()
    with torch.no_grad():
        net.head.bias.add_(1.0)
    assert t.fingerprint() != before


def test_device_resolution():
    from explain_distill.teacher import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(TypeError, match="device must be"):
        resolve_device(3)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU is available"):
            resolve_device("cuda")


def test_not_a_module():
    with pytest.raises(TypeError, match="torch.nn.Module; received function"):
        ed.Teacher(lambda x: x, class_names=["a", "b"])


def test_the_built_in_cnn_halves_large_images_and_keeps_small_ones():
    import torch

    from explain_distill.teacher import build_module, default_config

    big = ed.load_dataset("digits28", n_samples=100, seed=0)
    cfg = default_config(big)
    assert cfg["halve"] == "each"
    net = build_module(cfg)
    assert net.features(torch.zeros(1, 1, 28, 28)).shape[-2:] == (7, 7)  # 28 -> 14 -> 7, not 28 -> 28 -> 14
    small = default_config(ed.load_dataset("digits"))
    assert small["halve"] == "before_last"
    assert build_module(small).features(torch.zeros(1, 1, 8, 8)).shape[-2:] == (4, 4)
    old = {k: v for k, v in cfg.items() if k != "halve"}  # a run saved before the option: the old network
    assert build_module(old).features(torch.zeros(1, 1, 28, 28)).shape[-2:] == (14, 14)
    with pytest.raises(ValueError, match="halve must be"):
        build_module({**cfg, "halve": "twice"})
