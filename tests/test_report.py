"""The HTML report: structure, escaping, CSP, no remote references, re-render via the CLI."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import explain_distill as ed
from explain_distill._gate import Gate, agreement_from, decide
from explain_distill.report import build_report

HOSTILE_FEATURES = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "quote \" and ' here", "$x$", "<b>x</b>", "plain"]
HOSTILE_CLASSES = ["<script>alert(2)</script>", "$y$", "<b>z</b>"]
SECTIONS = ["summary", "fidelity", "soft-tree", "shallow-tree", "student", "saliency", "curves", "provenance"]


def hostile_run():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 6))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1).astype(int)
    data = ed.Dataset.from_arrays(X, y, feature_names=HOSTILE_FEATURES, class_names=HOSTILE_CLASSES, name='<i>hostile</i> "$x$"')
    teacher = ed.train_teacher(data, device="cpu", seed=0, epochs=5, progress=False)
    return ed.distill(teacher, data, surrogates=["tree", "logistic"], seed=0, queries=None)


@pytest.fixture(scope="module")
def run():
    return hostile_run()


@pytest.fixture(scope="module")
def analyses(run):
    from explain_distill.analysis import run_analyses

    a = run_analyses(run, n_examples=3)
    # the shapes analysis/curves.py and analysis/compression.py return
    a.extras["temperature_curve"] = {"temperatures": [1.0, 2.0, 4.0], "queries": None,
                                     "surrogates": {"tree": {"fidelity": [0.8, 0.85, 0.9], "accuracy": [0.7, 0.7, 0.75]}}}
    a.extras["size_curve"] = {"depths": [2, 3], "temperature": 4.0, "transfer_set": {"real": 180},
                              "surrogates": {"tree": {"fidelity": [0.7, 0.8], "accuracy": [0.6, 0.7], "params": [7, 15]}}}
    a.extras["kd_vs_hard"] = {"soft": {"accuracy": 0.9, "fidelity": 0.95, "params": 99}, "hard": {"accuracy": 0.88, "fidelity": 0.9, "params": 99},
                              "student_params": {"hidden": 16}}
    a.extras["compression"] = {"teacher": {"params": 1000, "file_bytes": 4000}, "student": {"params": 99, "file_bytes": 400},
                               "ratios": {"params": 10.1, "file_bytes": 10.0}, "caveat": "CPU latency <is> noisy"}
    return a


@pytest.fixture(scope="module")
def html(run, analyses, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    path = build_report(run, out, analyses=analyses, min_agreement=0.5, run_seconds=1.5)
    assert path == out / "index.html"
    return path.read_text(encoding="utf-8")


class Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> Collect:
    c = Collect()
    c.feed(html)
    return c


def test_every_section_and_the_csp(html):
    doc = parse(html)
    ids = {a.get("id") for _, a in doc.tags}
    assert set(SECTIONS) <= ids
    csp = [a for t, a in doc.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert len(csp) == 1 and "default-src 'none'" in csp[0]["content"] and "script-src" not in csp[0]["content"]


def test_no_script_and_no_remote_reference(html):
    doc = parse(html)
    assert not [t for t, _ in doc.tags if t in ("script", "iframe", "object", "embed", "link")]
    for tag, attrs in doc.tags:
        for key in ("src", "href", "xlink:href", "action"):
            value = attrs.get(key)
            if value is not None:
                assert value.startswith(("data:image/", "#")), (tag, key, value[:80])
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html)


def test_hostile_names_are_escaped(html):
    for name in [n for n in HOSTILE_FEATURES + HOSTILE_CLASSES if "<" in n]:
        assert name not in html  # never raw markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;b&gt;z&lt;/b&gt;" in html
    text = "".join(parse(html).text)
    for name in HOSTILE_FEATURES + HOSTILE_CLASSES:
        assert name in text  # shown literally (decoded back by the parser)
    assert '<i>hostile</i> "$x$"' in text


def test_summary_marks_pass_and_fail(run, html, tmp_path):
    # the module report used min_agreement=0.5: each mark is the gate's verdict (the lower end of the
    # interval, and every sizeable teacher class reproduced)
    def passes(bar):
        return sum(decide(agreement_from(m), Gate(bar), run.dataset.class_names).passed
                   for m in run.metrics["surrogates"].values())

    expected = passes(0.5)
    assert html.count('class="pass">PASS') == expected and html.count('class="fail">FAIL') == 2 - expected
    text = build_report(run, tmp_path / "a", min_agreement=0.0).read_text()
    assert text.count('class="pass">PASS') == passes(0.0) and text.count('class="fail">FAIL') == 2 - passes(0.0)
    text = build_report(run, tmp_path / "b", min_agreement=1.0).read_text()
    assert text.count('class="fail">FAIL') == 2
    text = build_report(run, tmp_path / "c").read_text()
    assert "PASS" not in text and "FAIL" not in text
    with pytest.raises(ValueError, match="min_agreement"):
        build_report(run, tmp_path / "d", min_agreement=1.5)
    with pytest.raises(TypeError, match="Distillation"):
        build_report("runs/x", tmp_path / "e")


def test_sections_with_data_are_drawn(html):
    doc = parse(html)
    alts = [a.get("alt", "") for t, a in doc.tags if t == "img"]
    assert any("confusion" in a for a in alts)
    assert any(a == "tree tree" for a in alts)  # graphviz drawing of the shallow tree
    assert "attribution maps" in alts
    assert "Fidelity vs temperature" in alts and "Fidelity vs size" in alts and "KD vs hard labels" in alts
    assert "CPU latency &lt;is&gt; noisy" in html and "student_params" not in html
    assert "Gaussian noise" in alts
    imgs = [a["src"] for t, a in doc.tags if t == "img"]
    assert all(s.startswith(("data:image/svg+xml;base64,", "data:image/png;base64,")) for s in imgs)
    assert 'class="rules"' in html and "Least faithful leaves" in html


def test_absent_data_says_not_computed(run, tmp_path):
    bare = ed.Distillation(teacher=run.teacher, dataset=run.dataset, surrogates={"logistic": run.surrogates["logistic"]},
                           info=run.info)
    html = build_report(bare, tmp_path).read_text()
    assert set(SECTIONS) <= {a.get("id") for _, a in parse(html).tags}
    assert html.count("Not computed") >= 5 and "no soft decision tree" in html and "no axis-aligned tree" in html


def test_tree_falls_back_to_dot_text_without_graphviz(run, monkeypatch, tmp_path):
    import graphviz

    def missing(*args, **kwargs):
        raise graphviz.ExecutableNotFound(("dot",))

    monkeypatch.setattr(graphviz.Source, "pipe", missing)
    html = build_report(run, tmp_path).read_text()
    assert "not installed" in html and '<pre class="dot">digraph tree {' in html


def test_cli_report_rerenders_a_saved_run_without_training(run, analyses, tmp_path, monkeypatch, capsys):
    import importlib

    from explain_distill import cli

    distill_mod = importlib.import_module("explain_distill.distill")
    teacher_mod = importlib.import_module("explain_distill.teacher")

    out = tmp_path / "run"
    run.save(out / "model")
    doc = cli.metrics_document(run, seconds=3.0, analyses=analyses, min_agreement=0.5)
    json.dumps(doc, allow_nan=False)  # strict JSON: NaN became null
    assert doc["analysis"]["temperature_curve"]["temperatures"] == [1.0, 2.0, 4.0]
    (out / "metrics.json").write_text(json.dumps(doc))

    def no_training(*a, **k):
        raise AssertionError("report must not retrain")

    monkeypatch.setattr(teacher_mod, "train_teacher", no_training)
    monkeypatch.setattr(distill_mod, "distill", no_training)
    assert cli.main(["-q", "report", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "index.html")
    html = (out / "index.html").read_text()
    assert html.count("PASS") == sum(decide(agreement_from(m), Gate(0.5), run.dataset.class_names).passed
                                     for m in run.metrics["surrogates"].values())  # the saved bar came back
    assert 'alt="Fidelity vs temperature"' in html  # saved extras laid out again
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert cli.main(["-q", "report", str(out), "--out", str(tmp_path / "elsewhere"), "--min-agreement", "1"]) == 0
    html2 = (tmp_path / "elsewhere" / "index.html").read_text()
    assert html2.count("FAIL") == 2
    saved = json.loads((tmp_path / "elsewhere" / "metrics.json").read_text())
    assert saved["run"]["min_agreement"] == 1.0 and "fidelity" in saved["analysis"]
