"""Node-local queries (TREPAN, Craven and Shavlik 1996): new inputs drawn inside a node's region.

A tree that grows deep runs out of transfer rows: a node holding a handful of rows picks its split,
and predicts, from those few.  TREPAN draws new inputs inside the node's own region -- the split
bounds on its path -- from the data's distribution there, and has the teacher label them.

Here the "teacher" is an ``oracle``: a plain callable ``X -> soft labels (n, K)`` that ``distill``
builds from the teacher(s) at the run's temperature (surrogates never see a teacher).  The
:class:`RegionSampler` draws from the rows already in the node: a random convex combination of two
of them (the box is convex, so it stays inside) plus Gaussian jitter of ``jitter`` times each
feature's spread, clipped to the box and to the range of the data.  Where the oracle carries a
``project`` (``distill`` gives it the data's ``Domain.project``: one level hot per one-hot group,
0/1 columns in {0, 1}, integers integral), each draw is moved into the data's domain and a draw
that the move took out of the node's box is dropped, so the teacher is never asked about an input
that cannot exist.  :class:`QueryBudget` caps the teacher calls one fit may make.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._validation import check_soft_labels

__all__ = ["RegionSampler", "QueryBudget", "call_oracle", "check_oracle", "in_box"]


def check_oracle(oracle: Any) -> Callable[[np.ndarray], Any] | None:
    if oracle is not None and not callable(oracle):
        raise TypeError(
            f"oracle must be a callable X -> soft labels (n, n_classes), e.g. lambda X: teacher.predict_proba(X, T); "
            f"received {type(oracle).__name__}."
        )
    return oracle


def call_oracle(oracle: Callable[[np.ndarray], Any], Q: np.ndarray, n_classes: int) -> np.ndarray:
    """The oracle's soft labels for ``Q``, checked: (len(Q), n_classes) rows that are distributions."""
    out = oracle(Q)
    return check_soft_labels(out, name="the oracle's labels", n_classes=n_classes)


class QueryBudget:
    """How many more inputs the oracle may label in this fit."""

    def __init__(self, total: int) -> None:
        self.left = int(total)
        self.used = 0

    def take(self, m: int) -> int:
        m = max(0, min(int(m), self.left))
        self.left -= m
        self.used += m
        return m

    def give_back(self, m: int) -> None:
        """Return ``m`` taken inputs that were not labelled after all (dropped outside the domain)."""
        m = max(0, min(int(m), self.used))
        self.left += m
        self.used -= m


def in_box(Q: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per row of float32 ``Q``: inside the node's box ``lo < x <= hi`` (the tree's own float32 test)."""
    Qd = np.asarray(Q, dtype=np.float32).astype(np.float64)
    return ((Qd > np.asarray(lo, dtype=np.float64)) & (Qd <= np.asarray(hi, dtype=np.float64))).all(axis=1)


def _open_low(lo: np.ndarray) -> np.ndarray:
    """The smallest float32 values strictly above ``lo`` (a node's ``x > threshold`` side)."""
    lo32 = lo.astype(np.float32)
    bump = lo32.astype(np.float64) <= lo
    lo32[bump] = np.nextafter(lo32[bump], np.float32(np.inf))
    return lo32


def _closed_high(hi: np.ndarray) -> np.ndarray:
    """The largest float32 values at most ``hi`` (a node's ``x <= threshold`` side)."""
    hi32 = hi.astype(np.float32)
    over = hi32.astype(np.float64) > hi
    hi32[over] = np.nextafter(hi32[over], np.float32(-np.inf))
    return hi32


class RegionSampler:
    """Draws inputs inside a box ``lo < x <= hi`` from the distribution of the rows already there.

    Parameters
    ----------
    X : array (n, d)
        The training rows: their range bounds every draw, their spread scales the jitter.
    jitter : float
        Gaussian noise added to each draw, as a fraction of each feature's standard deviation.
    """

    def __init__(self, X: np.ndarray, jitter: float = 0.1) -> None:
        X = np.asarray(X, dtype=np.float64)
        self.data_lo = X.min(axis=0)
        self.data_hi = X.max(axis=0)
        self.scale = jitter * X.std(axis=0)

    def sample(self, X_region: np.ndarray, lo: np.ndarray, hi: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
        """``m`` float32 rows inside the box: mixtures of two rows of ``X_region`` plus jitter, clipped."""
        X_region = np.asarray(X_region, dtype=np.float64)
        d = X_region.shape[1]
        i = rng.integers(0, len(X_region), size=m)
        j = rng.integers(0, len(X_region), size=m)
        lam = rng.uniform(size=(m, 1))
        Q = lam * X_region[i] + (1.0 - lam) * X_region[j] + rng.standard_normal((m, d)) * self.scale
        low = np.maximum(_open_low(np.asarray(lo, dtype=np.float64)).astype(np.float64), self.data_lo)
        high = np.minimum(_closed_high(np.asarray(hi, dtype=np.float64)).astype(np.float64), self.data_hi)
        high = np.maximum(high, low)  # a box thinner than the data's range: its lower edge
        return np.clip(Q, low, high).astype(np.float32)
