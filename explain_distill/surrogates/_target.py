"""Soft or hard targets, and the validation split that chooses between them (``target="auto"``).

A readable surrogate may be more faithful when fitted to the teacher's hard labels (its argmax)
than to its soft distribution, or the other way round, depending on the family and the size.
``target="auto"`` settles it on rows the fit does not see: a validation split carved from the
training rows the estimator is given (stratified by the teacher's top class), never the test split.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["TARGETS", "hard_targets", "split_validation", "agreement"]

TARGETS = ("soft", "hard", "auto")

#: Fewest rows for which ``target="auto"`` carves a validation split; below it "auto" fits soft labels.
MIN_ROWS_FOR_VALIDATION = 20


def hard_targets(P: np.ndarray) -> np.ndarray:
    """One-hot rows of the top class of each distribution (ties: the first)."""
    H = np.zeros_like(P, dtype=np.float64)
    H[np.arange(len(P)), np.argmax(P, axis=1)] = 1.0
    return H


def split_validation(P: np.ndarray, fraction: float, random_state: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(train rows, validation rows), stratified by the top class; None when too few rows to split."""
    n = len(P)
    n_val = int(round(fraction * n))
    if n < MIN_ROWS_FOR_VALIDATION or n_val < 1 or n - n_val < 2:
        return None
    rng = np.random.default_rng(random_state)
    top = np.argmax(P, axis=1)
    val = []
    for k in np.unique(top):
        rows = np.flatnonzero(top == k)
        m = int(round(fraction * len(rows)))
        if m and len(rows) > m:
            val.append(rng.choice(rows, size=m, replace=False))
    val_idx = np.sort(np.concatenate(val)) if val else np.sort(rng.choice(n, size=n_val, replace=False))
    mask = np.ones(n, dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask), val_idx


def split_by_content(X: np.ndarray, P: np.ndarray, w: np.ndarray, fraction: float, random_state: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(train rows, validation rows) decided by each row's content: equal rows (inputs and labels) fall
    on the same side, so a row of integer weight w splits as its w copies would (a fit that stops early
    on these rows keeps scikit-learn's sample-weight contract).  About ``fraction`` of the rows are held
    out; None when too few rows (counted by weight ``w``), or when a side would hold less than 2.
    """
    if float(np.sum(w)) < MIN_ROWS_FOR_VALIDATION:
        return None
    rng = np.random.default_rng(random_state)
    # a random projection of the row, its fractional part spread far: a pseudo-uniform draw per content
    r = np.concatenate([np.asarray(X, dtype=np.float64), np.asarray(P, dtype=np.float64)], axis=1) @ rng.normal(size=X.shape[1] + P.shape[1])
    u = np.modf(np.abs(r) * 7919.0 + 0.5)[0]
    held = u < fraction
    if float(np.sum(w[held])) < 2 or float(np.sum(w[~held])) < 2:
        return None
    return np.flatnonzero(~held), np.flatnonzero(held)


def agreement(proba: np.ndarray, P: np.ndarray, w: np.ndarray | None = None) -> float:
    """Weighted share of rows whose top class agrees with the teacher's."""
    same = (np.argmax(proba, axis=1) == np.argmax(P, axis=1)).astype(np.float64)
    if w is None:
        return float(same.mean())
    return float(np.sum(w * same) / max(float(np.sum(w)), 1e-12))


def check_validation(validation: object, n_features: int, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(X_val, P_val, ones)`` from a fit's ``validation=(X_val, P_val)`` (None when not given or empty).

    ``P_val`` may be soft labels (n, K) or hard labels (n,) (integers in ``0 .. K-1``).
    """
    if validation is None:
        return None
    try:
        X_val, P_val = validation  # type: ignore[misc]
    except (TypeError, ValueError) as exc:
        raise TypeError(
            "validation must be a pair (X_val, P_val): held-out inputs and the teacher's soft labels on them; "
            f"received {type(validation).__name__}."
        ) from exc
    X_val = np.asarray(X_val, dtype=np.float64)
    P_val = np.asarray(P_val)
    if len(X_val) == 0:
        return None
    if P_val.ndim == 1:
        H = np.zeros((len(P_val), n_classes))
        H[np.arange(len(P_val)), P_val.astype(np.int64)] = 1.0
        P_val = H
    if X_val.ndim != 2 or X_val.shape[1] != n_features or P_val.shape != (len(X_val), n_classes):
        raise ValueError(
            f"validation=(X_val, P_val) must hold (n, {n_features}) inputs and (n, {n_classes}) soft labels like the "
            f"training data; received X_val {X_val.shape} and P_val {P_val.shape}."
        )
    return X_val, P_val.astype(np.float64), np.ones(len(X_val))


def best_candidate(validation: dict, candidates: list, k: int, key: Callable[[Any], str]) -> Any:
    """The candidate most faithful on ``validation`` (``{"sizes", "scores": {key(c): [per size]}}``) at
    ``k`` leaves: the nearest size validated (the smaller on a tie), then the earlier candidate on a tie."""
    vs = validation["sizes"]
    i = min(range(len(vs)), key=lambda j: (abs(vs[j] - k), vs[j]))
    return max(candidates, key=lambda c: (validation["scores"][key(c)][i], -candidates.index(c)))
