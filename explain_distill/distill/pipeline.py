"""``distill()``: the one place where the teacher and the surrogates meet, read as its stages.

plan (every argument checked) -> transfer set (validation rows held out, soft labels at T) ->
feature columns -> fit the families (the student beside them) -> ladders and the smallest
faithful size -> the result, scored on the test split.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import sklearn
import torch

from .._version import __version__ as _version
from ..data import Dataset
from ..features import FeatureMap
from ..teacher import Teacher, teacher_check
from ..transfer import QuerySpec, TransferSet
from .fitting import Fitter, fit_families
from .ladders import fit_ladders
from .plan import DEFAULT_QUERIES, Plan, make_plan
from .result import Distillation
from .transfer_set import TransferStage, feature_columns, transfer_stage

__all__ = ["distill"]


def _info(plan: Plan, dataset: Dataset, stage: TransferStage, timings: dict[str, float],
          budget: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's provenance: versions, teachers, the transfer set's composition, timings, fingerprints."""
    counts = stage.transfer.counts()
    if plan.families:
        counts["validation (held out)"] = int(len(stage.X_val))
    info: dict[str, Any] = {
        "versions": {"explain_distill": _version, "python": platform.python_version(), "torch": torch.__version__,
                     "numpy": np.__version__, "sklearn": sklearn.__version__},
        "n_teachers": len(plan.teachers),
        "teacher_weights": plan.weights.tolist(),
        "transfer_set": counts,
        **({"queries_domain": dict(stage.transfer.domain)} if stage.transfer.domain else {}),
        "timings": {k: round(v, 4) for k, v in timings.items()},
        "data_sha256": dataset.fingerprint(),
        "teacher_sha256": plan.teacher.fingerprint(),
        "budget": {**dict(budget or {}), **({"queries": dict(stage.queries)} if stage.queries else {})},
    }
    if plan.maps:
        info["features"] = {label: {**fm.spec(), "n_columns": fm.n_features} for label, fm in plan.maps.items()}
    return info


def _frontier(plan: Plan, stage: TransferStage, choice: dict[str, Any]) -> dict[str, Any]:
    if not plan.families:
        return {}
    return {
        "min_agreement": plan.min_agreement,
        "validation": {"n": int(len(stage.X_val)), "rows": stage.val_rows.tolist(), "source": stage.source},
        "families": choice,
    }


def distill(
    teacher: Teacher | Sequence[Teacher],
    dataset: Dataset,
    *,
    surrogates: Sequence[str] | str | None = None,
    temperature: float = 4.0,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    weights: Sequence[float] | None = None,
    seed: int = 0,
    queries: QuerySpec | Mapping[str, Any] | None = DEFAULT_QUERIES,
    transfer: TransferSet | None = None,
    min_agreement: float | None = None,
    frontier: bool | None = None,
    ladders: Mapping[str, Sequence[int]] | None = None,
    features: Literal["auto", "patterns"] | Callable[[np.ndarray], Any] | FeatureMap | None = "auto",
    feature_layer: str | None = None,
    gate: Literal["per_class", "agreement"] = "per_class",
    min_class_agreement: float = 0.5,
) -> Distillation:
    """Distill ``teacher`` into explainable surrogates and score them on the test split.

    Parameters
    ----------
    teacher : Teacher or list of Teacher
        Several teachers have their soft labels averaged (``weights`` to weigh them); the first
        one is the reference the surrogates' fidelity is measured against.
    dataset : Dataset
    surrogates : list of str, optional
        Registry names (``explain_distill.SURROGATES``); defaults to every registered one of
        ``DEFAULT_SURROGATES``.
    temperature : float, default=4.0
        Softmax temperature of the soft labels (Hinton et al. 2015).
    params : dict of name -> dict, optional
        Hyper-parameters per surrogate, e.g. ``{"tree": {"max_depth": 8}}``.
    weights : list of float, optional
        One weight per teacher for averaging their soft labels (normalised; equal by default).
    seed : int
        Passed to every surrogate with a ``random_state``, and seeds the query synthesis.
    queries : dict or QuerySpec or None, default=DEFAULT_QUERIES
        Synthesized inputs the teacher labels on top of the training split.  Left at the default,
        they are sized to the data: at most ``QUERY_CELLS`` queries x features (28x28 images: 5,102
        instead of 20,000), recorded in ``info["budget"]["queries"]``.  Pass them to choose, e.g.
        ``{"jitter": 2000, "mixup": 2000, "class": 2000, "boundary": 2000}``
        (see :class:`explain_distill.transfer.QuerySpec`); ``None`` or ``{}`` for none.
    transfer : TransferSet, optional
        A precomputed transfer set (``build_transfer_set``) to fit on instead of building one;
        its temperature must equal ``temperature``.
    min_agreement : float in [0, 1], optional
        The bar for the smallest faithful model: per readable family (``readable_families``:
        tree, rules, soft_tree, ...), the smallest size on its ladder that passes ``gate`` on the
        validation split becomes that family's surrogate (logged; a family whose size you set in
        ``params`` keeps it).  When none passes the configured model stays and the log says so.
        The verdicts in ``metrics`` and the notebook table use the same bar.
    frontier : bool, optional
        Fit every readable family's ladder of sizes and hold out ``VALIDATION_FRACTION`` of the
        training rows (stratified, never the test split) to choose among them.  Default: on when
        ``distill`` builds the transfer set, off with a precomputed ``transfer`` (True then carves
        the validation rows out of the transfer set's training rows).
    ladders : dict of name -> list of int, optional
        Sizes (values of the family's ``size_param``) to sweep instead of its ``size_ladder``.
    features : {"auto", "patterns"}, callable, FeatureMap or None, default="auto"
        Surrogates over features instead of raw inputs.  A surrogate name ``NAME@patterns`` fits
        the registry family ``NAME`` on the teacher's pattern features (each channel of a
        convolutional layer: its strongest response over positions, and where;
        :class:`~explain_distill.features.PatternFeatures`); ``NAME@features`` on the columns of
        a user function passed here (inputs (n, d) -> a dict name -> (n,) array, or an (n, m)
        array).  When ``surrogates`` names none over the requested set, the
        ``DEFAULT_FEATURE_SURROGATES`` are added: with ``"patterns"`` or a function always, with
        ``"auto"`` when ``surrogates`` is not given and the teacher is convolutional.  ``None``
        adds none.  The fitted object answers on raw inputs (:class:`FeatureSurrogate`).
    feature_layer : str, optional
        Module name of the teacher layer the patterns are read from (default: the last
        convolution, after its activation).
    gate : {"per_class", "agreement"}, default="per_class"
        How the bar is held (:func:`explain_distill._gate.decide`): ``"per_class"`` passes when the
        lower end of the 95% interval of agreement reaches the bar *and* every teacher class holding
        at least 10 rows is reproduced (the lower end of its interval reaches 0.5), so a
        surrogate that ignores a class never passes; ``"agreement"`` checks agreement alone.
    min_class_agreement : float in [0, 1], default=0.5
        The per-class gate's floor on the lower end of each sizeable class's agreement interval.

    Notes
    -----
    The teacher is checked first (:func:`~explain_distill.teacher.teacher_check`): its test
    accuracy against a majority-class and a logistic baseline.  A teacher that does not beat them
    is logged as a warning and carried by the result (``result.teacher_warning``, shown first by
    ``print(result)``): fidelity to a broken network says nothing.
    """
    plan = make_plan(
        teacher, dataset, surrogates=surrogates, temperature=temperature, params=params, weights=weights, seed=seed,
        min_agreement=min_agreement, frontier=transfer is None if frontier is None else frontier, ladders=ladders,
        features=features, feature_layer=feature_layer, gate=gate, min_class_agreement=min_class_agreement,
    )
    t0 = time.perf_counter()
    check = teacher_check(plan.teacher, dataset, seed=seed)
    stage = transfer_stage(plan, dataset, transfer=transfer, queries=queries)
    timings = {"teacher_check_s": stage.started - t0, "soft_labels_s": stage.seconds}
    columns = feature_columns(plan, dataset, stage.transfer, timings)
    fitter = Fitter(plan, dataset, stage.transfer, columns, timings, queries=stage.queries, X_val=stage.X_val)
    fitted = fit_families(fitter)
    ladders_, choice = fit_ladders(fitter, fitted, stage.X_val)
    result = Distillation(
        teacher=plan.teacher, dataset=dataset, surrogates=fitted, temperature=plan.temperature, seed=seed,
        transfer=stage.transfer, info=_info(plan, dataset, stage, timings, fitter.budget), features=plan.maps, ladders=ladders_,
        frontier=_frontier(plan, stage, choice), min_agreement=plan.min_agreement, gate=gate, teacher_check=check,
        min_class_agreement=min_class_agreement,
    )
    result.evaluate()
    return result
