"""Stage 1 of ``distill``: check every argument and decide what will be fitted, before any work.

:func:`make_plan` returns a :class:`Plan`: the teachers and their weights, the surrogate names
(with the ``NAME@patterns`` defaults a convolutional teacher adds), the feature maps those names
read, the hyper-parameters per surrogate, the readable families whose ladders are swept and their
sizes, and the bar.  Everything the later stages need is decided here, so a bad argument fails in
milliseconds, not after the teacher has labelled a transfer set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._gate import GATES, Gate
from .._validation import check_choice, check_fraction, check_positive
from ..data import Dataset
from ..features import FEATURE_SETS, FeatureMap, FunctionFeatures, PatternFeatures, conv_layer_names
from ..surrogates import SURROGATES, readable_size
from ..teacher import Teacher
from ..transfer import check_teachers

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_FEATURE_SURROGATES",
    "DEFAULT_QUERIES",
    "DEFAULT_SURROGATES",
    "QUERY_CELLS",
    "EPOCHS_WITH_QUERIES",
    "FEATURE_PARAMS",
    "SIZE_PARAMS",
    "VALIDATED_PARAMS",
    "Plan",
    "VALIDATION_FRACTION",
    "make_plan",
    "readable_at",
    "readable_families",
    "resolve_surrogates",
    "sized_queries",
    "split_name",
]

#: Share of the training rows held out (stratified) to choose sizes on the frontier; never the test split.
VALIDATION_FRACTION = 0.2

#: What ``distill`` fits when ``surrogates`` is not given (those registered).  ``gam`` is registered
#: but not a default: on digits its boosted fit (both targets) takes ~20 s raw, where ``explain-distill
#: run`` has 60 s in all on 2 cores (name it to fit it; ``method="spline"``: ~7 s).
DEFAULT_SURROGATES: tuple[str, ...] = (
    "soft_tree", "soft_tree_sparse", "tree", "logistic", "naive_bayes", "rules", "figs", "student",
)

#: Families fitted over a feature set (``"tree@patterns"``, ...) when ``features`` asks for one and
#: ``surrogates`` names none over it.  ``figs@patterns`` and ``gam@patterns`` are left to be named:
#: on digits (192 pattern columns) they cost ~10 s and ~40 s of a 60 s run, where logistic@patterns
#: already follows the teacher (0.998) and tree@patterns reaches 0.96 at 32 leaves.
DEFAULT_FEATURE_SURROGATES: tuple[str, ...] = ("tree", "rules", "logistic")

#: Defaults of a family over features that differ from its raw-input defaults (user ``params`` win):
#: a rule list over pattern detectors needs about three rules per class (mnist1d, 10 classes:
#: 0.85 fidelity with 12 rules, 0.92 with 29 plus the else rule).  A sum of
#: trees over pattern columns (most of them zero: a detector that does not fire) splits on 16 bins per column
#: instead of 64: at 16 / 32 / 64 / 128 leaves, digits' patterns 0.947 / 0.987 / 0.989 / 0.996 test fidelity
#: against 0.942 / 0.951 / 0.964 / 0.993, 28x28 digits under a LeNet (576 columns) 0.742 / 0.857 / 0.915 /
#: 0.936 against 0.701 / 0.864 / 0.904 / 0.943, and the fit 2.2x faster there (13.3 s against 29.9 s).
FEATURE_PARAMS: dict[str, dict[str, Any]] = {"rules": {"max_rules": 29}, "figs": {"max_bins": 16}}

#: Sizes ``distill`` gives a family on every input (raw or features) unless the user sets any of its size
#: settings (its ``size_param`` or ``ladder_params``; then none of these apply): the tree grows best-first to
#: 64 leaves -- as many as depth 6 allows, the split that lowers the loss most first -- which is a rung of
#: its ladder, so one fit gives both (digits: the depth-6 tree and a 256-leaf ladder fit cost 2.0 + 2.2 s);
#: over pattern detectors it is also the more faithful (mnist1d, 3 seeds: 0.936 mean fidelity, against 0.905
#: for depth 6 level by level).
SIZE_PARAMS: dict[str, dict[str, Any]] = {"tree": {"max_leaf_nodes": 64, "max_depth": None}}

#: Settings ``distill`` gives a family when it holds out validation rows (the frontier is on; user
#: ``params`` win): the choices the family makes on those real held-out rows, passed to its ``fit`` as
#: ``validation=(X_val, P_val)``.  The tree grows one candidate per (soft or hard target, entropy or
#: squared-error criterion) and keeps, at each size, the most faithful on validation: with hard targets
#: the candidates are scikit-learn's own entropy and Gini trees on the teacher's labels, so the tree at a
#: size is never one a plain scikit-learn fit would beat on validation (digits, 3 seeds: benchmarks/RESULTS.md).
#: The sum of trees grows FIGS's own model beside its own (squared error on hard labels, any depth) and keeps,
#: per size, the more faithful: on mnist1d's raw inputs FIGS's choice leads at 16 and 64 leaves, on digits ours.
#: The tree kept at each size then has its splits re-chosen for agreement with the teacher (``refine``: tree
#: alternating optimisation on the fitting rows), kept unless the validation rows say it is worse beyond
#: chance: over 10 seeds of digits and mnist1d, raw and over patterns, +0.005 fidelity on average at 16 / 64 /
#: 256 leaves (benchmarks/RESULTS.md).
VALIDATED_PARAMS: dict[str, dict[str, Any]] = {
    "tree": {"target": "auto", "criterion": "auto", "refine": True},
    "figs": {"loss": "auto"},
    "gam": {"target": "auto"},  # mnist1d raw, boosted: hard labels 0.446, soft 0.429 (not a default family: no cost to a run)
}

#: Queries the teacher labels on top of the training split when ``queries`` is not given: Gaussian
#: jitter (0.5 std) and mixup.  Chosen on digits: with the "entropy" tree they lift the depth-8
#: tree's fidelity from ~0.83 (hard labels) to ~0.90 (benchmarks/RESULTS.md, bench_fidelity).
DEFAULT_QUERIES: dict[str, int] = {"jitter": 10000, "mixup": 10000}

#: Cells (queries x features) the default queries may fill: the synthesized set is sized to the data
#: instead of a fixed 20,000 rows, since every surrogate's cost grows with rows x features.  Up to 200
#: features (digits' 64, tables) the default stays 20,000; 28x28 images (784) get 5,102 queries on top
#: of the training rows, 3x32x32 (3,072) 1,302.  On 28x28 digits every surrogate's fidelity stays
#: within ~0.01 of the 20,000-query run at a quarter of the rows (benchmarks/RESULTS.md).
QUERY_CELLS = 4_000_000


def sized_queries(n_features: int) -> tuple[dict[str, int], dict[str, Any] | None]:
    """The default queries for ``n_features`` inputs: ``DEFAULT_QUERIES`` scaled down so that they fill at
    most ``QUERY_CELLS`` cells, in the same proportions.  Returns (queries, the decision as plain data or
    None when the default fits)."""
    total = sum(DEFAULT_QUERIES.values())
    cap = max(1, QUERY_CELLS // max(int(n_features), 1))
    if total <= cap:
        return dict(DEFAULT_QUERIES), None
    out = {k: max(1, int(v * cap // total)) for k, v in DEFAULT_QUERIES.items()}
    return out, {"default": total, "used": sum(out.values()), "cells": QUERY_CELLS, "n_features": int(n_features)}

#: Epochs of the network surrogates when the transfer set carries synthesized queries and the
#: user set none: the set is then ~16x the training split (digits, default queries), so fewer
#: passes already see far more samples than the estimators' defaults (tuned on a training split
#: alone) assume.  Measured on digits: soft_tree 0.976 fidelity at 10 epochs (3.9 s) vs 0.969 at
#: 40 (14.7 s); student 0.989 at 10 epochs vs 0.993 at 30 (21 s).
EPOCHS_WITH_QUERIES: dict[str, int] = {"soft_tree": 10, "soft_tree_sparse": 10, "student": 12}


def split_name(name: str) -> tuple[str, str | None]:
    """``"tree@patterns"`` -> ``("tree", "patterns")``; ``"tree"`` -> ``("tree", None)``."""
    family, sep, label = name.partition("@")
    return family, (label if sep else None)


def resolve_surrogates(surrogates: Sequence[str] | str | None, *, what: str = "surrogates") -> list[str]:
    """Registry names from a list or a comma-separated string (every registered default when None).

    Checked before any work: unknown or repeated names raise ValueError listing what is available.
    """
    if surrogates is None:
        return [s for s in DEFAULT_SURROGATES if s in SURROGATES]
    if isinstance(surrogates, str):
        surrogates = [s.strip() for s in surrogates.split(",") if s.strip()]
    names = list(surrogates)
    if not names:
        raise ValueError(f"No surrogates requested in {what}; choose from: {', '.join(SURROGATES)}.")
    bad = [s for s in names if not isinstance(s, str)]
    if bad:
        raise TypeError(f"Surrogate names must be strings; received {bad[:3]!r} in {what}.")
    unknown = [s for s in names if split_name(s)[0] not in SURROGATES]
    if unknown:
        raise ValueError(
            f"Unknown surrogate(s) {unknown} in {what}. Available: {', '.join(SURROGATES)}, each also over the "
            f"teacher's pattern features as NAME@patterns (or over features=your_function as NAME@features)."
        )
    sets = [s for s in names if split_name(s)[1] is not None and split_name(s)[1] not in FEATURE_SETS]
    if sets:
        raise ValueError(
            f"Unknown feature set in {sets}: after '@' write one of {', '.join(FEATURE_SETS)} "
            f"('patterns': the teacher's convolutional channels; 'features': the function passed as features=)."
        )
    if len(set(names)) != len(names):
        raise ValueError(f"Surrogate names repeat in {what} {names}; list each once.")
    return names


def readable_families(names: Sequence[str]) -> list[str]:
    """The surrogate names among ``names`` whose class has a size to sweep (the frontier protocol:
    class attributes ``size_unit``, ``size_param``, ``size_ladder`` and a fitted ``size_``), raw
    (``tree``) or over features (``tree@patterns``)."""
    out = []
    for n in names:
        family = split_name(n)[0]
        if family in SURROGATES and getattr(SURROGATES[family], "size_param", None):
            out.append(n)
    return out


def readable_at(name: str, estimator: Any = None, *, size: int | None = None) -> bool:
    """Whether surrogate ``name`` (``tree``, ``rules@patterns``, ...) is a readable family at a readable
    size (``surrogates.READABLE_SIZES``); its size is ``size`` or the fitted estimator's ``size_``."""
    limit = readable_size(split_name(name)[0])
    if limit is None:
        return False
    if size is None:
        inner = getattr(estimator, "estimator", estimator)  # a FeatureSurrogate wraps the fitted family
        size = getattr(inner, "size_", None)
    return size is not None and int(size) <= limit


def _is_convolutional(teacher: Teacher) -> bool:
    return teacher.input_shape is not None and len(teacher.input_shape) in (2, 3) and bool(conv_layer_names(teacher.module))


def _check_features_arg(features: Any, feature_layer: str | None) -> None:
    if isinstance(features, str) and features not in ("auto", "patterns"):
        raise ValueError(
            f"features must be 'auto', 'patterns', None, a function from inputs to named features, or a FeatureMap; "
            f"received {features!r}."
        )
    if features is not None and not isinstance(features, (str, FeatureMap)) and not callable(features):
        raise TypeError(
            f"features must be 'auto', 'patterns', None, a function from inputs to named features, or a FeatureMap; "
            f"received {type(features).__name__}."
        )
    if feature_layer is not None and not isinstance(feature_layer, str):
        raise TypeError(f"feature_layer must be a module name (str); received {type(feature_layer).__name__}.")


def _feature_label(surrogates: Any, features: Any, teacher: Teacher) -> str | None:
    """The feature set whose default surrogates ``features`` asks for (None: add none)."""
    auto = isinstance(features, str) and features == "auto"
    if features == "patterns" or (auto and surrogates is None and _is_convolutional(teacher)):
        return "patterns"
    if isinstance(features, FeatureMap):
        return features.label
    if features is not None and not isinstance(features, str):
        return "features"
    return None


def _feature_plan(
    names: list[str], surrogates: Any, features: Any, feature_layer: str | None, teacher: Teacher,
    keep: Sequence[str] = (),
) -> tuple[list[str], dict[str, FeatureMap]]:
    """Add the default feature surrogates ``features`` asks for and build the maps the names need
    (default families named in ``keep``, those the user gave settings for, are never left out)."""
    _check_features_arg(features, feature_layer)
    label = _feature_label(surrogates, features, teacher)
    added = label is not None and not any(split_name(n)[1] == label for n in names)
    if added:
        names = names + [f"{f}@{label}" for f in DEFAULT_FEATURE_SURROGATES if f in SURROGATES]
    maps: dict[str, FeatureMap] = {}
    for lab in dict.fromkeys(split_name(n)[1] for n in names):
        if lab is None:
            continue
        if isinstance(features, FeatureMap) and features.label == lab:
            maps[lab] = features
        elif lab == "patterns":
            maps[lab] = PatternFeatures(teacher, layer=feature_layer)
        elif features is None or isinstance(features, str):
            raise ValueError(
                f"Surrogates over '@features' ({[n for n in names if n.endswith('@features')]}) need features=a function "
                f"from inputs (n, d) to named features (a dict name -> (n,) array, or an (n, m) array)."
            )
        else:
            maps[lab] = FunctionFeatures(features, n_features_in=teacher.n_features)
    if feature_layer is not None and "patterns" not in maps:
        raise ValueError(f"feature_layer={feature_layer!r} was given but no surrogate is fitted over 'patterns'.")
    if added and label == "patterns" and getattr(maps.get("patterns"), "grid", 1) > 1 and "figs" in SURROGATES:
        # Patterns per grid region (images of side >= 16): a sum of small trees is the readable family
        # that follows the network there (28x28 digits, LeNet: figs@patterns 0.926 at 64 leaves on the
        # test split, rules@patterns 0.883 at 30 rules, tree@patterns 0.815 at 64 leaves; bench_images).
        names = names + ["figs@patterns"]
        gone = [n for n in _GIVE_WAY_TO_PATTERNS if n in names and n not in keep] if surrogates is None else []
        if gone:
            names = [n for n in names if n not in gone]
            logger.info("%s over the raw pixels left out of the defaults: %s read the teacher's patterns per region "
                        "instead (name them in surrogates to fit them)", " and ".join(gone),
                        " and ".join(f"{n}@patterns" for n in gone))
    return names, maps


#: Default families over raw pixels that give way to the same family over the teacher's patterns where those
#: are read per grid region (images of side >= 16): on 28x28 digits under a LeNet the rule list over pixels
#: followed the network on 0.643 of the test images at 30 rules (rules@patterns 0.861) and the sum of trees
#: on 0.744 at 64 leaves (figs@patterns 0.915), for 17 s and 36 s of a 114 s run; on 3x32x32 colour digits
#: the rule list took 825 s over 3,072 columns for 0.321.  The tree over pixels stays: one pixel-level model.
_GIVE_WAY_TO_PATTERNS = ("rules", "figs")


def _check_params(params: Mapping[str, Mapping[str, Any]] | None, names: list[str]) -> dict[str, dict[str, Any]]:
    params = {k: dict(v) for k, v in dict(params or {}).items()}
    unknown = [k for k in params if k not in names]
    if unknown:
        raise ValueError(f"params given for {unknown}, which are not among the requested surrogates {names}.")
    for name, user in params.items():
        accepted = SURROGATES[split_name(name)[0]]().get_params(deep=False)
        bad = [k for k in user if k not in accepted]
        if bad:
            raise ValueError(f"{name}: unknown parameter(s) {bad}; it accepts {sorted(accepted)}.")
    return params


def _check_ladders(ladders: Mapping[str, Sequence[int]] | None, families: list[str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for name, sizes in dict(ladders or {}).items():
        if name not in families:
            raise ValueError(
                f"ladders given for {name!r}, which is not a readable family among the requested surrogates "
                f"({', '.join(families) or 'none'}); the frontier sweeps only those."
            )
        try:
            values = sorted({int(v) for v in sizes})
        except (TypeError, ValueError) as exc:
            raise TypeError(f"ladders[{name!r}] must be a list of integers; received {sizes!r}.") from exc
        if not values or values[0] < 1:
            raise ValueError(f"ladders[{name!r}] must hold positive integers; received {sizes!r}.")
        out[name] = values
    return out


@dataclass
class Plan:
    """What one ``distill`` call will do, decided before any work.

    Attributes
    ----------
    teachers : list of Teacher
        The first is the reference fidelity is measured against.
    weights : ndarray
        One normalised weight per teacher for averaging their soft labels.
    names : list of str
        The surrogates to fit, in the order asked for (``NAME@label`` over feature set ``label``).
    maps : dict of str -> FeatureMap
        The feature maps the ``NAME@label`` surrogates read.
    params : dict of name -> dict
        The user's hyper-parameters per surrogate.
    families : list of str
        Readable families whose ladder of sizes is fitted (empty without a frontier).
    ladder_sizes : dict of name -> list of int
        Sizes the user asked for instead of a family's ``size_ladder``.
    temperature : float
    seed : int
    min_agreement : float or None
    gate : Gate or None
        The rule the bar is held to on the validation split (None without a bar).
    """

    teachers: list[Teacher]
    weights: np.ndarray
    names: list[str]
    maps: dict[str, FeatureMap]
    params: dict[str, dict[str, Any]]
    families: list[str]
    ladder_sizes: dict[str, list[int]] = field(default_factory=dict)
    temperature: float = 4.0
    seed: int = 0
    min_agreement: float | None = None
    gate: Gate | None = None

    @property
    def teacher(self) -> Teacher:
        return self.teachers[0]

    def sizes(self, name: str) -> list[int]:
        """The ladder of ``name``: the user's sizes or its family's ``size_ladder``."""
        return self.ladder_sizes.get(name) or list(SURROGATES[split_name(name)[0]].size_ladder)


def make_plan(
    teacher: Teacher | Sequence[Teacher],
    dataset: Dataset,
    *,
    surrogates: Sequence[str] | str | None,
    temperature: float,
    params: Mapping[str, Mapping[str, Any]] | None,
    weights: Sequence[float] | None,
    seed: int,
    min_agreement: float | None,
    frontier: bool,
    ladders: Mapping[str, Sequence[int]] | None,
    features: str | Callable[[np.ndarray], Any] | FeatureMap | None,
    feature_layer: str | None,
    gate: str = "per_class",
    min_class_agreement: float = 0.5,
) -> Plan:
    """Check every argument of ``distill`` and decide what it fits (see :class:`Plan`)."""
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be an explain_distill Dataset; received {type(dataset).__name__}.")
    temperature = check_positive(temperature, "temperature", upper=1e4)
    teachers, w = check_teachers(teacher, weights)
    ref = teachers[0]
    if ref.n_classes != dataset.n_classes:
        raise ValueError(
            f"The teacher has {ref.n_classes} classes ({ref.class_names}) but the data set has "
            f"{dataset.n_classes} ({dataset.class_names}); distill a teacher trained on this data."
        )
    names, maps = _feature_plan(resolve_surrogates(surrogates), surrogates, features, feature_layer, ref,
                                keep=tuple(dict(params or {})))
    params = _check_params(params, names)
    check_choice(gate, "gate", GATES)
    min_class_agreement = check_fraction(min_class_agreement, "min_class_agreement")
    if min_agreement is not None:
        min_agreement = check_fraction(min_agreement, "min_agreement")
    families = readable_families(names) if frontier else []
    ladder_sizes = _check_ladders(ladders, families)
    if min_agreement is not None and not families:
        logger.warning("min_agreement=%s: no readable family (%s) among the surrogates %s, nothing to choose",
                       min_agreement, ", ".join(readable_families(list(SURROGATES))), names)
    return Plan(teachers=teachers, weights=w, names=names, maps=maps, params=params, families=families,
                ladder_sizes=ladder_sizes, temperature=temperature, seed=seed, min_agreement=min_agreement,
                gate=None if min_agreement is None else Gate(min_agreement, gate=gate,  # type: ignore[arg-type]
                                                             min_class_agreement=min_class_agreement))
