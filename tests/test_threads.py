"""distill fits families side by side on threads: what they share must stay correct."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

from explain_distill.teacher import own_thread


class _Stop(Exception):
    pass


def test_a_hook_acts_only_on_the_thread_that_registered_it():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    seen: list[int] = []

    def stop(_m, _i, _o):
        seen.append(threading.get_ident())
        raise _Stop

    handle = net[1].register_forward_hook(own_thread(stop))
    try:
        with pytest.raises(_Stop):  # the registering thread's pass stops at the layer
            net(torch.zeros(1, 3))
        out: dict[str, object] = {}

        def other() -> None:
            try:
                out["y"] = net(torch.ones(2, 3))
            except Exception as exc:  # noqa: BLE001 - the test reads it
                out["error"] = exc

        t = threading.Thread(target=other)
        t.start()
        t.join()
    finally:
        handle.remove()
    assert "error" not in out and tuple(out["y"].shape) == (2, 2)  # another thread's pass went through
    assert seen == [threading.get_ident()]


def test_families_fitted_side_by_side_are_the_models_fitted_one_at_a_time(digits, digits_teacher, monkeypatch):
    import explain_distill as ed
    from explain_distill.distill import fitting

    names = ["tree", "logistic", "tree@patterns", "rules@patterns"]
    kw = dict(surrogates=names, seed=0, queries={"jitter": 500, "mixup": 500}, min_agreement=0.8)
    monkeypatch.setattr(fitting, "cpu_cores", lambda: 2)
    started: list[str] = []
    real = fitting.Fitter.fit_one
    monkeypatch.setattr(fitting.Fitter, "fit_one", lambda self, name: (started.append(threading.current_thread().name), real(self, name))[1])
    side = ed.distill(digits_teacher, digits, **kw)
    assert any(n.startswith("explain_distill-fit") for n in started)  # the fits did run on the pool
    monkeypatch.setattr(fitting, "cpu_cores", lambda: 1)
    alone = ed.distill(digits_teacher, digits, **kw)
    X = digits.X_test
    for name in names:  # the same models, up to the order of a solver's floating-point sums (BLAS threads)
        a, b = side.surrogates[name], alone.surrogates[name]
        np.testing.assert_array_equal(a.predict(X), b.predict(X))
        np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-3)
        assert getattr(a, "size_", None) == getattr(b, "size_", None)
    assert side.frontier["families"].keys() == alone.frontier["families"].keys()


def test_a_fit_failing_on_the_pool_stops_the_run_with_its_own_error(digits, digits_teacher, monkeypatch):
    import explain_distill as ed
    from explain_distill.distill import fitting
    from explain_distill.surrogates import RuleListClassifier

    monkeypatch.setattr(fitting, "cpu_cores", lambda: 2)

    def broken(self, X, y, *a, **k):
        raise ValueError("rule list broke on purpose")

    monkeypatch.setattr(RuleListClassifier, "fit", broken)
    with pytest.raises(ValueError, match="broke on purpose"):
        ed.distill(digits_teacher, digits, surrogates=["tree", "logistic", "rules"], seed=0, queries=None)
