"""The transfer set: inputs paired with the teacher's soft labels at temperature T.

Soft labels are softmax(z / T) of the teacher's logits z (Hinton et al. 2015).  With several
teachers the soft labels are their (optionally weighted) average.  Inputs come from the training
split; synthesized queries (added by :func:`build_transfer_set`'s ``queries``) extend it where the
training data is thin.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._validation import check_array_2d, check_positive
from .teacher import Teacher

logger = logging.getLogger(__name__)

__all__ = ["TransferSet", "soft_labels", "build_transfer_set", "check_teachers"]


@dataclass
class TransferSet:
    """What the surrogates learn from.

    Attributes
    ----------
    X : ndarray (n, n_features), float32
    P : ndarray (n, n_classes), float32
        The teachers' soft labels at ``temperature``; rows sum to 1.
    temperature : float
    y : ndarray (n,), int64
        True labels for rows that came from the data, -1 for synthesized queries.
    source : ndarray (n,), int8
        Index into ``source_names`` telling where each row came from.
    source_names : list of str
    """

    X: np.ndarray
    P: np.ndarray
    temperature: float
    y: np.ndarray
    source: np.ndarray
    source_names: list[str] = field(default_factory=lambda: ["train"])

    def __len__(self) -> int:
        return len(self.X)

    @property
    def n_real(self) -> int:
        return int(np.sum(self.y >= 0))

    def counts(self) -> dict[str, int]:
        return {name: int(np.sum(self.source == i)) for i, name in enumerate(self.source_names)}


def check_teachers(teachers: Teacher | Sequence[Teacher], weights: Sequence[float] | None = None) -> tuple[list[Teacher], np.ndarray]:
    """A non-empty list of teachers that agree on their classes, and normalised weights."""
    if isinstance(teachers, Teacher):
        teachers = [teachers]
    teachers = list(teachers)
    if not teachers:
        raise ValueError("At least one teacher is needed; received an empty list.")
    for i, t in enumerate(teachers):
        if not isinstance(t, Teacher):
            raise TypeError(
                f"teachers[{i}] is a {type(t).__name__}; wrap your module first: Teacher(module, class_names=[...])."
            )
    k0 = teachers[0].n_classes
    for i, t in enumerate(teachers[1:], start=1):
        if t.n_classes != k0:
            raise ValueError(
                f"Teachers disagree on the number of classes: teachers[0] has {k0} ({teachers[0].class_names}) "
                f"and teachers[{i}] has {t.n_classes} ({t.class_names}). All teachers must share one label set."
            )
        if t.class_names != teachers[0].class_names:
            raise ValueError(
                f"Teachers disagree on the class order: teachers[0] has {teachers[0].class_names} and "
                f"teachers[{i}] has {t.class_names}."
            )
    if weights is None:
        w = np.full(len(teachers), 1.0 / len(teachers))
    else:
        w = np.asarray(list(weights), dtype=np.float64)
        if w.shape != (len(teachers),):
            raise ValueError(f"weights has {w.size} entries for {len(teachers)} teachers; pass one weight per teacher.")
        if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be non-negative, finite and not all zero; received {w.tolist()}.")
        w = w / w.sum()
    return teachers, w


def soft_labels(
    teachers: Teacher | Sequence[Teacher],
    X: Any,
    *,
    temperature: float = 1.0,
    weights: Sequence[float] | None = None,
) -> np.ndarray:
    """The (weighted) mean of the teachers' ``predict_proba(X, temperature)``, float32 (n, K)."""
    temperature = check_positive(temperature, "temperature")
    teachers, w = check_teachers(teachers, weights)
    X = check_array_2d(X, name="X", dtype=None)
    P = np.zeros((len(X), teachers[0].n_classes), dtype=np.float64)
    for t, wi in zip(teachers, w):
        P += wi * t.predict_proba(X, temperature=temperature)
    return P.astype(np.float32)


def build_transfer_set(
    teachers: Teacher | Sequence[Teacher],
    X: Any,
    y: Any = None,
    *,
    temperature: float = 4.0,
    weights: Sequence[float] | None = None,
) -> TransferSet:
    """Label the training inputs ``X`` with the teachers' soft labels at ``temperature``."""
    X = check_array_2d(X, name="X", dtype=np.float32)
    P = soft_labels(teachers, X, temperature=temperature, weights=weights)
    y_arr = np.full(len(X), -1, dtype=np.int64) if y is None else np.asarray(y, dtype=np.int64)
    return TransferSet(
        X=X, P=P, temperature=float(temperature), y=y_arr, source=np.zeros(len(X), dtype=np.int8), source_names=["train"]
    )
