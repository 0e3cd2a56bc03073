"""``rules``: an ordered multiclass rule list (a decision list) fitted to the teacher's labels.

The list is read top down: the first rule whose conditions all hold decides the class; an
``else`` rule decides the rest.  It is learned greedily, one rule per step, each step taking the
rule that raises the list's agreement with the teacher on the training rows the most, among two
kinds of candidates:

- *append* (separate-and-conquer, as CN2 and RIPPER): a rule for class c grown on the rows no
  rule decides yet, inserted before the ``else``;
- *insert first* (an exception): a rule for class c grown on the rows the list gets wrong whose
  teacher class is c, against the rows it gets right, placed at the top so it overrides the rules
  below for the rows it covers.

A rule grows one condition at a time by FOIL's information gain (Quinlan 1990) on binned inputs
until it is pure or ``max_depth`` conditions long; it is then cut back to the prefix of its
conditions whose fidelity gain is largest (pruning against fidelity).  The fit follows the
teacher's top class (``target="hard"``, the default: a rule predicts one class) or its soft mass
(``"soft"``), or whichever validates better (``"auto"``).

Each rule records its training coverage (the share of rows it decides) and fidelity (the share of
those on which the teacher agrees with it); rules that decide no training row are dropped.  The
``k`` first rules learned form a rule list on their own (``ladder_``), so one fit gives every
smaller list.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from .._validation import check_choice, check_fraction, check_int
from ._base import SoftTargetMixin, TreeDisplayMixin
from ._hist import Binner, Histograms
from ._target import TARGETS, agreement, hard_targets, split_validation

__all__ = ["RuleListClassifier", "first_firing_rule"]

#: A growing rule stops once this share of the rows it covers belongs to its class.
_PURE = 0.995

#: Classes tried per step for each kind of candidate: those with the most rows left to gain.  On
#: digits (3 seeds, 100 rules) 6 of 10 classes reach 0.935 in 7 s; all 10 take twice as long.
_CLASSES_PER_STEP = 6


def _normalise(P: np.ndarray) -> np.ndarray:
    P = np.clip(P, 0.0, None)
    s = P.sum(axis=1, keepdims=True)
    return np.divide(P, s, out=np.full_like(P, 1.0 / P.shape[1]), where=s > 0)


class _Learner:
    """The greedy decision-list learner over binned training rows."""

    def __init__(self, codes: np.ndarray, hist: Histograms, T: np.ndarray, w: np.ndarray, *, max_len: int, min_cover: int) -> None:
        self.codes, self.hist, self.T, self.w = codes, hist, T, w
        self.n, self.K = T.shape
        self.y = np.argmax(T, axis=1)
        self.max_len, self.min_cover = max_len, min_cover
        self.dec = np.full(self.n, -1, dtype=np.int64)  # the rule (learning index) deciding each row
        self.rules: list[tuple[list[tuple[int, int, bool]], int]] = []  # (conditions (feature, bin, le), class)
        self.order: list[int] = []  # list order of learning indices

    # -- reading the current list
    def predictions(self) -> tuple[np.ndarray, int]:
        und = self.dec < 0
        default = int(np.argmax(self.T[und].T @ self.w[und])) if und.any() else int(np.argmax(self.T.T @ self.w))
        cls = np.array([k for _, k in self.rules] + [default], dtype=np.int64)
        return cls[np.where(und, len(self.rules), self.dec)], default

    def mask(self, conds: list[tuple[int, int, bool]], rows: np.ndarray) -> np.ndarray:
        m = np.ones(len(rows), dtype=bool)
        for f, b, le in conds:
            m &= (self.codes[rows, f] <= b) if le else (self.codes[rows, f] > b)
        return m

    # -- growing one rule
    def grow(self, rows: np.ndarray, pos: np.ndarray, wt: np.ndarray, first: tuple[np.ndarray, np.ndarray] | None):
        """FOIL growth on ``rows``: positives ``pos`` (weights), all counted ``wt``.  Yields (conditions, covered rows)."""
        conds: list[tuple[int, int, bool]] = []
        sums = first
        while len(conds) < self.max_len:
            p0, t0 = float(pos.sum()), float(wt.sum())
            if p0 <= 0 or p0 >= _PURE * t0:
                return
            if sums is None:
                # one pass over the rows' bins for the positives, the counted weight and the row weights
                S = self.hist.sums(rows, np.stack([pos, wt, self.w[rows]], axis=1))
                left, valid = self.hist.cumulative(S)
                total = S[: self.hist.n_bins[0]].sum(axis=0)
                lp, lt, tp_, tt = left[:, 0], left[:, 1], total[0], total[1]
                cnt_left = left[:, 2] if self.min_cover > 1 else None
            else:
                lp, lt, valid, cnt_left = sums[0][:, 0], sums[0][:, 1], sums[1], sums[2]
                tp_, tt = p0, t0
            sums = None
            # sizes are weights (integer weights act as repeated rows), summed over the rows the
            # counts were taken on: the last bin of feature 0 holds them all
            n_rows = None if cnt_left is None else float(cnt_left[self.hist.n_bins[0] - 1])
            best, where = 0.0, None
            for le, p1, t1, c1 in ((True, lp, lt, cnt_left), (False, tp_ - lp, tt - lt, None if cnt_left is None else n_rows - cnt_left)):
                with np.errstate(divide="ignore", invalid="ignore"):
                    g = p1 * (np.log(p1 / t1) - np.log(p0 / t0))
                bad = ~valid | (t1 <= 0) | ~np.isfinite(g)
                if c1 is not None:
                    bad |= c1 < self.min_cover
                g = np.where(bad, -np.inf, g)
                i = int(np.argmax(g))
                if g[i] > best + 1e-12:
                    best, where = float(g[i]), (i, le)
            if where is None:
                return
            f, b = self.hist.locate(where[0])
            m = (self.codes[rows, f] <= b) if where[1] else (self.codes[rows, f] > b)
            conds.append((f, b, where[1]))
            rows, pos, wt = rows[m], pos[m], wt[m]
            yield list(conds), rows

    def _first_sums(self, rows: np.ndarray, pos: np.ndarray, wt: np.ndarray) -> tuple[list, np.ndarray, np.ndarray | None]:
        """Depth-0 bin sums of every class at once: [pos_c, wt_c] per class."""
        S = self.hist.sums(rows, np.concatenate([pos, wt, self.w[rows, None]], axis=1))
        left, valid = self.hist.cumulative(S)
        K = pos.shape[1]
        cnt = left[:, 2 * K] if self.min_cover > 1 else None
        return [np.stack([left[:, c], left[:, K + c]], axis=1) for c in range(K)], valid, cnt

    def step(self) -> bool:
        """Add the rule that raises training agreement most; False when none does."""
        w, y, K = self.w, self.y, self.K
        pred, default = self.predictions()
        correct = pred == y
        best: tuple[float, Any, int, str] = (0.0, None, -1, "")
        # append: grown on the undecided rows, gain = its class's rows minus the else rule's
        und = np.flatnonzero(self.dec < 0)
        if len(und):
            onehot = np.zeros((len(und), K))
            onehot[np.arange(len(und)), y[und]] = w[und]
            mass = onehot.sum(axis=0)
            gain_else = mass[default]
            classes = [c for c in np.argsort(-mass, kind="stable")[:_CLASSES_PER_STEP] if mass[c] > 0 and c != default]
            if classes:
                firsts, valid, cnt = self._first_sums(und, onehot, np.tile(w[und, None], (1, K)))
                for c in classes:
                    for conds, cov in self.grow(und, onehot[:, c], w[und], (firsts[c], valid, cnt)):
                        gain = float(w[cov] @ ((y[cov] == c).astype(float) - (y[cov] == default)))
                        if gain > best[0] and float(w[cov].sum()) >= self.min_cover:
                            best = (gain, conds, c, "append")
        # insert first: grown on every row, the wrong ones of class c against the right ones
        wrong_mass = np.bincount(y[~correct], weights=w[~correct], minlength=K)
        classes = [c for c in np.argsort(-wrong_mass, kind="stable")[:_CLASSES_PER_STEP] if wrong_mass[c] > 0]
        if classes:
            rows = np.arange(self.n)
            pos = np.zeros((self.n, K))
            wt = np.zeros((self.n, K))
            for c in classes:
                pc = (~correct) & (y == c)
                pos[pc, c] = w[pc]
                wt[:, c] = np.where(pc | (correct & (y != c)), w, 0.0)
            firsts, valid, cnt = self._first_sums(rows, pos, wt)
            for c in classes:
                # Rows neither wrong of class c nor right are neutral (weight 0): the bin sums over all
                # rows serve the first condition, the growth goes on over the others.
                keep = np.flatnonzero(wt[:, c] > 0)
                for conds, cov in self.grow(keep, pos[keep, c], wt[keep, c], (firsts[c], valid, cnt)):
                    gain = float(pos[cov, c].sum() - (wt[cov, c] - pos[cov, c]).sum())
                    if gain > best[0] and (self.min_cover <= 1 or float(w[self.mask(conds, rows)].sum()) >= self.min_cover):
                        best = (gain, conds, c, "first")
        if best[1] is None:
            return False
        _, conds, c, kind = best
        r = len(self.rules)
        self.rules.append((conds, c))
        if kind == "append":
            cov = und[self.mask(conds, und)]
            self.order.append(r)
        else:
            all_rows = np.arange(self.n)
            cov = all_rows[self.mask(conds, all_rows)]
            self.order.insert(0, r)
        self.dec[cov] = r
        return True



def first_firing_rule(rules: Sequence[Mapping[str, Any]], X: np.ndarray) -> np.ndarray:
    """Index of the first rule whose ``conditions`` ((feature, "<=" | ">", threshold) each) all hold, per
    row of ``X``; the last rule is the default (``else``) and decides every row no earlier rule takes.
    Compares in ``X``'s dtype (the classifier and its view pass float32, as the model was fitted)."""
    out = np.full(len(X), len(rules) - 1, dtype=np.int64)
    undecided = np.ones(len(X), dtype=bool)
    for r, rule in enumerate(rules[:-1]):
        fires = undecided.copy()
        for f, op, thr in rule["conditions"]:
            fires &= (X[:, f] <= thr) if op == "<=" else (X[:, f] > thr)
        out[fires] = r
        undecided &= ~fires
    return out

class RuleListClassifier(TreeDisplayMixin, SoftTargetMixin, ClassifierMixin, BaseEstimator):
    """An ordered multiclass rule list (first matching rule decides, then ``else``).

    Parameters
    ----------
    max_rules : int, default=30
        Rules before the ``else`` (fewer when no rule raises the training agreement); the size on
        the fidelity frontier.
    max_depth : int, default=12
        Most conditions in one rule (most rules stop earlier, once pure: about 5 on digits).
    min_samples_leaf : int, default=5
        Fewest training rows a rule may cover.
    max_bins : int, default=64
        Thresholds tried per feature (midpoints between values at quantiles).
    target : {"soft", "hard", "auto"}, default="hard"
        Learn from the teacher's top class, its soft mass, or whichever is more faithful on a
        validation split of the training rows (with "auto" the list is learned on the others).
        On digits the hard target wins at every size.
    validation_fraction : float, default=0.2
    random_state : int or None

    Attributes
    ----------
    rules_ : list of dict
        In the order the list is read: ``{"conditions": [(feature, "<=" or ">", threshold), ...],
        "value": (K,) class distribution, "coverage": share of training rows it decides,
        "fidelity": share of those whose teacher class is its class}``; the last one is the
        ``else`` rule (no conditions).
    size_ : int
        Rules before the ``else``.
    """

    _view_kind = "rules"  # view(), draw(), export_text(), to_dict() show the rule list

    #: The frontier protocol: the size is the number of rules before the final ``else``; every
    #: smaller list is the prefix of one fit (:meth:`ladder_`).
    size_unit = "rules"
    size_param = "max_rules"
    #: Up to 50 rules by default: on digits the rules 51..100 cost as much again (~4 s) for 2 points
    #: of fidelity; ``ladders={"rules": [..., 100]}`` (or ``--param rules.max_rules=100``) goes further.
    size_ladder = (5, 10, 20, 30, 50)
    #: A rung of :meth:`ladder_` is the model a fit at that size gives, so ``distill`` fits the family
    #: once, at the top of its ladder, and reads the configured size off it too.
    ladder_prefix = True

    def __init__(
        self,
        *,
        max_rules: int = 30,
        max_depth: int = 12,
        min_samples_leaf: int = 5,
        max_bins: int = 64,
        target: Literal["soft", "hard", "auto"] = "hard",
        validation_fraction: float = 0.2,
        random_state: int | None = None,
    ) -> None:
        self.max_rules = max_rules
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_bins = max_bins
        self.target = target
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "RuleListClassifier":
        """Fit on hard labels (n,) or soft labels (n, K); returns self."""
        check_int(self.max_rules, "max_rules", low=1, high=10_000)
        check_int(self.max_depth, "max_depth", low=1, high=64)
        check_int(self.min_samples_leaf, "min_samples_leaf", low=1)
        check_int(self.max_bins, "max_bins", low=2, high=256)
        check_choice(self.target, "target", TARGETS)
        check_fraction(self.validation_fraction, "validation_fraction", inclusive=False)
        X, P = self._validate_fit(X, y, dtype=np.float32)  # compared in float32, as the views do
        w = np.ones(len(X)) if sample_weight is None else _check_sample_weight(sample_weight, X, dtype=np.float64)
        binner = Binner(self.max_bins, random_state=self.random_state).fit(X, w)
        self._thresholds = binner.thresholds_
        codes = binner.transform(X)
        self.validation_ = None
        split = split_validation(P, self.validation_fraction, self.random_state) if self.target == "auto" else None
        if split is None:
            self.target_ = "hard" if self.target == "hard" else "soft"
            learner = self._learn(codes, P, w, self.target_)
            self._train = (learner, codes, P, w)
        else:
            tr, va = split
            learners = {t: self._learn(codes[tr], P[tr], w[tr], t) for t in ("soft", "hard")}
            sizes = sorted({s for s in self.size_ladder if s < self.max_rules} | {int(self.max_rules)})
            self.validation_ = {"sizes": sizes, "soft": [], "hard": []}
            for t, lr in learners.items():
                for s in sizes:
                    rules = self._rules_of(lr, codes[tr], P[tr], w[tr], s)
                    self.validation_[t].append(agreement(self._proba(rules, codes[va]), P[va], w[va]))
            self.target_ = "hard" if self.validation_["hard"][-1] > self.validation_["soft"][-1] else "soft"
            self._train = (learners[self.target_], codes[tr], P[tr], w[tr])
        learner, c, Pt, wt = self._train
        self._set_rules(self._rules_of(learner, c, Pt, wt, int(self.max_rules)))
        return self

    def _learn(self, codes: np.ndarray, P: np.ndarray, w: np.ndarray, target: str) -> _Learner:
        hist = Histograms(codes, np.array([len(t) + 1 for t in self._thresholds]))
        T = hard_targets(P) if target == "hard" else P
        learner = _Learner(codes, hist, T, w, max_len=int(self.max_depth), min_cover=int(self.min_samples_leaf))
        for _ in range(int(self.max_rules)):
            if not learner.step():
                break
        return learner

    def _rules_of(self, learner: _Learner, codes: np.ndarray, P: np.ndarray, w: np.ndarray, k: int) -> list[dict[str, Any]]:
        """The list made of the first ``k`` rules learned, with its ``else`` and the training statistics."""
        kept = [r for r in learner.order if r < k]
        conds = [learner.rules[r][0] for r in kept]
        classes = [learner.rules[r][1] for r in kept]
        dec = self._decide(conds, codes)
        total = max(float(w.sum()), 1e-12)
        teacher = np.argmax(P, axis=1)
        out = []
        T = learner.T
        for i, (cs, c) in enumerate(zip(conds + [[]], classes + [None])):
            rows = dec == i
            mass = float(w[rows].sum())
            if mass <= 0 and cs:
                continue  # decides no training row: dropped
            if c is None:  # the else rule: the undecided rows' own class
                c = int(np.argmax(T[rows].T @ w[rows])) if mass > 0 else int(np.argmax(T.T @ w))
            value = (P[rows].T @ w[rows]) / mass if mass > 0 else np.full(P.shape[1], 1.0 / P.shape[1])
            # The rule predicts its class: the distribution shown is its rows' mean, led by that class.
            value = np.asarray(value, dtype=np.float64)
            if int(np.argmax(value)) != c:
                value = value.copy()
                value[c] = value.max() + 1e-6
                value = value / value.sum()
            out.append({
                "conditions": [(int(f), "<=" if le else ">", float(self._thresholds[f][b])) for f, b, le in cs],
                "value": value,
                "coverage": mass / total,
                "fidelity": float(w[rows] @ (teacher[rows] == c)) / mass if mass > 0 else float("nan"),
                "_codes": cs,
            })
        return out

    def _decide(self, conds: list[list[tuple[int, int, bool]]], codes: np.ndarray) -> np.ndarray:
        """Index (in ``conds``) of the first rule that fires on each row; len(conds) for the else rule."""
        out = np.full(len(codes), len(conds), dtype=np.int64)
        und = np.ones(len(codes), dtype=bool)
        for i, cs in enumerate(conds):
            fires = und.copy()
            for f, b, le in cs:
                fires &= (codes[:, f] <= b) if le else (codes[:, f] > b)
            out[fires] = i
            und &= ~fires
        return out

    def _proba(self, rules: list[dict[str, Any]], codes: np.ndarray) -> np.ndarray:
        which = self._decide([r["_codes"] for r in rules[:-1]], codes)
        return np.stack([r["value"] for r in rules])[which]

    def _set_rules(self, rules: list[dict[str, Any]]) -> None:
        self.rules_ = [{k: v for k, v in r.items() if k != "_codes"} for r in rules]

    # -- the frontier's ladder: the first k rules learned are a list of their own
    def ladder_(self, sizes: Any = None) -> list["RuleListClassifier"]:
        """Rule lists of at most each of ``sizes`` rules (default ``size_ladder``), from this fit."""
        check_is_fitted(self)
        if getattr(self, "_train", None) is None:
            raise ValueError("ladder_ needs the training rows of a fit in this session; a loaded model has none. Refit it.")
        learner, codes, P, w = self._train
        sizes = [s for s in self.size_ladder if s <= self.max_rules] if sizes is None else list(sizes)
        out = []
        for s in sizes:
            check_int(s, "size", low=1)
            est = copy.copy(self)
            est.max_rules = int(min(s, self.max_rules))
            est._set_rules(self._rules_of(learner, codes, P, w, est.max_rules))
            out.append(est)
        return out

    @property
    def size_(self) -> int:
        check_is_fitted(self)
        return len(self.rules_) - 1

    @property
    def n_params_(self) -> int:
        """Model size: conditions plus rules."""
        check_is_fitted(self)
        return int(sum(len(r["conditions"]) for r in self.rules_) + len(self.rules_))

    def rule_of(self, X: Any) -> np.ndarray:
        """Index into ``rules_`` of the first rule that fires for each sample (float32 comparisons)."""
        X = self._validate_predict(X, dtype=np.float32)  # first: an unfitted list raises NotFittedError
        return first_firing_rule(self.rules_, X)

    def predict_proba(self, X: Any) -> np.ndarray:
        which = self.rule_of(X)
        values = np.stack([r["value"] for r in self.rules_])
        return _normalise(values[which])

    def to_text(self, feature_names: list[str] | None = None, class_names: list[str] | None = None, decimals: int = 3) -> str:
        """The rule list as text, in reading order: ``IF ... THEN class (p=..) [coverage .., fidelity ..]
        / ELSE IF ... / ELSE ...`` (thresholds in the data's raw units when it carries them).

        Names default to the fitted ``feature_names_in_`` / ``class_names_`` (``distill`` sets them).
        Rules that decide no training row are not in the list.
        """
        return self.view(feature_names=feature_names, class_names=class_names).export_text(decimals=decimals)

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
            "rule_fidelity": np.asarray([r.get("fidelity", np.nan) for r in self.rules_], dtype=np.float64),
        }
        return arrays, {"target": self.target_}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        values, cov = arrays["rule_value"], arrays["rule_coverage"]
        fid = arrays.get("rule_fidelity", np.full(len(values), np.nan))
        rules = [{"conditions": [], "value": values[r], "coverage": float(cov[r]), "fidelity": float(fid[r])} for r in range(len(values))]
        for r, f, le, t in zip(arrays["cond_rule"], arrays["cond_feature"], arrays["cond_le"], arrays["cond_threshold"]):
            rules[int(r)]["conditions"].append((int(f), "<=" if le else ">", float(t)))
        self.rules_ = rules
        self.target_ = str(meta.get("target", "hard"))
        self.validation_ = None
        self._train = None
        self.soft_fit_ = True
