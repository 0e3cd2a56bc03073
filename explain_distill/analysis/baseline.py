"""Is the teacher worth explaining?  Its held-out accuracy against trivial baselines.

Fidelity to a broken model says nothing: a teacher fed wrongly scaled inputs can score below a
majority-class guess while a surrogate copies it perfectly.  :func:`teacher_check` fits two
baselines on the same training split (the majority class, and scikit-learn's
``LogisticRegression`` on the same scaled inputs) and scores them on the same test split as the
teacher.  A teacher at or below the majority baseline, or far below the logistic one, carries a
warning in words (plain data here; the report, the log, metrics.json and ``audit`` show it).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .._stats import wilson_interval
from .._validation import check_fraction, check_int

logger = logging.getLogger(__name__)

__all__ = ["TeacherCheck", "teacher_check", "LOGISTIC_MARGIN"]

#: "Far below the logistic baseline": the teacher's test accuracy is more than this many points
#: (as a fraction) under a plain logistic regression's on the same split.
LOGISTIC_MARGIN = 0.10


@dataclass
class TeacherCheck:
    """The teacher's held-out accuracy beside two baselines fitted on the same split.

    Attributes
    ----------
    teacher_accuracy : float
        On the test split.
    teacher_interval : (float, float)
        Its 95% Wilson interval.
    majority : float
        Test accuracy of always predicting the training split's most frequent class.
    majority_class : str
    logistic : float or None
        Test accuracy of scikit-learn's LogisticRegression fitted on the training split (None when
        it could not be fitted).
    n_test : int
    warning : str or None
        Why the teacher should not be trusted, in words; None when it beats both baselines.
    """

    teacher_accuracy: float
    teacher_interval: tuple[float, float]
    majority: float
    majority_class: str
    logistic: float | None
    n_test: int
    margin: float = LOGISTIC_MARGIN
    warning: str | None = None

    @property
    def ok(self) -> bool:
        return self.warning is None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["teacher_interval"] = list(self.teacher_interval)
        return d


def teacher_check(
    teacher: Any,
    dataset: Any,
    *,
    margin: float = LOGISTIC_MARGIN,
    max_train_rows: int = 20000,
    seed: int = 0,
    teacher_pred: np.ndarray | None = None,
) -> TeacherCheck:
    """Compare the teacher's test accuracy with the majority class and a logistic regression.

    Parameters
    ----------
    teacher : Teacher
    dataset : Dataset
        Its training split fits the baselines, its test split scores all three.
    margin : float, default=LOGISTIC_MARGIN
        How far (a fraction) under the logistic baseline counts as "far below".
    max_train_rows : int, default=20000
        The logistic baseline is fitted on at most this many training rows (a random subset), so
        the check stays cheap on large data.
    teacher_pred : array, optional
        The teacher's predictions on the test split, when already computed.
    """
    from sklearn.linear_model import LogisticRegression

    margin = check_fraction(margin, "margin")
    max_train_rows = check_int(max_train_rows, "max_train_rows", low=10)
    X_tr, y_tr, X_te, y_te = dataset.X_train, dataset.y_train, dataset.X_test, dataset.y_test
    names = list(dataset.class_names)
    pred = np.asarray(teacher.predict(X_te) if teacher_pred is None else teacher_pred)
    n = len(y_te)
    hits = int(np.sum(pred == y_te))
    acc = hits / n
    counts = np.bincount(y_tr, minlength=len(names))
    major = int(np.argmax(counts))
    majority = float(np.mean(y_te == major))
    logistic: float | None
    try:
        idx = np.arange(len(X_tr))
        if len(idx) > max_train_rows:
            idx = np.sort(np.random.default_rng(seed).choice(len(idx), max_train_rows, replace=False))
        clf = LogisticRegression(max_iter=300).fit(X_tr[idx], y_tr[idx])
        logistic = float(np.mean(clf.predict(X_te) == y_te))
    except ValueError as exc:  # e.g. a single class left in a tiny training split
        logger.info("logistic baseline not fitted: %s", exc)
        logistic = None
    warning = None
    if acc <= majority:
        warning = (
            f"The teacher's test accuracy {acc:.3f} is at or below the majority-class baseline {majority:.3f} "
            f"(always predicting {names[major]!r}): it has learned nothing usable, and fidelity to it says nothing. "
            f"Check that its inputs are scaled as it expects (a wrapped module receives inputs already "
            f"standardised by the Dataset unless scale='none') and that it was trained."
        )
    elif logistic is not None and acc < logistic - margin:
        warning = (
            f"The teacher's test accuracy {acc:.3f} is far below a plain logistic regression's {logistic:.3f} on "
            f"the same split (more than {margin:.2f} under it): explanations of this network describe a weak model. "
            f"Check its inputs' scaling and its training before trusting the fidelity figures."
        )
    if warning:
        logger.warning("teacher check: %s", warning)
    return TeacherCheck(
        teacher_accuracy=acc,
        teacher_interval=wilson_interval(hits, n),
        majority=majority,
        majority_class=names[major],
        logistic=logistic,
        n_test=n,
        margin=margin,
        warning=warning,
    )
