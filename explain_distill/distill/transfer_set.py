"""Stages 2 and 3 of ``distill``: the transfer set the surrogates learn from, and the feature columns.

:func:`transfer_stage` holds a validation split out of the training rows (for choosing sizes, never
the test split), has the teachers label the rest and the synthesized queries at temperature T (or
checks a precomputed transfer set), and returns them as :class:`TransferStage`.
:func:`feature_columns` maps the transfer set's inputs through every feature map once, batched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._progress import progress
from ..data import Dataset
from ..features import PatternFeatures
from ..transfer import QuerySpec, TransferSet, build_transfer_set
from .plan import DEFAULT_QUERIES, VALIDATION_FRACTION, Plan, sized_queries

logger = logging.getLogger(__name__)

__all__ = ["TransferStage", "transfer_stage", "feature_columns"]


@dataclass
class TransferStage:
    """The transfer set and the validation rows held out of it.

    Attributes
    ----------
    transfer : TransferSet
    val_rows : ndarray of int
        Indices into ``dataset.X_train`` held out (empty when carved from a precomputed set).
    X_val : ndarray
        The validation inputs (scaled), ``dataset.X_train[val_rows]`` or carved rows.
    seconds : float
    started : float
        ``time.perf_counter()`` when the stage began.
    queries : dict or None
        When the default queries were sized to the data (``sized_queries``): the decision (default
        and used counts, the cell budget); None otherwise.
    """

    transfer: TransferSet
    val_rows: np.ndarray
    X_val: np.ndarray
    seconds: float
    started: float = 0.0
    queries: dict[str, Any] | None = None

    @property
    def source(self) -> str:
        return "training split" if len(self.val_rows) else "transfer set's training rows"


def _validation_rows(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(validation rows, fitting rows) of the training split: stratified when every class allows it."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None
    fit_rows, val_rows = train_test_split(rows, test_size=VALIDATION_FRACTION, random_state=seed, stratify=stratify)
    return np.sort(val_rows), np.sort(fit_rows)


def _carve_from_transfer(transfer: TransferSet, seed: int) -> tuple[TransferSet, np.ndarray]:
    """Hold out a share of a precomputed transfer set's training rows (loaded into memory)."""
    real = np.nonzero(np.asarray(transfer.source) == 0)[0]
    rng = np.random.default_rng(seed)
    val = np.sort(rng.choice(real, max(1, int(round(VALIDATION_FRACTION * len(real)))), replace=False))
    keep = np.ones(len(transfer), dtype=bool)
    keep[val] = False
    X = np.asarray(transfer.X)
    rest = TransferSet(X=X[keep], P=np.asarray(transfer.P)[keep], temperature=transfer.temperature,
                       y=np.asarray(transfer.y)[keep], source=np.asarray(transfer.source)[keep],
                       source_names=list(transfer.source_names))
    return rest, X[val]


def check_transfer(transfer: Any, dataset: Dataset, temperature: float) -> None:
    """A precomputed transfer set must come from this data set's features and classes, at this temperature."""
    if not isinstance(transfer, TransferSet):
        raise TypeError(f"transfer must be a TransferSet (from build_transfer_set); received {type(transfer).__name__}.")
    if transfer.X.shape[1] != dataset.n_features or transfer.P.shape[1] != dataset.n_classes:
        raise ValueError(
            f"The transfer set has {transfer.X.shape[1]} features and {transfer.P.shape[1]} classes but the data set has "
            f"{dataset.n_features} and {dataset.n_classes}; build it from this data set's teacher and inputs."
        )
    if abs(transfer.temperature - temperature) > 1e-12:
        raise ValueError(
            f"The transfer set was labelled at temperature {transfer.temperature} but distill got temperature="
            f"{temperature}; pass temperature={transfer.temperature} (or rebuild the transfer set)."
        )


def transfer_stage(
    plan: Plan, dataset: Dataset, *, transfer: TransferSet | None, queries: QuerySpec | Mapping[str, Any] | None
) -> TransferStage:
    """The transfer set (built, or the precomputed one checked) and the validation rows held out of it."""
    t0 = time.perf_counter()
    val_rows = np.zeros(0, dtype=np.int64)
    sized = None
    if transfer is None and queries is DEFAULT_QUERIES:  # the user left the default: size it to the data
        queries, sized = sized_queries(dataset.n_features)
        if sized is not None:
            logger.info("queries: %d instead of the default %d (%s): %d features x %d queries stay within the budget "
                        "of %d cells (QUERY_CELLS; pass queries= to choose)", sized["used"], sized["default"],
                        ", ".join(f"{k} {v}" for k, v in queries.items()), dataset.n_features, sized["used"],
                        sized["cells"])
    if transfer is None:
        fit_rows = np.arange(len(dataset.X_train))
        if plan.families:
            val_rows, fit_rows = _validation_rows(dataset.y_train, plan.seed)
        transfer = build_transfer_set(
            plan.teachers, dataset.X_train[fit_rows], dataset.y_train[fit_rows], temperature=plan.temperature,
            weights=plan.weights, queries=queries or None, seed=plan.seed, domain=dataset.domain(),
        )
    else:
        check_transfer(transfer, dataset, plan.temperature)
    X_val = dataset.X_train[val_rows]
    if plan.families and not len(val_rows):
        transfer, X_val = _carve_from_transfer(transfer, plan.seed)
    return TransferStage(transfer=transfer, val_rows=val_rows, X_val=X_val, seconds=time.perf_counter() - t0, started=t0,
                         queries=sized)


#: Rows mapped through a feature map at a time by :func:`feature_columns` (a progress bar counts them).
FEATURE_BLOCK = 8192


def _transform_blocks(fm: Any, X: np.ndarray, label: str) -> np.ndarray:
    """``fm.transform(X)`` in blocks of ``FEATURE_BLOCK`` rows, with a progress bar on long runs."""
    if len(X) <= FEATURE_BLOCK:
        return fm.transform(X)
    parts = []
    with progress(len(X), f"{label} features", unit="row") as bar:
        for start in range(0, len(X), FEATURE_BLOCK):
            parts.append(fm.transform(X[start : start + FEATURE_BLOCK]))
            bar.update(len(parts[-1]))
    return np.concatenate(parts)


def feature_columns(plan: Plan, dataset: Dataset, transfer: TransferSet, timings: dict[str, float]) -> dict[str, np.ndarray]:
    """Each feature set's columns of the transfer set's inputs (label -> (n, m)), mapped once, batched,
    on the teacher's device; a pattern map is first fitted on the training split (its response units)."""
    columns: dict[str, np.ndarray] = {}
    for label, fm in plan.maps.items():
        t1 = time.perf_counter()
        if isinstance(fm, PatternFeatures) and fm.scale is None:
            fm.fit(dataset.X_train)  # responses in units of each channel's top-1% response on the training data
        columns[label] = _transform_blocks(fm, transfer.X, label)
        timings[f"features_{label}_s"] = time.perf_counter() - t1
        logger.info("%s features: %d columns in %.2fs", label, columns[label].shape[1], timings[f"features_{label}_s"])
    return columns
