"""``distill()``: the one place where the teacher and the surrogates meet.

The teacher labels a transfer set at temperature T; every requested surrogate is fitted on it
(surrogates see arrays, never the teacher); each is then scored on the held-out test split
against the truth (accuracy) and against the teacher (fidelity: top-1 agreement, with a 95%
Wilson interval).  :class:`Distillation` holds the lot and saves/loads without pickle.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import torch

from ._version import __version__ as _version
from ._io import read_json, write_json
from ._stats import wilson_interval
from ._validation import check_positive
from .data import Dataset, load_saved_dataset, save_dataset
from .surrogates import SURROGATES, load_surrogate, save_surrogate
from .teacher import Teacher
from .transfer import QuerySpec, TransferSet, build_transfer_set, check_teachers, soft_labels

logger = logging.getLogger(__name__)

__all__ = ["distill", "Distillation", "load", "DEFAULT_SURROGATES", "DEFAULT_QUERIES"]

#: What ``distill`` fits when ``surrogates`` is not given (those registered).  ``figs`` (32 leaves,
#: ~1.5 s on digits) is in; ``gam`` (0.98+ on digits, ~5 s) is not: ``explain-distill run`` has
#: 60 s on 2 cores and was at ~52 s without it (benchmarks/RESULTS.md, bench_readable and bench_e2e).
DEFAULT_SURROGATES: tuple[str, ...] = ("soft_tree", "tree", "logistic", "naive_bayes", "rules", "figs", "student")

#: Queries the teacher labels on top of the training split when ``queries`` is not given: Gaussian
#: jitter (0.5 std) and mixup.  Chosen on digits: with the "entropy" tree they lift the depth-8
#: tree's fidelity from ~0.83 (hard labels) to ~0.90 (benchmarks/RESULTS.md, bench_fidelity).
DEFAULT_QUERIES: dict[str, int] = {"jitter": 10000, "mixup": 10000}

#: Epochs of the network surrogates when the transfer set carries synthesized queries and the
#: user set none: the set is then ~16x the training split (digits, default queries), so fewer
#: passes already see far more samples than the estimators' defaults (tuned on a training split
#: alone) assume.  Measured on digits: soft_tree 0.976 fidelity at 10 epochs (3.9 s) vs 0.969 at
#: 40 (14.7 s); student 0.989 at 10 epochs vs 0.993 at 30 (21 s).
EPOCHS_WITH_QUERIES: dict[str, int] = {"soft_tree": 10, "student": 12}

# Parameters distill fills in from the run when a surrogate has them and the user did not set them.
_CONTEXT_PARAMS = ("random_state", "input_shape", "temperature")


def _resolve_surrogates(surrogates: Sequence[str] | None) -> list[str]:
    if surrogates is None:
        return [s for s in DEFAULT_SURROGATES if s in SURROGATES]
    if isinstance(surrogates, str):
        surrogates = [s.strip() for s in surrogates.split(",") if s.strip()]
    names = list(surrogates)
    if not names:
        raise ValueError(f"No surrogates requested; choose from: {', '.join(SURROGATES)}.")
    unknown = [s for s in names if s not in SURROGATES]
    if unknown:
        raise ValueError(f"Unknown surrogate(s) {unknown}. Available: {', '.join(SURROGATES)}.")
    if len(set(names)) != len(names):
        raise ValueError(f"Surrogate names repeat in {names}; list each once.")
    return names


def model_size(est: Any) -> int:
    """Parameter or node count of a surrogate (its ``n_params_``)."""
    return int(getattr(est, "n_params_", 0))


@dataclass
class Distillation:
    """A teacher, its data, and the surrogates distilled from it.

    Attributes
    ----------
    teacher : Teacher
    dataset : Dataset
    surrogates : dict of str -> fitted estimator
    temperature : float
    seed : int
    metrics : dict
        ``{"teacher": {...}, "surrogates": {name: {...}}}`` on the test split (see :meth:`evaluate`).
    transfer : TransferSet or None
        The transfer set the surrogates were fitted on (not saved).
    info : dict
        Provenance: versions, timings, device, transfer-set composition.
    """

    teacher: Teacher
    dataset: Dataset
    surrogates: dict[str, Any]
    temperature: float = 4.0
    seed: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    transfer: TransferSet | None = None
    info: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict[str, Any]:
        """Score the teacher and every surrogate on the test split; returns and stores ``metrics``."""
        d = self.dataset
        X, y = d.X_test, d.y_test
        t_pred = self.teacher.predict(X)
        metrics: dict[str, Any] = {
            "teacher": {
                "accuracy": float(np.mean(t_pred == y)),
                "params": self.teacher.n_params,
                "size_bytes": self.teacher.size_bytes,
                "device": self.teacher.history.get("device", str(self.teacher.device)),
            },
            "surrogates": {},
        }
        for name, est in self.surrogates.items():
            s_pred = np.asarray(est.predict(X))
            agree = int(np.sum(s_pred == t_pred))
            lo, hi = wilson_interval(agree, len(X))
            metrics["surrogates"][name] = {
                "accuracy": float(np.mean(s_pred == y)),
                "fidelity": agree / len(X),
                "fidelity_interval": [lo, hi],
                "params": model_size(est),
                "n_test": int(len(X)),
            }
        self.metrics = metrics
        return metrics

    def fidelity(self) -> list[dict[str, Any]]:
        """One row per surrogate: name, fidelity with its 95% Wilson interval, accuracy and size."""
        if not self.metrics:
            self.evaluate()
        rows = []
        for name, m in self.metrics["surrogates"].items():
            lo, hi = m["fidelity_interval"]
            rows.append(
                {"surrogate": name, "fidelity": m["fidelity"], "low": lo, "high": hi, "accuracy": m["accuracy"], "params": m["params"]}
            )
        return rows

    def teacher_proba(self, X: Any | None = None) -> np.ndarray:
        return self.teacher.predict_proba(self.dataset.X_test if X is None else X)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | os.PathLike) -> Path:
        """Write the run (teacher, surrogates, data, metrics) to ``directory``: safetensors + JSON only."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.teacher.save(directory / "teacher")
        save_dataset(self.dataset, directory / "data")
        for name, est in self.surrogates.items():
            save_surrogate(est, directory / "surrogates" / name, name=name)
        write_json(
            directory / "run.json",
            {
                "format": "explain_distill.run/1",
                "temperature": self.temperature,
                "seed": self.seed,
                "surrogates": list(self.surrogates),
                "metrics": self.metrics,
                "info": self.info,
            },
        )
        return directory


def load(directory: str | os.PathLike, *, teacher_module: torch.nn.Module | None = None, device: str = "auto") -> Distillation:
    """Load a run written by :meth:`Distillation.save` (no pickle on any path).

    Accepts the run directory itself or a report directory holding it under ``model/``.
    """
    directory = Path(directory)
    if not directory.exists():
        raise FileNotFoundError(f"Run directory {str(directory)!r} does not exist.")
    if not (directory / "run.json").is_file() and (directory / "model" / "run.json").is_file():
        directory = directory / "model"
    meta = read_json(directory / "run.json", what="run description")
    if not isinstance(meta, dict) or meta.get("format") != "explain_distill.run/1":
        raise ValueError(f"{directory / 'run.json'} is not an explain_distill run file.")
    teacher = Teacher.load(directory / "teacher", module=teacher_module, device=device)
    dataset = load_saved_dataset(directory / "data")
    surrogates = {name: load_surrogate(directory / "surrogates" / name) for name in meta["surrogates"]}
    return Distillation(
        teacher=teacher,
        dataset=dataset,
        surrogates=surrogates,
        temperature=float(meta["temperature"]),
        seed=int(meta["seed"]),
        metrics=meta.get("metrics") or {},
        info=meta.get("info") or {},
    )


def _check_transfer(transfer: Any, dataset: Dataset, temperature: float) -> None:
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


def _attention(teachers: list[Teacher], w: np.ndarray, X: np.ndarray) -> np.ndarray:
    """The teachers' attention maps on X, weighted like their soft labels."""
    maps = [t.attention_maps(X) for t in teachers]
    if any(m.shape != maps[0].shape for m in maps):
        raise ValueError(f"The teachers' attention maps differ in shape ({[m.shape for m in maps]}); use one teacher.")
    return np.sum([wi * m for wi, m in zip(w, maps)], axis=0).astype(np.float32)


def _oracle(teachers: list[Teacher], w: np.ndarray, temperature: float) -> Any:
    """The teachers as a plain labelling function X -> soft labels (n, K) at the run's temperature,
    for surrogates that draw node-local queries (they see this callable, never a Teacher)."""

    def oracle(X: Any) -> np.ndarray:
        return soft_labels(teachers, X, temperature=temperature, weights=w)

    return oracle


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
        Synthesized inputs the teacher labels on top of the training split, e.g.
        ``{"jitter": 2000, "mixup": 2000, "class": 2000, "boundary": 2000}``
        (see :class:`explain_distill.transfer.QuerySpec`); ``None`` or ``{}`` for none.
    transfer : TransferSet, optional
        A precomputed transfer set (``build_transfer_set``) to fit on instead of building one;
        its temperature must equal ``temperature``.
    """
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
    names = _resolve_surrogates(surrogates)
    params = dict(params or {})
    unknown = [k for k in params if k not in names]
    if unknown:
        raise ValueError(f"params given for {unknown}, which are not among the requested surrogates {names}.")

    t0 = time.perf_counter()
    if transfer is None:
        transfer = build_transfer_set(
            teachers, dataset.X_train, dataset.y_train, temperature=temperature, weights=w, queries=queries or None, seed=seed
        )
    else:
        _check_transfer(transfer, dataset, temperature)
    timings = {"soft_labels_s": time.perf_counter() - t0}
    context = {"random_state": seed, "input_shape": tuple(dataset.input_shape), "temperature": temperature}
    fitted: dict[str, Any] = {}
    for name in names:
        cls = SURROGATES[name]
        est = cls()
        accepted = est.get_params(deep=False)
        user = dict(params.get(name, {}))
        bad = [k for k in user if k not in accepted]
        if bad:
            raise ValueError(f"{name}: unknown parameter(s) {bad}; it accepts {sorted(accepted)}.")
        for key in _CONTEXT_PARAMS:
            if key in accepted and key not in user:
                user[key] = context[key]
        if name in EPOCHS_WITH_QUERIES and "epochs" in accepted and "epochs" not in user and len(transfer) > transfer.n_real:
            user["epochs"] = EPOCHS_WITH_QUERIES[name]
        est.set_params(**user)
        t1 = time.perf_counter()
        fit_kwargs = {}
        extra = getattr(est, "_fit_extra", ())
        if "y_true" in extra:
            fit_kwargs["y_true"] = transfer.y
        if "teacher_attention" in extra and float(est.get_params().get("attention_weight", 0.0) or 0.0) > 0:
            fit_kwargs["teacher_attention"] = _attention(teachers, w, transfer.X)
        if "oracle" in extra:
            fit_kwargs["oracle"] = _oracle(teachers, w, temperature)
        est.fit(transfer.X, transfer.P, **fit_kwargs)
        timings[f"fit_{name}_s"] = time.perf_counter() - t1
        logger.info("fitted %s in %.2fs", name, timings[f"fit_{name}_s"])
        fitted[name] = est
    result = Distillation(
        teacher=ref,
        dataset=dataset,
        surrogates=fitted,
        temperature=temperature,
        seed=seed,
        transfer=transfer,
        info={
            "versions": {
                "explain_distill": _version,
                "python": platform.python_version(),
                "torch": torch.__version__,
                "numpy": np.__version__,
                "sklearn": sklearn.__version__,
            },
            "n_teachers": len(teachers),
            "teacher_weights": w.tolist(),
            "transfer_set": transfer.counts(),
            "timings": {k: round(v, 4) for k, v in timings.items()},
            "data_sha256": dataset.fingerprint(),
            "teacher_sha256": ref.fingerprint(),
        },
    )
    result.evaluate()
    return result
