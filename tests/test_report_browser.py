"""The report in a real browser: Debian's chromium driven by Playwright (no downloaded browser).

Every section is present, every image decodes, nothing logs an error or asks the network, and
hostile feature/class names show literally without firing a dialog.  Screenshots are saved
under test-artifacts/ (gitignored) for a human to look at.
"""

from __future__ import annotations

import os
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
