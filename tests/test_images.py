"""Images at real sizes with the user's own CNN: patterns per grid region (where a pattern fires),
the pattern layer of residual networks, a wrong layer refused before training, colour prototypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import explain_distill as ed
from explain_distill.analysis.patterns import describe_condition
from explain_distill.features import PatternFeatures, cell_names, conv_layer_names, feature_map_from_spec

CLASSES = ["a", "b", "c"]


class Plain(nn.Module):
    """A LeNet-like stack with its own layer names and activation modules."""

    def __init__(self, c_in: int = 1) -> None:
        super().__init__()
        self.first = nn.Conv2d(c_in, 4, 3, padding=1)
        self.nl1 = nn.ReLU()
        self.second = nn.Conv2d(4, 6, 3, padding=1)
        self.nl2 = nn.ReLU()
        self.squash = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.squash(self.nl2(self.second(self.nl1(self.first(x))))).flatten(1))


class Residual(nn.Module):
    """BatchNorm, residual blocks (a strided one with a 1x1 projection registered last), adaptive pooling."""

    class Block(nn.Module):
        def __init__(self, c_in: int, c_out: int, stride: int, shared_relu: bool) -> None:
            super().__init__()
            self.a = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
            self.bn_a = nn.BatchNorm2d(c_out)
            self.b = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
            self.bn_b = nn.BatchNorm2d(c_out)
            self.relu = nn.ReLU() if shared_relu else None  # torchvision reuses one ReLU twice
            self.proj = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            act = self.relu if self.relu is not None else F.relu
            h = act(self.bn_a(self.a(x)))
            return act(self.bn_b(self.b(h)) + self.proj(x))

    def __init__(self, c_in: int = 3, shared_relu: bool = False) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(c_in, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.body = nn.Sequential(self.Block(4, 6, 1, shared_relu), self.Block(6, 8, 2, shared_relu))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.body(self.stem(x))).flatten(1))


def _teacher(net: nn.Module, shape: tuple[int, ...]) -> ed.Teacher:
    torch.manual_seed(0)
    for m in net.modules():  # random but non-trivial BatchNorm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return ed.Teacher(net.eval(), class_names=CLASSES, input_shape=shape, device="cpu")


def _X(shape: tuple[int, ...], n: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, int(np.prod(shape)))).astype(np.float32)


# ---------------------------------------------------------------------------- where a pattern fires
def test_grid_features_are_each_channels_max_per_region_named_where():
    torch.manual_seed(0)
    t = _teacher(Plain(), (1, 16, 16))
    pf = PatternFeatures(t)
    assert pf.layer == "nl2" and pf.spatial == (16, 16)
    assert pf.grid == 3 and not pf.positions  # side >= 16: a 3 x 3 grid by default, the grid says where
    assert pf.names[:3] == ["pattern 0 @ top-left", "pattern 0 @ top", "pattern 0 @ top-right"]
    assert pf.names[8] == "pattern 0 @ bottom-right" and pf.names[9] == "pattern 1 @ top-left" and len(pf.names) == 6 * 9
    X = _X((1, 16, 16))
    pf.fit(X)
    Fx = pf.transform(X)
    with torch.no_grad():
        a = t.module.nl2(t.module.second(t.module.nl1(t.module.first(torch.from_numpy(X).reshape(-1, 1, 16, 16)))))
    # region (r, c) of a 16-position side: rows [0, 6), [5, 11), [10, 16) as adaptive pooling splits them
    expected = a[:, :, 10:16, 0:6].amax(dim=(2, 3)).numpy() / pf.scale  # bottom-left of every channel
    np.testing.assert_allclose(Fx[:, 6::9], expected, rtol=1e-5)
    np.testing.assert_allclose(Fx.reshape(len(X), 6, 9).max(axis=2), pf.responses(X)[0] / pf.scale, rtol=1e-5)
    d = pf.describe(9 + 4)
    assert d["channel"] == 1 and d["cell"] == "centre" and d["region"] == [[1 / 3, 2 / 3], [1 / 3, 2 / 3]]
    assert describe_condition(d, ">", 0.5) == "pattern 1 at centre present (response > 0.50)"
    again = feature_map_from_spec(pf.spec(), t)  # saved runs rebuild the same grid
    assert again.grid == 3 and again.names == pf.names
    np.testing.assert_array_equal(again.transform(X), Fx)


def test_grid_choices_and_the_small_images_default():
    torch.manual_seed(0)
    small = PatternFeatures(_teacher(Plain(), (1, 8, 8)))  # 8x8 digits keep one region, and the positions
    assert small.grid == 1 and small.positions and small.names[0] == "pattern 0" and small.names[6] == "pattern 0 row"
    assert feature_map_from_spec({"kind": "patterns", "layer": "nl2", "positions": True}, small.teacher).grid == 1
    t = _teacher(Plain(), (1, 16, 16))
    whole = PatternFeatures(t, grid=1)
    assert whole.names[:2] == ["pattern 0", "pattern 1"] and whole.positions
    four = PatternFeatures(t, grid=4, positions=True)
    assert four.cells[:2] == ["r1c1", "r1c2"] and four.transform(_X((1, 16, 16), n=3)).shape == (3, 6 * 16 + 12)
    for bad in (0, 2.5, True, "3"):
        with pytest.raises(ValueError, match=f"grid must be a whole number >= 1.*received {bad!r}"):
            PatternFeatures(t, grid=bad)
    with pytest.raises(ValueError, match=r"grid=17 .* only \(16, 16\) positions; pass grid <= 16.*first, second"):
        PatternFeatures(t, grid=17)
    assert cell_names(3, 1) == ["start", "middle", "end"] and cell_names(2, 1) == ["part 1 of 2", "part 2 of 2"]


def test_builtin_digits_teacher_keeps_its_default_layer_and_no_grid():
    from explain_distill.teacher import build_module, default_config

    data = ed.load_dataset("digits")
    t = ed.Teacher(build_module(default_config(data)), class_names=data.class_names, input_shape=data.input_shape, device="cpu")
    pf = PatternFeatures(t)
    assert pf.layer == "features.6" and pf.grid == 1 and pf.names[0] == "pattern 0" and len(pf.names) == 3 * 64


# ---------------------------------------------------------------------------- the user's own CNN
@pytest.mark.parametrize("shared_relu", [False, True])
def test_residual_network_reads_the_last_block_output(shared_relu):
    torch.manual_seed(0)
    t = _teacher(Residual(shared_relu=shared_relu), (3, 16, 16))
    # the 1x1 projection is the last convolution registered and run, but the map is the block's sum
    assert conv_layer_names(t.module)[-1] == "body.1.proj.0"
    pf = PatternFeatures(t)
    assert pf.layer == "body.1" and pf.spatial == (8, 8) and pf.n_channels == 8 and pf.grid == 3
    assert pf.filters() is None  # a block has no single filter
    X = _X((3, 16, 16), n=6)
    with torch.no_grad():
        out = t.module.body(t.module.stem(torch.from_numpy(X).reshape(-1, 3, 16, 16)))
    np.testing.assert_allclose(pf.responses(X)[0], out.amax(dim=(2, 3)).numpy(), rtol=1e-5)
    rf = pf.receptive_field
    assert rf.size[0] >= 9 and rf.jump == (2.0, 2.0)  # stem 3 + block 3+3 (stride 2) + block 3 at least


def test_wrong_feature_layer_lists_the_convolutions():
    t = _teacher(Residual(), (3, 16, 16))
    with pytest.raises(ValueError, match=r"feature_layer='body.9' is not a module.*stem.0, body.0.a, body.0.b"):
        PatternFeatures(t, layer="body.9")
    data = ed.Dataset.from_arrays(_X((3, 16, 16), n=60), np.arange(60) % 3, kind="image", input_shape=(3, 16, 16))
    with pytest.raises(ValueError, match="body.9"):
        ed.distill(t, data, surrogates=["tree@patterns"], feature_layer="body.9")


def test_cli_refuses_a_wrong_feature_layer_before_the_teacher_trains(monkeypatch, tmp_path, capsys):
    from explain_distill import teacher as teacher_module
    from explain_distill.cli import main

    def never(*a, **k):
        raise AssertionError("the teacher was trained before --feature-layer was checked")

    monkeypatch.setattr(teacher_module, "train_teacher", never)
    rc = main(["run", "--dataset", "digits", "--feature-layer", "features.99", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "--feature-layer features.99" in err and "features.0, features.2, features.5" in err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------- colour prototypes
def test_colour_prototypes_are_cut_to_the_field_and_drawn_in_colour():
    from explain_distill.viz.plots import pattern_figure, pattern_thumbnail

    torch.manual_seed(0)
    t = _teacher(Plain(c_in=3), (3, 16, 16))
    pf = PatternFeatures(t).fit(_X((3, 16, 16)))
    X = _X((3, 16, 16), n=30, seed=1)
    P = pf.prototypes(X, np.arange(30) % 3, class_names=CLASSES, channels=[2], top_k=4)
    assert pf.receptive_field.size == (5, 5) and P.segments.shape == (1, 4, 3, 5, 5)
    i, (r0, c0) = P.indices[0, 0], P.starts[0, 0]
    img = X[i].reshape(3, 16, 16)
    seg = P.segments[0, 0]
    inside = np.isfinite(seg)
    window = np.full((3, 5, 5), np.nan, dtype=np.float32)
    for r in range(5):
        for c in range(5):
            if 0 <= r0 + r < 16 and 0 <= c0 + c < 16:
                window[:, r, c] = img[:, r0 + r, c0 + c]
    np.testing.assert_array_equal(seg[inside], window[inside])  # the input's window, all three channels
    fig = pattern_figure(P.pattern(2))
    strip = fig.axes[0].images[0].get_array()
    assert strip.ndim == 3 and strip.shape[-1] == 3 and 0 <= float(np.min(strip)) and float(np.max(strip)) <= 1
    thumb = pattern_thumbnail(P.pattern(2))
    assert thumb.axes[0].images[0].get_array().shape == (5, 5, 3)
    assert tuple(thumb.get_size_inches()) == (0.6, 0.6)  # square for an image: the field keeps its shape


def test_rules_over_grid_patterns_say_where_through_distill(tmp_path):
    from explain_distill.analysis.patterns import pattern_analysis

    # class = the third of the image (top, middle, bottom) holding a bright blob; a few steps teach it
    rng = np.random.default_rng(0)
    y = np.arange(150) % 3
    X = rng.normal(0, 0.3, size=(150, 1, 16, 16)).astype(np.float32)
    for i, k in enumerate(y):
        r, c = 1 + 5 * k + rng.integers(0, 2), rng.integers(1, 12)
        X[i, 0, r : r + 3, c : c + 3] += 3.0
    torch.manual_seed(0)
    net = Plain()
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(60):
        opt.zero_grad()
        F.cross_entropy(net(torch.from_numpy(X)), torch.from_numpy(y)).backward()
        opt.step()
    t = ed.Teacher(net.eval(), class_names=CLASSES, input_shape=(1, 16, 16), device="cpu")
    X = X.reshape(150, -1)
    assert (t.predict(X) == y).mean() > 0.8
    data = ed.Dataset.from_arrays(X, y, class_names=CLASSES, kind="image", input_shape=(1, 16, 16), scale="none")
    result = ed.distill(t, data, surrogates=["tree@patterns"], queries=None, seed=0, frontier=False, params={"tree@patterns": {"max_depth": 3}})
    fmap = result.features["patterns"]
    assert fmap.grid == 3 and fmap.layer == "nl2"
    pa = pattern_analysis(result, max_patterns=2, top_k=2)
    rules = {v.name: v for v in pa.surrogates}["tree@patterns"].rules
    texts = [text for r in rules for text in r.text]
    assert texts and all(" at " in text for text in texts)  # every condition names its region
    assert {text.split(" at ")[1].split(" ")[0] for text in texts} <= set(fmap.cells)
    from explain_distill.report.html import _patterns_section

    section = _patterns_section(result, {"patterns": pa}, None)
    assert section["thumbs"] and all(t["square"] for t in section["thumbs"])  # image glyphs drawn square and larger
    assert section["grid"] == 3
    analyses = ed.run_analyses(result, robustness=False, attributions=False)
    page = ed.build_report(result, tmp_path / "report", analyses=analyses)
    html = (page if page.suffix == ".html" else page / "index.html").read_text(encoding="utf-8")
    assert "3&times;3 grid over the input" in html and "anywhere in the input" not in html  # says where, as read


def test_grid_patterns_add_figs_over_patterns_to_the_defaults():
    from explain_distill.distill.plan import DEFAULT_SURROGATES, _feature_plan

    torch.manual_seed(0)
    big, small = _teacher(Plain(), (1, 16, 16)), _teacher(Plain(), (1, 8, 8))
    names, maps = _feature_plan(list(DEFAULT_SURROGATES), None, "auto", None, big)
    assert maps["patterns"].grid == 3 and names[-4:] == ["tree@patterns", "rules@patterns", "logistic@patterns", "figs@patterns"]
    assert "figs" not in names and "rules" not in names and "tree" in names  # raw-pixel rules and sums give way
    names, _ = _feature_plan(list(DEFAULT_SURROGATES), None, "auto", None, big, keep=("rules",))
    assert "rules" in names and "figs" not in names  # settings given for it (--max-rules): kept
    names, maps = _feature_plan(list(DEFAULT_SURROGATES), None, "auto", None, small)  # 8x8: as before
    assert maps["patterns"].grid == 1 and "figs@patterns" not in names and names[-1] == "logistic@patterns"
    assert "figs" in names and "rules" in names
    names, _ = _feature_plan(["figs", "tree"], ["figs", "tree"], "patterns", None, big)  # figs named: kept
    assert "figs" in names and "figs@patterns" in names
    names, _ = _feature_plan(["tree", "tree@patterns"], ["tree", "tree@patterns"], "auto", None, big)  # named: kept
    assert names == ["tree", "tree@patterns"]
