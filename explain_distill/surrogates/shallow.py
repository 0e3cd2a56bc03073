"""Shallow scikit-learn surrogates fitted on the teacher's soft labels.

- :class:`SoftLabelTreeClassifier` (``tree``): a depth-limited ``DecisionTreeRegressor`` fitted to
  the (n, K) soft-label matrix, a multi-output regression whose leaves are class distributions.
- :class:`SoftLabelLogisticRegression` (``logistic``): multinomial logistic regression minimising
  the soft cross-entropy  -sum_i sum_k P_ik log q_k(x_i)  exactly, by giving scikit-learn each
  sample once per class with weight P_ik.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeRegressor, export_text
from sklearn.utils.validation import check_is_fitted

from .._validation import check_int, check_positive
from ._base import SoftTargetMixin

__all__ = ["SoftLabelTreeClassifier", "SoftLabelLogisticRegression"]

_NODE_FIELDS = (
    "left_child",
    "right_child",
    "feature",
    "threshold",
    "impurity",
    "n_node_samples",
    "weighted_n_node_samples",
    "missing_go_to_left",
)


def _normalise(P: np.ndarray) -> np.ndarray:
    P = np.clip(P, 0.0, None)
    s = P.sum(axis=1, keepdims=True)
    K = P.shape[1]
    return np.divide(P, s, out=np.full_like(P, 1.0 / K), where=s > 0)


class SoftLabelTreeClassifier(SoftTargetMixin, ClassifierMixin, BaseEstimator):
    """A decision tree whose leaves hold the teacher's class distributions.

    Fitted as a multi-output ``DecisionTreeRegressor`` on the soft-label matrix (squared error
    on probabilities is the Brier score, a proper scoring rule), so each leaf predicts the mean
    teacher distribution of the samples that reach it.

    Parameters
    ----------
    max_depth : int, default=6
    min_samples_leaf : int, default=1
    ccp_alpha : float, default=0.0
        Minimal cost-complexity pruning, as in scikit-learn.
    random_state : int or None
    """

    def __init__(
        self,
        *,
        max_depth: int | None = 6,
        min_samples_leaf: int = 1,
        ccp_alpha: float = 0.0,
        random_state: int | None = None,
    ) -> None:
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.ccp_alpha = ccp_alpha
        self.random_state = random_state

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "SoftLabelTreeClassifier":
        if self.max_depth is not None:
            check_int(self.max_depth, "max_depth", low=1, high=64)
        check_int(self.min_samples_leaf, "min_samples_leaf", low=1)
        check_positive(self.ccp_alpha, "ccp_alpha", strict=False)
        X, P = self._validate_fit(X, y, dtype=np.float32)
        self.estimator_ = DecisionTreeRegressor(
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            ccp_alpha=self.ccp_alpha,
            random_state=self.random_state,
        ).fit(X, P, sample_weight=sample_weight)
        return self

    @property
    def tree_(self) -> Any:
        check_is_fitted(self)
        return self.estimator_.tree_

    @property
    def n_params_(self) -> int:
        """Model size: the number of tree nodes."""
        return int(self.tree_.node_count)

    def predict_proba(self, X: Any) -> np.ndarray:
        X = self._validate_predict(X, dtype=np.float32)
        P = self.estimator_.predict(X)
        if P.ndim == 1:
            P = P[:, None]
        return _normalise(P)

    def apply(self, X: Any) -> np.ndarray:
        """Index of the leaf each sample lands in."""
        X = self._validate_predict(X, dtype=np.float32)
        return self.estimator_.apply(X)

    def export_text(self, feature_names: list[str] | None = None, **kwargs: Any) -> str:
        """The tree as indented if/else text (scikit-learn's ``export_text``)."""
        check_is_fitted(self)
        return export_text(self.estimator_, feature_names=feature_names, **kwargs)

    # -- persistence (no pickle: the node table as plain arrays)
    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        state = self.estimator_.tree_.__getstate__()
        nodes = state["nodes"]
        arrays = {f"node_{f}": np.ascontiguousarray(nodes[f]) for f in _NODE_FIELDS if f in nodes.dtype.names}
        arrays["values"] = np.ascontiguousarray(state["values"])
        return arrays, {"max_depth_fitted": int(state["max_depth"]), "node_dtype": nodes.dtype.descr}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        from sklearn.tree._tree import Tree

        values = arrays["values"]
        n_outputs = values.shape[1]
        template = DecisionTreeRegressor().fit(np.zeros((2, 1)), np.zeros((2, n_outputs)))
        dtype = template.tree_.__getstate__()["nodes"].dtype
        n = len(arrays["node_left_child"])
        nodes = np.zeros(n, dtype=dtype)
        for f in dtype.names:
            if f"node_{f}" in arrays:
                nodes[f] = arrays[f"node_{f}"]
        reg = DecisionTreeRegressor(max_depth=self.max_depth, min_samples_leaf=self.min_samples_leaf)
        reg.n_features_in_ = self.n_features_in_
        reg.n_outputs_ = n_outputs
        reg.max_features_ = self.n_features_in_
        tree = Tree(self.n_features_in_, np.ones(n_outputs, dtype=np.intp), n_outputs)
        tree.__setstate__(
            {"max_depth": int(meta["max_depth_fitted"]), "node_count": n, "nodes": nodes, "values": np.ascontiguousarray(values, dtype=np.float64)}
        )
        reg.tree_ = tree
        self.estimator_ = reg
        self.soft_fit_ = True


class SoftLabelLogisticRegression(SoftTargetMixin, ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression fitted to soft labels with the soft cross-entropy.

    Each sample enters scikit-learn's ``LogisticRegression`` once per class k with weight
    P_ik, which makes its weighted log-loss equal to sum_i sum_k P_ik (-log q_k(x_i)): the
    cross-entropy against the teacher's distribution, not against its argmax.

    Parameters
    ----------
    C : float, default=1.0
        Inverse L2 regularisation strength, as in scikit-learn.
    max_iter : int, default=500
    tol : float, default=1e-4
    """

    def __init__(self, *, C: float = 1.0, max_iter: int = 500, tol: float = 1e-4) -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X: Any, y: Any) -> "SoftLabelLogisticRegression":
        check_positive(self.C, "C")
        check_int(self.max_iter, "max_iter", low=1)
        check_positive(self.tol, "tol")
        X, P = self._validate_fit(X, y)
        n, K = P.shape
        Xr = np.repeat(X, K, axis=0)
        yr = np.tile(np.arange(K), n)
        w = P.reshape(-1)
        keep = w > 0
        # A class no sample gives weight to keeps one zero-weight row, so classes_ stays 0..K-1
        # and predict_proba keeps K aligned columns.
        present = np.bincount(yr[keep], minlength=K) > 0
        keep[np.nonzero(~present)[0]] = True  # rows 0..K-1 are sample 0 paired with each class
        self.estimator_ = LogisticRegression(C=self.C, max_iter=self.max_iter, tol=self.tol)
        sw = w[keep]
        self.estimator_.fit(Xr[keep], yr[keep], sample_weight=sw * (n / max(sw.sum(), 1e-12)))
        if len(self.estimator_.classes_) == 1:
            raise ValueError("the soft labels put all their mass on a single class; at least 2 classes are needed.")
        return self

    @property
    def coef_(self) -> np.ndarray:
        check_is_fitted(self)
        return self._full(self.estimator_.coef_)

    @property
    def intercept_(self) -> np.ndarray:
        check_is_fitted(self)
        return self._full(self.estimator_.intercept_[:, None])[:, 0]

    def _full(self, a: np.ndarray) -> np.ndarray:
        K = len(self.classes_)
        if a.shape[0] == K:
            return a
        if a.shape[0] == 1 and K == 2:  # binary: sklearn keeps one row for class 1
            return np.concatenate([-a / 2, a / 2])
        out = np.full((K, a.shape[1]), -np.inf if a.shape[1] == 1 else 0.0)
        out[self.estimator_.classes_] = a
        return out

    @property
    def n_params_(self) -> int:
        est = self.estimator_
        return int(est.coef_.size + est.intercept_.size)

    def predict_proba(self, X: Any) -> np.ndarray:
        X = self._validate_predict(X)
        p = self.estimator_.predict_proba(X)
        K = len(self.classes_)
        if p.shape[1] == K:
            return p
        out = np.zeros((len(X), K))
        out[:, self.estimator_.classes_] = p
        return out

    def decision_function(self, X: Any) -> np.ndarray:
        X = self._validate_predict(X)
        return self.estimator_.decision_function(X)

    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        est = self.estimator_
        return {"coef": est.coef_, "intercept": est.intercept_, "fitted_classes": est.classes_.astype(np.int64)}, {}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        est = LogisticRegression(C=self.C, max_iter=self.max_iter, tol=self.tol)
        est.coef_ = arrays["coef"]
        est.intercept_ = arrays["intercept"]
        est.classes_ = arrays["fitted_classes"]
        est.n_features_in_ = self.n_features_in_
        est.n_iter_ = np.array([0])
        self.estimator_ = est
        self.soft_fit_ = True
