"""Shared, session-scoped fixtures: train each small teacher once per test session.

Keep the whole suite under 5 minutes on 2 cores: reuse these instead of training new teachers.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("PYTHONHASHSEED", "0")
torch.set_num_threads(min(2, os.cpu_count() or 1))
# Without a GPU the soft tree's Triton kernels run in Triton's interpreter (tests/test_triton_tree.py).
# The flag must be set before anything imports triton; library fits on a CPU never use the kernels.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def digits():
    import explain_distill as ed

    return ed.load_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def digits_teacher(digits):
    import explain_distill as ed

    return ed.train_teacher(digits, device="cpu", seed=0, epochs=30, progress=False)


@pytest.fixture(scope="session")
def iris():
    import explain_distill as ed

    return ed.load_dataset("iris", seed=0)


@pytest.fixture(scope="session")
def iris_teacher(iris):
    import explain_distill as ed

    return ed.train_teacher(iris, device="cpu", seed=0, epochs=60, progress=False)


@pytest.fixture(scope="session")
def digits_run(digits, digits_teacher):
    """A distillation of the digits teacher into the fast surrogates (tree, logistic)."""
    import explain_distill as ed

    return ed.distill(digits_teacher, digits, surrogates=["tree", "logistic"], temperature=4.0, seed=0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
