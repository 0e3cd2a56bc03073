"""Stage 6 of ``distill``: the result, :class:`Distillation`, and its life on disk (:func:`load`).

A Distillation holds the teacher, the data, the fitted surrogates, their ladders and the frontier
choice, the transfer set and the run's provenance; it scores itself on the test split
(:meth:`Distillation.evaluate`), shows a fidelity table in a notebook, and saves without pickle
(safetensors + JSON) to a directory :func:`load` reads back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import atomic_directory, read_json, write_json
from .._gate import Gate, agreement_stats, decide
from ..data import Dataset, load_saved_dataset, save_dataset
from ..features import FeatureMap, FeatureSurrogate, feature_map_from_spec
from ..surrogates import load_surrogate, save_surrogate
from ..surrogates._base import set_names, set_units
from ..teacher import Teacher, TeacherCheck
from ..transfer import TransferSet
from .plan import readable_at, split_name

#: The bar a result's verdicts use when the run set none: ``ed.audit``'s default.
DEFAULT_AUDIT_BAR = 0.95

__all__ = ["Distillation", "load", "model_size"]


def model_size(est: Any) -> int:
    """Parameter or node count of a surrogate (its ``n_params_``)."""
    return int(getattr(est, "n_params_", 0))


def surrogate_metrics(t_pred: np.ndarray, s_pred: np.ndarray, y: np.ndarray, class_names: list[str], gate: Gate,
                      *, params: int) -> dict[str, Any]:
    """One surrogate's row of ``metrics["surrogates"]``: accuracy, fidelity with its interval, the
    constant baseline, kappa and balanced agreement with theirs, per class, and the gate's verdict."""
    stats = agreement_stats(t_pred, s_pred, len(class_names))
    per_class = [{**r, "class": class_names[r["class"]]} for r in stats.to_json()["per_class"]]
    return {
        "accuracy": float(np.mean(s_pred == y)),
        "fidelity": stats.agreement,
        "fidelity_interval": list(stats.interval),
        "constant_baseline": stats.constant_baseline,
        "kappa": stats.kappa,
        "kappa_interval": list(stats.kappa_interval),
        "balanced_agreement": stats.balanced,
        "balanced_interval": list(stats.balanced_interval),
        "per_class": per_class,
        "gate": {**decide(stats, gate, class_names).to_json(), **gate.to_json()},
        "params": params,
        "n_test": int(len(t_pred)),
    }


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
    ladders : dict of str -> list of fitted estimators
        Per readable family, the models of every size on its ladder (smallest first), fitted once
        on the same transfer set (not saved; their figures are in ``frontier`` and metrics.json).
    frontier : dict
        Plain data of the size choice: ``min_agreement``, the validation split (``n``,
        ``rows``: indices into ``dataset.X_train`` held out of the transfer set) and per family its
        ``unit``, ``param``, ``rungs`` (``param_value``, ``size``, ``validation``,
        ``validation_interval``), ``chosen`` (index of the smallest rung whose validation interval's
        lower end clears ``min_agreement``, or None) and ``explicit`` (the user fixed its size).
    features : dict of str -> FeatureMap
        The feature maps the ``NAME@label`` surrogates read (``"patterns"``: the teacher's
        convolutional channels; ``"features"``: a user function).
    min_agreement : float or None
        The run's bar (``distill(min_agreement=...)``); the verdicts in ``metrics`` and the
        notebook table use it (``ed.audit``'s default, 0.95, when None).
    gate : {"per_class", "agreement"}
        The rule the bar is held to (:func:`explain_distill._gate.decide`): agreement and every
        sizeable teacher class reproduced, or agreement alone.
    min_class_agreement : float
        The per-class gate's floor (see :func:`explain_distill._gate.decide`).
    teacher_check : TeacherCheck or None
        The teacher's test accuracy against a majority-class and a logistic baseline, with a
        warning when it does not beat them (``distill`` runs it).
    """

    teacher: Teacher
    dataset: Dataset
    surrogates: dict[str, Any]
    temperature: float = 4.0
    seed: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    transfer: TransferSet | None = None
    info: dict[str, Any] = field(default_factory=dict)
    ladders: dict[str, list[Any]] = field(default_factory=dict)
    frontier: dict[str, Any] = field(default_factory=dict)
    features: dict[str, FeatureMap] = field(default_factory=dict)
    min_agreement: float | None = None
    gate: str = "per_class"
    teacher_check: TeacherCheck | None = None
    min_class_agreement: float = 0.5

    @property
    def bar(self) -> float:
        """The bar the verdicts use: the run's ``min_agreement``, else ``ed.audit``'s default."""
        return DEFAULT_AUDIT_BAR if self.min_agreement is None else float(self.min_agreement)

    @property
    def teacher_warning(self) -> str | None:
        """Why the teacher should not be trusted (its check's warning), or None."""
        return None if self.teacher_check is None else self.teacher_check.warning

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
        counts = np.bincount(t_pred, minlength=d.n_classes)
        metrics["constant"] = {"class": d.class_names[int(np.argmax(counts))],
                               "agreement": float(counts.max() / max(len(t_pred), 1))}
        gate = Gate(self.bar, gate=self.gate, min_class_agreement=self.min_class_agreement)  # type: ignore[arg-type]
        for name, est in self.surrogates.items():
            s_pred = np.asarray(est.predict(X))
            metrics["surrogates"][name] = surrogate_metrics(t_pred, s_pred, y, d.class_names, gate,
                                                            params=model_size(est))
        self.metrics = metrics
        return metrics

    def fidelity(self) -> list[dict[str, Any]]:
        """One row per surrogate: name, fidelity with its 95% Wilson interval, accuracy and size."""
        if not self.metrics:
            self.evaluate()
        rows = []
        for name, m in self.metrics["surrogates"].items():
            lo, hi = m["fidelity_interval"]
            gate = m.get("gate") or {}
            rows.append({
                "surrogate": name, "fidelity": m["fidelity"], "low": lo, "high": hi, "accuracy": m["accuracy"],
                "params": m["params"], "kappa": m.get("kappa"), "balanced": m.get("balanced_agreement"),
                "constant": m.get("constant_baseline"), "passed": gate.get("passed"), "reason": gate.get("reason"),
                "failed_classes": gate.get("failed_classes") or [],
                "readable": readable_at(name, self.surrogates.get(name)),
            })
        return rows

    def teacher_proba(self, X: Any | None = None) -> np.ndarray:
        return self.teacher.predict_proba(self.dataset.X_test if X is None else X)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | os.PathLike) -> Path:
        """Write the run (teacher, surrogates, data, metrics) to ``directory``: safetensors + JSON only.

        ``directory`` must be new, empty, or an earlier saved run and nothing else (a directory
        holding other files is refused, naming them: nothing is ever deleted that this package did
        not write).  The run is written beside it and renamed into place when complete.
        """
        directory = Path(directory)
        with atomic_directory(directory, kind="saved_run", what="run directory") as tmp:
            self._write(tmp)
        return directory

    def _write(self, directory: Path) -> None:
        self.teacher.save(directory / "teacher")
        save_dataset(self.dataset, directory / "data")
        for name, est in self.surrogates.items():
            if isinstance(est, FeatureSurrogate):  # the estimator saves itself; the map is rebuilt from its spec
                save_surrogate(est.estimator, directory / "surrogates" / name, name=est.family)
            else:
                save_surrogate(est, directory / "surrogates" / name, name=name)
        doc = {
            "format": "explain_distill.run/1",
            "temperature": self.temperature,
            "seed": self.seed,
            "surrogates": list(self.surrogates),
            "metrics": self.metrics,
            "info": self.info,
            "frontier": self.frontier,
            "min_agreement": self.min_agreement,
            "gate": self.gate,
            "min_class_agreement": self.min_class_agreement,
            "teacher_check": None if self.teacher_check is None else self.teacher_check.to_json(),
        }
        if self.features:
            doc["features"] = {label: fm.spec() for label, fm in self.features.items()}
        write_json(directory / "run.json", doc)

    # ------------------------------------------------------------------ display
    def _display_data(self) -> dict[str, Any]:
        d = self.dataset
        return {
            "rows": self.fidelity(),
            "dataset": {"name": d.name, "n_classes": d.n_classes, "n_features": d.n_features, "n_test": len(d.X_test)},
            "teacher": self.metrics.get("teacher", {}),
            "temperature": float(self.temperature),
            "transfer": self.info.get("transfer_set") or (self.transfer.counts() if self.transfer is not None else None),
            "min_agreement": self.bar,
            "gate": self.gate,
            "teacher_warning": self.teacher_warning,
            "teacher_check": None if self.teacher_check is None else self.teacher_check.to_json(),
            "constant": self.metrics.get("constant"),
        }

    def __repr__(self) -> str:
        """The run, the teacher check, one line per surrogate (fidelity with its 95% interval, kappa, balanced
        agreement, accuracy, size, readable, the verdict at the run's bar), and the bar."""
        from .._display import distillation_text

        return distillation_text(**self._display_data())

    def _repr_html_(self) -> str:
        """The teacher check and the fidelity table with intervals and the verdict at the run's bar (``ed.audit``'s
        default, 0.95, when the run set none)."""
        from .._display import distillation_html

        return distillation_html(**self._display_data())


def load(
    directory: str | os.PathLike,
    *,
    teacher_module: torch.nn.Module | None = None,
    device: str = "auto",
    features: Any = None,
) -> Distillation:
    """Load a run written by :meth:`Distillation.save` (no pickle on any path).

    Parameters
    ----------
    directory : path
        The run directory itself, or a report directory holding it under ``model/``.
    teacher_module : torch.nn.Module, optional
        Needed when the teacher is your own network (not one ``train_teacher`` built): an
        untrained instance of the same architecture, e.g. ``ed.load(run_dir, teacher_module=MyNet())``;
        the saved weights are loaded into it.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where the teacher runs.
    features : callable, optional
        A run fitted over a user features function needs that function again; surrogates over
        pattern features get their map back from the teacher and the saved layer name.
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
    specs = meta.get("features") or {}
    if not isinstance(specs, dict):
        raise ValueError(f"{directory / 'run.json'} has an invalid 'features' entry; the file is damaged or not ours.")
    maps: dict[str, FeatureMap] = {}
    surrogates: dict[str, Any] = {}
    for name in meta["surrogates"]:
        est = load_surrogate(directory / "surrogates" / name)
        family, label = split_name(name)
        if label is not None:
            if label not in maps:
                if label not in specs:
                    raise ValueError(f"{directory / 'run.json'} lists {name!r} but does not describe its '{label}' features.")
                maps[label] = feature_map_from_spec(specs[label], teacher, function=features)
            est = FeatureSurrogate(maps[label], est, family=family)
        surrogates[name] = est
    for est in surrogates.values():  # runs saved before names (and units) were stored with each surrogate
        if isinstance(est, FeatureSurrogate):
            continue
        if getattr(est, "feature_names_in_", None) is None and len(est.classes_) == dataset.n_classes:
            set_names(est, feature_names=dataset.feature_names, class_names=dataset.class_names)
        if int(est.n_features_in_) == dataset.n_features:
            set_units(est, dataset.units())  # with the data's observed values, which a saved surrogate does not hold
    return Distillation(
        teacher=teacher,
        dataset=dataset,
        surrogates=surrogates,
        temperature=float(meta["temperature"]),
        seed=int(meta["seed"]),
        metrics=meta.get("metrics") or {},
        info=meta.get("info") or {},
        frontier=meta.get("frontier") or {},
        features=maps,
        min_agreement=meta.get("min_agreement", (meta.get("frontier") or {}).get("min_agreement")),
        gate=meta.get("gate") or "per_class",
        min_class_agreement=float(meta.get("min_class_agreement", 0.5)),
        teacher_check=_teacher_check_from(meta.get("teacher_check")),
    )


def _teacher_check_from(doc: Any) -> TeacherCheck | None:
    """The saved teacher check (None for runs saved before distill ran it)."""
    if not isinstance(doc, dict):
        return None
    try:
        return TeacherCheck(**{**doc, "teacher_interval": tuple(doc["teacher_interval"])})
    except (KeyError, TypeError):
        return None
