"""Shallow scikit-learn surrogates fitted on the teacher's soft labels.

- :class:`SoftLabelTreeClassifier` (``tree``): a depth-limited ``DecisionTreeRegressor`` fitted to
  the (n, K) soft-label matrix, a multi-output regression whose leaves are class distributions.
- :class:`SoftLabelLogisticRegression` (``logistic``): multinomial logistic regression minimising
  the soft cross-entropy  -sum_i sum_k P_ik log q_k(x_i)  exactly, by giving scikit-learn each
  sample once per class with weight P_ik.
- :class:`SoftLabelGaussianNB` (``naive_bayes``): Gaussian naive Bayes from soft counts: priors,
  means and variances weighted by P_ik.

The rule list (``rules``), the sums of trees (``figs``) and the additive model (``gam``) live in
their own modules.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeRegressor
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from sklearn.utils.validation import _check_sample_weight

from .._validation import check_choice, check_fraction, check_int, check_positive
from ._base import SoftTargetMixin, TreeDisplayMixin
from ._queries import check_oracle
from ._sktree import NODE_FIELDS, best_first_order, make_regressor, truncate
from ._target import TARGETS, agreement, best_candidate, check_validation, hard_targets, split_validation

logger = logging.getLogger(__name__)

__all__ = ["SoftLabelTreeClassifier", "SoftLabelLogisticRegression", "SoftLabelGaussianNB"]

#: Split criteria of the ``tree``; "auto" chooses between the two on validation.
CRITERIA = ("entropy", "squared_error", "auto")


def _key(cfg: tuple[str, str]) -> str:
    return f"{cfg[0]}/{cfg[1]}"


#: Smoothing mass per class mixed into the targets of the "entropy" tree criterion (Poisson deviance
#: needs > 0).  A power of two: one-hot targets stay dyadic, so weighted sums are exact and integer
#: sample weights give exactly the tree of repeated rows (scikit-learn's sample-weight check).
_ENTROPY_EPS = 2.0**-16



def _normalise(P: np.ndarray) -> np.ndarray:
    P = np.clip(P, 0.0, None)
    s = P.sum(axis=1, keepdims=True)
    K = P.shape[1]
    return np.divide(P, s, out=np.full_like(P, 1.0 / K), where=s > 0)


def _fit_tree(X: np.ndarray, P: np.ndarray, criterion: str, sample_weight: Any, **kw: Any) -> DecisionTreeRegressor:
    if criterion == "entropy":
        K = P.shape[1]
        eps = min(_ENTROPY_EPS, 2.0 ** -(int(np.ceil(np.log2(K))) + 4))  # keeps K * eps <= 1/16
        target = (1.0 - eps * K) * P + eps
        return DecisionTreeRegressor(criterion="poisson", **kw).fit(X, target, sample_weight=sample_weight)
    return DecisionTreeRegressor(criterion="squared_error", **kw).fit(X, P, sample_weight=sample_weight)


class SoftLabelTreeClassifier(TreeDisplayMixin, SoftTargetMixin, ClassifierMixin, BaseEstimator):
    """A decision tree whose leaves hold the teacher's class distributions.

    Fitted as a multi-output ``DecisionTreeRegressor`` on the soft-label matrix, so each leaf
    predicts the mean teacher distribution of the samples that reach it.

    Parameters
    ----------
    max_depth : int or None, default=6
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
        (targets are smoothed by 2**-16 per class so every column stays positive).  ``"squared_error"``:
        the Brier score, the soft analogue of Gini (with hard targets: exactly Gini).  ``"auto"``:
        both, and per size the one more faithful on validation (with ``target``, below).
    target : {"soft", "hard", "auto"}, default="soft"
        Fit the teacher's distribution, its top class (one-hot), or whichever of the two is more
        faithful on validation.  With "auto" (either option), one tree per (target, criterion)
        candidate is grown (both "auto": soft/entropy, hard/entropy, hard/squared_error; side by side
        on threads) and, at each size of :meth:`ladder_` (and at ``max_leaf_nodes``), the
        candidate most faithful on validation is kept (ties: soft, entropy first).  Validation is
        ``fit(..., validation=(X_val, P_val))`` when given (``distill`` passes the real training rows
        it holds out; the candidates then fit on every row), else ``validation_fraction`` of the
        rows, held out of the fit.  With hard targets the candidates are exactly scikit-learn's
        Gini and entropy trees on the teacher's labels.
    validation_fraction : float, default=0.2
    min_samples : int, default=0
        Node-local queries (TREPAN): with an ``oracle`` passed to ``fit``, a node holding fewer
        rows than this first has the oracle label new inputs drawn inside its region.  0: off.
    query_budget : int, default=5000
        Most inputs the oracle labels in one fit (shared evenly by the candidates of "auto").
    refine : bool, default=False
        After growth, re-choose every split of the kept tree for its agreement with the teacher's top
        class on the fitting rows, the tree's shape fixed (tree alternating optimisation, Carreira-Perpinan
        & Tavallali 2018: deepest nodes first, each split the best for the rows its two subtrees label
        differently, over 256 bins per feature; the leaves then hold the mean target of their rows).  The
        refined tree is kept unless the validation rows say it is worse beyond chance (paired 95%).  Each
        rung of :meth:`ladder_` is refined at its own size, as a direct fit at that size would be (a
        rung's own ladder, and the ladder of a tree loaded from disk, cut the refined tree unrefined).
        Beyond 4 million cells (rows x features) a random subset of the rows is used, and the node
        counts of a refined tree are those rows'.  ``distill`` turns it on with its validation rows.
    random_state : int or None

    Attributes
    ----------
    estimator_ : DecisionTreeRegressor
    size_ : int
        Number of leaves.
    target_ : str
    criterion_ : str
        The target and criterion of the fitted tree.
    validation_ : dict or None
        With "auto": ``{"sizes", "source" ("given" or "carved"), "n", "scores"}``, ``scores`` mapping
        ``"target/criterion"`` to the validation fidelity at each of ``sizes``.
    queries_ : dict
        Node-local queries made: ``{"queries": n, "nodes_queried": m}`` (zeros without an oracle).
    refinement_ : dict or None
        With ``refine``: splits changed, passes, agreement on the fitting rows before and after, on the
        validation rows before and after, and whether the refined tree was kept.
    """

    #: The frontier protocol (analysis/frontier.py): the size is counted in leaves, set by
    #: ``max_leaf_nodes`` (with ``max_depth=None``), swept over ``size_ladder``.
    size_unit = "leaves"
    size_param = "max_leaf_nodes"
    size_ladder = (4, 8, 16, 32, 64, 128, 256)
    ladder_params = {"max_depth": None}
    #: A rung of :meth:`ladder_` is the model a fit at that size gives, so ``distill`` fits the family
    #: once, at the top of its ladder, and reads the configured size off it too.
    ladder_prefix = True
    #: ``distill`` passes ``oracle=`` (a labelling function) to a fit that asks for it.
    _fit_extra = ("oracle", "validation")

    def __init__(
        self,
        *,
        max_depth: int | None = 6,
        max_leaf_nodes: int | None = None,
        min_samples_leaf: int = 1,
        ccp_alpha: float = 0.0,
        criterion: Literal["entropy", "squared_error", "auto"] = "entropy",
        target: Literal["soft", "hard", "auto"] = "soft",
        validation_fraction: float = 0.2,
        min_samples: int = 0,
        query_budget: int = 5000,
        refine: bool = False,
        random_state: int | None = None,
    ) -> None:
        self.max_depth = max_depth
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.ccp_alpha = ccp_alpha
        self.criterion = criterion
        self.target = target
        self.validation_fraction = validation_fraction
        self.min_samples = min_samples
        self.query_budget = query_budget
        self.refine = refine
        self.random_state = random_state

    def fit(self, X: Any, y: Any, sample_weight: Any = None, oracle: Any = None,
            validation: Any = None) -> "SoftLabelTreeClassifier":
        """Fit on hard labels (n,) or soft labels (n, K); returns self.

        ``oracle``: a callable X -> soft labels (n, K) (the teacher at the run's temperature) for
        node-local queries when ``min_samples > 0``; its columns are this model's classes.
        ``validation``: held-out rows ``(X_val, P_val)`` (real inputs and the teacher's soft labels,
        ``distill`` passes its validation split) on which ``target="auto"`` / ``criterion="auto"``
        choose; every candidate is then fitted on all of ``X``.  Without it, "auto" holds out
        ``validation_fraction`` of ``X`` and fits the candidates on the rest.
        """
        if self.max_depth is not None:
            check_int(self.max_depth, "max_depth", low=1, high=64)
        if self.max_leaf_nodes is not None:
            check_int(self.max_leaf_nodes, "max_leaf_nodes", low=2)
        check_int(self.min_samples_leaf, "min_samples_leaf", low=1)
        check_positive(self.ccp_alpha, "ccp_alpha", strict=False)
        check_choice(self.criterion, "criterion", CRITERIA)
        check_choice(self.target, "target", TARGETS)
        check_fraction(self.validation_fraction, "validation_fraction", inclusive=False)
        check_int(self.min_samples, "min_samples", low=0)
        check_int(self.query_budget, "query_budget", low=0)
        if not isinstance(self.refine, (bool, np.bool_)):
            raise TypeError(f"refine must be True or False; received {self.refine!r} ({type(self.refine).__name__}).")
        oracle = check_oracle(oracle)
        X, P = self._validate_fit(X, y, dtype=np.float32)
        w = np.ones(len(X)) if sample_weight is None else _check_sample_weight(sample_weight, X, dtype=np.float64)
        self.queries_ = {"queries": 0, "nodes_queried": 0}
        self.validation_ = None
        self._candidates = {}
        self.refinement_ = None
        self._refiner = None
        # scikit-learn's best-first builder numbers nodes in split order (ladder_ cuts a prefix)
        self._sk_order = self.max_leaf_nodes is not None and not self._queries_on(oracle)
        configs = self._configs()
        if len(configs) == 1:
            self.target_, self.criterion_ = configs[0]
            self.estimator_ = self._fit_one(X, P, w, self.target_, oracle, self.criterion_)
            return self._refine_fit(X, P, w, check_validation(validation, X.shape[1], P.shape[1]))
        val = check_validation(validation, X.shape[1], P.shape[1])
        if val is not None:
            tr, (X_va, P_va, w_va) = np.arange(len(X)), val
        else:
            split = split_validation(P, self.validation_fraction, self.random_state)
            if split is None:  # too few rows to choose on: the first candidate (soft, entropy)
                self.target_, self.criterion_ = configs[0]
                self.estimator_ = self._fit_one(X, P, w, self.target_, oracle, self.criterion_)
                return self._refine_fit(X, P, w, None)
            tr, va = split
            X_va, P_va, w_va = X[va], P[va], w[va]
        Xt, Pt, wt = X[tr], P[tr], w[tr]
        if self._queries_on(oracle):
            fits = [self._fit_one(Xt, Pt, wt, cfg[0], oracle, cfg[1]) for cfg in configs]
        else:  # scikit-learn's tree builder releases the GIL: the candidates grow side by side
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(len(configs), os.cpu_count() or 1)) as pool:
                fits = list(pool.map(lambda cfg: self._fit_one(Xt, Pt, wt, cfg[0], None, cfg[1]), configs))
        self._candidates = dict(zip(configs, fits))
        sizes = sorted(set(self.size_ladder) | {self._n_leaves(c) for c in self._candidates.values()})
        self.validation_ = {"sizes": sizes, "source": "given" if val is not None else "carved", "n": int(len(X_va)),
                            "scores": {}}
        for cfg, reg in self._candidates.items():
            self.validation_["scores"][_key(cfg)] = [
                agreement(self._at(reg, s).predict(X_va).reshape(len(X_va), -1), P_va, w_va) for s in sizes]
        self.target_, self.criterion_ = self._best(max(self._n_leaves(c) for c in self._candidates.values()))
        self.estimator_ = self._candidates[(self.target_, self.criterion_)]
        return self._refine_fit(Xt, Pt, wt, (X_va, P_va, w_va))

    def _refine_fit(self, X: np.ndarray, P: np.ndarray, w: np.ndarray, val: Any) -> "SoftLabelTreeClassifier":
        """With ``refine``: the fitted tree's splits re-chosen by TAO on the fitting rows (kept when
        validation agrees as well or better); the unrefined trees stay the candidates ladder_ cuts."""
        if not self.refine:
            return self
        from ._refine import TreeRefiner

        cfg = (self.target_, self.criterion_)
        self._candidates = self._candidates or {cfg: self.estimator_}
        self._refiner = TreeRefiner(X, P, w, val, min_samples_leaf=self.min_samples_leaf, random_state=self.random_state)
        self.estimator_, self.refinement_ = self._refiner.refine(self.estimator_, self.target_, (cfg, None))
        return self

    def _configs(self) -> list[tuple[str, str]]:
        """The (target, criterion) candidates, the default (soft, entropy) first (it wins ties).

        Both "auto": soft targets with entropy (the soft cross-entropy), hard targets with entropy and
        with squared error (scikit-learn's entropy and Gini trees); the soft Brier tree, which led at
        no size on digits or mnist1d, raw or over patterns, is left out to keep the choice cheap.
        """
        if self.target == "auto" and self.criterion == "auto":
            return [("soft", "entropy"), ("hard", "entropy"), ("hard", "squared_error")]
        targets = ("soft", "hard") if self.target == "auto" else (self.target,)
        crits = ("entropy", "squared_error") if self.criterion == "auto" else (self.criterion,)
        return [(t, c) for t in targets for c in crits]

    def _at(self, reg: DecisionTreeRegressor, s: int) -> DecisionTreeRegressor:
        return _cut(reg, max(int(s), 2), prefix=self._sk_order) if s > 1 else truncate(reg, [])

    def _best(self, k: int) -> tuple[str, str]:
        """The candidate most faithful on validation at ``k`` leaves (the nearest size validated)."""
        return best_candidate(self.validation_, list(self._candidates), k, _key)

    def _queries_on(self, oracle: Any) -> bool:
        return oracle is not None and self.min_samples > 0 and self.query_budget > 0

    @staticmethod
    def _n_leaves(reg: DecisionTreeRegressor) -> int:
        return int(np.sum(reg.tree_.children_left < 0))

    def _fit_one(self, X: np.ndarray, P: np.ndarray, w: np.ndarray, target: str, oracle: Any,
                 criterion: str) -> DecisionTreeRegressor:
        from ._queries import QueryBudget, RegionSampler
        from ._trepan import grow_with_queries

        T = hard_targets(P) if target == "hard" else P
        kw = dict(max_depth=self.max_depth, max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
                  ccp_alpha=self.ccp_alpha, random_state=self.random_state)
        if not self._queries_on(oracle):
            return _fit_tree(X, T, criterion, None if np.all(w == 1.0) else w, **kw)
        labels = oracle if target == "soft" else (lambda Q: hard_targets(oracle(Q)))
        stump_kw = dict(max_depth=1, min_samples_leaf=self.min_samples_leaf, random_state=self.random_state)
        reg, info = grow_with_queries(
            X, T, w,
            fit_stump=lambda Xn, Pn, wn: _fit_tree(Xn, Pn, criterion, wn, **stump_kw),
            oracle=labels,
            max_depth=self.max_depth,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            min_samples=self.min_samples,
            budget=QueryBudget(self.query_budget // max(len(self._configs()), 1)),
            sampler=RegionSampler(X, jitter=_QUERY_JITTER),
            rng=np.random.default_rng(self.random_state),
            params={**kw, "criterion": "poisson" if criterion == "entropy" else "squared_error"},
            criterion=criterion,
        )
        self.queries_ = {k: self.queries_[k] + v for k, v in info.items()}
        return reg

    # -- the frontier's ladder: every smaller best-first tree, cut from this one
    def ladder_(self, sizes: Any = None) -> list["SoftLabelTreeClassifier"]:
        """Trees of at most each of ``sizes`` leaves (default ``size_ladder``), read off this fit.

        scikit-learn's best-first builder creates children ``2j+1, 2j+2`` at its ``j``-th split,
        so the first ``k - 1`` splits are nodes ``0 .. 2k - 2``: a prefix of the node table, and
        the cut is exactly the tree ``max_leaf_nodes=k`` grows.  A tree grown here with node-local
        queries replays its best-first order instead (largest weighted impurity decrease first).
        With ``target="auto"`` each size takes the target that validated best at that size.
        Requires a fit with ``max_leaf_nodes`` (and no ``ccp_alpha`` pruning).
        """
        check_is_fitted(self)
        if self.max_leaf_nodes is None or self.ccp_alpha:
            raise ValueError(
                "ladder_ reads smaller trees off a best-first fit: fit with max_leaf_nodes set and ccp_alpha=0 "
                f"(received max_leaf_nodes={self.max_leaf_nodes!r}, ccp_alpha={self.ccp_alpha!r})."
            )
        sizes = list(self.size_ladder if sizes is None else sizes)
        candidates = getattr(self, "_candidates", None) or {}
        out = []
        for k in sizes:
            k = check_int(k, "size", low=2)
            cfg = (self.target_, getattr(self, "criterion_", self.criterion))
            if self.validation_ is not None and candidates:
                cfg = self._best(k)
            reg = candidates.get(cfg, self.estimator_)
            est = copy.copy(self)
            est.max_leaf_nodes = int(k)
            est.target_, est.criterion_ = cfg
            est.estimator_ = _cut(reg, int(k), prefix=getattr(self, "_sk_order", True))
            # a cut is renumbered depth first: its own ladder_ replays the best-first order instead
            est._sk_order = getattr(self, "_sk_order", True) and est.estimator_ is reg
            est._candidates = {}
            if getattr(self, "_refiner", None) is not None:  # a rung is refined as a direct fit at its size would be
                key = (cfg, self._n_leaves(est.estimator_)) if est.estimator_ is not reg else (cfg, None)
                est.estimator_, est.refinement_ = self._refiner.refine(est.estimator_, cfg[0], key)
                est._sk_order = est._sk_order and est.refinement_["kept"] is False
                est._refiner = None
            out.append(est)
        return out

    @property
    def size_(self) -> int:
        """Number of leaves."""
        check_is_fitted(self)
        return self._n_leaves(self.estimator_)

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

    # -- persistence (no pickle: the node table as plain arrays)
    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        state = self.estimator_.tree_.__getstate__()
        nodes = state["nodes"]
        arrays = {f"node_{f}": np.ascontiguousarray(nodes[f]) for f in NODE_FIELDS if f in nodes.dtype.names}
        arrays["values"] = np.ascontiguousarray(state["values"])
        return arrays, {"max_depth_fitted": int(state["max_depth"]), "node_dtype": nodes.dtype.descr,
                        "target": self.target_, "criterion": getattr(self, "criterion_", self.criterion),
                        "queries": self.queries_, "sk_order": bool(getattr(self, "_sk_order", True))}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        fields = {f: arrays[f"node_{f}"] for f in NODE_FIELDS if f"node_{f}" in arrays}
        self.estimator_ = make_regressor(self.n_features_in_, fields, arrays["values"],
                                         max_depth=self.max_depth, min_samples_leaf=self.min_samples_leaf)
        self.target_ = str(meta.get("target", "soft"))
        self.criterion_ = str(meta.get("criterion", "entropy" if self.criterion == "auto" else self.criterion))
        self.queries_ = dict(meta.get("queries") or {"queries": 0, "nodes_queried": 0})
        self.validation_ = None
        self._candidates = {}
        self._sk_order = bool(meta.get("sk_order", True))
        self.soft_fit_ = True


#: Jitter of node-local queries, as a fraction of each feature's standard deviation.
_QUERY_JITTER = 0.1


def _cut(reg: DecisionTreeRegressor, k: int, *, prefix: bool) -> DecisionTreeRegressor:
    """The first ``k - 1`` best-first splits of ``reg`` (``reg`` itself when it has no more).

    ``prefix``: the node table is in scikit-learn's best-first order (nodes ``0 .. 2k - 2`` are the
    first ``k - 1`` splits); otherwise the order is replayed from the stored impurities.
    """
    t = reg.tree_
    if prefix:
        n = min(2 * k - 1, t.node_count)
        if n >= t.node_count:
            return reg
        left = t.children_left[:n]
        inner = np.flatnonzero((left >= 0) & (left < n))
        return truncate(reg, inner)
    order = best_first_order(t)
    return truncate(reg, order[: k - 1]) if k - 1 < len(order) else reg


def _fit_soft_multinomial(
    X: Any,
    P: np.ndarray,
    *,
    C: float,
    max_iter: int,
    tol: float,
    sample_weight: np.ndarray | None = None,
    init: tuple[np.ndarray, np.ndarray] | None = None,
    warn: bool = True,
    offset: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """argmin_W,b  C * sum_i w_i sum_k P_ik (-log softmax(X W^T + b + offset)_ik) + ||W||^2 / 2, by L-BFGS.

    ``X`` may be a scipy sparse matrix (the additive surrogates pass one-hot and spline bases);
    ``sample_weight`` (w, ones by default) weighs the rows; ``init`` = (W (K, d), b (K,)) warm-starts
    the solver (K > 2 only); ``offset`` (n, K): fixed logits added to every row's (terms fitted
    before, held as they are).  Returns (W, b, iterations, converged); ``warn`` False: no
    ConvergenceWarning when the iterations run out (the caller reports it).
    """
    from scipy.optimize import minimize
    import scipy.sparse as sp

    n, d = X.shape
    K = P.shape[1]
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    # same minimiser; keeps the gradient tolerance meaningful for any n
    scale = 1.0 / (n if w is None else max(float(w.sum()), 1e-12))
    # Two classes: scikit-learn fits one binomial coefficient vector (class 0 pinned at zero),
    # which penalises ||w||^2 / 2 of that one vector; do the same so both give the same model.
    free = K - 1 if K == 2 else K
    sparse = sp.issparse(X)
    X = sp.csr_matrix(X, dtype=np.float64) if sparse else np.asarray(X, dtype=np.float64)
    XT = X.T.tocsr() if sparse else None
    P = np.asarray(P, dtype=np.float64)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        W = theta[: free * d].reshape(free, d)
        b = theta[free * d :]
        Z = np.asarray(X @ W.T) + b
        if free < K:
            Z = np.concatenate([np.zeros((n, 1)), Z], axis=1)
        if offset is not None:
            Z = Z + offset
        zmax = Z.max(axis=1, keepdims=True)
        log_q = Z - (zmax + np.log(np.exp(Z - zmax).sum(axis=1, keepdims=True)))
        G = np.exp(log_q) - P  # d loss / d Z (rows of P sum to 1)
        if w is None:
            loss = -C * np.sum(P * log_q) + 0.5 * np.sum(W * W)
            G = C * G[:, K - free :]
        else:
            loss = -C * np.sum(w[:, None] * P * log_q) + 0.5 * np.sum(W * W)
            G = (C * w)[:, None] * G[:, K - free :]
        GX = np.asarray(XT @ G).T if sparse else G.T @ X
        grad = np.concatenate([(GX + W).ravel(), G.sum(axis=0)])
        return loss * scale, grad * scale

    theta0 = np.zeros(free * (d + 1))
    if init is not None and free == K:
        theta0 = np.concatenate([np.asarray(init[0], dtype=np.float64).ravel(), np.asarray(init[1], dtype=np.float64)])
    # Small problems run on one BLAS thread: each L-BFGS step is a few tiny matrix products, and two
    # OpenBLAS threads contending with torch's spinning OpenMP pool made digits' fit 2.3x slower
    # (4.1 s -> 1.8 s on 21k x 64, 10 classes, 2 cores); large ones keep every thread.
    one_thread = n * d * K < 1e8
    with threadpool_limits(limits=1, user_api="blas") if one_thread else contextlib.nullcontext():
        res = minimize(
            objective, theta0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter, "gtol": tol}
        )
    converged = not (not res.success and res.nit >= max_iter)
    if not converged and warn:
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
    return W, b, int(res.nit), converged


class SoftLabelLogisticRegression(SoftTargetMixin, ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression fitted to soft labels with the soft cross-entropy.

    Minimises scikit-learn's multinomial objective with the one-hot targets replaced by the
    teacher's distribution: C * sum_i sum_k P_ik (-log q_k(x_i)) + ||W||^2 / 2 (intercept not
    penalised), with L-BFGS (scipy) on the exact gradient C (q - P)^T X + W.  This is the
    objective of ``LogisticRegression`` fitted on every sample once per class with weight P_ik
    (tested against it), without the K-fold copy of the data.  The fitted coefficients live in
    a ``LogisticRegression`` (``estimator_``) so its predict/decision functions apply.

    On a large problem (more than ``warm_start_cells`` rows x features: 28x28 images with their
    queries) the solver starts from a fit on every k-th row (at most ``warm_start_cells`` cells,
    ``max_iter`` iterations) and refines on all rows for at most ``refine_iter`` iterations: a
    fixed budget whose outcome is kept in ``converged_`` and logged, in place of hundreds of
    iterations over every row (784 pixels, 23,000 rows: 49 s without converging before).

    Parameters
    ----------
    C : float, default=1.0
        Inverse L2 regularisation strength, as in scikit-learn.
    max_iter : int, default=500
    tol : float, default=1e-4
    warm_start_cells : int or None, default=2_500_000
        Rows x features above which the fit warm-starts from a strided subsample; None: never.
    refine_iter : int, default=50
        Iterations on all rows after the warm start.

    Attributes
    ----------
    converged_ : bool
        Whether the last solver run met ``tol`` (False: it stopped at its iteration budget).
    warm_start_ : dict or None
        ``{"rows", "of", "iterations", "refine_iterations"}`` when the fit warm-started.
    """

    def __init__(self, *, C: float = 1.0, max_iter: int = 500, tol: float = 1e-4,
                 warm_start_cells: int | None = 2_500_000, refine_iter: int = 50) -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.warm_start_cells = warm_start_cells
        self.refine_iter = refine_iter

    def fit(self, X: Any, y: Any) -> "SoftLabelLogisticRegression":
        check_positive(self.C, "C")
        check_int(self.max_iter, "max_iter", low=1)
        check_positive(self.tol, "tol")
        X, P = self._validate_fit(X, y)
        if (P.sum(axis=0) > 0).sum() < 2:
            raise ValueError("the soft labels put all their mass on a single class; at least 2 classes are needed.")
        if self.warm_start_cells is not None:
            check_int(self.warm_start_cells, "warm_start_cells", low=1)
        check_int(self.refine_iter, "refine_iter", low=1)
        n, d = X.shape
        self.warm_start_ = None
        init = None
        if self.warm_start_cells is not None and n * d > self.warm_start_cells and P.shape[1] > 2:
            step = -(-n * d // int(self.warm_start_cells))
            sub = slice(None, None, step)  # every step-th row: deterministic, spread over the set's sources
            W0, b0, it0, _ = _fit_soft_multinomial(X[sub], P[sub], C=float(self.C), max_iter=int(self.max_iter),
                                                   tol=float(self.tol), warn=False)
            init = (W0, b0)
            self.warm_start_ = {"rows": int(len(X[sub])), "of": int(n), "iterations": it0}
        coef, intercept, n_iter, converged = _fit_soft_multinomial(
            X, P, C=float(self.C), max_iter=int(self.refine_iter if init is not None else self.max_iter),
            tol=float(self.tol), init=init, warn=init is None)
        self.converged_ = bool(converged)
        if init is not None:
            self.warm_start_["refine_iterations"] = n_iter
            logger.info("logistic: %d rows x %d features: warm start on every %d-th row (%d rows, %d iterations), then "
                        "%d iterations on all rows (budget refine_iter=%d): %s", n, d, step, self.warm_start_["rows"],
                        self.warm_start_["iterations"], n_iter, self.refine_iter,
                        "converged" if converged else "stopped at the budget, not converged to tol")
            n_iter += self.warm_start_["iterations"]
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
        # Soft counts with einsum, not BLAS: a (K, n) @ (n, d) product with tiny K makes OpenBLAS spin up its
        # threads against the student training beside it (600k rows: 46 s once, 0.1 s this way).
        theta = np.einsum("nk,nd->kd", W, X) / safe
        var = np.einsum("nk,nd->kd", W, X * X) / safe - theta**2
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
