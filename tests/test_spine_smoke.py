"""End-to-end smoke of the spine through the public API (detailed tests live per module)."""

import numpy as np

import explain_distill as ed


def test_digits_teacher_and_distillation(digits, digits_teacher, digits_run):
    acc = float(np.mean(digits_teacher.predict(digits.X_test) == digits.y_test))
    assert acc >= 0.93
    rows = {r["surrogate"]: r for r in digits_run.fidelity()}
    assert set(rows) == {"tree", "logistic"}
    for r in rows.values():
        assert 0.0 <= r["low"] <= r["fidelity"] <= r["high"] <= 1.0
    assert rows["logistic"]["fidelity"] > 0.9


def test_save_load_round_trip(tmp_path, digits, digits_run):
    digits_run.save(tmp_path / "run")
    again = ed.load(tmp_path / "run", device="cpu")
    X = digits.X_test
    np.testing.assert_allclose(again.teacher.predict_proba(X), digits_run.teacher.predict_proba(X), atol=1e-6)
    for name, est in digits_run.surrogates.items():
        np.testing.assert_allclose(again.surrogates[name].predict_proba(X), est.predict_proba(X), atol=1e-9)
