"""Fidelity of a surrogate to its teacher, on held-out data, with intervals.

Everything here is computed from two probability matrices (the teacher's and the surrogate's, on
the same samples) plus, optionally, the true labels, the inputs and a :class:`TreeView` of the
surrogate.  The result is plain data (:class:`FidelityReport`); nothing is drawn.

Divergences are measured from the teacher's distribution ``p`` (temperature 1) to the
surrogate's ``q``, per sample, then averaged, in nats:

- ``kl``: KL(p || q) = sum_k p_k log(p_k / q_k)   (q clipped at 1e-12 so a zero is finite)
- ``jensen_shannon``: JS(p, q) = KL(p || m)/2 + KL(q || m)/2, m = (p + q)/2   (in [0, ln 2])
- ``total_variation``: TV(p, q) = sum_k |p_k - q_k| / 2   (in [0, 1])
- ``brier``: sum_k (q_k - p_k)^2   (the Brier score against the teacher's distribution, in [0, 2])
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .._gate import Gate, agreement_stats, decide
from .._stats import wilson_interval
from .._validation import (
    check_array_2d,
    check_consistent_length,
    check_fraction,
    check_int,
    check_labels,
    check_n_features,
    check_names,
    check_soft_labels,
)
from ..teacher import Teacher

logger = logging.getLogger(__name__)

__all__ = [
    "AuditResult",
    "audit",
    "FidelityReport",
    "fidelity_report",
    "divergences",
    "truth_metrics",
    "to_jsonable",
]

_EPS = 1e-12


# ---------------------------------------------------------------------------- JSON helper
def to_jsonable(obj: Any) -> Any:
    """numpy -> lists/floats, NaN/inf -> None, tuples -> lists, recursively (for metrics.json)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


# ---------------------------------------------------------------------------- primitives
def divergences(p: np.ndarray, q: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample KL(p||q), JS, TV and Brier between rows of ``p`` (teacher) and ``q`` (surrogate)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    qc = np.clip(q, _EPS, None)
    pc = np.clip(p, _EPS, None)
    kl = np.sum(np.where(p > 0, p * (np.log(pc) - np.log(qc)), 0.0), axis=1)
    m = 0.5 * (p + q)
    mc = np.clip(m, _EPS, None)
    kl_pm = np.sum(np.where(p > 0, p * (np.log(pc) - np.log(mc)), 0.0), axis=1)
    kl_qm = np.sum(np.where(q > 0, q * (np.log(qc) - np.log(mc)), 0.0), axis=1)
    js = 0.5 * (kl_pm + kl_qm)
    tv = 0.5 * np.abs(p - q).sum(axis=1)
    brier = np.sum((q - p) ** 2, axis=1)
    return {"kl": np.maximum(kl, 0.0), "jensen_shannon": np.maximum(js, 0.0), "total_variation": tv, "brier": brier}


def confusion(a: np.ndarray, b: np.ndarray, n_classes: int) -> np.ndarray:
    """(K, K) counts, rows = ``a`` (teacher), columns = ``b`` (surrogate)."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)), 1)
    return cm


def truth_metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, precision/recall/F1 per class and macro, from the confusion matrix.

    Same definitions as ``sklearn.metrics`` with ``labels=range(K)`` and ``zero_division=0``
    (a class never predicted has precision 0; one never present has recall 0 and still counts in
    the macro average).
    """
    K = len(class_names)
    cm = confusion(y_true, y_pred, K).astype(np.float64)
    tp = np.diag(cm)
    pred = cm.sum(axis=0)
    support = cm.sum(axis=1)
    precision = np.divide(tp, pred, out=np.zeros(K), where=pred > 0)
    recall = np.divide(tp, support, out=np.zeros(K), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(K), where=denom > 0)
    return {
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
        "per_class": [
            {"class": str(c), "precision": float(precision[k]), "recall": float(recall[k]), "f1": float(f1[k]), "support": int(support[k])}
            for k, c in enumerate(class_names)
        ],
    }


# ---------------------------------------------------------------------------- the report
@dataclass
class FidelityReport:
    """How faithfully one surrogate reproduces the teacher on held-out data.

    Attributes
    ----------
    surrogate : str
    n : int
        Number of held-out samples.
    agreement : float
        Top-1 agreement with the teacher.
    interval : tuple of float
        Its 95% Wilson interval.
    constant_baseline : float
        Agreement of always predicting the teacher's most frequent class on the same samples.
    kappa, kappa_interval : float, (float, float)
        Cohen's kappa of surrogate against teacher predictions (0 for a constant) and its 95% interval.
    balanced, balanced_interval : float, (float, float)
        Mean over the teacher's classes of the share of each class reproduced, and its 95% interval.
    kl, jensen_shannon, total_variation, brier : float
        Means over samples, from the teacher's distribution (T=1) to the surrogate's (nats).
    per_class : list of dict
        ``{"class", "n" (samples the teacher assigns to it), "agreement", "interval"}``.
    confusion : ndarray of int, shape (K, K)
        Rows = teacher class, columns = surrogate class.
    leaves : list of dict or None
        Tree surrogates: ``{"leaf", "rule", "coverage", "agreement", "interval"}``, least faithful first (by the
        upper end of the 95% interval, so a one-sample leaf does not outrank a large unfaithful one).
    disagreements : dict
        ``{"n", "indices", "teacher", "surrogate", "teacher_proba", "surrogate_proba", "X", "where"}``;
        the arrays hold at most ``max_cases`` cases, the teacher's most confident first.
    truth : dict
        Accuracy, macro precision/recall/F1 and per class against the true labels (empty without them).
    compression : dict
        ``{"params", "teacher_params", "ratio"}`` (ratio = teacher_params / params).
    """

    surrogate: str
    n: int
    agreement: float
    interval: tuple[float, float]
    constant_baseline: float
    kappa: float
    kappa_interval: tuple[float, float]
    balanced: float
    balanced_interval: tuple[float, float]
    kl: float
    jensen_shannon: float
    total_variation: float
    brier: float
    per_class: list[dict]
    confusion: np.ndarray
    leaves: list[dict] | None
    disagreements: dict
    truth: dict
    compression: dict

    @property
    def least_faithful_leaves(self) -> list[dict]:
        """The leaves whose agreement is below the surrogate's overall agreement (worst first)."""
        return [l for l in (self.leaves or []) if l["agreement"] < self.agreement]

    def to_json(self) -> dict[str, Any]:
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        return to_jsonable(d)


def _as_proba(P: Any, name: str, n_classes: int | None = None) -> np.ndarray:
    return check_soft_labels(P, name=name, n_classes=n_classes)


def fidelity_report(
    teacher_proba: Any,
    surrogate_proba: Any,
    *,
    y_true: Any = None,
    class_names: Sequence[str],
    X: Any = None,
    view: Any = None,
    name: str = "",
    params: int | None = None,
    teacher_params: int | None = None,
    max_cases: int = 50,
    describe_disagreements: bool = True,
    feature_names: Sequence[str] | None = None,
    X_raw: Any = None,
) -> FidelityReport:
    """Fidelity of ``surrogate_proba`` to ``teacher_proba`` (both (n, K), same samples and class order).

    Parameters
    ----------
    teacher_proba, surrogate_proba : array of shape (n, K)
        Row-stochastic probabilities on the same held-out samples.
    y_true : array of shape (n,), optional
        True class indices; enables ``truth``.
    class_names : sequence of str
        One name per column.
    X : array of shape (n, d), optional
        The inputs; enables per-leaf fidelity (with ``view``), the disagreement inputs and the
        small "where" tree.
    view : TreeView, optional
        The surrogate seen as a tree (``TreeView.of(surrogate)``): per-leaf coverage and agreement.
    params, teacher_params : int, optional
        Sizes for ``compression``.
    max_cases : int
        At most this many disagreement cases are kept (the teacher's most confident first).
    X_raw : array of shape (n, d), optional
        The same inputs in the data's own units (``Dataset.inverse_transform(X)``): the
        disagreement inputs and the "where" tree are reported in them instead of in ``X``'s.
    """
    P = _as_proba(teacher_proba, "teacher_proba")
    K = P.shape[1]
    class_names = check_names(class_names, K, what="class_names")
    Q = _as_proba(surrogate_proba, "surrogate_proba", n_classes=K)
    check_consistent_length(teacher_proba=P, surrogate_proba=Q)
    max_cases = check_int(max_cases, "max_cases", low=0)
    n = len(P)
    if X is not None:
        X = check_array_2d(X, name="X", dtype=np.float64)
        check_consistent_length(teacher_proba=P, X=X)
    if y_true is not None:
        y_true = check_labels(y_true, name="y_true")
        check_consistent_length(teacher_proba=P, y_true=y_true)
        if y_true.dtype.kind not in "iu" or (len(y_true) and (y_true.min() < 0 or y_true.max() >= K)):
            raise ValueError(
                f"y_true must hold class indices in [0, {K - 1}] (positions in class_names); received values "
                f"{np.unique(y_true)[:5].tolist()} of dtype {y_true.dtype}. Encode labels with class_names.index(label)."
            )

    t = P.argmax(axis=1)
    s = Q.argmax(axis=1)
    same = t == s
    stats = agreement_stats(t, s, K)
    div = divergences(P, Q)
    per_class = [{**r, "class": class_names[r["class"]]} for r in stats.per_class]

    leaves = None
    if view is not None and X is not None:
        leaves = _leaf_fidelity(view, X, same)

    if X_raw is not None:
        X_raw = check_array_2d(X_raw, name="X_raw", dtype=np.float64)
        check_consistent_length(teacher_proba=P, X_raw=X_raw)
    shown = X_raw if X_raw is not None else X
    disagreements = _disagreements(P, Q, t, s, shown, max_cases, describe_disagreements, feature_names)

    truth: dict[str, Any] = {}
    if y_true is not None:
        truth = truth_metrics(y_true, s, class_names)

    compression: dict[str, Any] = {}
    if params is not None or teacher_params is not None:
        p_ = int(params) if params is not None else None
        tp_ = int(teacher_params) if teacher_params is not None else None
        ratio = tp_ / p_ if (p_ and tp_ is not None) else math.nan
        compression = {"params": p_, "teacher_params": tp_, "ratio": ratio}

    return FidelityReport(
        surrogate=str(name),
        n=n,
        agreement=stats.agreement,
        interval=stats.interval,
        constant_baseline=stats.constant_baseline,
        kappa=stats.kappa,
        kappa_interval=stats.kappa_interval,
        balanced=stats.balanced,
        balanced_interval=stats.balanced_interval,
        kl=float(div["kl"].mean()),
        jensen_shannon=float(div["jensen_shannon"].mean()),
        total_variation=float(div["total_variation"].mean()),
        brier=float(div["brier"].mean()),
        per_class=per_class,
        confusion=confusion(t, s, K),
        leaves=leaves,
        disagreements=disagreements,
        truth=truth,
        compression=compression,
    )


def _leaf_fidelity(view: Any, X: np.ndarray, same: np.ndarray) -> list[dict]:
    leaf_ids = np.asarray(view.leaf_of(X))
    out = []
    for leaf in np.unique(leaf_ids):
        mask = leaf_ids == leaf
        cov = int(mask.sum())
        kl = int(same[mask].sum())
        out.append(
            {
                "leaf": int(leaf),
                "rule": view.rule(int(leaf)),
                "coverage": cov,
                "agreement": kl / cov,
                "interval": list(wilson_interval(kl, cov)),
            }
        )
    # Least faithful first, ranked by the upper end of the Wilson interval: a leaf is listed early
    # when it is confidently unfaithful (many samples, low agreement), not because one sample
    # disagreed; then by agreement and, among equals, the leaf covering more samples first.
    out.sort(key=lambda d: (d["interval"][1], d["agreement"], -d["coverage"], d["leaf"]))
    return out


def _disagreements(
    P: np.ndarray,
    Q: np.ndarray,
    t: np.ndarray,
    s: np.ndarray,
    X: np.ndarray | None,
    max_cases: int,
    describe: bool,
    feature_names: Sequence[str] | None,
) -> dict[str, Any]:
    idx = np.nonzero(t != s)[0]
    tp = P[idx, t[idx]]
    order = np.argsort(-tp, kind="stable")[:max_cases]
    keep = idx[order]
    where = None
    if describe and X is not None and 0 < len(idx) < len(t):
        where = _where_tree(X, t != s, feature_names)
    return {
        "n": int(len(idx)),
        "indices": keep.astype(np.int64),
        "teacher": t[keep].astype(np.int64),
        "surrogate": s[keep].astype(np.int64),
        "teacher_proba": P[keep, t[keep]].astype(np.float64),
        "surrogate_proba": Q[keep, s[keep]].astype(np.float64),
        "X": X[keep] if X is not None else None,
        "where": where,
    }


def _where_tree(X: np.ndarray, wrong: np.ndarray, feature_names: Sequence[str] | None) -> str:
    """Text of a depth-2 tree fitted on "teacher != surrogate": where the disagreements live.

    Written as scikit-learn's ``export_text`` writes it, through the views' text export (so its
    conditions are written where every other condition is)."""
    from sklearn.tree import DecisionTreeClassifier

    from .views import TreeView
    from .views.export_text import tree_text

    ok = feature_names is not None and len(feature_names) == X.shape[1]
    names = [str(f) for f in feature_names] if ok else [f"feature_{j}" for j in range(X.shape[1])]
    clf = DecisionTreeClassifier(max_depth=2, min_samples_leaf=max(2, len(X) // 50), class_weight="balanced", random_state=0)
    clf.fit(X, wrong.astype(int))  # splits read in X's units (raw when the caller passes raw inputs)
    view = TreeView.of(clf, feature_names=names, class_names=["agree", "disagree"])
    return tree_text(view, decimals=3, inverse="scaled", show_samples=False, show_probability=False) + "\n"


# ---------------------------------------------------------------------------- the gate
#: ``ed.audit``'s bar when neither the call nor the audited run sets one.
DEFAULT_AUDIT_BAR = 0.95


@dataclass
class AuditResult:
    """Outcome of :func:`audit`.

    ``passed`` follows :func:`explain_distill._gate.decide`: the *lower* end of the 95% Wilson
    interval of top-1 agreement must reach ``min_agreement`` (so a small sample cannot pass by
    luck) and, with ``gate="per_class"`` (the default), every class the teacher predicts on at
    least 10 rows must be reproduced (so a surrogate that ignores a class cannot pass on an
    imbalanced table).  ``metrics`` holds ``agreement``, ``constant_baseline``, ``kappa``,
    ``balanced`` and, when the surrogate has ``predict_proba``, ``kl``, ``js``, ``tv`` and
    ``brier`` (means, nats); ``intervals`` the 95% intervals of agreement, kappa and balanced
    agreement.  ``reason`` says in words why it passed or failed (naming a class that failed);
    ``teacher_warning`` carries the teacher check's warning when the teacher was checked, and
    ``teacher_checked`` says whether it was (audit a Distillation, or pass ``teacher_baseline``).
    """

    passed: bool
    min_agreement: float
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    n: int
    surrogate: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    teacher_warning: str | None = None
    gate: str = "per_class"
    failed_classes: list[str] = field(default_factory=list)
    teacher_checked: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["intervals"] = {k: list(v) for k, v in self.intervals.items()}
        return to_jsonable(d)

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        teacher = (f" WARNING: {self.teacher_warning}" if self.teacher_warning else
                   "" if self.teacher_checked else " (The teacher was not checked against trivial baselines: audit the "
                   "Distillation, ed.audit(result, name), or pass teacher_baseline=dataset.)")
        return f"{self.surrogate or 'surrogate'}: {verdict}: {self.reason}.{teacher}"


def check_model_features(X: np.ndarray, teacher: Teacher, surrogates: Mapping[str, Any]) -> None:
    """ValueError unless ``X`` has the feature count of the teacher and of every named surrogate."""
    if teacher.n_features is not None:
        check_n_features(X, teacher.n_features, what="the teacher")
    for name, est in surrogates.items():
        n_in = getattr(est, "n_features_in_", None)
        if n_in is not None:
            check_n_features(X, int(n_in), what=f"the surrogate {name!r}")


def _from_run(run: Any, surrogate: Any, X: Any, min_agreement: float | None, teacher_baseline: Any,
              name: str) -> tuple[Teacher, Any, Any, float, Any, str, list[str] | None]:
    """(teacher, surrogate, X, bar, baseline, name, class names) when ``audit`` is handed a Distillation."""
    if isinstance(surrogate, str):
        if surrogate not in run.surrogates:
            raise ValueError(f"{surrogate!r} is not a surrogate of this run; it has: {', '.join(run.surrogates)}.")
        name, surrogate = name or surrogate, run.surrogates[surrogate]
    X = run.dataset.X_test if X is None else X
    bar = getattr(run, "bar", DEFAULT_AUDIT_BAR) if min_agreement is None else min_agreement
    baseline = teacher_baseline if teacher_baseline is not None else getattr(run, "teacher_check", None)
    if baseline is None:
        baseline = run.dataset
    return run.teacher, surrogate, X, bar, baseline, name, list(run.dataset.class_names)


def _predictions(teacher: Teacher, surrogate: Any, X: Any, batch_size: int) -> tuple[np.ndarray, np.ndarray, dict[str, float], bool]:
    """Teacher and surrogate predictions on ``X``, batch by batch, and the summed divergences."""
    sums = {"kl": 0.0, "js": 0.0, "tv": 0.0, "brier": 0.0}
    soft = hasattr(surrogate, "predict_proba")
    t_all, s_all = [], []
    for start in range(0, len(X), batch_size):
        xb = np.asarray(X[start : start + batch_size], dtype=np.float32)
        P = teacher.predict_proba(xb).astype(np.float64)
        t_all.append(P.argmax(axis=1))
        s_all.append(np.asarray(surrogate.predict(xb)))
        if soft:
            Q = np.asarray(surrogate.predict_proba(xb), dtype=np.float64)
            if Q.shape != P.shape:
                soft = False
                continue
            d = divergences(P, Q)
            for key, src in (("kl", "kl"), ("js", "jensen_shannon"), ("tv", "total_variation"), ("brier", "brier")):
                sums[key] += float(d[src].sum())
    return np.concatenate(t_all), np.concatenate(s_all), sums, soft


def _class_indices(s_pred: np.ndarray, surrogate: Any, n_classes: int) -> np.ndarray:
    """The surrogate's predictions as class indices (its ``classes_`` may be labels, or indices)."""
    classes = getattr(surrogate, "classes_", None)
    if classes is not None and np.asarray(classes).dtype.kind not in "iu":
        lookup = {c: i for i, c in enumerate(np.asarray(classes).tolist())}
        return np.array([lookup.get(v, -1) for v in s_pred.tolist()], dtype=np.int64)
    out = np.asarray(s_pred, dtype=np.int64)
    return np.where((out >= 0) & (out < n_classes), out, -1)


def audit(
    teacher: Any,
    surrogate: Any,
    X: Any = None,
    *,
    min_agreement: float | None = None,
    name: str = "",
    batch_size: int = 65536,
    teacher_baseline: Any = None,
    require_teacher_better_than_baseline: bool = False,
    gate: str = "per_class",
    min_class_agreement: float = 0.5,
) -> AuditResult:
    """Gate: does ``surrogate`` agree with ``teacher`` on ``X`` often enough, with confidence, on every class?

    ``ed.audit(result, "tree")`` audits a surrogate of a :class:`~explain_distill.distill.Distillation`
    on its test split, at the run's bar, with the teacher check ``distill`` ran;
    ``ed.audit(teacher, surrogate, X)`` audits any fitted surrogate against a teacher on ``X``.

    Passed per :func:`explain_distill._gate.decide`: the lower end of the 95% Wilson interval of
    top-1 agreement is >= ``min_agreement`` (default: the run's bar, else 0.95) and, with
    ``gate="per_class"``, every teacher class holding at least 10 rows is
    reproduced: the lower end of its agreement interval reaches ``min_class_agreement``.
    ``gate="agreement"`` checks agreement alone (the rule before kappa and classes were measured).
    ``X`` is processed ``batch_size`` rows at a time (it may be a memory-mapped array).

    ``teacher_baseline`` (a :class:`~explain_distill.data.Dataset`, whose splits fit and score the
    baselines, or a ready :class:`~explain_distill.teacher.TeacherCheck`) compares the teacher with
    a majority-class and a logistic baseline: fidelity to a teacher that does not beat them says
    nothing.  Its warning lands in ``teacher_warning``; with ``require_teacher_better_than_baseline``
    a warning also fails the gate.  Without one (auditing a bare teacher), the result says the
    teacher was not checked.
    """
    from ..teacher import TeacherCheck, teacher_check

    class_names = None
    if not isinstance(teacher, Teacher) and all(hasattr(teacher, a) for a in ("teacher", "surrogates", "dataset")):
        teacher, surrogate, X, min_agreement, teacher_baseline, name, class_names = _from_run(
            teacher, surrogate, X, min_agreement, teacher_baseline, name)
    if not isinstance(teacher, Teacher):
        raise TypeError(
            f"audit takes a Distillation (ed.audit(result, 'tree')) or an explain_distill Teacher with a surrogate and "
            f"inputs (ed.audit(teacher, surrogate, X)); received {type(teacher).__name__}."
        )
    if not hasattr(surrogate, "predict"):
        raise TypeError(f"surrogate must be a fitted estimator with predict(); received {type(surrogate).__name__}.")
    if X is None:
        raise ValueError("audit(teacher, surrogate, X) needs the inputs X to compare them on; received none.")
    bar = check_fraction(DEFAULT_AUDIT_BAR if min_agreement is None else min_agreement, "min_agreement")
    rule = Gate(bar, gate=gate, min_class_agreement=check_fraction(min_class_agreement, "min_class_agreement"))  # type: ignore[arg-type]
    batch_size = check_int(batch_size, "batch_size", low=1)
    if require_teacher_better_than_baseline and teacher_baseline is None:
        raise ValueError(
            "require_teacher_better_than_baseline=True needs teacher_baseline= (the Dataset whose splits fit "
            "and score the baselines, or a TeacherCheck), or a Distillation to audit; received none."
        )
    if teacher_baseline is not None and not isinstance(teacher_baseline, TeacherCheck):
        if not all(hasattr(teacher_baseline, a) for a in ("X_train", "y_train", "X_test", "y_test", "class_names")):
            raise TypeError(
                f"teacher_baseline must be a Dataset or a TeacherCheck; received {type(teacher_baseline).__name__}."
            )
        teacher_baseline = teacher_check(teacher, teacher_baseline)
    X = check_array_2d(X, name="X", dtype=None)
    n_in = getattr(surrogate, "n_features_in_", None)
    if n_in is not None:
        check_n_features(X, int(n_in), what=f"the surrogate {name or type(surrogate).__name__}")
    t, s_raw, sums, soft = _predictions(teacher, surrogate, X, batch_size)
    K = teacher.n_classes
    s_idx = _class_indices(s_raw, surrogate, K)
    unknown = bool((s_idx < 0).any())  # a label the teacher does not have: a disagreement, in a column of its own
    stats = agreement_stats(t, np.where(s_idx < 0, K, s_idx), K + 1 if unknown else K)
    verdict = decide(stats, rule, (class_names or list(teacher.class_names)) + ["(not a teacher class)"])
    n = len(X)
    metrics: dict[str, float] = {"agreement": stats.agreement, "constant_baseline": stats.constant_baseline,
                                 "kappa": stats.kappa, "balanced": stats.balanced}
    if soft:
        metrics.update({key: v / n for key, v in sums.items()})
    passed, reason = verdict.passed, verdict.reason
    warning = teacher_baseline.warning if teacher_baseline is not None else None
    if warning and require_teacher_better_than_baseline:
        passed = False
        reason += "; the teacher does not beat its baselines, and the gate requires it to"
    names = class_names or list(teacher.class_names)
    details: dict[str, Any] = {"per_class": [{**r, "class": names[r["class"]]} for r in stats.to_json()["per_class"][:K]],
                               "gate": rule.to_json()}
    if teacher_baseline is not None:
        details["teacher_check"] = teacher_baseline.to_json()
    return AuditResult(
        passed=passed, min_agreement=bar, metrics=metrics,
        intervals={"agreement": stats.interval, "kappa": stats.kappa_interval, "balanced": stats.balanced_interval},
        n=int(n), surrogate=name, details=details, reason=reason, teacher_warning=warning, gate=gate,
        failed_classes=list(verdict.failed_classes), teacher_checked=teacher_baseline is not None,
    )
