"""Shallow scikit-learn surrogates fitted on the teacher's soft labels.

- :class:`SoftLabelTreeClassifier` (``tree``): a depth-limited ``DecisionTreeRegressor`` fitted to
  the (n, K) soft-label matrix, a multi-output regression whose leaves are class distributions.
- :class:`SoftLabelLogisticRegression` (``logistic``): multinomial logistic regression minimising
  the soft cross-entropy  -sum_i sum_k P_ik log q_k(x_i)  exactly, by giving scikit-learn each
  sample once per class with weight P_ik.
- :class:`SoftLabelGaussianNB` (``naive_bayes``): Gaussian naive Bayes from soft counts: priors,
  means and variances weighted by P_ik.
- :class:`RuleListClassifier` (``rules``): a short ordered if-then-else rule list read off a soft
  label tree, each rule with its coverage, printable.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeRegressor, export_text
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from sklearn.utils.validation import _check_sample_weight

from .._validation import check_choice, check_int, check_positive
from ._base import SoftTargetMixin

__all__ = ["SoftLabelTreeClassifier", "SoftLabelLogisticRegression", "SoftLabelGaussianNB", "RuleListClassifier"]

#: Smoothing mixed into the targets of the "entropy" tree criterion (Poisson deviance needs > 0).
_ENTROPY_EPS = 1e-4

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


def _fit_tree(X: np.ndarray, P: np.ndarray, criterion: str, sample_weight: Any, **kw: Any) -> DecisionTreeRegressor:
    if criterion == "entropy":
        K = P.shape[1]
        target = (1.0 - _ENTROPY_EPS) * P + _ENTROPY_EPS / K
        return DecisionTreeRegressor(criterion="poisson", **kw).fit(X, target, sample_weight=sample_weight)
    return DecisionTreeRegressor(criterion="squared_error", **kw).fit(X, P, sample_weight=sample_weight)


class SoftLabelTreeClassifier(SoftTargetMixin, ClassifierMixin, BaseEstimator):
    """A decision tree whose leaves hold the teacher's class distributions.

    Fitted as a multi-output ``DecisionTreeRegressor`` on the soft-label matrix, so each leaf
    predicts the mean teacher distribution of the samples that reach it.

    Parameters
    ----------
    max_depth : int, default=6
    max_leaf_nodes : int or None, default=None
        Grow best-first (the split that lowers the loss most first, as scikit-learn does) up to
        this many leaves.  The size that the frontier sweeps: with it, the tree with ``k`` leaves
        is exactly the first ``k - 1`` splits of a larger one, so :meth:`ladder_` reads every
        smaller size off one fit.
    min_samples_leaf : int, default=1
    ccp_alpha : float, default=0.0
        Minimal cost-complexity pruning, as in scikit-learn.
    criterion : {"entropy", "squared_error"}, default="entropy"
        How splits are chosen.  ``"entropy"``: scikit-learn's Poisson deviance on the
        probability columns, which for rows summing to 1 equals the soft cross-entropy
        sum_i KL(P_i || leaf mean) -- the soft-label analogue of the entropy criterion
        (targets are smoothed by 1e-4 so every column stays positive).  ``"squared_error"``:
        the Brier score, the soft analogue of Gini.
    random_state : int or None
    """

    #: The frontier protocol (analysis/frontier.py): the size is counted in leaves, set by
    #: ``max_leaf_nodes`` (with ``max_depth=None``), swept over ``size_ladder``.
    size_unit = "leaves"
    size_param = "max_leaf_nodes"
    size_ladder = (4, 8, 16, 32, 64, 128, 256)
    ladder_params = {"max_depth": None}

    def __init__(
        self,
        *,
        max_depth: int | None = 6,
        max_leaf_nodes: int | None = None,
        min_samples_leaf: int = 1,
        ccp_alpha: float = 0.0,
        criterion: Literal["entropy", "squared_error"] = "entropy",
        random_state: int | None = None,
    ) -> None:
        self.max_depth = max_depth
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.ccp_alpha = ccp_alpha
        self.criterion = criterion
        self.random_state = random_state

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "SoftLabelTreeClassifier":
        """Fit on hard labels (n,) or soft labels (n, K); returns self."""
        if self.max_depth is not None:
            check_int(self.max_depth, "max_depth", low=1, high=64)
        if self.max_leaf_nodes is not None:
            check_int(self.max_leaf_nodes, "max_leaf_nodes", low=2)
        check_int(self.min_samples_leaf, "min_samples_leaf", low=1)
        check_positive(self.ccp_alpha, "ccp_alpha", strict=False)
        check_choice(self.criterion, "criterion", ("entropy", "squared_error"))
        X, P = self._validate_fit(X, y, dtype=np.float32)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        self.estimator_ = _fit_tree(X, P, self.criterion, sample_weight, max_depth=self.max_depth,
                                    max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
                                    ccp_alpha=self.ccp_alpha, random_state=self.random_state)
        return self

    @property
    def size_(self) -> int:
        """Number of leaves."""
        return int(self.tree_.n_leaves)

    def ladder_(self, sizes: Any) -> list["SoftLabelTreeClassifier"]:
        """Trees of at most ``sizes`` leaves read off this best-first fit, without refitting.

        scikit-learn's best-first builder creates children ``2j+1, 2j+2`` at its ``j``-th split,
        so the first ``k - 1`` splits are nodes ``0 .. 2k - 2``: a prefix of the node table.
        Requires a fit with ``max_leaf_nodes`` (and no ``ccp_alpha`` pruning).
        """
        check_is_fitted(self)
        if self.max_leaf_nodes is None or self.ccp_alpha:
            raise ValueError(
                "ladder_ reads smaller trees off a best-first fit: fit with max_leaf_nodes set and ccp_alpha=0 "
                f"(received max_leaf_nodes={self.max_leaf_nodes!r}, ccp_alpha={self.ccp_alpha!r})."
            )
        arrays, meta = self._get_state()
        n_total = len(arrays["node_left_child"])
        out = []
        for k in sizes:
            k = check_int(k, "size", low=2)
            n = min(2 * k - 1, n_total)
            cut = {key: np.array(v[:n]) for key, v in arrays.items()}
            outside = (cut["node_left_child"] >= n) | (cut["node_right_child"] >= n)
            for key, leaf_value in (("node_left_child", -1), ("node_right_child", -1), ("node_feature", -2)):
                cut[key][outside] = leaf_value
            cut["node_threshold"][outside] = -2.0
            depth = _node_depths(cut["node_left_child"], cut["node_right_child"])
            est = type(self)(**{**self.get_params(), "max_leaf_nodes": int(k)})
            est.classes_ = self.classes_
            est.n_features_in_ = self.n_features_in_
            if hasattr(self, "feature_names_in_"):
                est.feature_names_in_ = self.feature_names_in_
            est._set_state(cut, {**meta, "max_depth_fitted": int(depth.max())})
            est.soft_fit_ = getattr(self, "soft_fit_", True)
            out.append(est)
        return out

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


def _fit_soft_multinomial(X: np.ndarray, P: np.ndarray, *, C: float, max_iter: int, tol: float) -> tuple[np.ndarray, np.ndarray, int]:
    """argmin_W,b  C * sum_ik P_ik (-log softmax(X W^T + b)_ik) + ||W||^2 / 2, by L-BFGS."""
    from scipy.optimize import minimize

    n, d = X.shape
    K = P.shape[1]
    scale = 1.0 / n  # same minimiser; keeps the gradient tolerance meaningful for any n
    # Two classes: scikit-learn fits one binomial coefficient vector (class 0 pinned at zero),
    # which penalises ||w||^2 / 2 of that one vector; do the same so both give the same model.
    free = K - 1 if K == 2 else K
    X = np.asarray(X, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        W = theta[: free * d].reshape(free, d)
        b = theta[free * d :]
        Z = X @ W.T + b
        if free < K:
            Z = np.concatenate([np.zeros((n, 1)), Z], axis=1)
        zmax = Z.max(axis=1, keepdims=True)
        log_q = Z - (zmax + np.log(np.exp(Z - zmax).sum(axis=1, keepdims=True)))
        loss = -C * np.sum(P * log_q) + 0.5 * np.sum(W * W)
        G = C * (np.exp(log_q) - P)[:, K - free :]  # d loss / d Z (rows of P sum to 1)
        grad = np.concatenate([(G.T @ X + W).ravel(), G.sum(axis=0)])
        return loss * scale, grad * scale

    # Small problems run on one BLAS thread: each L-BFGS step is a few tiny matrix products, and two
    # OpenBLAS threads contending with torch's spinning OpenMP pool made digits' fit 2.3x slower
    # (4.1 s -> 1.8 s on 21k x 64, 10 classes, 2 cores); large ones keep every thread.
    one_thread = n * d * K < 1e8
    with threadpool_limits(limits=1, user_api="blas") if one_thread else contextlib.nullcontext():
        res = minimize(
            objective, np.zeros(free * (d + 1)), jac=True, method="L-BFGS-B", options={"maxiter": max_iter, "gtol": tol}
        )
    if not res.success and res.nit >= max_iter:
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        warnings.warn(
            f"soft-label logistic regression did not converge in max_iter={max_iter} iterations; "
            f"increase max_iter or scale the data.",
            ConvergenceWarning,
            stacklevel=3,
        )
    W = res.x[: free * d].reshape(free, d)
    b = res.x[free * d :]
    if free < K:
        W = np.concatenate([np.zeros((1, d)), W])
        b = np.concatenate([[0.0], b])
    return W, b, int(res.nit)


class SoftLabelLogisticRegression(SoftTargetMixin, ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression fitted to soft labels with the soft cross-entropy.

    Minimises scikit-learn's multinomial objective with the one-hot targets replaced by the
    teacher's distribution: C * sum_i sum_k P_ik (-log q_k(x_i)) + ||W||^2 / 2 (intercept not
    penalised), with L-BFGS (scipy) on the exact gradient C (q - P)^T X + W.  This is the
    objective of ``LogisticRegression`` fitted on every sample once per class with weight P_ik
    (tested against it), without the K-fold copy of the data.  The fitted coefficients live in
    a ``LogisticRegression`` (``estimator_``) so its predict/decision functions apply.

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
        if (P.sum(axis=0) > 0).sum() < 2:
            raise ValueError("the soft labels put all their mass on a single class; at least 2 classes are needed.")
        coef, intercept, n_iter = _fit_soft_multinomial(X, P, C=float(self.C), max_iter=int(self.max_iter), tol=float(self.tol))
        est = LogisticRegression(C=self.C, max_iter=self.max_iter, tol=self.tol)
        if P.shape[1] == 2:  # scikit-learn's binary layout: one row, for class 1 against class 0
            coef, intercept = coef[1:] - coef[:1], intercept[1:] - intercept[:1]
        est.coef_, est.intercept_ = coef, intercept
        est.classes_ = np.arange(P.shape[1])
        est.n_features_in_ = X.shape[1]
        est.n_iter_ = np.array([n_iter])
        self.estimator_ = est
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

    @property
    def n_iter_(self) -> np.ndarray:
        """Iterations the solver ran (scikit-learn's ``n_iter_``)."""
        check_is_fitted(self)
        return self.estimator_.n_iter_

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


class SoftLabelGaussianNB(SoftTargetMixin, ClassifierMixin, BaseEstimator):
    """Gaussian naive Bayes estimated from soft counts.

    With soft labels P (n, K) every sample counts towards every class k with weight P_ik:
    prior_k = sum_i P_ik / n, mean_k = sum_i P_ik x_i / sum_i P_ik and
    var_k = sum_i P_ik (x_i - mean_k)^2 / sum_i P_ik (+ ``var_smoothing`` times the largest feature
    variance, as in scikit-learn).  Hard labels give scikit-learn's ``GaussianNB``.  A class with
    no mass keeps its column, with prior 0 (probability 0).

    Parameters
    ----------
    var_smoothing : float, default=1e-9
    """

    def __init__(self, *, var_smoothing: float = 1e-9) -> None:
        self.var_smoothing = var_smoothing

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "SoftLabelGaussianNB":
        """Fit on hard labels (n,) or soft labels (n, K); returns self."""
        check_positive(self.var_smoothing, "var_smoothing", strict=False)
        X, P = self._validate_fit(X, y)
        W = P if sample_weight is None else P * _check_sample_weight(sample_weight, X)[:, None]
        mass = W.sum(axis=0)  # (K,)
        total = mass.sum()
        if total <= 0:
            raise ValueError("The sample weights are all zero; at least one sample needs a positive weight.")
        self.epsilon_ = float(self.var_smoothing * np.var(X, axis=0).max()) if len(X) > 1 else float(self.var_smoothing)
        safe = np.where(mass > 0, mass, 1.0)[:, None]
        theta = (W.T @ X) / safe
        var = (W.T @ (X**2)) / safe - theta**2
        empty = mass <= 0
        if empty.any():
            theta[empty] = X.mean(axis=0)
            var[empty] = X.var(axis=0)
        self.theta_ = theta
        self.var_ = np.clip(var, 0.0, None) + self.epsilon_
        self.class_prior_ = mass / total
        self.class_count_ = mass
        return self

    @property
    def n_params_(self) -> int:
        """Model size: means, variances and priors."""
        check_is_fitted(self)
        return int(self.theta_.size + self.var_.size + self.class_prior_.size)

    def _joint_log_likelihood(self, X: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            log_prior = np.log(self.class_prior_)
        var = np.maximum(self.var_, np.finfo(np.float64).tiny)
        ll = -0.5 * np.sum(np.log(2.0 * np.pi * var), axis=1)[None, :]
        ll = ll - 0.5 * (((X[:, None, :] - self.theta_[None]) ** 2) / var[None]).sum(axis=2)
        return ll + log_prior[None, :]

    def predict_log_proba(self, X: Any) -> np.ndarray:
        X = self._validate_predict(X)
        jll = self._joint_log_likelihood(X)
        m = jll.max(axis=1, keepdims=True)
        return jll - (m + np.log(np.exp(jll - m).sum(axis=1, keepdims=True)))

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.exp(self.predict_log_proba(X))

    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return (
            {"theta": self.theta_, "var": self.var_, "class_prior": self.class_prior_, "class_count": self.class_count_},
            {"epsilon": self.epsilon_},
        )

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.theta_ = arrays["theta"]
        self.var_ = arrays["var"]
        self.class_prior_ = arrays["class_prior"]
        self.class_count_ = arrays["class_count"]
        self.epsilon_ = float(meta["epsilon"])
        self.soft_fit_ = True


class RuleListClassifier(SoftTargetMixin, ClassifierMixin, BaseEstimator):
    """A short ordered if-then-else rule list read off a soft-label tree.

    A :class:`SoftLabelTreeClassifier` of depth ``max_depth`` is fitted; each leaf becomes a rule
    (the conjunction of the conditions on its path, with repeated conditions on one feature
    merged) predicting the leaf's class distribution.  The ``max_rules`` rules that cover the most
    training mass are kept, most covering first; an ``else`` rule predicts the mean distribution of
    the samples none of them covers.  The first rule that fires decides.

    Parameters
    ----------
    max_rules : int, default=12
    max_depth : int, default=5
        Depth of the tree the rules are read from: the longest rule has this many conditions.
    min_samples_leaf : int, default=5
    criterion : {"entropy", "squared_error"}, default="entropy"
    random_state : int or None

    Attributes
    ----------
    rules_ : list of dict
        ``{"conditions": [(feature, op, threshold), ...], "value": (K,), "coverage": float}``;
        the last one is the ``else`` rule (no conditions).
    """

    #: The frontier protocol: the size is the number of rules before the final ``else``.
    size_unit = "rules"
    size_param = "max_rules"
    size_ladder = (3, 5, 10, 15, 20, 30, 50, 100)
    ladder_params = {"max_depth": 8}

    def __init__(
        self,
        *,
        max_rules: int = 12,
        max_depth: int = 5,
        min_samples_leaf: int = 5,
        criterion: Literal["entropy", "squared_error"] = "entropy",
        random_state: int | None = None,
    ) -> None:
        self.max_rules = max_rules
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.criterion = criterion
        self.random_state = random_state

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "RuleListClassifier":
        """Fit on hard labels (n,) or soft labels (n, K); returns self."""
        check_int(self.max_rules, "max_rules", low=1, high=10_000)
        check_int(self.max_depth, "max_depth", low=1, high=32)
        check_int(self.min_samples_leaf, "min_samples_leaf", low=1)
        check_choice(self.criterion, "criterion", ("entropy", "squared_error"))
        X, P = self._validate_fit(X, y, dtype=np.float32)
        sw = np.ones(len(X)) if sample_weight is None else _check_sample_weight(sample_weight, X)
        tree = _fit_tree(X, P, self.criterion, sw, max_depth=self.max_depth,
                         min_samples_leaf=self.min_samples_leaf, random_state=self.random_state).tree_
        leaf_of = _leaf_of(tree, X)
        total = max(float(sw.sum()), 1e-12)
        leaves = []
        for leaf in np.unique(leaf_of):
            rows = leaf_of == leaf
            mass = float(sw[rows].sum())
            value = (sw[rows, None] * P[rows]).sum(axis=0) / max(mass, 1e-12)
            leaves.append((mass, int(leaf), value))
        # Most covering first; ties broken by confidence, then leaf id for determinism.
        leaves.sort(key=lambda t: (-t[0], -float(t[2].max()), t[1]))
        conds = _leaf_conditions(tree)
        kept = leaves[: self.max_rules] if len(leaves) > self.max_rules else leaves[:-1] if len(leaves) > 1 else []
        covered = np.isin(leaf_of, [leaf for _, leaf, _ in kept])
        rest = ~covered
        if rest.any():
            default = (sw[rest, None] * P[rest]).sum(axis=0) / max(float(sw[rest].sum()), 1e-12)
        else:
            default = (sw[:, None] * P).sum(axis=0) / total
        rules = [
            {"conditions": conds[leaf], "value": value, "coverage": mass / total} for mass, leaf, value in kept
        ]
        rules.append({"conditions": [], "value": default, "coverage": float(sw[rest].sum()) / total})
        self.rules_ = rules
        return self

    @property
    def size_(self) -> int:
        """Number of rules before the final ``else``."""
        check_is_fitted(self)
        return len(self.rules_) - 1

    @property
    def n_params_(self) -> int:
        """Model size: conditions plus rules."""
        check_is_fitted(self)
        return int(sum(len(r["conditions"]) for r in self.rules_) + len(self.rules_))

    def rule_of(self, X: Any) -> np.ndarray:
        """Index into ``rules_`` of the first rule that fires for each sample."""
        X = self._validate_predict(X, dtype=np.float32)
        out = np.full(len(X), len(self.rules_) - 1, dtype=np.int64)
        undecided = np.ones(len(X), dtype=bool)
        for r, rule in enumerate(self.rules_[:-1]):
            fires = undecided.copy()
            for f, op, thr in rule["conditions"]:
                fires &= (X[:, f] <= thr) if op == "<=" else (X[:, f] > thr)
            out[fires] = r
            undecided &= ~fires
        return out

    def predict_proba(self, X: Any) -> np.ndarray:
        which = self.rule_of(X)
        values = np.stack([r["value"] for r in self.rules_])
        return _normalise(values[which])

    def to_text(self, feature_names: list[str] | None = None, class_names: list[str] | None = None, decimals: int = 3) -> str:
        """The rule list as text: ``IF ... THEN class (p=..) [coverage ..] / ELSE IF ... / ELSE ...``."""
        check_is_fitted(self)
        fn = feature_names if feature_names is not None else [f"x[{j}]" for j in range(self.n_features_in_)]
        cn = class_names if class_names is not None else [str(c) for c in self.classes_]
        if len(fn) != self.n_features_in_:
            raise ValueError(f"feature_names has {len(fn)} entries but the model has {self.n_features_in_} features.")
        if len(cn) != len(self.classes_):
            raise ValueError(f"class_names has {len(cn)} entries but the model has {len(self.classes_)} classes.")
        lines = []
        for r, rule in enumerate(self.rules_):
            k = int(np.argmax(rule["value"]))
            then = f"THEN {cn[k]} (p={rule['value'][k]:.2f}) [coverage {rule['coverage']:.1%}]"
            if not rule["conditions"]:
                lines.append(("ELSE " if r else "") + then.removeprefix("THEN "))
                continue
            cond = " AND ".join(f"{fn[f]} {op} {thr:.{decimals}f}" for f, op, thr in rule["conditions"])
            lines.append(f"{'IF' if r == 0 else 'ELSE IF'} {cond} {then}")
        return "\n".join(lines)

    def __str__(self) -> str:
        try:
            check_is_fitted(self)
        except Exception:
            return repr(self)
        return self.to_text()

    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        rid, feat, le, thr = [], [], [], []
        for r, rule in enumerate(self.rules_):
            for f, op, t in rule["conditions"]:
                rid.append(r)
                feat.append(f)
                le.append(op == "<=")
                thr.append(t)
        arrays = {
            "cond_rule": np.asarray(rid, dtype=np.int64),
            "cond_feature": np.asarray(feat, dtype=np.int64),
            "cond_le": np.asarray(le, dtype=np.int8),
            "cond_threshold": np.asarray(thr, dtype=np.float64),
            "rule_value": np.stack([r["value"] for r in self.rules_]).astype(np.float64),
            "rule_coverage": np.asarray([r["coverage"] for r in self.rules_], dtype=np.float64),
        }
        return arrays, {}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        values, cov = arrays["rule_value"], arrays["rule_coverage"]
        rules = [{"conditions": [], "value": values[r], "coverage": float(cov[r])} for r in range(len(values))]
        for r, f, le, t in zip(arrays["cond_rule"], arrays["cond_feature"], arrays["cond_le"], arrays["cond_threshold"]):
            rules[int(r)]["conditions"].append((int(f), "<=" if le else ">", float(t)))
        self.rules_ = rules
        self.soft_fit_ = True


def _node_depths(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    depth = np.zeros(len(left), dtype=np.int64)
    for i in range(len(left)):  # parents precede children in both builders' node order
        if left[i] >= 0:
            depth[left[i]] = depth[right[i]] = depth[i] + 1
    return depth


def _leaf_of(tree: Any, X: np.ndarray) -> np.ndarray:
    return tree.apply(np.ascontiguousarray(X, dtype=np.float32))


def _leaf_conditions(tree: Any) -> dict[int, list[tuple[int, str, float]]]:
    """Leaf id -> merged path conditions [(feature, "<=" or ">", threshold)], in path order."""
    out: dict[int, list[tuple[int, str, float]]] = {}
    stack: list[tuple[int, list[tuple[int, str, float]]]] = [(0, [])]
    left, right, feature, threshold = tree.children_left, tree.children_right, tree.feature, tree.threshold
    while stack:
        node, path = stack.pop()
        if left[node] < 0:
            out[node] = _merge(path)
            continue
        f, t = int(feature[node]), float(threshold[node])
        stack.append((int(left[node]), path + [(f, "<=", t)]))
        stack.append((int(right[node]), path + [(f, ">", t)]))
    return out


def _merge(path: list[tuple[int, str, float]]) -> list[tuple[int, str, float]]:
    """Keep the tightest bound per (feature, direction), in order of first appearance."""
    best: dict[tuple[int, str], float] = {}
    order: list[tuple[int, str]] = []
    for f, op, t in path:
        key = (f, op)
        if key not in best:
            order.append(key)
            best[key] = t
        else:
            best[key] = min(best[key], t) if op == "<=" else max(best[key], t)
    return [(f, op, best[(f, op)]) for f, op in order]
