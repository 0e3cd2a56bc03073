"""Surrogates over the teacher's pattern detectors, read as plain data: the verdict and the rules.

- :func:`pattern_verdict` answers, in words and as data, the question a low fidelity table raises:
  can the network be explained in terms of its inputs, in terms of its own detectors (the
  ``NAME@patterns`` surrogates), or neither?  A surrogate "clears the bar" by the audit's rule
  (:func:`explain_distill._gate.decide`: the lower end of the 95% Wilson interval of its agreement
  with the teacher reaches the bar, and every sizeable teacher class is reproduced).  Only readable
  families at readable sizes (``surrogates.READABLE_SIZES``: trees, rule lists, sums of trees,
  additive models) can make the verdict; the others are named for what they are (a linear model
  over the teacher's own features is near the network's own head; a student is a network).
- :func:`describe_condition` phrases one split on a pattern feature for a person:
  ``pattern 7 present (response > 0.80)``, ``pattern 3 absent (response ≤ 0.41)``,
  ``pattern 5 at position ≤ 12.4 of 40`` (it lives with every other condition's wording, in
  :mod:`explain_distill.analysis.views.conditions`, and is re-exported here).
- :func:`pattern_analysis` reads every surrogate over features of a distillation through its view
  (:class:`~explain_distill.analysis.views.FeatureView`): the rules of its trees and rule lists
  (each with its class, coverage and agreement on the test split), the weights of its linear
  models, the channels they use, and the prototypes that show those channels
  (:meth:`~explain_distill.features.PatternFeatures.prototypes`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._gate import Gate, agreement_from, decide
from .._stats import wilson_interval
from .._validation import check_fraction, check_int
from ..features import FeatureSurrogate, PatternFeatures, PatternPrototypes
from ..surrogates import readable_size
from .fidelity import to_jsonable
from .views import describe_condition, tightest, view_of

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BAR",
    "OPAQUE_FAMILIES",
    "PatternAnalysis",
    "PatternVerdict",
    "describe_condition",
    "pattern_analysis",
    "pattern_verdict",
]

#: The bar of the verdict when the user set none (``--min-agreement`` sets it).
DEFAULT_BAR = 0.90
#: Families that are networks, not explanations: they never make the verdict.
OPAQUE_FAMILIES: tuple[str, ...] = ("student",)
#: Linear families: a weight per input (or per feature) and class.
_LINEAR: tuple[str, ...] = ("logistic", "naive_bayes")
_UNITS = {"tree": "leaves", "figs": "leaves", "rules": "rules", "gam": "terms"}
_NAMES = {"tree": "tree", "figs": "sum of trees", "rules": "rule list", "gam": "additive model"}


def _family(name: str) -> tuple[str, str | None]:
    family, sep, label = str(name).partition("@")
    return family, (label if sep else None)


# ---------------------------------------------------------------------------- the verdict
@dataclass
class PatternVerdict:
    """Whether the network is explained by a readable model over its inputs, over its own detectors, or neither.

    Attributes
    ----------
    outcome : {"inputs", "patterns", "neither"}
        ``"inputs"``: a readable surrogate over the raw inputs passes the gate; ``"patterns"``: none
        does but a readable one over the teacher's features does; ``"neither"``: no readable one does.
    bar : float
        Agreement the lower end of the 95% interval must reach (with every sizeable class reproduced).
    bar_source : {"min_agreement", "default"}
    raw, features : list of dict
        The readable surrogates (``surrogates.READABLE_SIZES``) of each kind: ``{"name", "agreement",
        "low", "high", "cleared"}``, most faithful first.
    others : list of dict
        The surrogates that are faithful or not but not read as explanations (logistic regression,
        naive Bayes, soft trees, the student, readable families above a readable size), with ``what``
        saying what they are.
    text : str
        The verdict in words.
    """

    outcome: str
    bar: float
    bar_source: str
    raw: list[dict[str, Any]]
    features: list[dict[str, Any]]
    text: str
    others: list[dict[str, Any]] = field(default_factory=list)

    @property
    def best_raw(self) -> dict[str, Any] | None:
        return self.raw[0] if self.raw else None

    @property
    def best_features(self) -> dict[str, Any] | None:
        return self.features[0] if self.features else None

    def to_json(self) -> dict[str, Any]:
        return to_jsonable({
            "outcome": self.outcome, "bar": self.bar, "bar_source": self.bar_source,
            "raw": self.raw, "features": self.features, "others": self.others, "text": self.text,
        })


def _getter(m: Any) -> Any:
    return (lambda k: m.get(k)) if isinstance(m, Mapping) else (lambda k: getattr(m, k, None))


def _row(name: str, m: Any) -> dict[str, Any] | None:
    """``{"name", "agreement", "low", "high"}`` from a metrics row, a FidelityReport or an AuditResult."""
    get = _getter(m)
    agreement = get("agreement")
    if agreement is None:
        agreement = get("fidelity")
    metrics = get("metrics")
    if agreement is None and isinstance(metrics, Mapping):
        agreement = metrics.get("agreement")
    interval = get("interval") or get("fidelity_interval")
    intervals = get("intervals")
    if interval is None and isinstance(intervals, Mapping):
        interval = intervals.get("agreement")
    if agreement is None or interval is None:
        return None
    lo, hi = (float(v) for v in interval)
    return {"name": str(name), "agreement": float(agreement), "low": lo, "high": hi}


def _cleared(m: Any, row: dict[str, Any], gate: Gate) -> bool:
    """Whether a result passes ``gate``: its own verdict when it was taken at this bar and gate, else
    :func:`~explain_distill._gate.decide` over its per-class figures, else its lower end alone."""
    get = _getter(m)
    if isinstance(get("passed"), bool) and get("min_agreement") == gate.bar and get("gate") in (None, gate.gate):
        return bool(get("passed"))  # an AuditResult at this bar
    saved = get("gate")
    if isinstance(saved, Mapping) and saved.get("bar") == gate.bar and saved.get("gate") == gate.gate:
        return bool(saved.get("passed"))  # a metrics row judged at this bar
    stats = agreement_from(m)
    if stats is None:
        return bool(row["low"] >= gate.bar)
    names = [str(r["class"]) for r in (get("per_class") or (get("details") or {}).get("per_class") or [])]
    return decide(stats, gate, names or None).passed


def _what(name: str) -> str:
    """What a surrogate that is not read as an explanation is, in words."""
    family, label = _family(name)
    if label is not None and family in _LINEAR:
        return ("a linear model over the teacher's own features: near the network's own head, it says the head is "
                "near-linear, not why the network decides")
    if family in OPAQUE_FAMILIES:
        return "a network, not an explanation"
    if family in _LINEAR:
        return "a weight for every input and class: faithful or not, not read as an explanation"
    if readable_size(family) is not None:
        what = _NAMES.get(family, family)
        return f"a {what} larger than a person reads (more than {readable_size(family)} {_UNITS.get(family, 'parts')})"
    return "oblique splits over every input: faithful or not, not read as an explanation"


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _listing(rows: list[dict[str, Any]]) -> str:
    shown = [f"{r['name']} at {_pct(r['agreement'])} ({_pct(r['low'])}–{_pct(r['high'])})" for r in rows[:3]]
    more = f" and {len(rows) - 3} more" if len(rows) > 3 else ""
    return (", ".join(shown[:-1]) + " and " + shown[-1] if len(shown) > 1 else shown[0]) + more


def _verdict_text(raw: list[dict], feats: list[dict], others: list[dict], bar: float) -> tuple[str, str]:
    raw_ok = [r for r in raw if r["cleared"]]
    feat_ok = [r for r in feats if r["cleared"]]
    bar_words = (f"the bar of {_pct(bar)} agreement with the teacher (the lower end of the 95% interval must reach it, "
                 f"and every class the teacher predicts on at least 10 rows must be reproduced)")
    verb = lambda rows: "es" if len(rows) == 1 else ""  # noqa: E731
    if raw_ok:
        outcome = "inputs"
        text = (f"Over the raw inputs, the readable {_listing(raw_ok)} reach{verb(raw_ok)} {bar_words}: the network "
                f"can be explained in terms of its inputs by a model a person can read.")
        if feat_ok:
            text += f" Over its own pattern detectors, {_listing(feat_ok)} do{verb(feat_ok)} too."
    elif feat_ok:
        outcome = "patterns"
        lead = f"No readable surrogate over the raw inputs reaches {bar_words}"
        lead += f"; the most faithful is {_listing(raw[:1])}." if raw else "."
        text = (f"{lead} Over the teacher's own pattern detectors, the readable {_listing(feat_ok)} reach{verb(feat_ok)} "
                f"it. The network is explained in terms of its own detectors, not its inputs: the rules say which of "
                f"its learned patterns are present, and the pictures show what each pattern responds to.")
    else:
        outcome = "neither"
        parts = []
        if raw:
            parts.append(f"over the raw inputs (the most faithful: {_listing(raw[:1])})")
        if feats:
            parts.append(f"over the teacher's own pattern detectors (the most faithful: {_listing(feats[:1])})")
        if parts:
            text = (f"No readable surrogate {' nor '.join(parts)} reaches {bar_words}. No explanation in this run is "
                    f"faithful enough to stand for the network; read them as approximations, with their measured fidelity.")
        else:
            text = f"No readable surrogate (tree, rule list, sum of trees or additive model) was fitted, so none can be held to {bar_words}."
    ok_others = [r for r in others if r["cleared"]]
    if ok_others:
        text += (" Faithful but not read as explanations: " + "; ".join(f"{r['name']} at {_pct(r['agreement'])} "
                                                                     f"({r['what']})" for r in ok_others[:4]) + ".")
    return outcome, text


def pattern_verdict(
    results: Mapping[str, Any],
    *,
    bar: float | None = None,
    opaque: Sequence[str] = OPAQUE_FAMILIES,
    readable: Mapping[str, bool] | None = None,
    gate: str = "per_class",
) -> PatternVerdict:
    """The verdict over surrogates' fidelity: only readable families at readable sizes can explain.

    Parameters
    ----------
    results : dict of surrogate name -> fidelity
        Each value a ``Distillation.metrics["surrogates"]`` row, a
        :class:`~explain_distill.analysis.FidelityReport`, an
        :class:`~explain_distill.analysis.AuditResult` or a dict with ``agreement`` and ``interval``.
        Names ``FAMILY@SET`` are surrogates over features.
    bar : float in [0, 1], optional
        Default :data:`DEFAULT_BAR`.
    opaque : families that are networks (listed among the others as such).
    readable : dict of name -> bool, optional
        Whether each surrogate is a readable family at a readable size
        (:func:`explain_distill.distill.plan.readable_at`); by default its family is.
    gate : {"per_class", "agreement"}
        How the bar is held (:func:`explain_distill._gate.decide`).
    """
    source = "default" if bar is None else "min_agreement"
    bar = DEFAULT_BAR if bar is None else check_fraction(bar, "bar")
    rule = Gate(bar, gate=gate)  # type: ignore[arg-type]
    raw: list[dict[str, Any]] = []
    feats: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    for name, m in results.items():
        family, label = _family(name)
        row = _row(name, m)
        if row is None:
            continue
        row["cleared"] = _cleared(m, row, rule)
        is_readable = (readable or {}).get(name, readable_size(family) is not None) and family not in opaque
        if not is_readable:
            others.append({**row, "what": _what(name) if family not in opaque else "a network, not an explanation"})
            continue
        (raw if label is None else feats).append(row)
    for rows in (raw, feats, others):
        rows.sort(key=lambda r: (-r["low"], -r["agreement"], r["name"]))
    outcome, text = _verdict_text(raw, feats, others, bar)
    return PatternVerdict(outcome=outcome, bar=bar, bar_source=source, raw=raw, features=feats, text=text, others=others)


# ---------------------------------------------------------------------------- reading the surrogates
@dataclass
class PatternRule:
    """One rule of a surrogate over features: conditions -> class."""

    conditions: list[tuple[int, str, float]]
    text: list[str]
    cls: int
    p: float
    coverage: int
    agreement: float | None
    interval: tuple[float, float] | None
    leaf: int | None = None

    def to_json(self) -> dict[str, Any]:
        return to_jsonable({
            "conditions": [list(c) for c in self.conditions], "text": self.text, "class": self.cls, "p": self.p,
            "coverage": self.coverage, "agreement": self.agreement, "interval": self.interval, "leaf": self.leaf,
        })


@dataclass
class PatternSurrogateView:
    """What one surrogate over features says, in terms of patterns.

    Attributes
    ----------
    name, family, label : str
    kind : {"tree", "rules", "linear", "other"}
    rules : list of PatternRule
        Trees: one per leaf (by coverage of the test split); rule lists: in order, the else last.
    weights : list of dict
        Linear models: per class, the features that raise its score most
        (``{"class", "features": [(j, weight), ...]}``).
    channels : list of int
        The pattern channels it uses, most important first.
    """

    name: str
    family: str
    label: str
    kind: str
    rules: list[PatternRule] = field(default_factory=list)
    weights: list[dict[str, Any]] = field(default_factory=list)
    channels: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return to_jsonable({
            "name": self.name, "family": self.family, "label": self.label, "kind": self.kind,
            "rules": [r.to_json() for r in self.rules], "weights": self.weights, "channels": self.channels,
        })


def _rule_stats(mask: np.ndarray, same: np.ndarray) -> tuple[int, float | None, tuple[float, float] | None]:
    n = int(mask.sum())
    if not n:
        return 0, None, None
    k = int(same[mask].sum())
    return n, k / n, wilson_interval(k, n)


def _channel_of(fmap: Any, j: int) -> int | None:
    return fmap.describe(j).get("channel")


def _pattern_rule(view: Any, decision: int, p_of: Any, mask: np.ndarray, same: np.ndarray, leaf: int | None) -> PatternRule:
    """One decision of a view over features as a :class:`PatternRule` (conditions simplified, in words)."""
    conds = tightest(view.decision_conditions(decision))
    value = np.asarray(view.decision_value(decision), dtype=float)
    k = int(np.argmax(value))
    n, agr, itv = _rule_stats(mask, same)
    return PatternRule(conds, view.writer().texts(conds), k, p_of(value, k), n, agr, itv, leaf=leaf)


def _read_tree(view: Any, fmap: Any, F: np.ndarray, same: np.ndarray) -> tuple[list[PatternRule], list[int]]:
    leaf_of = np.asarray(view.inner.decision_of(F))
    rules = [_pattern_rule(view, leaf, lambda v, k: float(v[k] / max(v.sum(), 1e-12)), leaf_of == leaf, same, int(leaf))
             for leaf in view.decisions()]
    rules.sort(key=lambda r: (-r.coverage, r.leaf))
    # Channels by the training samples their splits route (the root's split routes them all).
    score: dict[int, float] = {}
    for nd in view.inner.nodes:
        if not nd.is_leaf and nd.feature is not None:
            c = _channel_of(fmap, nd.feature)
            if c is not None:
                score[c] = score.get(c, 0.0) + float(nd.n_samples or 0.0) + 1e-9
    return rules, sorted(score, key=lambda c: (-score[c], c))


def _read_rules(view: Any, fmap: Any, F: np.ndarray, same: np.ndarray) -> tuple[list[PatternRule], list[int]]:
    which = np.asarray(view.inner.decision_of(F))
    rules = []
    score: dict[int, float] = {}
    for r, rule in zip(view.decisions(), view.inner.rules):
        rules.append(_pattern_rule(view, r, lambda v, k: float(v[k]), which == r, same, None))
        for f, _, _ in rules[-1].conditions:
            c = _channel_of(fmap, f)
            if c is not None:
                score[c] = score.get(c, 0.0) + float(rule.get("coverage", 0.0)) + 1e-9
    return rules, sorted(score, key=lambda c: (-score[c], c))


def _read_linear(est: Any, fmap: Any, n_classes: int, top: int = 4) -> tuple[list[dict[str, Any]], list[int]]:
    coef = getattr(est, "coef_", None)
    if coef is None:
        coef = getattr(getattr(est, "estimator_", None), "coef_", None)
    coef = np.asarray(coef, dtype=float)
    if coef.ndim != 2:
        return [], []
    if coef.shape[0] == 1 and n_classes == 2:
        coef = np.vstack([-coef, coef])
    weights = []
    score: dict[int, float] = {}
    for k in range(coef.shape[0]):
        order = np.argsort(-coef[k], kind="stable")[:top]
        weights.append({"class": int(k), "features": [(int(j), float(coef[k, j])) for j in order if coef[k, j] > 0]})
    for j in range(coef.shape[1]):
        c = _channel_of(fmap, j)
        if c is not None:
            score[c] = max(score.get(c, 0.0), float(np.abs(coef[:, j]).max()))
    return weights, sorted(score, key=lambda c: (-score[c], c))


def _view(sur: FeatureSurrogate) -> Any:
    """The surrogate's view over its features, or None when its model has none (a linear model)."""
    try:
        return view_of(sur)
    except (TypeError, ValueError):
        return None


def read_feature_surrogate(
    sur: FeatureSurrogate, X: np.ndarray, teacher_pred: np.ndarray, name: str | None = None, *, F: np.ndarray | None = None
) -> PatternSurrogateView:
    """A :class:`PatternSurrogateView` of one surrogate over features, scored on ``X`` against ``teacher_pred``.

    ``F``: ``sur.features.transform(X)`` when the caller already has it.
    """
    fmap, est = sur.features, sur.estimator
    F = fmap.transform(X) if F is None else F
    s_pred = np.asarray(est.predict(F))
    same = s_pred == np.asarray(teacher_pred)
    out = PatternSurrogateView(name=name or sur.name, family=sur.family, label=fmap.label, kind="other")
    view = _view(sur)
    kind = None if view is None else view.kind
    try:
        if kind == "rules":
            out.kind = "rules"
            out.rules, out.channels = _read_rules(view, fmap, F, same)
        elif kind == "axis":
            out.kind = "tree"
            out.rules, out.channels = _read_tree(view, fmap, F, same)
        elif getattr(est, "coef_", None) is not None or getattr(getattr(est, "estimator_", None), "coef_", None) is not None:
            out.kind = "linear"
            out.weights, out.channels = _read_linear(est, fmap, len(sur.classes_))
    except (TypeError, ValueError, AttributeError) as exc:  # a family we cannot read: its fidelity still counts
        logger.info("could not read %s as rules or weights: %s", out.name, exc)
        out.kind = "other"
    return out


# ---------------------------------------------------------------------------- the whole analysis
@dataclass
class PatternAnalysis:
    """The surrogates over features of one run, the verdict and the pictures' data.

    Attributes
    ----------
    verdict : PatternVerdict
        At :data:`DEFAULT_BAR` (the report recomputes it at the run's ``min_agreement``).
    surrogates : list of PatternSurrogateView
    prototypes : PatternPrototypes or None
        For every channel a tree or rule list over patterns uses, and the linear models' strongest,
        from the training split (each rule's condition can show its pattern's picture).
    layer : str or None
    n_channels : int
    gallery : list of int
        The channels drawn in full in the gallery (at most ``max_patterns``, the most used first).
    """

    verdict: PatternVerdict
    surrogates: list[PatternSurrogateView]
    prototypes: PatternPrototypes | None = None
    layer: str | None = None
    n_channels: int = 0
    gallery: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return to_jsonable({
            "verdict": self.verdict.to_json(),
            "layer": self.layer,
            "n_channels": self.n_channels,
            "surrogates": [s.to_json() for s in self.surrogates],
            "prototypes": self.prototypes.to_json() if self.prototypes is not None else None,
            "gallery": list(self.gallery),
        })


def pattern_analysis(
    distillation: Any,
    *,
    bar: float | None = None,
    max_patterns: int = 16,
    top_k: int = 8,
) -> PatternAnalysis | None:
    """Read every surrogate over features of ``distillation``; None when it has none.

    Rules and their agreement are measured on the test split; the prototypes are searched in the
    training split, for the ``max_patterns`` most used patterns (the gallery) and every other pattern a
    tree or rule list over patterns uses (so each condition has its picture).
    """
    max_patterns = check_int(max_patterns, "max_patterns", low=1)
    sur = {n: e for n, e in distillation.surrogates.items() if isinstance(e, FeatureSurrogate)}
    if not sur:
        return None
    d = distillation.dataset
    metrics = distillation.metrics or distillation.evaluate()
    from ..distill.plan import readable_at

    verdict = pattern_verdict(metrics["surrogates"], bar=bar if bar is not None else getattr(distillation, "min_agreement", None),
                              gate=getattr(distillation, "gate", "per_class"),
                              readable={n: readable_at(n, e) for n, e in distillation.surrogates.items()})
    X = d.X_test
    t_pred = distillation.teacher.predict(X)
    columns: dict[int, np.ndarray] = {}  # each feature map run once over the test split
    views = []
    for n, e in sur.items():
        if id(e.features) not in columns:
            columns[id(e.features)] = e.features.transform(X)
        views.append(read_feature_surrogate(e, X, t_pred, name=n, F=columns[id(e.features)]))
    pmaps = [e.features for e in sur.values() if isinstance(e.features, PatternFeatures)]
    protos, layer, n_channels, gallery = None, None, 0, []
    if pmaps:
        fmap = pmaps[0]
        layer, n_channels = fmap.layer, fmap.n_channels
        # Interleave the surrogates' channel rankings so each one's most used patterns are drawn.
        ranked: list[int] = []
        lists = [v.channels for v in views if v.label == fmap.label and v.kind in ("tree", "rules")]
        lists += [v.channels for v in views if v.label == fmap.label and v.kind not in ("tree", "rules")]
        for i in range(max((len(x) for x in lists), default=0)):
            for lst in lists:
                if i < len(lst) and lst[i] not in ranked:
                    ranked.append(lst[i])
        # Every pattern a rule uses gets its picture; the others fill the gallery up to max_patterns.
        in_rules = [c for lst in lists[: sum(v.label == fmap.label and v.kind in ("tree", "rules") for v in views)]
                    for c in lst]
        gallery = ranked[:max_patterns]
        chans = gallery + [c for c in ranked if c in set(in_rules) and c not in set(gallery)]
        if chans:
            protos = fmap.prototypes(d.X_train, d.y_train, class_names=list(d.class_names), channels=chans, top_k=top_k)
    return PatternAnalysis(verdict=verdict, surrogates=views, prototypes=protos, layer=layer, n_channels=n_channels,
                           gallery=gallery if pmaps else [])

