"""The report in a real browser: Debian's chromium driven by Playwright (no downloaded browser).

Every section is present, every image decodes, nothing logs an error or asks the network, and
hostile feature/class names show literally without firing a dialog.  Screenshots are saved
under test-artifacts/ (gitignored) for a human to look at.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

import explain_distill as ed
from explain_distill.report import build_report

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("EXPLAIN_DISTILL_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
HOSTILE_FEATURES = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "quote \" and ' here", "$x$", "<b>x</b>", "plain"]
HOSTILE_CLASSES = ["<script>alert(2)</script>", "$y$", "<b>z</b>"]
SECTIONS = ["summary", "fidelity", "soft-tree", "shallow-tree", "student", "saliency", "curves", "provenance"]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"Browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium), or set "
            f"EXPLAIN_DISTILL_CHROMIUM to a chromium binary. Deselect them with -m 'not browser'."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    from explain_distill.analysis import run_analyses

    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 6))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1).astype(int)
    data = ed.Dataset.from_arrays(X, y, feature_names=HOSTILE_FEATURES, class_names=HOSTILE_CLASSES, name="<i>hostile</i>")
    teacher = ed.train_teacher(data, device="cpu", seed=0, epochs=5, progress=False)
    run = ed.distill(teacher, data, surrogates=["tree", "logistic"], seed=0, queries=None)
    analyses = run_analyses(run, n_examples=3)
    return build_report(run, tmp_path_factory.mktemp("hostile"), analyses=analyses, min_agreement=0.5)


def _visit(browser, path: Path, shot: str):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    events = {"console": [], "dialogs": [], "requests": [], "pageerrors": []}
    page.on("console", lambda m: events["console"].append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("dialog", lambda d: (events["dialogs"].append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: events["pageerrors"].append(str(e)))
    page.on("request", lambda r: events["requests"].append(r.url) if not r.url.startswith(("file:", "data:")) else None)
    page.goto(path.resolve().as_uri(), wait_until="load")
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    page.evaluate("Promise.all([...document.images].map(i => i.decode().catch(() => null)))")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    return page, events


def _check_page(page, events):
    for sid in SECTIONS:
        assert page.locator(f"section#{sid}").count() == 1, sid
        assert page.locator(f"section#{sid} h2").is_visible(), sid
    images = page.evaluate("[...document.images].map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])")
    assert images, "the report has no images"
    for alt, complete, w, h in images:
        assert complete and w > 0 and h > 0, f"image {alt!r} did not decode"
    boxes = page.evaluate("[...document.querySelectorAll('svg')].map(s => s.getBoundingClientRect()).map(r => r.width * r.height)")
    assert all(b > 0 for b in boxes)
    assert page.evaluate("document.scripts.length") == 0
    assert events["console"] == [] and events["pageerrors"] == [] and events["dialogs"] == []
    assert events["requests"] == [], events["requests"]


def test_hostile_names_render_literally(browser, hostile_report):
    page, events = _visit(browser, hostile_report, "report_hostile.png")
    try:
        _check_page(page, events)
        text = page.inner_text("body")
        for name in HOSTILE_FEATURES + HOSTILE_CLASSES:
            assert name in text, name
        assert page.locator("img[src='x']").count() == 0 and page.locator("b:text-is('x')").count() == 0
        assert events["dialogs"] == []
        assert page.locator("#surrogate-table td.pass").count() + page.locator("#surrogate-table td.fail").count() == 2
    finally:
        page.close()


def test_digits_report_with_soft_tree_in_browser(browser, tmp_path):
    """An image data set with a soft tree: filters, leaf glyphs, saliency heat maps all decode."""
    from explain_distill.analysis import run_analyses
    from explain_distill.surrogates.soft_tree import SoftDecisionTree

    data = ed.load_dataset("digits", seed=0)
    small = ed.Dataset(X_train=data.X_train[:200], y_train=data.y_train[:200], X_test=data.X_test[:60],
                       y_test=data.y_test[:60], feature_names=data.feature_names, class_names=data.class_names,
                       kind="image", input_shape=data.input_shape, name="digits (small)")
    teacher = ed.train_teacher(small, device="cpu", seed=0, epochs=2, progress=False)
    run = ed.distill(teacher, small, surrogates=["tree", "logistic"], seed=0, queries=None)
    run.surrogates["soft_tree"] = SoftDecisionTree(depth=3, epochs=2, device="cpu", input_shape=tuple(small.input_shape),
                                                   random_state=0).fit(run.transfer.X, run.transfer.P)
    run.evaluate()
    analyses = run_analyses(run, n_examples=3, robustness=False)
    path = build_report(run, tmp_path, analyses=analyses)
    page, events = _visit(browser, path, "report_digits.png")
    try:
        _check_page(page, events)
        alts = page.evaluate("[...document.images].map(i => i.alt)")
        for alt in ("soft_tree tree", "soft tree filters", "soft tree leaf distributions", "attribution maps", "tree tree"):
            assert alt in alts, alt
        assert "Not computed" not in page.inner_text("section#soft-tree")
    finally:
        page.close()


# ---------------------------------------------------------------------------- readable figures
# Each figure is opened on its own page (its SVG inline) and measured: matplotlib gives every axes
# area, legend and mosaic column header an id (viz/plots.py), so overlaps are rectangles to compare.
_MEASURE = """() => {
  const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const svg = document.querySelector('svg');
  return {
    svg: box(svg),
    // a mathtext label is one <tspan> per glyph, laid out on separate lines: join those
    text: [...svg.querySelectorAll('text')].map(t => t.textContent.replace(/\\s*\\n\\s*/g, '')).join(' '),
    // an axes' background patch: ours carry an id, matplotlib's default one is the axes' first child
    areas: [...svg.querySelectorAll('[id^="axes-area"], [id^="axes_"] > [id^="patch_"]:first-child')].map(box),
    legends: [...svg.querySelectorAll('[id^="legend"]')].map(e => [e.id, box(e), e.textContent.replace(/\\s+/g, ' ').trim()]),
    headers: [...svg.querySelectorAll('[id^="col-title-"]')].map(e => [e.textContent.replace(/\\s+/g, ''), box(e)]),
  };
}"""


def _overlap(a, b, tol=0.5):
    return min(a[2], b[2]) - max(a[0], b[0]) > tol and min(a[3], b[3]) - max(a[1], b[1]) > tol


def _figures(page) -> dict:
    import base64

    out = {}
    for alt, src in page.evaluate("[...document.images].map(i => [i.alt, i.src])"):
        prefix = "data:image/svg+xml;base64,"
        if src.startswith(prefix):
            out[alt] = base64.b64decode(src[len(prefix):]).decode("utf-8")
    return out


@pytest.fixture(scope="module")
def figures_report(tmp_path_factory):
    """A small digits run with every figure the issue names: the log-scale size axis (compression),
    the KD bar chart, the temperature curve, the noise and FGSM panels and the saliency grid (with the
    teacher:FeatureAblation column a tree brings)."""
    from explain_distill.analysis import run_analyses
    from explain_distill.analysis.compression import compression_report
    from explain_distill.analysis.curves import kd_vs_hard, temperature_curve

    data = ed.load_dataset("digits", seed=0)
    small = ed.Dataset(X_train=data.X_train[:300], y_train=data.y_train[:300], X_test=data.X_test[:80],
                       y_test=data.y_test[:80], feature_names=data.feature_names, class_names=data.class_names,
                       kind="image", input_shape=data.input_shape, name="digits (small)")
    teacher = ed.train_teacher(small, device="cpu", seed=0, epochs=3, progress=False)
    run = ed.distill(teacher, small, surrogates=["tree", "logistic", "student"], seed=0, queries=None,
                     params={"student": {"epochs": 3}})
    analyses = run_analyses(run, n_examples=3, sigmas=(0.0, 0.5, 1.0), epsilons=(0.0, 0.1))
    analyses.extras["temperature_curve"] = temperature_curve(run, temperatures=(1, 4, 20), surrogates=("tree", "logistic"))
    analyses.extras["compression"] = compression_report(run.teacher, run.surrogates["student"])
    analyses.extras["kd_vs_hard"] = kd_vs_hard(run, params={"epochs": 3})
    return build_report(run, tmp_path_factory.mktemp("figures"), analyses=analyses)


@pytest.fixture(scope="module")
def measured(browser, figures_report):
    page, events = _visit(browser, figures_report, "report_figures.png")
    try:
        _check_page(page, events)
        figures = _figures(page)
    finally:
        page.close()
    out = {}
    for alt, svg in figures.items():
        p = browser.new_page(viewport={"width": 1600, "height": 1200})
        try:
            p.set_content(f"<!doctype html><body style='margin:0'>{svg}</body>")
            out[alt] = p.evaluate(_MEASURE)
        finally:
            p.close()
    for alt in ("compression", "KD vs hard labels", "Fidelity vs temperature", "Gaussian noise", "FGSM adversarial",
                "attribution maps"):
        assert alt in out, f"the report has no {alt!r} figure; it has {sorted(out)}"
    return out


def test_no_raw_tex_in_any_figure(measured):
    for alt, m in measured.items():
        assert "mathdefault" not in m["text"] and "$" not in m["text"] and "^{" not in m["text"], (alt, m["text"][:300])
    # the log-scale size axis shows its ticks as rendered powers of ten: "10" and a superscript
    assert re.search(r"(^| )10\d( |$)", measured["compression"]["text"]), measured["compression"]["text"]


def test_no_legend_sits_over_data(measured):
    checked = 0
    for alt, m in measured.items():
        assert m["areas"] or not m["legends"], f"{alt}: no axes area found to compare its legend with"
        for name, legend, text in m["legends"]:
            for area in m["areas"]:
                assert not _overlap(legend, area), f"{alt}: legend {name} ({text!r}) covers an axes area"
            checked += 1
    assert checked >= 4  # KD bars, temperature curve, noise, FGSM at least
    kd = [text for _, _, text in measured["KD vs hard labels"]["legends"]]
    assert kd and "hard" in kd[0] and "soft" in kd[0]


def test_column_headers_are_whole_and_apart(measured):
    heads = measured["attribution maps"]["headers"]
    names = [h for h, _ in heads]
    assert "teacher:FeatureAblation" in names, names
    assert not any("…" in h for h in names), names
    svg = measured["attribution maps"]["svg"]
    for i, (_, a) in enumerate(heads):
        assert a[0] >= svg[0] - 0.5 and a[2] <= svg[2] + 0.5 and a[1] >= svg[1] - 0.5, (names[i], a, svg)
        for b_name, b in heads[i + 1:]:
            assert not _overlap(a, b), (names[i], b_name)


def test_temperature_curve_says_what_it_was_fitted_on(measured):
    assert "without synthesized queries" in measured["Fidelity vs temperature"]["text"]
