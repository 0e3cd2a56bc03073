"""Same seed, same machine: same teacher, soft labels, surrogates, metrics and report (CPU, 1e-6).

GPU runs are not bit-reproducible (cuDNN algorithm choice and atomics in the backward pass,
bf16 autocast); see the README.  These tests run on the CPU.
"""

from __future__ import annotations

import numpy as np
import pytest

import explain_distill as ed
from explain_distill.cli import metrics_document

EPOCHS = 12


def _run(seed: int):
    data = ed.load_dataset("iris", seed=seed)
    teacher = ed.train_teacher(data, device="cpu", seed=seed, epochs=EPOCHS, progress=False)
    return ed.distill(teacher, data, surrogates=["tree", "logistic"], temperature=4.0, seed=seed)


@pytest.fixture(scope="module")
def runs():
    return _run(0), _run(0), _run(1)


def _strip_timing(doc):
    doc = {**doc, "run": {k: v for k, v in doc["run"].items() if k != "seconds"}}
    return doc


def test_same_seed_same_teacher_and_soft_labels(runs):
    a, b, _ = runs
    assert a.teacher.fingerprint() == b.teacher.fingerprint()
    assert a.dataset.fingerprint() == b.dataset.fingerprint()
    np.testing.assert_allclose(a.transfer.P, b.transfer.P, atol=1e-6, rtol=0)
    X = a.dataset.X_test
    np.testing.assert_allclose(a.teacher.predict_proba(X, 4.0), b.teacher.predict_proba(X, 4.0), atol=1e-6, rtol=0)


def test_same_seed_same_surrogates_and_metrics(runs):
    a, b, _ = runs
    X = a.dataset.X_test
    for name in a.surrogates:
        np.testing.assert_array_equal(a.surrogates[name].predict(X), b.surrogates[name].predict(X))
        np.testing.assert_allclose(
            a.surrogates[name].predict_proba(X), b.surrogates[name].predict_proba(X), atol=1e-6, rtol=0
        )
    assert a.metrics == b.metrics
    assert _strip_timing(metrics_document(a)) == _strip_timing(metrics_document(b))


def test_metrics_document_records_seed_versions_and_hashes(runs):
    a, _, c = runs
    doc = metrics_document(a)["run"]
    assert doc["seed"] == 0 and metrics_document(c)["run"]["seed"] == 1
    assert doc["data_sha256"] == a.dataset.fingerprint() and doc["teacher_sha256"] == a.teacher.fingerprint()
    assert set(doc["versions"]) >= {"explain_distill", "torch", "numpy", "sklearn", "python"}


def test_different_seed_differs(runs):
    a, _, c = runs
    assert a.teacher.fingerprint() != c.teacher.fingerprint()
    assert a.dataset.fingerprint() != c.dataset.fingerprint()  # another split
    X = a.dataset.X_test
    assert not np.allclose(a.teacher.predict_proba(X, 4.0), c.teacher.predict_proba(X, 4.0), atol=1e-6)


def test_same_seed_same_report(runs):
    """The HTML is a pure function of the run, apart from the generation time and the timings."""
    from explain_distill.report.html import render_html, report_context

    def html(run):
        ctx = report_context(run)
        ctx["generated"] = "GENERATED"
        ctx["provenance"]["timings"] = {}
        return render_html(ctx)

    a, b, _ = runs
    ha, hb = html(a), html(b)
    assert "<html" in ha.lower()
    if ha != hb:  # show where they part
        i = next(i for i, (x, y) in enumerate(zip(ha, hb)) if x != y)
        pytest.fail(f"reports differ at char {i}: {ha[max(0, i - 80):i + 80]!r} vs {hb[max(0, i - 80):i + 80]!r}")


def test_saved_runs_reload_identically(tmp_path, runs):
    a, b, _ = runs
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    for rel in ("teacher/teacher.safetensors", "data/data.safetensors", "surrogates/tree.safetensors",
                "surrogates/logistic.safetensors"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
