"""Short reprs and the notebook table: names, shapes and metrics on one screen, never whole arrays.

The notebook itself (a real kernel rendering these) is tests/test_notebook.py; here the text and
HTML are checked directly, and the table's audit verdicts against ``ed.audit`` on the same split.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import explain_distill as ed
from explain_distill._display import distillation_html, names_preview, number


@pytest.fixture(scope="module")
def run(iris, iris_teacher):
    return ed.distill(iris_teacher, iris, surrogates=["tree", "rules", "logistic"], queries={"jitter": 300}, seed=0)


def test_reprs_are_short_and_never_print_arrays(run, digits, digits_teacher):
    for obj in (digits, digits_teacher, run.dataset, run.teacher, run.transfer, run):
        text = repr(obj)
        if obj is run:  # a header, the teacher check, a line per surrogate and the bar: each line one screen wide
            assert len(text.splitlines()) == len(run.surrogates) + 3
            assert max(len(line) for line in text.splitlines()) < 300, text
        else:
            assert len(text) < 700, f"{type(obj).__name__}: {len(text)} characters"
        assert "array(" not in text and "tensor(" not in text and "0x" not in text, text
    assert repr(digits).startswith("Dataset('digits', kind='image', train (1347, 64) float32, test (450, 64) float32")
    assert "input_shape=(1, 8, 8)" in repr(digits) and "+60 more" in repr(digits)
    assert re.match(r"Teacher\(CNN, input_shape=\(1, 8, 8\), 10 classes \['0', '1', '2', '3', \.\.\. \+6 more\], [\d,]+ parameters, "
                    r"float32 on cpu, trained \d+ epochs \(validation accuracy 0\.\d{3}\)\)", repr(digits_teacher)), repr(digits_teacher)
    n_fit = len(run.dataset.X_train) - run.frontier["validation"]["n"]  # rows held out to choose sizes
    assert f"rows {{'train': {n_fit}, 'jitter': 300}}" in repr(run.transfer)
    assert "temperature=4" in repr(run.transfer)


def test_distillation_repr_has_one_line_per_surrogate(run):
    lines = repr(run).splitlines()
    assert lines[0].startswith("Distillation(data iris (3 classes, 4 features, test n = 38)")
    assert lines[1].strip().startswith("teacher check: test accuracy")  # the teacher first
    rows = run.fidelity()
    for line, row in zip(lines[2:], rows):
        assert line.split()[0] == row["surrogate"]
        assert f"fidelity {row['fidelity']:.3f} [{row['low']:.3f}, {row['high']:.3f}]" in line
        assert f"kappa {row['kappa']:.3f}" in line and line.rstrip().split()[-1] in ("PASS", "FAIL") or "FAIL:" in line
    assert "bar 0.95" in lines[-1] and "always predicting the teacher's most frequent class" in lines[-1]


def test_html_table_verdicts_equal_ed_audit(run):
    html = run._repr_html_()
    rows = re.findall(r"<tr><td style='text-align:left'><b>(\w+)</b></td>.*?class='audit-(\w+)'", html)
    assert [name for name, _ in rows] == list(run.surrogates)
    for name, verdict in rows:
        gate = ed.audit(run.teacher, run.surrogates[name], run.dataset.X_test, min_agreement=0.95)
        assert verdict == ("pass" if gate.passed else "fail"), name
        lo, hi = gate.intervals["agreement"]
        assert f"[{lo:.3f}, {hi:.3f}]" in html


def test_html_escapes_and_handles_missing_numbers():
    html = distillation_html(
        [{"surrogate": "<b>x</b>", "fidelity": 0.5, "low": None, "high": float("nan"), "accuracy": 0.4, "params": 12345}],
        dataset={"name": "<script>alert(1)</script>", "n_classes": 2, "n_features": 3, "n_test": 10},
        teacher={"accuracy": 0.9, "params": 100}, temperature=2.0, transfer={"train": 20, "jitter": 5}, min_agreement=0.8,
    )
    assert "<script>" not in html and "&lt;script&gt;" in html and "<b>&lt;b&gt;x&lt;/b&gt;</b>" in html
    assert "[n/a, n/a]" in html and "audit-n/a" in html and "12,345" in html and "train 20, jitter 5" in html


def test_small_formatters():
    assert names_preview(["a", "b", "c", "d", "e", "f"]) == "['a', 'b', 'c', 'd', ... +2 more]"
    assert names_preview(["x" * 50])[:6] == "['xxxx" and "…" in names_preview(["x" * 50])
    assert (number(None), number(float("inf")), number(3), number(0.12345), number(12345.0)) == ("n/a", "n/a", "3", "0.123", "12,345")
    assert number(np.float32(0.5)) == "0.500"
