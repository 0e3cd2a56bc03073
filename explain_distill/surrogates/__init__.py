"""Surrogate models: scikit-learn classifiers that learn from the teacher's soft labels.

``SURROGATES`` maps a registry name to its estimator class.  Every class takes hard labels (n,)
or soft labels (n, K) in ``fit``, exposes ``predict_proba``/``predict``/``classes_``/
``n_features_in_`` and ``n_params_`` (its size), and saves without pickle through
:func:`save_surrogate` / :func:`load_surrogate`.  Surrogates see arrays only, never a teacher.

The readable families (``tree``, ``rules``, ``figs``, ``gam``) also speak the frontier protocol:
class attributes ``size_unit`` ("leaves", "rules" or "terms"), ``size_param`` (the constructor
parameter that sets the size) and ``size_ladder`` (the default sizes to sweep, smallest first), a
fitted ``size_``, and ``ladder_(sizes)``: the fitted models of every smaller size from one fit.
A surrogate whose ``_fit_extra`` lists "oracle" takes ``fit(..., oracle=f)``, a plain callable
X -> soft labels that ``distill`` builds from the teacher (node-local queries).
"""

from __future__ import annotations

import os
from typing import Any

from ._base import load_surrogate as _load
from ._base import save_surrogate
from .figs import SumOfTreesClassifier
from .gam import AdditiveClassifier
from .rules import RuleListClassifier
from .student import NeuralStudent
from .shallow import SoftLabelGaussianNB, SoftLabelLogisticRegression, SoftLabelTreeClassifier
from .soft_tree import SoftDecisionTree, SparseSoftDecisionTree

__all__ = [
    "SURROGATES",
    "SoftDecisionTree",
    "SparseSoftDecisionTree",
    "SoftLabelTreeClassifier",
    "SoftLabelLogisticRegression",
    "SoftLabelGaussianNB",
    "RuleListClassifier",
    "SumOfTreesClassifier",
    "AdditiveClassifier",
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
    "figs": SumOfTreesClassifier,
    "gam": AdditiveClassifier,
    "student": NeuralStudent,
}


def load_surrogate(path: str | os.PathLike) -> Any:
    """Load a surrogate saved with :func:`save_surrogate` (registry-resolved, no pickle)."""
    return _load(path, SURROGATES)
