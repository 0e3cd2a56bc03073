"""Missing values: which cells count as missing, the policies, and imputation fitted on the training split.

``MISSING_MARKERS`` are the cell texts a CSV reader treats as "missing" (never as a category);
``MISSING_POLICIES`` what may be done about them (``"error"`` names them, ``"drop"`` drops their
rows, ``"impute"`` fills them from the training split with scikit-learn's ``SimpleImputer``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["MISSING_MARKERS", "MISSING_POLICIES", "MissingPolicy", "counts_text", "impute"]

#: Cell values read as "missing" in CSV files (pandas' default NA strings plus the usual hand-written ones).
MISSING_MARKERS = frozenset(
    {"", "NA", "N/A", "n/a", "na", "NaN", "nan", "NAN", "-NaN", "-nan", "null", "NULL", "Null", "None", "none",
     "NONE", "#N/A", "#N/A N/A", "#NA", "<NA>", "-1.#IND", "-1.#QNAN", "1.#IND", "1.#QNAN", "?", "-", "--", "."}
)
MissingPolicy = Literal["error", "drop", "impute"]
MISSING_POLICIES = ("error", "drop", "impute")


def counts_text(by_column: dict[str, int]) -> str:
    """``'a': 3, 'b': 1`` for the five columns with the most missing cells (and how many more)."""
    items = sorted(by_column.items(), key=lambda kv: -kv[1])
    text = ", ".join(f"{k!r}: {v}" for k, v in items[:5])
    return text + (f" and {len(items) - 5} more columns" if len(items) > 5 else "")


def impute(X_tr: np.ndarray, X_te: np.ndarray, onehot: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Median for numeric columns, most frequent value for one-hot columns; fitted on the training split only."""
    from sklearn.impute import SimpleImputer

    X_tr, X_te = X_tr.copy(), X_te.copy()
    onehot = np.zeros(X_tr.shape[1], dtype=bool) if onehot is None else onehot
    for mask, strategy in ((~onehot, "median"), (onehot, "most_frequent")):
        cols = np.nonzero(mask & (np.isnan(X_tr).any(axis=0) | np.isnan(X_te).any(axis=0)))[0]
        if not len(cols):
            continue
        imp = SimpleImputer(strategy=strategy, keep_empty_features=True)
        X_tr[:, cols] = imp.fit_transform(X_tr[:, cols])
        X_te[:, cols] = imp.transform(X_te[:, cols])
    return X_tr, X_te
