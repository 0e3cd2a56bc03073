"""Stage 4 of ``distill``: fit every requested surrogate on the transfer set, the student beside the rest.

:class:`Fitter` configures a surrogate (the user's parameters, the run's seed, input shape and
temperature, fewer epochs when queries enlarge the set), fits it on the transfer set's inputs or
on a feature set's columns, and names it (feature and class names, the data's raw units).
:func:`fit_families` fits them all: the torch soft trees first, then the scikit-learn and numpy
families with the neural student training beside them on a second core.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from .._device import cpu_cores
from .._progress import progress
from ..data import Dataset
from ..features import FeatureSurrogate
from ..surrogates import SURROGATES
from ..surrogates._base import set_names, set_units
from ..teacher import Teacher
from ..transfer import TransferSet, soft_labels
from .plan import EPOCHS_WITH_QUERIES, FEATURE_PARAMS, SIZE_PARAMS, VALIDATED_PARAMS, Plan, split_name

logger = logging.getLogger(__name__)

__all__ = ["Fitter", "fit_families"]

# Parameters distill fills in from the run when a surrogate has them and the user did not set them.
_CONTEXT_PARAMS = ("random_state", "input_shape", "temperature")

#: Sample-passes (epochs x rows) a network surrogate (the soft trees, the student) may spend when the user
#: set no epochs: on a large transfer set it trains fewer epochs, never below one.  Sized so that the
#: built-ins keep their epochs (digits: 21,077 rows x 12 student epochs = 253k) while a 100k-row table
#: trains 4 epochs instead of 40 (the cost of a fit then grows with the rows, not rows x 40).
SAMPLE_BUDGET = 300_000

#: Families whose epochs keep the sample-passes of the default queries when those were sized down to the
#: data (``sized_queries``): 28x28 digits, soft trees at 10 epochs over 8,102 rows instead of 23,000 lost
#: 0.016 and 0.024 fidelity; the student (0.974 there) keeps its epochs.
_KEEP_PASSES = ("soft_tree", "soft_tree_sparse")

#: Families that train with torch: fitted one after the other, never beside the student (global RNG, threads).
_TORCH_FAMILIES = ("soft_tree", "soft_tree_sparse", "student")

#: Most fits that run side by side once the soft trees are done (one per core up to this): on 2 cores
#: the student and one scikit-learn or numpy family, then two of those (digits: the fits after the soft
#: trees took 22.6 s one beside the student, the rest in turn).  More threads mostly wait for the GIL.
_FIT_WORKERS = 4


def _on_gpu(est: Any) -> bool:
    """Whether a torch surrogate will train on a GPU (then it is not trained beside the CPU fits)."""
    device = str(est.get_params().get("device", "cpu"))
    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def _attention(teachers: list[Teacher], w: np.ndarray, X: np.ndarray) -> np.ndarray:
    """The teachers' attention maps on X, weighted like their soft labels."""
    maps = [t.attention_maps(X) for t in teachers]
    if any(m.shape != maps[0].shape for m in maps):
        raise ValueError(f"The teachers' attention maps differ in shape ({[m.shape for m in maps]}); use one teacher.")
    return np.sum([wi * m for wi, m in zip(w, maps)], axis=0).astype(np.float32)


def _oracle(teachers: list[Teacher], w: np.ndarray, temperature: float, project: Any = None) -> Any:
    """The teachers as a plain labelling function X -> soft labels (n, K) at the run's temperature,
    for surrogates that draw node-local queries (they see this callable, never a Teacher).  Its
    ``project`` attribute (the data's ``Domain.project``) moves a drawn query into the data's domain
    before the teacher is asked about it, as the global queries are."""

    def oracle(X: Any) -> np.ndarray:
        return soft_labels(teachers, X, temperature=temperature, weights=w)

    oracle.project = project  # type: ignore[attr-defined]
    return oracle


def _read_off_ladder_fit(est: Any, sizes: Sequence[int], at_size: Any, fit: Any) -> tuple[Any, Any]:
    """(the configured model, the ladder's fit) from one fit, for a family whose ``ladder_`` rungs are
    the models a fit at that size gives (``ladder_prefix``: a greedy growth stopped at the budget).

    The family is fitted once at the top of its ladder (or the configured size, if larger) and the
    configured model is read off it; ``(None, None)`` when the family cannot share (no
    ``ladder_prefix``, no configured size, or settings its ladder overrides).
    """
    cls = type(est)
    if not getattr(cls, "ladder_prefix", False) or not hasattr(est, "ladder_"):
        return None, None
    params = est.get_params()
    want = params.get(cls.size_param)
    overrides = dict(getattr(cls, "ladder_params", {}) or {})
    if want is None or any(params.get(k) != v for k, v in overrides.items()):
        return None, None
    top = max(max(sizes), int(want))
    big = fit(at_size(top))
    if int(want) >= top:
        return big, big
    small = big.ladder_([int(want)])[0]
    return small, big


class Fitter:
    """Configures, fits and names the surrogates of one run (see the module docstring).

    Attributes
    ----------
    fitted : dict of name -> estimator
        Each surrogate as fitted (``FeatureSurrogate`` for ``NAME@label``).
    shared : dict of name -> estimator
        For a family whose ladder and configured model come from one fit: that fit.
    timings : dict of str -> float
    """

    def __init__(self, plan: Plan, dataset: Dataset, transfer: TransferSet, columns: Mapping[str, np.ndarray],
                 timings: dict[str, float], queries: Mapping[str, Any] | None = None,
                 X_val: np.ndarray | None = None) -> None:
        self.plan, self.dataset, self.transfer, self.columns = plan, dataset, transfer, columns
        #: The real training rows held out for choosing (never fitted on); empty without a frontier.
        self.X_val = np.zeros((0, transfer.X.shape[1]), dtype=transfer.X.dtype) if X_val is None else np.asarray(X_val)
        self._validation: dict[str | None, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()
        self.context = {"random_state": plan.seed, "input_shape": tuple(dataset.input_shape),
                        "temperature": plan.temperature}
        self.units = dataset.units()
        self.fitted: dict[str, Any] = {}
        self.shared: dict[str, Any] = {}
        self.timings = timings
        self.bar: Any = None  # a progress bar over the fits, while fit_families runs
        #: Where the fits spent less than their defaults because the data is large (recorded in the result).
        self.budget: dict[str, Any] = {"sample_budget": SAMPLE_BUDGET, "rows": len(transfer), "epochs": {}}
        #: Rows the transfer set would have held with the default queries, when they were sized down (else None).
        self.default_rows: int | None = None
        if queries:
            rows = int(transfer.n_real) + int(queries["default"])
            self.default_rows = rows if len(transfer) < rows else None

    def configured(self, name: str, overrides: Mapping[str, Any] | None = None) -> Any:
        """A new, unfitted estimator for ``name`` with the run's and the user's parameters (then ``overrides``)."""
        family, label = split_name(name)
        est = SURROGATES[family]()
        accepted = est.get_params(deep=False)
        user = dict(self.plan.params.get(name, {}))
        for key in _CONTEXT_PARAMS:
            if key in accepted and key not in user:
                user[key] = None if (key == "input_shape" and label is not None) else self.context[key]
        defaults = {**SIZE_PARAMS.get(family, {}), **(FEATURE_PARAMS.get(family, {}) if label is not None else {})}
        size_keys = {type(est).size_param, *dict(getattr(type(est), "ladder_params", {}) or {})} \
            if hasattr(type(est), "size_param") else set()
        if size_keys & set(user):  # the user sized it: none of the default sizes apply (depth 8 keeps no leaf cap)
            defaults = {k: v for k, v in defaults.items() if k not in size_keys}
        user = {**defaults, **user}
        if len(self.X_val) and self.plan.families:
            user = {**{k: v for k, v in VALIDATED_PARAMS.get(family, {}).items() if k in accepted}, **user}
        queries = len(self.transfer) > self.transfer.n_real
        if family in EPOCHS_WITH_QUERIES and "epochs" in accepted and "epochs" not in user and queries:
            user["epochs"] = EPOCHS_WITH_QUERIES[family]
            if family in _KEEP_PASSES and self.default_rows is not None:  # the passes the default queries gave
                scaled = -(-user["epochs"] * self.default_rows // len(self.transfer))
                if name not in self.budget.setdefault("kept_passes", {}):
                    self.budget["kept_passes"][name] = {"epochs": user["epochs"], "used": scaled}
                    logger.info("%s: %d epochs instead of %d over %d rows: the sample-passes of the default queries "
                                "(%d rows), which were sized down", name, scaled, user["epochs"], len(self.transfer),
                                self.default_rows)
                user["epochs"] = scaled
        if "epochs" in accepted and "epochs" not in self.plan.params.get(name, {}):
            user["epochs"] = self._budgeted_epochs(name, int(user.get("epochs", accepted["epochs"])))
        return est.set_params(**{**user, **dict(overrides or {})})

    def _budgeted_epochs(self, name: str, epochs: int) -> int:
        """``epochs``, or fewer when ``epochs`` passes over the transfer set exceed ``SAMPLE_BUDGET`` (the
        decision is logged once and recorded in ``budget``)."""
        rows = len(self.transfer)
        cap = max(1, -(-SAMPLE_BUDGET // max(rows, 1)))
        if cap >= epochs:
            return epochs
        if name not in self.budget["epochs"]:
            self.budget["epochs"][name] = {"default": epochs, "used": cap}
            logger.info("%s: %d epochs over %d rows would be %d sample-passes; training %d epochs (%d), the budget of "
                        "SAMPLE_BUDGET (set epochs in params to choose)", name, epochs, rows, epochs * rows, cap,
                        cap * rows)
        return cap

    def _fit_kwargs(self, est: Any, label: str | None) -> dict[str, Any]:
        """What a family's ``fit`` takes beyond (X, P): true labels, the teacher's attention, an oracle."""
        plan, kwargs = self.plan, {}
        extra = getattr(est, "_fit_extra", ())
        if "y_true" in extra:
            kwargs["y_true"] = self.transfer.y
        if "teacher_attention" in extra and float(est.get_params().get("attention_weight", 0.0) or 0.0) > 0:
            if label is not None:
                raise ValueError(f"attention transfer needs raw image/signal inputs; set attention_weight=0 over {label}.")
            kwargs["teacher_attention"] = _attention(plan.teachers, plan.weights, self.transfer.X)
        if "oracle" in extra and label is None:
            kwargs["oracle"] = _oracle(plan.teachers, plan.weights, plan.temperature, self.dataset.domain().project)
        params = est.get_params()
        if "validation" in extra and len(self.X_val) and "auto" in (params.get("target"), params.get("criterion"),
                                                                    params.get("loss")):
            kwargs["validation"] = self.validation(label)
        return kwargs

    def validation(self, label: str | None) -> tuple[np.ndarray, np.ndarray]:
        """(inputs or feature set ``label``'s columns, the teachers' soft labels at T) of the held-out rows."""
        with self._lock:  # families fitted side by side ask for the same rows: label them once
            return self._validation_locked(label)

    def _validation_locked(self, label: str | None) -> tuple[np.ndarray, np.ndarray]:
        if label not in self._validation:
            plan = self.plan
            if None in self._validation:
                P = self._validation[None][1]
            else:
                P = soft_labels(plan.teachers, self.X_val, temperature=plan.temperature, weights=plan.weights)
            X = self.X_val if label is None else plan.maps[label].transform(self.X_val)
            self._validation[label] = (np.asarray(X), np.asarray(P))
        return self._validation[label]

    def name(self, est: Any, label: str | None) -> Any:
        """Attach the names the model prints with (and, over raw inputs, the data's raw units)."""
        names = self.dataset.feature_names if label is None else list(self.plan.maps[label].names)
        set_names(est, feature_names=names, class_names=self.dataset.class_names, temperature=self.plan.temperature)
        if label is None:
            set_units(est, self.units)
        return est

    def fit(self, est: Any, label: str | None = None) -> Any:
        """Fit ``est`` on the transfer set (or feature set ``label``'s columns) and name it."""
        X = self.transfer.X if label is None else self.columns[label]
        est.fit(X, self.transfer.P, **self._fit_kwargs(est, label))
        return self.name(est, label)

    def wrap(self, est: Any, name: str) -> Any:
        """The estimator as the run's surrogate ``name``: over features it answers on raw inputs."""
        family, label = split_name(name)
        return est if label is None else FeatureSurrogate(self.plan.maps[label], est, family=family)

    def fit_one(self, name: str) -> None:
        """Fit surrogate ``name``; a readable family that can read its configured size off its ladder's fit does."""
        family, label = split_name(name)
        t1 = time.perf_counter()
        est = None
        if name in self.plan.families:
            cls = SURROGATES[family]
            ladder_params = dict(getattr(cls, "ladder_params", {}) or {})
            est, big = _read_off_ladder_fit(
                self.configured(name), self.plan.sizes(name),
                lambda size: self.configured(name, {**ladder_params, cls.size_param: size}),
                lambda e: self.fit(e, label),
            )
            if big is not None:
                self.shared[name] = big
        if est is None:
            est = self.fit(self.configured(name), label)
        self.fitted[name] = self.wrap(est, name)
        self.timings[f"fit_{name}_s"] = time.perf_counter() - t1
        logger.info("fitted %s in %.2fs", name, self.timings[f"fit_{name}_s"])
        if self.bar is not None:
            self.bar.update(1)


def fit_families(fitter: Fitter) -> dict[str, Any]:
    """Fit every surrogate of the plan; returns them in the order asked for.

    The torch-based soft trees are fitted first, one after the other.  Then, on a CPU with two
    cores or more, the rest are fitted side by side on ``_FIT_WORKERS`` threads (at most one per
    core): the neural student (torch on one thread) first, so it trains while the scikit-learn and
    numpy families take the other cores in turn (their tree builders, histogram products and BLAS
    calls release the GIL).  Nothing else touches torch's global RNG or thread count while the
    student trains, and every fit is seeded on its own, so the models are the ones fitted one at a time
    (up to the order of a solver's floating-point sums when BLAS runs on more threads).
    """
    names = fitter.plan.names
    with progress(len(names), "surrogates", unit="fit") as fitter.bar:
        try:
            return _fit_in_order(fitter, names)
        finally:
            fitter.bar = None


#: Rough seconds per million (row x column) cells of a family's default fit, ladder included (28x28 digits
#: under a LeNet, 8,102 rows, 2 cores); they only order the fits that run side by side.
_COST_PER_CELL = {"figs": 3.0, "rules": 2.2, "gam": 7.0, "tree": 1.8, "logistic": 0.7, "naive_bayes": 0.05}


def _rough_cost(fitter: "Fitter", name: str) -> float:
    family, label = split_name(name)
    cols = fitter.transfer.X.shape[1] if label is None else fitter.columns[label].shape[1]
    return _COST_PER_CELL.get(family, 1.0) * len(fitter.transfer) * cols / 1e6


def _fit_in_order(fitter: Fitter, names: list[str]) -> dict[str, Any]:
    workers = min(cpu_cores(), _FIT_WORKERS)
    beside = ("student" if "student" in names and workers >= 2
              and not _on_gpu(fitter.configured("student")) else None)
    first = [n for n in names if split_name(n)[0] in _TORCH_FAMILIES and n != beside]
    rest = [n for n in names if n not in first and n != beside]
    for name in first:
        fitter.fit_one(name)
    if workers < 2 or len(rest) + (beside is not None) < 2:
        for name in ([beside] if beside else []) + rest:
            fitter.fit_one(name)
        return {name: fitter.fitted[name] for name in names}
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    # Longest first (the student, then by a rough cost), so no long fit starts last beside an idle core.
    rest = sorted(rest, key=lambda n: -_rough_cost(fitter, n))
    # One BLAS thread per fit while they run side by side, set before the threads exist: OpenBLAS keeps
    # the count per thread, as a thread started it (a limit one fit sets does not reach the others), and
    # two fits on two BLAS threads each on 2 cores ran 4x slower than one thread each (28x28 digits:
    # logistic over pixels and over patterns, 16.5 + 24.9 s against 1.8 + 4.3 s).
    with threadpool_limits(limits=1, user_api="blas"), \
            ThreadPoolExecutor(workers, thread_name_prefix="explain_distill-fit") as pool:
        futures = [pool.submit(fitter.fit_one, name) for name in ([beside] if beside else []) + rest]
        wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in futures if f.done() and f.exception() is not None]
        if failed:  # stop what has not started; the error is the first fit's that failed
            pool.shutdown(wait=True, cancel_futures=True)
            raise failed[0].exception()  # type: ignore[misc]
    return {name: fitter.fitted[name] for name in names}
