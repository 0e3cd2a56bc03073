"""Surrogate models: scikit-learn classifiers that learn from the teacher's soft labels.

``SURROGATES`` maps a registry name to its estimator class.  Every class takes hard labels (n,)
or soft labels (n, K) in ``fit``, exposes ``predict_proba``/``predict``/``classes_``/
``n_features_in_`` and ``n_params_`` (its size), and saves without pickle through
:func:`save_surrogate` / :func:`load_surrogate`.  Surrogates see arrays only, never a teacher.
"""

from __future__ import annotations

import os
from typing import Any

from ._base import load_surrogate as _load
from ._base import save_surrogate
from .student import NeuralStudent
from .shallow import RuleListClassifier, SoftLabelGaussianNB, SoftLabelLogisticRegression, SoftLabelTreeClassifier
from .soft_tree import SoftDecisionTree, SparseSoftDecisionTree

__all__ = [
    "SURROGATES",
    "SoftDecisionTree",
    "SparseSoftDecisionTree",
    "SoftLabelTreeClassifier",
    "SoftLabelLogisticRegression",
    "SoftLabelGaussianNB",
    "RuleListClassifier",
    "NeuralStudent",
    "save_surrogate",
    "load_surrogate",
]

SURROGATES: dict[str, type] = {
    "soft_tree": SoftDecisionTree,
    "soft_tree_sparse": SparseSoftDecisionTree,
    "tree": SoftLabelTreeClassifier,
    "logistic": SoftLabelLogisticRegression,
    "naive_bayes": SoftLabelGaussianNB,
    "rules": RuleListClassifier,
    "student": NeuralStudent,
}


def load_surrogate(path: str | os.PathLike) -> Any:
    """Load a surrogate saved with :func:`save_surrogate` (registry-resolved, no pickle)."""
    return _load(path, SURROGATES)
