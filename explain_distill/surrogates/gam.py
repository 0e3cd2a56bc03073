"""``gam``: an additive model of the teacher's soft labels, one shape function per feature (GA2M).

The class logits are a sum of terms, each a function of one feature (a *shape function*) or, with
``interactions``, of a pair of features:

    logit_k(x) = intercept_k + sum_j f_jk(x_j) + sum_(a,b) g_abk(x_a, x_b)

Two ways to fit them (``method``):

``"boost"`` (the default), the way InterpretML's EBM fits its terms: each shape is constant on up to
``max_bins`` quantile bins of its feature, and grows by cyclic gradient boosting -- round after round,
every term in turn takes one small Newton step (a stump over its bins) on the residual the others left,
until the loss on held-out rows stops improving (``explain_distill.surrogates._boost``).  Pairs, chosen
after the mains have converged, are bilinear as below, fitted at their optimum with the boosted mains
held: boosted as step cells they overfit the transfer rows within a few rounds (mnist1d, 20 pairs:
0.51 test fidelity against 0.59; 100 pairs on soft labels: 0.80).  The held-out rows are
``validation=`` when given (``distill`` passes its held-out real rows), else ``validation_fraction``
of the training rows.  On mnist1d's raw inputs this agrees with the
teacher on 0.45 of the test rows, EBM's figure, where the spline fit below reaches 0.40.

``"spline"``: a shape function is piecewise linear between knots at quantiles of its feature
(scikit-learn's ``SplineTransformer`` with degree 1: its coefficients are the values at the knots, constant beyond
the outer knots); a pair term is bilinear on a grid of knots of both features (the tensor product
of their shapes' bases).  All terms are fitted at once
by the exact soft-label multinomial logistic regression the ``logistic`` surrogate uses (L-BFGS on
the soft cross-entropy, ridge penalty ``1 / C``) on the sparse basis.  Smooth, and fast to fit.

Either way, pairs are chosen the way
InterpretML's FAST ranks them: after the one-feature fit, by how much a piecewise-constant function
of the pair could still lower the loss (the squared residual-gradient sums over its cells).

Every term is centred (its mean over the training rows moved into the intercept) and exposed as
plain arrays in ``shapes_``, in the input space the model was fitted in: a viz can draw each one in
raw units through the data set's inverse scaling.

Size: ``size_`` counts terms (``size_unit = "terms"``); ``max_terms`` keeps the most important ones
(mean absolute centred contribution over the training rows) and refits them (boosting: goes on
boosting them from where the full fit left them, so the dropped terms' share is taken up).
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import SplineTransformer
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from .._validation import check_choice, check_fraction, check_int, check_positive
from ._base import SoftTargetMixin
from ._boost import StepMain, boost_terms
from ._hist import midpoint_edges, one_hot, weighted_quantile
from ._target import TARGETS, agreement, check_validation, hard_targets, split_by_content, split_validation
from .shallow import _fit_soft_multinomial

logger = logging.getLogger(__name__)

__all__ = ["AdditiveClassifier"]

#: Features considered for pair terms: the most important ones of the one-feature fit.
_PAIR_CANDIDATE_FEATURES = 64


def _softmax(Z: np.ndarray) -> np.ndarray:
    Z = Z - Z.max(axis=1, keepdims=True)
    np.exp(Z, out=Z)
    return Z / Z.sum(axis=1, keepdims=True)


def _knots(x: np.ndarray, n_knots: int, w: np.ndarray | None = None) -> np.ndarray:
    """Distinct (weighted) quantiles of ``x`` (at most ``n_knots``; fewer where values repeat); rows
    of weight 0 place none, so integer weights and repeated rows give the same knots."""
    if w is not None:
        x = np.asarray(x)[np.asarray(w) > 0]
    return np.unique(weighted_quantile(x, None if w is None else np.asarray(w)[np.asarray(w) > 0], np.linspace(0.0, 1.0, n_knots)))


def _edges(x: np.ndarray, n_bins: int, w: np.ndarray | None = None) -> np.ndarray:
    """Inner bin edges at (weighted) quantiles of ``x``, between distinct values."""
    return midpoint_edges(x, w, n_bins)


METHODS = ("boost", "spline")


class _Main:
    """One feature's piecewise-linear shape: knots and a spline basis over them."""

    form = "linear"

    def __init__(self, feature: int, knots: np.ndarray) -> None:
        self.features = (feature,)
        self.knots = knots
        self.size = len(knots)
        self._spline = SplineTransformer(knots=knots[:, None], degree=1, extrapolation="constant", sparse_output=True)
        self._spline.fit(knots[:, None])

    def basis(self, X: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix(self._spline.transform(X[:, self.features[0]][:, None]))

    def contrib(self, block: np.ndarray, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.basis(X) @ block)


class _Pair:
    """A pair of features: bilinear between the knots of both (a tensor product of their hats)."""

    form = "linear"

    def __init__(self, a: int, b: int, knots_a: np.ndarray, knots_b: np.ndarray) -> None:
        self.features = (a, b)
        self.knots = (knots_a, knots_b)
        self.shape = (len(knots_a), len(knots_b))
        self.size = self.shape[0] * self.shape[1]
        self._splines = [
            SplineTransformer(knots=k[:, None], degree=1, extrapolation="constant").fit(k[:, None]) for k in self.knots
        ]

    def basis(self, X: np.ndarray) -> sp.csr_matrix:
        A = self._splines[0].transform(X[:, self.features[0]][:, None])
        B = self._splines[1].transform(X[:, self.features[1]][:, None])
        return sp.csr_matrix((A[:, :, None] * B[:, None, :]).reshape(len(X), self.size))

    def contrib(self, block: np.ndarray, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.basis(X) @ block)


def _design(terms: list[Any], X: np.ndarray) -> sp.csr_matrix:
    return sp.hstack([t.basis(X) for t in terms], format="csr")


class AdditiveClassifier(SoftTargetMixin, ClassifierMixin, BaseEstimator):
    """A generalized additive model (with optional pair terms) fitted to soft labels.

    Parameters
    ----------
    max_terms : int or None, default=None
        Keep only this many terms (the most important), refitted; None keeps every feature's
        shape (and the ``interactions`` pairs).  The size on the fidelity frontier.
    interactions : int, default=0
        Pair terms to add, chosen after the one-feature fit (FAST-style ranking).
    method : {"boost", "spline"}, default="boost"
        Step shapes grown by cyclic boosting with early stopping (EBM's way), or piecewise-linear
        shapes fitted at once by penalised maximum likelihood (smooth, faster, less faithful on
        signals whose features are correlated).
    max_bins : int, default=256
        ``boost``: quantile bins per feature (fewer where values repeat).
    learning_rate : float, default=0.2
        ``boost``: the shrinkage of every step.
    max_rounds : int, default=1000
        ``boost``: rounds over every term at most.
    early_stopping_rounds : int, default=15
        ``boost``: rounds without a better held-out loss before it stops (the best round is kept).
    min_samples_leaf : int, default=4
        ``boost``: fewest training rows on each side of a cut; a row counts its sample weight.
    n_knots : int, default=8
        ``spline``: knots per shape function, at quantiles of the feature (fewer where values repeat).
    pair_knots : int, default=6
        Knots per feature of a pair term's grid (the pair is bilinear between them).
    C : float, default=1.0
        ``spline``: inverse ridge penalty on the term coefficients (the soft cross-entropy is summed
        over rows).
    max_iter : int, default=300
        ``spline``: L-BFGS iterations.
    tol : float, default=1e-4
        ``spline``: L-BFGS tolerance.
    target : {"soft", "hard", "auto"}, default="soft"
        Fit the teacher's distribution, its top class, or whichever is more faithful on validation:
        ``fit(..., validation=(X_val, P_val))`` when given (both then fit on every row; ``distill``
        passes its held-out real rows), else a split of the training rows (the model fits the others).
        ``boost`` stops early on the same held-out rows, whatever the target; without ``validation`` it
        holds out about ``validation_fraction`` of the rows by their content (equal rows together).
    validation_fraction : float, default=0.2
    random_state : int or None
        Seeds the validation split.

    Attributes
    ----------
    shapes_ : list of dict
        One per term, with its ``"form"``.  A ``"linear"`` shape (``spline``): ``{"kind": "main",
        "features": (j,), "grid": knots (G,), "contribution": (G, K)}`` -- the centred logit
        contribution at each knot, linear in between and constant outside; a pair: ``{"kind": "pair",
        "features": (a, b), "grid": (knots_a, knots_b), "contribution": (Ga, Gb, K)}`` -- bilinear
        between the grid points, constant outside.  A ``"step"`` main (``boost``): ``"grid"`` holds
        the bin boundaries (G + 1,), the outer two at the fitted rows' range, and ``"contribution"``
        (G, K) the centred value on each bin (a value on a boundary takes the bin below; beyond the
        outer ones the outer bins' values hold).  Pairs are linear with either method.
    intercept_ : ndarray (K,)
    importance_ : ndarray (n_terms,)
        Mean absolute centred contribution of each term over the training rows (summed over classes).
    n_iter_ : ndarray (1,)
        L-BFGS iterations (``spline``) or boosting rounds kept (``boost``) of the last fit.
    size_ : int
        The number of terms.
    """

    size_unit = "terms"
    size_param = "max_terms"
    #: ``distill`` passes ``validation=(X_val, P_val)`` (its held-out real rows) to a fit that asks for it.
    _fit_extra = ("validation",)
    size_ladder = (2, 4, 8, 16, 32, 64, 128)

    def __init__(
        self,
        *,
        max_terms: int | None = None,
        interactions: int = 0,
        method: Literal["boost", "spline"] = "boost",
        max_bins: int = 256,
        learning_rate: float = 0.2,
        max_rounds: int = 1000,
        early_stopping_rounds: int = 15,
        min_samples_leaf: int = 4,
        n_knots: int = 8,
        pair_knots: int = 6,
        C: float = 1.0,
        max_iter: int = 300,
        tol: float = 1e-4,
        target: Literal["soft", "hard", "auto"] = "soft",
        validation_fraction: float = 0.2,
        random_state: int | None = None,
    ) -> None:
        self.max_terms = max_terms
        self.interactions = interactions
        self.method = method
        self.max_bins = max_bins
        self.learning_rate = learning_rate
        self.max_rounds = max_rounds
        self.early_stopping_rounds = early_stopping_rounds
        self.min_samples_leaf = min_samples_leaf
        self.n_knots = n_knots
        self.pair_knots = pair_knots
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.target = target
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def _check_params(self) -> None:
        if self.max_terms is not None:
            check_int(self.max_terms, "max_terms", low=1)
        check_int(self.interactions, "interactions", low=0)
        check_choice(self.method, "method", METHODS)
        check_int(self.max_bins, "max_bins", low=2, high=65536)
        check_positive(self.learning_rate, "learning_rate")
        if float(self.learning_rate) > 1.0:
            raise ValueError(f"learning_rate must be in (0, 1] (a step shrunk, never stretched); received {self.learning_rate!r}.")
        check_int(self.max_rounds, "max_rounds", low=1)
        check_int(self.early_stopping_rounds, "early_stopping_rounds", low=1)
        check_int(self.min_samples_leaf, "min_samples_leaf", low=1)
        check_int(self.n_knots, "n_knots", low=2, high=1000)
        check_int(self.pair_knots, "pair_knots", low=2, high=64)
        check_positive(self.C, "C")
        check_int(self.max_iter, "max_iter", low=1)
        check_positive(self.tol, "tol")
        check_choice(self.target, "target", TARGETS)
        check_fraction(self.validation_fraction, "validation_fraction", inclusive=False)

    def fit(self, X: Any, y: Any, sample_weight: Any = None, validation: Any = None) -> "AdditiveClassifier":
        """Fit on hard labels (n,) or soft labels (n, K); returns self.

        ``validation``: held-out rows ``(X_val, P_val)`` on which ``target="auto"`` chooses (``distill``
        passes the real training rows it holds out); both targets then fit on every row.
        """
        self._check_params()
        X, P = self._validate_fit(X, y)
        w = np.ones(len(X)) if sample_weight is None else _check_sample_weight(sample_weight, X, dtype=np.float64)
        if (P.sum(axis=0) > 0).sum() < 2:
            raise ValueError("the labels put all their mass on a single class; at least 2 classes are needed.")
        self.validation_ = None
        boost = self.method == "boost"
        val = check_validation(validation, X.shape[1], P.shape[1]) if (self.target == "auto" or boost) else None
        split = None
        if boost and val is None:  # the rows boosting stops on: equal rows on one side (sample-weight contract)
            split = split_by_content(X, P, w, self.validation_fraction, self.random_state)
        elif self.target == "auto" and val is None:
            split = split_validation(P, self.validation_fraction, self.random_state)
        tr = split[0] if split is not None else np.arange(len(X))
        held = val if val is not None else (X[split[1]], P[split[1]], w[split[1]]) if split is not None else None
        choose = self.target == "auto" and held is not None
        targets = ("soft", "hard") if choose else ("hard",) if self.target == "hard" else ("soft",)
        fits = {}
        for t in targets:
            tgt = hard_targets if t == "hard" else (lambda Q: Q)
            stop = (held[0], tgt(held[1]), held[2]) if (boost and held is not None) else None
            fits[t] = self._fit_all(X[tr], tgt(P[tr]), w[tr], stop)
        if choose:
            X_va, P_va, w_va = held
            scores = {t: agreement(self._decision(f[0], f[1], f[2], X_va), P_va, w_va) for t, f in fits.items()}
            self.validation_ = {"soft": scores["soft"], "hard": scores["hard"], "source": "given" if val is not None else "carved",
                                "n": int(len(X_va))}
            self.target_ = "hard" if scores["hard"] > scores["soft"] else "soft"
        else:
            self.target_ = targets[0]
        terms, coef, intercept, importance, self._ladder_data = fits[self.target_]
        self._set(terms, coef, intercept, importance)
        return self

    def _fit_all(self, X: np.ndarray, P: np.ndarray, w: np.ndarray, stop: Any = None) -> tuple[Any, ...]:
        """(terms, coef blocks, intercept, importance, data for the ladder); ``stop``: the held-out rows
        ``(X, targets, w)`` boosting stops on (None: it stops on the training loss)."""
        if self.method == "boost":
            mains: list[Any] = [m for m in (StepMain.binned(j, X[:, j], w, int(self.max_bins)) for j in range(X.shape[1])) if m]
        else:
            mains = []
            for j in range(X.shape[1]):
                k = _knots(X[:, j], self.n_knots, w)
                if len(k) >= 2:
                    mains.append(_Main(j, k))
        if not mains:
            raise ValueError("every feature is constant on the training rows; an additive model needs one that varies.")
        terms: list[Any] = list(mains)
        coef, intercept = self._solve(terms, X, P, w, None, stop)
        if self.interactions:
            importance = self._importance(terms, coef, X, w)
            pairs = self._rank_pairs(terms, importance, X, P, w, coef, intercept)
            if pairs:
                init = (coef + [np.zeros((t.size, P.shape[1])) for t in pairs], intercept)
                coef, intercept = self._solve(terms + pairs, X, P, w, init, stop, active=range(len(terms), len(terms) + len(pairs)))
                terms = terms + pairs
        importance = self._importance(terms, coef, X, w)
        full = (terms, coef, intercept, importance)
        if self.max_terms is not None and self.max_terms < len(terms):
            terms, coef, intercept = self._keep(full, int(self.max_terms), X, P, w, stop)
            importance = self._importance(terms, coef, X, w)
        return terms, coef, intercept, importance, (full, X, P, w, stop)

    def _solve(self, terms: list[Any], X: np.ndarray, P: np.ndarray, w: np.ndarray, init: Any, stop: Any = None,
               active: Any = None) -> tuple[list[np.ndarray], np.ndarray]:
        """Coefficient blocks and intercept of ``terms`` on (X, P, w).  ``spline``: the joint optimum
        (``init`` warm-starts it; every term moves).  ``boost``: the ``active`` terms (default all) boosted
        from ``init`` (default zero, the intercept at the log class shares), stopping on ``stop``."""
        if self.method == "boost":
            if init is None:
                share = np.maximum(w @ P / max(float(w.sum()), 1e-12), 1e-12)
                intercept = np.log(share) - np.log(share).mean()
                init = ([np.zeros((t.size, P.shape[1])) for t in terms], intercept)
            blocks, intercept = list(init[0]), np.asarray(init[1], dtype=np.float64).copy()
            act = list(range(len(terms))) if active is None else list(active)
            steps = [i for i in act if terms[i].form == "step"]
            pairs = [i for i in act if terms[i].form == "linear"]
            if steps:  # the step mains, boosted with everything else held
                blocks, rounds = boost_terms(terms, blocks, intercept, steps, (X, P, w), stop,
                                             learning_rate=float(self.learning_rate), max_rounds=int(self.max_rounds),
                                             patience=int(self.early_stopping_rounds), min_samples_leaf=int(self.min_samples_leaf))
                self.n_iter_ = np.array([rounds])
            if pairs:  # the bilinear pairs at their optimum with the mains held
                held = np.tile(intercept, (len(X), 1)) + sum((self._contrib(terms[i], blocks[i], X) for i in range(len(terms))
                                                             if i not in pairs), np.zeros((len(X), P.shape[1])))
                W, b, _, _ = _fit_soft_multinomial(_design([terms[i] for i in pairs], X), P, C=float(self.C),
                                                   max_iter=int(self.max_iter), tol=float(self.tol),
                                                   sample_weight=None if np.all(w == 1.0) else w, offset=held)
                at = 0
                for i in pairs:
                    blocks[i] = W[:, at : at + terms[i].size].T.copy()
                    at += terms[i].size
                intercept = intercept + b
            return blocks, intercept
        Z = _design(terms, X)
        start = None
        if init is not None:
            start = (np.concatenate(init[0], axis=0).T, init[1])
        W, b, n_iter, _ = _fit_soft_multinomial(Z, P, C=float(self.C), max_iter=int(self.max_iter), tol=float(self.tol),
                                             sample_weight=None if np.all(w == 1.0) else w, init=start)
        self.n_iter_ = np.array([n_iter])
        blocks, at = [], 0
        for t in terms:
            blocks.append(W[:, at : at + t.size].T.copy())
            at += t.size
        return blocks, np.asarray(b, dtype=np.float64)

    def _keep(self, full: tuple[Any, ...], m: int, X: np.ndarray, P: np.ndarray, w: np.ndarray, stop: Any = None) -> tuple[Any, ...]:
        terms, coef, intercept, importance = full
        top = sorted(np.argsort(-importance, kind="stable")[:m])
        kept = [terms[i] for i in top]
        c, b = self._solve(kept, X, P, w, ([coef[i] for i in top], intercept), stop)
        return kept, c, b

    @staticmethod
    def _contrib(term: Any, block: np.ndarray, X: np.ndarray) -> np.ndarray:
        return term.contrib(block, X)

    def _importance(self, terms: list[Any], coef: list[np.ndarray], X: np.ndarray, w: np.ndarray) -> np.ndarray:
        out = np.empty(len(terms))
        ws = w / w.sum()
        for i, (t, c) in enumerate(zip(terms, coef)):
            f = self._contrib(t, c, X)
            f = f - ws @ f
            out[i] = float(ws @ np.abs(f).sum(axis=1))
        return out

    def _rank_pairs(self, terms, importance, X, P, w, coef, intercept) -> list[_Pair]:
        """The ``interactions`` pairs that could still lower the loss most (FAST, Lou et al. 2013).

        Each candidate pair's grid of quantile bins gets the sums of the residual gradient of the
        one-feature fit; the pair's score is the sum over cells of the squared sums over the cell
        sizes (the gain of a piecewise-constant Newton step at a flat curvature).
        """
        Zs = sum(self._contrib(t, c, X) for t, c in zip(terms, coef)) + intercept
        G = (_softmax(Zs) - P) * w[:, None]
        H = 0.25  # a flat curvature per unit of weight
        nb = int(self.pair_knots)
        feats = [terms[i].features[0] for i in np.argsort(-importance, kind="stable")[:_PAIR_CANDIDATE_FEATURES]]
        bins = {j: np.searchsorted(_edges(X[:, j], nb, w), X[:, j], side="left") for j in feats}
        n_bins = {j: int(bins[j].max()) + 1 for j in feats}
        scores = []
        for ia, a in enumerate(feats):
            for b in feats[ia + 1 :]:
                cell = bins[a] * n_bins[b] + bins[b]
                size = n_bins[a] * n_bins[b]
                M = one_hot(cell, size)
                S = np.asarray(M.T @ G)
                cnt = np.bincount(cell, weights=w, minlength=size)
                scores.append((float(np.sum(S * S / (H * cnt[:, None] + 1.0))), min(a, b), max(a, b)))
        scores.sort(key=lambda s: (-s[0], s[1], s[2]))
        return [_Pair(a, b, _knots(X[:, a], nb, w), _knots(X[:, b], nb, w)) for _, a, b in scores[: int(self.interactions)]]

    def _decision(self, terms: list[Any], coef: list[np.ndarray], intercept: np.ndarray, X: np.ndarray) -> np.ndarray:
        if not terms:
            return np.tile(intercept, (len(X), 1))
        return np.asarray(_design(terms, X) @ np.concatenate(coef, axis=0)) + intercept

    def _set(self, terms: list[Any], coef: list[np.ndarray], intercept: np.ndarray, importance: np.ndarray) -> None:
        """Store the centred shapes (each term's training mean moved into the intercept)."""
        X, w = self._ladder_data[1], self._ladder_data[3]
        ws = w / w.sum()
        intercept = intercept.copy()
        centred = []
        for t, c in zip(terms, coef):
            mean = ws @ self._contrib(t, c, X)
            intercept += mean
            centred.append(c - mean[None, :])
        self.terms_ = terms
        self.coef_blocks_ = centred
        self.intercept_ = intercept
        self.importance_ = np.asarray(importance, dtype=np.float64)

    # ------------------------------------------------------------------ the ladder
    def ladder_(self, sizes: Any = None) -> list["AdditiveClassifier"]:
        """Models of at most each of ``sizes`` terms (default ``size_ladder`` below the full model).

        Terms are ranked once by their importance in the full fit; each size keeps the top ones and
        refits them, warm-started at the full fit (``boost``: boosts them on from there).
        """
        check_is_fitted(self)
        if getattr(self, "_ladder_data", None) is None:
            raise ValueError("ladder_ needs the training rows of a fit in this session; a loaded model has none. Refit it.")
        full, X, P, w, stop = self._ladder_data
        n_full = len(full[0])
        sizes = [s for s in self.size_ladder if s < n_full] + [n_full] if sizes is None else list(sizes)
        out = []
        for s in sizes:
            check_int(s, "size", low=1)
            est = copy.copy(self)
            est.max_terms = int(s)
            if s >= n_full:
                terms, coef, intercept = full[0], full[1], full[2]
            else:
                terms, coef, intercept = self._keep(full, int(s), X, P, w, stop)
            est._set(terms, coef, intercept, self._importance(terms, coef, X, w))
            out.append(est)
        return out

    # ------------------------------------------------------------------ reading it
    @property
    def size_(self) -> int:
        check_is_fitted(self)
        return len(self.terms_)

    @property
    def n_params_(self) -> int:
        """Model size: the values of every shape (knots or cells times classes) and the intercept."""
        check_is_fitted(self)
        return int(sum(c.size for c in self.coef_blocks_) + self.intercept_.size)

    @property
    def shapes_(self) -> list[dict[str, Any]]:
        check_is_fitted(self)
        out = []
        for t, c, imp in zip(self.terms_, self.coef_blocks_, self.importance_):
            if isinstance(t, _Main):
                grid: Any = t.knots.copy()
            elif isinstance(t, StepMain):
                grid = t.grid
            else:
                grid = (t.knots[0].copy(), t.knots[1].copy())
            if len(t.features) == 1:
                out.append({"kind": "main", "form": t.form, "features": t.features, "grid": grid, "contribution": c.copy(),
                            "importance": float(imp)})
            else:
                out.append({"kind": "pair", "form": t.form, "features": t.features, "grid": grid,
                            "contribution": c.reshape(*t.shape, -1).copy(), "importance": float(imp)})
        return out

    def _logits(self, X: Any) -> np.ndarray:
        X = self._validate_predict(X)
        return self._decision(self.terms_, self.coef_blocks_, self.intercept_, X)

    def decision_function(self, X: Any) -> np.ndarray:
        """Class logits (n, K); with two classes the logit of class 1 minus that of class 0 (n,)."""
        Z = self._logits(X)
        return Z[:, 1] - Z[:, 0] if Z.shape[1] == 2 else Z

    def predict_proba(self, X: Any) -> np.ndarray:
        return _softmax(self._logits(X))

    def term_contributions(self, X: Any) -> np.ndarray:
        """Each term's contribution to each class logit, (n, n_terms, K): an exact additive explanation."""
        X = self._validate_predict(X)
        return np.stack([self._contrib(t, c, X) for t, c in zip(self.terms_, self.coef_blocks_)], axis=1)

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays: dict[str, np.ndarray] = {"intercept": self.intercept_, "importance": self.importance_}
        kinds = []
        for i, (t, c) in enumerate(zip(self.terms_, self.coef_blocks_)):
            arrays[f"coef_{i}"] = c
            if isinstance(t, _Main):
                kinds.append(["main", list(t.features)])
                arrays[f"knots_{i}"] = t.knots
            elif isinstance(t, _Pair):
                kinds.append(["pair", list(t.features)])
                arrays[f"knots_a_{i}"] = t.knots[0]
                arrays[f"knots_b_{i}"] = t.knots[1]
            else:
                kinds.append(["step_main", list(t.features)])
                arrays[f"edges_{i}"] = t.edges
                arrays[f"bounds_{i}"] = np.asarray(t.bounds, dtype=np.float64)
        return arrays, {"terms": kinds, "target": self.target_, "validation": self.validation_}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        terms, coef = [], []
        for i, (kind, feats) in enumerate(meta["terms"]):
            if kind == "main":
                terms.append(_Main(int(feats[0]), arrays[f"knots_{i}"]))
            elif kind == "pair":
                terms.append(_Pair(int(feats[0]), int(feats[1]), arrays[f"knots_a_{i}"], arrays[f"knots_b_{i}"]))
            else:
                terms.append(StepMain(int(feats[0]), arrays[f"edges_{i}"], tuple(arrays[f"bounds_{i}"])))
            coef.append(arrays[f"coef_{i}"])
        if terms and all(kind in ("main", "pair") for kind, _ in meta["terms"]):
            self.method = "spline"  # saved before ``method`` existed, or fitted with it
        self.terms_ = terms
        self.coef_blocks_ = coef
        self.intercept_ = arrays["intercept"]
        self.importance_ = arrays["importance"]
        self.target_ = str(meta.get("target", "soft"))
        self.validation_ = meta.get("validation")
        self._ladder_data = None
        self.soft_fit_ = True
