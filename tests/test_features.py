"""Teacher features (features.py): pattern features, receptive fields, prototypes, user functions,
surrogates over features through distill, their persistence, the verdict and the pattern pictures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import explain_distill as ed
from explain_distill.analysis.patterns import describe_condition, pattern_analysis, pattern_verdict
from explain_distill.features import (
    FeatureSurrogate,
    FunctionFeatures,
    PatternFeatures,
    ReceptiveField,
    conv_layer_names,
    feature_map_from_spec,
)


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def patterns(digits_teacher, digits):
    return PatternFeatures(digits_teacher).fit(digits.X_train)


@pytest.fixture(scope="module")
def pattern_run(digits, digits_teacher):
    return ed.distill(digits_teacher, digits, surrogates=["tree", "tree@patterns", "rules@patterns", "logistic@patterns"],
                      seed=0, queries=None)


class Net1d(nn.Module):
    """A user module: convolutions as attributes (no Sequential), a global max head."""

    def __init__(self, act: type[nn.Module] = nn.ReLU, pool: type[nn.Module] = nn.MaxPool1d) -> None:
        super().__init__()
        self.conv_a = nn.Conv1d(2, 4, 5, padding=2)
        self.act_a = act()
        self.pool = pool(2)
        self.conv_b = nn.Conv1d(4, 6, 3, padding=1)
        self.act_b = act()
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.act_b(self.conv_b(self.pool(self.act_a(self.conv_a(x)))))
        return self.head(a.amax(dim=2))


def _user_teacher(act: type[nn.Module] = nn.ReLU, pool: type[nn.Module] = nn.MaxPool1d, seed: int = 0) -> ed.Teacher:
    torch.manual_seed(seed)
    return ed.Teacher(Net1d(act, pool), class_names=["a", "b", "c"], input_shape=(2, 24), device="cpu")


def _hooked(teacher: ed.Teacher, layer: str, X: np.ndarray) -> np.ndarray:
    out = []
    h = dict(teacher.module.named_modules())[layer].register_forward_hook(lambda m, i, o: out.append(o.detach()))
    try:
        teacher.logits(X)
    finally:
        h.remove()
    return torch.cat(out).numpy()


# ---------------------------------------------------------------------------- the map
def test_pattern_features_are_each_channels_max_and_where(digits_teacher, digits, patterns):
    assert patterns.layer == "features.6" and isinstance(dict(digits_teacher.module.named_modules())["features.6"], nn.ReLU)
    C = patterns.n_channels
    assert patterns.spatial == (4, 4) and C == 64
    assert patterns.names[:2] == ["pattern 0", "pattern 1"] and patterns.names[C] == "pattern 0 row"
    assert patterns.names[-1] == f"pattern {C - 1} column" and len(patterns.names) == 3 * C
    X = digits.X_test[:50]
    F = patterns.transform(X)
    A = _hooked(digits_teacher, "features.6", X)  # (n, C, 4, 4): a reference computed another way
    np.testing.assert_allclose(F[:, :C] * patterns.scale, A.reshape(50, C, -1).max(axis=2), rtol=1e-5, atol=1e-6)
    flat = A.reshape(50, C, -1).argmax(axis=2)
    rf = patterns.receptive_field
    np.testing.assert_allclose(F[:, C : 2 * C], (rf.start[0] + (flat // 4) * rf.jump[0]) / 8, atol=1e-6)
    np.testing.assert_allclose(F[:, 2 * C :], (rf.start[1] + (flat % 4) * rf.jump[1]) / 8, atol=1e-6)
    # fit: responses in units of each channel's 99th-percentile response on the training inputs
    R, _ = patterns.responses(digits.X_train)
    q = np.quantile(R.astype(np.float64), 0.99, axis=0)
    np.testing.assert_allclose(patterns.scale, np.where(q > 1e-12, q, 1.0), rtol=1e-6)
    # batching does not change the answer
    small = PatternFeatures(digits_teacher, scale=patterns.scale)
    digits_teacher.batch_size, bs = 7, digits_teacher.batch_size
    try:
        np.testing.assert_allclose(small.transform(X), F, rtol=1e-5, atol=1e-6)
    finally:
        digits_teacher.batch_size = bs


def test_analytic_receptive_field_matches_perturbation():
    # Ground truth by perturbation on a linear network (identity activations, average pool):
    # exactly the inputs inside position p's receptive field move it.
    teacher = _user_teacher(act=nn.Identity, pool=nn.AvgPool1d)
    pf = PatternFeatures(teacher, layer="conv_b", positions=False)
    rf = pf.receptive_field
    assert rf.method == "analytic" and pf.spatial == (12,)
    assert rf.size == (10,) and rf.jump == (2.0,) and rf.start == (0.5,)
    x0 = np.zeros((1, 48), dtype=np.float32)
    base = _hooked(teacher, "conv_b", x0)[0]
    for p in (0, 5, 11):
        moved = []
        for i in range(24):
            x = x0.copy().reshape(1, 2, 24)
            x[0, :, i] = 1.0
            if np.abs(_hooked(teacher, "conv_b", x.reshape(1, -1))[0][:, p] - base[:, p]).max() > 1e-7:
                moved.append(i)
        lo = rf.window([p])[0]
        assert moved == [i for i in range(lo, lo + rf.size[0]) if 0 <= i < 24]
    # the gradient fallback agrees in the interior
    g = pf._gradient_rf(1)
    assert g.method == "gradient" and g.size == rf.size and g.jump == rf.jump and g.start == rf.start


def test_user_module_layers_and_errors():
    teacher = _user_teacher()
    assert conv_layer_names(teacher.module) == ["conv_a", "conv_b"]
    pf = PatternFeatures(teacher)
    assert pf.layer == "act_b" and pf.n_channels == 6 and pf.names[6] == "pattern 0 position"
    first = PatternFeatures(teacher, layer="conv_a")
    assert first.n_channels == 4 and first.spatial == (24,) and first.receptive_field.size == (5,)
    assert first.filters().shape == (4, 2, 5)
    with pytest.raises(ValueError, match="conv_a, conv_b"):
        PatternFeatures(teacher, layer="nope")
    with pytest.raises(ValueError, match=r"outputs shape \(1, 3\)"):
        PatternFeatures(teacher, layer="head")
    mlp = ed.Teacher(nn.Sequential(nn.Flatten(), nn.Linear(8, 3)), class_names=["a", "b", "c"], input_shape=(1, 8), device="cpu")
    with pytest.raises(ValueError, match="convolutional teacher.*NAME@features"):
        PatternFeatures(mlp)
    flat = ed.Teacher(Net1d(), class_names=["a", "b", "c"], device="cpu")
    with pytest.raises(ValueError, match="input_shape"):
        PatternFeatures(flat)
    with pytest.raises(ValueError, match="48 features"):
        pf.transform(np.zeros((2, 47)))
    with pytest.raises(ValueError, match="scale must hold 6"):
        PatternFeatures(teacher, scale=[1.0, 2.0])


def test_prototypes_are_the_top_inputs_cut_to_the_field(digits, patterns):
    chans = [3, 10]
    P = patterns.prototypes(digits.X_train, digits.y_train, class_names=digits.class_names, channels=chans, top_k=5)
    R, pos = patterns.responses(digits.X_train)
    R = R / patterns.scale
    assert P.segments.shape == (2, 5, 1, 10, 10) and P.filters.shape == (2, 64, 3, 3)
    for r, c in enumerate(chans):
        order = np.argsort(-R[:, c], kind="stable")[:5]
        np.testing.assert_array_equal(P.indices[r], order)
        assert np.all(np.diff(P.responses[r]) <= 0)
        # the first segment is the input window around the argmax, NaN past the edge
        i = order[0]
        lo = patterns.receptive_field.window(pos[i, c])
        img = digits.X_train[i].reshape(8, 8)
        seg = P.segments[r, 0, 0]
        for a in range(10):
            for b in range(10):
                y, x = lo[0] + a, lo[1] + b
                if 0 <= y < 8 and 0 <= x < 8:
                    assert seg[a, b] == pytest.approx(img[y, x])
                else:
                    assert np.isnan(seg[a, b])
        fires = R[:, c] > P.fire_threshold[r]
        assert P.n_fire[r] == fires.sum() > 0
        np.testing.assert_allclose(P.class_mix[r], np.bincount(digits.y_train[fires], minlength=10) / fires.sum())
    one = P.pattern(10)
    assert one["name"] == "pattern 10" and one["segments"].shape == (5, 1, 10, 10) and one["class_names"] == digits.class_names
    assert json.dumps(P.to_json())  # plain numbers
    with pytest.raises(KeyError):
        P.pattern(11)


def test_function_features():
    X = np.random.default_rng(0).normal(size=(30, 4))
    fm = FunctionFeatures(lambda X: {"energy": (X**2).sum(1), "peak": X.max(1)}, batch_size=7)
    F = fm.transform(X)
    assert fm.names == ["energy", "peak"] and F.shape == (30, 2)
    np.testing.assert_allclose(F[:, 0], (X.astype(np.float32) ** 2).sum(1), rtol=1e-5)
    arr = FunctionFeatures(lambda X: X[:, :3] * 2, names=["a", "b", "c"])
    np.testing.assert_allclose(arr.transform(X), X[:, :3] * 2, rtol=1e-6)
    assert FunctionFeatures(lambda X: X[:, 0]).transform(X).shape == (30, 1)
    with pytest.raises(ValueError, match="one value per input row"):
        FunctionFeatures(lambda X: {"a": X[:2, 0]}).transform(X)
    with pytest.raises(ValueError, match="NaN or infinite"):
        FunctionFeatures(lambda X: X * np.nan).transform(X)
    with pytest.raises(TypeError, match="callable"):
        FunctionFeatures("energy")


# ---------------------------------------------------------------------------- through distill
def test_distill_fits_surrogates_over_patterns(digits, digits_teacher, pattern_run):
    r = pattern_run
    assert list(r.surrogates) == ["tree", "tree@patterns", "rules@patterns", "logistic@patterns"]
    sur = r.surrogates["tree@patterns"]
    assert isinstance(sur, FeatureSurrogate) and sur.n_features_in_ == 64 and sur.name == "tree@patterns"
    assert sur.estimator.n_features_in_ == 192 and sur.n_params_ == sur.estimator.n_params_ <= 127
    X = digits.X_test
    np.testing.assert_array_equal(sur.predict(X), sur.estimator.predict(r.features["patterns"].transform(X)))
    assert r.surrogates["rules@patterns"].estimator.max_rules == 29  # the feature-set default
    assert len(r.surrogates["rules@patterns"].estimator.rules_) <= 30
    m = r.metrics["surrogates"]
    t = digits_teacher.predict(X)
    for name in ("tree@patterns", "logistic@patterns"):
        assert m[name]["fidelity"] == pytest.approx(np.mean(r.surrogates[name].predict(X) == t))
    # the teacher's own detectors explain it at least as well as its pixels (digits: both high)
    assert m["logistic@patterns"]["fidelity"] >= 0.9 and m["tree@patterns"]["fidelity"] >= m["tree"]["fidelity"] - 0.02
    assert r.info["features"]["patterns"]["layer"] == "features.6" and r.info["timings"]["features_patterns_s"] >= 0


def test_saved_runs_rebuild_the_feature_map(pattern_run, digits, tmp_path):
    pattern_run.save(tmp_path / "run")
    doc = json.loads((tmp_path / "run" / "run.json").read_text())
    assert doc["features"]["patterns"]["layer"] == "features.6" and len(doc["features"]["patterns"]["scale"]) == 64
    assert json.loads((tmp_path / "run" / "surrogates" / "tree@patterns.json").read_text())["name"] == "tree"
    again = ed.load(tmp_path / "run", device="cpu")
    for name, est in pattern_run.surrogates.items():
        np.testing.assert_array_equal(again.surrogates[name].predict(digits.X_test), est.predict(digits.X_test))
        np.testing.assert_allclose(again.surrogates[name].predict_proba(digits.X_test[:20]), est.predict_proba(digits.X_test[:20]),
                                   rtol=1e-5, atol=1e-6)
    assert isinstance(again.features["patterns"], PatternFeatures)
    rebuilt = feature_map_from_spec(doc["features"]["patterns"], again.teacher)
    np.testing.assert_allclose(rebuilt.transform(digits.X_test[:5]), pattern_run.features["patterns"].transform(digits.X_test[:5]),
                               rtol=1e-5)


def test_user_function_features_through_distill_and_load(digits, digits_teacher, tmp_path):
    def fn(X):
        return {"ink": X.sum(1), "top": X[:, :32].sum(1), "left": X.reshape(-1, 8, 8)[:, :, :4].sum((1, 2))}

    r = ed.distill(digits_teacher, digits, surrogates=["tree@features"], features=fn, seed=0, queries=None)
    assert r.surrogates["tree@features"].feature_names == ["ink", "top", "left"]
    r.save(tmp_path / "f")
    with pytest.raises(ValueError, match="features=my_function"):
        ed.load(tmp_path / "f", device="cpu")
    again = ed.load(tmp_path / "f", device="cpu", features=fn)
    np.testing.assert_array_equal(again.surrogates["tree@features"].predict(digits.X_test), r.surrogates["tree@features"].predict(digits.X_test))


def test_which_feature_surrogates_distill_adds(digits, digits_teacher, iris, iris_teacher):
    from explain_distill.distill import DEFAULT_FEATURE_SURROGATES, DEFAULT_SURROGATES, _feature_plan

    defaults = [f"{f}@patterns" for f in DEFAULT_FEATURE_SURROGATES if f in ed.SURROGATES]
    raw = [s for s in DEFAULT_SURROGATES if s in ed.SURROGATES]
    names, maps = _feature_plan(raw, None, "auto", None, digits_teacher)
    assert names[-len(defaults) :] == defaults and set(maps) == {"patterns"}
    assert _feature_plan(["tree"], ["tree"], "auto", None, digits_teacher) == (["tree"], {})  # explicit list: as given
    names, _ = _feature_plan(["tree"], ["tree"], "patterns", None, digits_teacher)
    assert names == ["tree"] + defaults
    names, _ = _feature_plan(raw, None, None, None, digits_teacher)
    assert not any("@" in n for n in names)
    names, maps = _feature_plan(raw, None, "auto", None, iris_teacher)  # an MLP: none
    assert not any("@" in n for n in names) and not maps
    with pytest.raises(ValueError, match="Pattern features need inputs with a shape"):
        ed.distill(iris_teacher, iris, surrogates=["tree@patterns"], queries=None)
    with pytest.raises(ValueError, match="Unknown feature set"):
        ed.distill(digits_teacher, digits, surrogates=["tree@pixels"], queries=None)
    with pytest.raises(ValueError, match="Unknown surrogate"):
        ed.distill(digits_teacher, digits, surrogates=["forest@patterns"], queries=None)
    with pytest.raises(ValueError, match="need features=a function"):
        ed.distill(digits_teacher, digits, surrogates=["tree@features"], queries=None)
    with pytest.raises(ValueError, match="no surrogate is fitted over 'patterns'"):
        ed.distill(digits_teacher, digits, surrogates=["tree"], feature_layer="features.6", queries=None)
    with pytest.raises(ValueError, match="features must be"):
        ed.distill(digits_teacher, digits, surrogates=["tree"], features="pixels", queries=None)
    with pytest.raises(ValueError, match="feature_layer='features.99'"):
        ed.distill(digits_teacher, digits, surrogates=["tree@patterns"], feature_layer="features.99", queries=None)


# ---------------------------------------------------------------------------- the verdict and the reading
def _m(agreement: float, lo: float, hi: float) -> dict:
    return {"fidelity": agreement, "fidelity_interval": [lo, hi]}


def test_verdict_in_words():
    raw_low = {"tree": _m(0.3, 0.27, 0.33), "soft_tree": _m(0.45, 0.42, 0.48), "student": _m(0.97, 0.96, 0.98)}
    v = pattern_verdict({**raw_low, "tree@patterns": _m(0.93, 0.91, 0.94), "rules@patterns": _m(0.86, 0.84, 0.88)})
    assert v.outcome == "patterns" and v.bar == 0.9 and v.bar_source == "default"
    assert "explained in terms of its own detectors, not its inputs" in v.text and "tree@patterns at 93.0%" in v.text
    assert "the most faithful is tree at 30.0%" in v.text  # the soft tree is not read as an explanation
    assert [r["name"] for r in v.others] == ["student", "soft_tree"]  # networks and oblique trees: the others
    assert "student at 97.0% (a network, not an explanation)" in v.text
    assert [r["name"] for r in v.features] == ["tree@patterns", "rules@patterns"] and v.features[0]["cleared"]
    v = pattern_verdict({**raw_low, "tree@patterns": _m(0.93, 0.91, 0.94)}, bar=0.92)  # the lower bound decides
    assert v.outcome == "neither" and v.bar_source == "min_agreement"
    assert v.text.startswith("No readable surrogate over the raw inputs") and "nor over the teacher's own pattern detectors" in v.text
    v = pattern_verdict({"tree": _m(0.97, 0.95, 0.98), "tree@patterns": _m(0.96, 0.94, 0.97)})
    assert v.outcome == "inputs" and "in terms of its inputs" in v.text and "does too" in v.text
    with pytest.raises(ValueError, match="bar"):
        pattern_verdict(raw_low, bar=1.5)


def test_conditions_in_words():
    assert describe_condition({"role": "response", "channel": 7, "name": "pattern 7"}, ">", 0.8) == "pattern 7 present (response > 0.80)"
    assert describe_condition({"role": "response", "channel": 3, "name": "pattern 3"}, "<=", 0.25) == "pattern 3 absent (response ≤ 0.25)"
    assert describe_condition({"role": "position", "channel": 5, "extent": 40, "name": "p"}, "<=", 0.31) == "pattern 5 at position ≤ 12.4 (of 40)"
    assert describe_condition({"role": "feature", "name": "ink"}, ">", 3.0) == "ink > 3.00"


def test_pattern_analysis_reads_rules_that_add_up(pattern_run, digits, digits_teacher):
    pa = pattern_analysis(pattern_run, max_patterns=5, top_k=3)
    views = {v.name: v for v in pa.surrogates}
    assert views["tree@patterns"].kind == "tree" and views["rules@patterns"].kind == "rules"
    assert views["logistic@patterns"].kind == "linear" and len(views["logistic@patterns"].weights) == 10
    n = len(digits.X_test)
    for name in ("tree@patterns", "rules@patterns"):
        rules = views[name].rules
        assert sum(r.coverage for r in rules) == n  # every test sample reaches exactly one rule
        agree = sum(r.agreement * r.coverage for r in rules if r.coverage)
        assert agree / n == pytest.approx(pattern_run.metrics["surrogates"][name]["fidelity"])
        assert all(t.startswith("pattern ") for r in rules for t in r.text)
    assert views["rules@patterns"].rules[-1].conditions == []  # the else rule
    assert pa.prototypes is not None and len(pa.gallery) == 5 and pa.layer == "features.6"
    used = {c for v in pa.surrogates if v.kind in ("tree", "rules") for c in v.channels}
    assert used <= set(pa.prototypes.channels) and pa.prototypes.channels[:5] == pa.gallery  # every rule's pattern
    assert pa.prototypes.channels[0] == views["tree@patterns"].channels[0]  # the root's pattern is drawn first
    assert json.dumps(pa.to_json())
    assert pattern_analysis(ed.Distillation(teacher=digits_teacher, dataset=digits, surrogates={})) is None


# ---------------------------------------------------------------------------- pictures
def _pattern(dims: int) -> dict:
    rng = np.random.default_rng(0)
    seg = rng.normal(size=(4, 1, 9) if dims == 1 else (4, 1, 5, 5))
    seg[0, 0, :2] = np.nan  # past the input's edge
    return {"name": "pattern 7", "segments": seg, "filter": rng.normal(size=(8, 5) if dims == 1 else (8, 3, 3)),
            "class_names": ["a", "b", "c"], "class_mix": np.array([0.6, 0.3, 0.1]), "base_mix": np.full(3, 1 / 3),
            "fire_threshold": 0.7, "n_fire": 12}


@pytest.mark.parametrize("dims", [1, 2])
def test_pattern_figures_draw_plain_data(dims):
    from matplotlib.figure import Figure

    from explain_distill.viz.plots import figure_to_svg, pattern_figure, pattern_thumbnail

    p = _pattern(dims)
    fig = pattern_figure(p)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    svg = figure_to_svg(fig)
    assert "pattern 7: top 4 training inputs" in svg and "where it fires (&gt; 0.70, n=12)" in svg
    assert figure_to_svg(pattern_figure(p)) == svg  # deterministic
    assert isinstance(pattern_thumbnail(p), Figure)
    silent = {**p, "class_mix": np.full(3, np.nan), "filter": None}
    assert "never fires" in figure_to_svg(pattern_figure(silent))
    with pytest.raises(ValueError, match="segments"):
        pattern_figure({"name": "x", "segments": np.zeros((3, 4))})
    with pytest.raises(TypeError, match="PatternPrototypes"):
        pattern_figure([1, 2])


def test_report_section_and_audit_verdict(pattern_run, tmp_path, capsys):
    from explain_distill.analysis import run_analyses
    from explain_distill.cli import main

    a = run_analyses(pattern_run, robustness=False, attributions=False)
    assert a.patterns is not None and a.to_json()["patterns"]["verdict"]["outcome"] in ("inputs", "patterns", "neither")
    html = ed.build_report(pattern_run, tmp_path / "rep", analyses=a, min_agreement=0.5).read_text()
    assert 'id="patterns"' in html and 'id="verdict"' in html and "Over the raw inputs, the readable " in html
    assert html.count('class="pt pt-') > 5 and 'id="pattern-' in html and ".pt-" in html
    assert 'class="pattern-rules"' in html and 'class="pattern-weights"' in html
    assert '<span class="pt"></span>' not in html  # every pattern a rule names has its picture
    text = ed.build_report(pattern_run, tmp_path / "bare").read_text()  # no analyses: the verdict, no pictures
    assert 'id="verdict"' in text and "Rules and pattern pictures: not computed" in text
    pattern_run.save(tmp_path / "run")
    assert main(["audit", str(tmp_path / "run"), "--min-agreement", "0.999"]) == 1
    out = capsys.readouterr().out
    assert "logistic@patterns" in out and "verdict: No readable surrogate over the raw inputs" in out
    assert main(["audit", str(tmp_path / "run"), "--min-agreement", "0.5", "--json"]) in (0, 1)
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"]["bar"] == 0.5 and doc["verdict"]["outcome"] == "inputs"


def test_memoized_patterns_map_the_same_rows_once(patterns, digits, monkeypatch):
    calls: list[int] = []
    real = type(patterns)._transform
    monkeypatch.setattr(type(patterns), "_transform", lambda self, X: (calls.append(len(X)), real(self, X))[1])
    X = digits.X_test[:50]
    plain = patterns.transform(X)
    with patterns.memoized():
        a = patterns.transform(X)
        b = patterns.transform(X.copy())  # same content, another array: served from the memo
        a[:] = -1.0  # a caller changing its copy does not change what the memo serves
        c = patterns.transform(X)
        other = patterns.transform(digits.X_test[50:80])
    after = patterns.transform(X)  # the memo is gone with the block
    np.testing.assert_array_equal(b, plain)
    np.testing.assert_array_equal(c, plain)
    assert other.shape == (30, plain.shape[1]) and calls == [50, 50, 30, 50]
