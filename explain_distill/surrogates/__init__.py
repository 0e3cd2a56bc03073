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
    "READABLE_SIZES",
    "readable_size",
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


#: The families a person can read, and the largest size (in the family's ``size_unit``) at which one
#: still can: a tree of 64 leaves (six levels), a list of 30 rules, a sum of trees with 64 leaves in
#: all, an additive model of 64 shape plots.  Only these, at these sizes, may stand for the network in
#: a verdict ("the network is explained by ...").  Logistic regression, naive Bayes, the soft trees
#: and the neural student are faithful or not, but not read as an explanation: their size counts
#: weights over every input.
READABLE_SIZES: dict[str, int] = {"tree": 64, "rules": 30, "figs": 64, "gam": 64}


def readable_size(family: str) -> int | None:
    """The largest readable size of ``family`` (None: the family is not read as an explanation)."""
    return READABLE_SIZES.get(family)


def load_surrogate(path: str | os.PathLike) -> Any:
    """Load a surrogate saved with :func:`save_surrogate` (registry-resolved, no pickle)."""
    return _load(path, SURROGATES)
