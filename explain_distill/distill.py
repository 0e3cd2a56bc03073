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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import sklearn
import torch

from ._version import __version__ as _version
from ._io import atomic_directory, read_json, write_json
from ._stats import wilson_interval
from ._validation import check_fraction, check_positive
from .data import Dataset, load_saved_dataset, save_dataset
from .features import (
    FEATURE_SETS,
    FeatureMap,
    FeatureSurrogate,
    FunctionFeatures,
    PatternFeatures,
    conv_layer_names,
    feature_map_from_spec,
)
from .surrogates import SURROGATES, load_surrogate, save_surrogate
from .surrogates._base import set_names, set_units
from .teacher import Teacher
from .transfer import QuerySpec, TransferSet, build_transfer_set, check_teachers, soft_labels

logger = logging.getLogger(__name__)

__all__ = [
    "distill",
    "Distillation",
    "load",
    "resolve_surrogates",
    "readable_families",
    "DEFAULT_SURROGATES",
    "DEFAULT_FEATURE_SURROGATES",
    "DEFAULT_QUERIES",
    "VALIDATION_FRACTION",
]

#: Share of the training rows held out (stratified) to choose sizes on the frontier; never the test split.
VALIDATION_FRACTION = 0.2

#: What ``distill`` fits when ``surrogates`` is not given (those registered).  ``gam`` is registered
#: but not a default: on digits its fit and term ladder take ~7 s raw and ~40 s over the 192 pattern
#: columns, where ``explain-distill run`` has 60 s in all on 2 cores (name it to fit it).
DEFAULT_SURROGATES: tuple[str, ...] = (
    "soft_tree", "soft_tree_sparse", "tree", "logistic", "naive_bayes", "rules", "figs", "student",
)

#: Families fitted over a feature set (``"tree@patterns"``, ...) when ``features`` asks for one and
#: ``surrogates`` names none over it.  ``figs@patterns`` and ``gam@patterns`` are left to be named:
#: on digits (192 pattern columns) they cost ~10 s and ~40 s of a 60 s run, where logistic@patterns
#: already follows the teacher (0.998) and tree@patterns reaches 0.96 at 32 leaves.
DEFAULT_FEATURE_SURROGATES: tuple[str, ...] = ("tree", "rules", "logistic")

#: Defaults of a family over features that differ from its raw-input defaults (user ``params`` win):
#: a rule list over pattern detectors needs about three rules per class (mnist1d, 10 classes:
#: 0.85 fidelity with 12 rules, 0.92 with 29 plus the else rule); a tree over them grows best-first
#: to 64 leaves (mnist1d, 3 seeds: 0.936 mean fidelity, against 0.905 for depth 6 level by level).
FEATURE_PARAMS: dict[str, dict[str, Any]] = {"rules": {"max_rules": 29}, "tree": {"max_leaf_nodes": 64, "max_depth": None}}

#: Queries the teacher labels on top of the training split when ``queries`` is not given: Gaussian
#: jitter (0.5 std) and mixup.  Chosen on digits: with the "entropy" tree they lift the depth-8
#: tree's fidelity from ~0.83 (hard labels) to ~0.90 (benchmarks/RESULTS.md, bench_fidelity).
DEFAULT_QUERIES: dict[str, int] = {"jitter": 10000, "mixup": 10000}

#: Epochs of the network surrogates when the transfer set carries synthesized queries and the
#: user set none: the set is then ~16x the training split (digits, default queries), so fewer
#: passes already see far more samples than the estimators' defaults (tuned on a training split
#: alone) assume.  Measured on digits: soft_tree 0.976 fidelity at 10 epochs (3.9 s) vs 0.969 at
#: 40 (14.7 s); student 0.989 at 10 epochs vs 0.993 at 30 (21 s).
EPOCHS_WITH_QUERIES: dict[str, int] = {"soft_tree": 10, "soft_tree_sparse": 10, "student": 12}

# Parameters distill fills in from the run when a surrogate has them and the user did not set them.
_CONTEXT_PARAMS = ("random_state", "input_shape", "temperature")


#: Families that train with torch: fitted one after the other, never beside the student (global RNG, threads).
_TORCH_FAMILIES = ("soft_tree", "soft_tree_sparse", "student")


def _on_gpu(est: Any) -> bool:
    """Whether a torch surrogate will train on a GPU (then it is not trained beside the CPU fits)."""
    device = str(est.get_params().get("device", "cpu"))
    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def split_name(name: str) -> tuple[str, str | None]:
    """``"tree@patterns"`` -> ``("tree", "patterns")``; ``"tree"`` -> ``("tree", None)``."""
    family, sep, label = name.partition("@")
    return family, (label if sep else None)


def resolve_surrogates(surrogates: Sequence[str] | str | None, *, what: str = "surrogates") -> list[str]:
    """Registry names from a list or a comma-separated string (every registered default when None).

    Checked before any work: unknown or repeated names raise ValueError listing what is available.
    """
    if surrogates is None:
        return [s for s in DEFAULT_SURROGATES if s in SURROGATES]
    if isinstance(surrogates, str):
        surrogates = [s.strip() for s in surrogates.split(",") if s.strip()]
    names = list(surrogates)
    if not names:
        raise ValueError(f"No surrogates requested in {what}; choose from: {', '.join(SURROGATES)}.")
    bad = [s for s in names if not isinstance(s, str)]
    if bad:
        raise TypeError(f"Surrogate names must be strings; received {bad[:3]!r} in {what}.")
    unknown = [s for s in names if split_name(s)[0] not in SURROGATES]
    if unknown:
        raise ValueError(
            f"Unknown surrogate(s) {unknown} in {what}. Available: {', '.join(SURROGATES)}, each also over the "
            f"teacher's pattern features as NAME@patterns (or over features=your_function as NAME@features)."
        )
    sets = [s for s in names if split_name(s)[1] is not None and split_name(s)[1] not in FEATURE_SETS]
    if sets:
        raise ValueError(
            f"Unknown feature set in {sets}: after '@' write one of {', '.join(FEATURE_SETS)} "
            f"('patterns': the teacher's convolutional channels; 'features': the function passed as features=)."
        )
    if len(set(names)) != len(names):
        raise ValueError(f"Surrogate names repeat in {what} {names}; list each once.")
    return names


def readable_families(names: Sequence[str]) -> list[str]:
    """The surrogate names among ``names`` whose class has a size to sweep (the frontier protocol:
    class attributes ``size_unit``, ``size_param``, ``size_ladder`` and a fitted ``size_``), raw
    (``tree``) or over features (``tree@patterns``)."""
    out = []
    for n in names:
        family = split_name(n)[0]
        if family in SURROGATES and getattr(SURROGATES[family], "size_param", None):
            out.append(n)
    return out


def _is_convolutional(teacher: Teacher) -> bool:
    return teacher.input_shape is not None and len(teacher.input_shape) in (2, 3) and bool(conv_layer_names(teacher.module))


def _feature_plan(
    names: list[str], surrogates: Any, features: Any, feature_layer: str | None, teacher: Teacher
) -> tuple[list[str], dict[str, FeatureMap]]:
    """Add the default feature surrogates ``features`` asks for and build the maps the names need."""
    auto = isinstance(features, str) and features == "auto"
    if isinstance(features, str) and features not in ("auto", "patterns"):
        raise ValueError(
            f"features must be 'auto', 'patterns', None, a function from inputs to named features, or a FeatureMap; "
            f"received {features!r}."
        )
    if features is not None and not isinstance(features, (str, FeatureMap)) and not callable(features):
        raise TypeError(
            f"features must be 'auto', 'patterns', None, a function from inputs to named features, or a FeatureMap; "
            f"received {type(features).__name__}."
        )
    if feature_layer is not None and not isinstance(feature_layer, str):
        raise TypeError(f"feature_layer must be a module name (str); received {type(feature_layer).__name__}.")
    label = None
    if features == "patterns" or (auto and surrogates is None and _is_convolutional(teacher)):
        label = "patterns"
    elif isinstance(features, FeatureMap):
        label = features.label
    elif features is not None and not isinstance(features, str):
        label = "features"
    if label is not None and not any(split_name(n)[1] == label for n in names):
        names = names + [f"{f}@{label}" for f in DEFAULT_FEATURE_SURROGATES if f in SURROGATES]
    maps: dict[str, FeatureMap] = {}
    for lab in dict.fromkeys(split_name(n)[1] for n in names):
        if lab is None:
            continue
        if isinstance(features, FeatureMap) and features.label == lab:
            maps[lab] = features
        elif lab == "patterns":
            maps[lab] = PatternFeatures(teacher, layer=feature_layer)
        elif features is None or isinstance(features, str):
            raise ValueError(
                f"Surrogates over '@features' ({[n for n in names if n.endswith('@features')]}) need features=a function "
                f"from inputs (n, d) to named features (a dict name -> (n,) array, or an (n, m) array)."
            )
        else:
            maps[lab] = FunctionFeatures(features, n_features_in=teacher.n_features)
    if feature_layer is not None and "patterns" not in maps:
        raise ValueError(f"feature_layer={feature_layer!r} was given but no surrogate is fitted over 'patterns'.")
    return names, maps


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
        }

    def __repr__(self) -> str:
        """The run and one line per surrogate: fidelity with its 95% interval, accuracy, size."""
        from ._display import distillation_text

        return distillation_text(**self._display_data())

    def _repr_html_(self) -> str:
        """The fidelity table with intervals and the audit verdict (``ed.audit``'s default bar, 0.95)."""
        from ._display import distillation_html

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
        if getattr(est, "input_units_", None) is None and int(est.n_features_in_) == dataset.n_features:
            set_units(est, dataset.units())
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
    min_agreement: float | None = None,
    frontier: bool | None = None,
    ladders: Mapping[str, Sequence[int]] | None = None,
    features: Literal["auto", "patterns"] | Callable[[np.ndarray], Any] | FeatureMap | None = "auto",
    feature_layer: str | None = None,
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
    min_agreement : float in [0, 1], optional
        The bar for the smallest faithful model: per readable family (``readable_families``:
        tree, rules, soft_tree, ...), the smallest size on its ladder whose 95% Wilson interval on
        the validation split has a lower end at or above the bar becomes that family's surrogate
        (logged; a family whose size you set in ``params`` keeps it).  When none clears it the
        configured model stays and the log says so.
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
    names = resolve_surrogates(surrogates)
    names, maps = _feature_plan(names, surrogates, features, feature_layer, ref)
    params = dict(params or {})
    unknown = [k for k in params if k not in names]
    if unknown:
        raise ValueError(f"params given for {unknown}, which are not among the requested surrogates {names}.")
    for name, user in params.items():
        accepted = SURROGATES[split_name(name)[0]]().get_params(deep=False)
        bad = [k for k in user if k not in accepted]
        if bad:
            raise ValueError(f"{name}: unknown parameter(s) {bad}; it accepts {sorted(accepted)}.")
    if min_agreement is not None:
        min_agreement = check_fraction(min_agreement, "min_agreement")
    if frontier is None:
        frontier = transfer is None
    families = readable_families(names) if frontier else []
    ladder_sizes = _check_ladders(ladders, families)
    if min_agreement is not None and not families:
        logger.warning("min_agreement=%s: no readable family (%s) among the surrogates %s, nothing to choose",
                       min_agreement, ", ".join(readable_families(list(SURROGATES))), names)

    t0 = time.perf_counter()
    val_rows = np.zeros(0, dtype=np.int64)
    if transfer is None:
        fit_rows = np.arange(len(dataset.X_train))
        if families:
            val_rows, fit_rows = _validation_rows(dataset.y_train, seed)
        transfer = build_transfer_set(
            teachers, dataset.X_train[fit_rows], dataset.y_train[fit_rows], temperature=temperature, weights=w,
            queries=queries or None, seed=seed,
        )
    else:
        _check_transfer(transfer, dataset, temperature)
    X_val = dataset.X_train[val_rows]
    if families and transfer is not None and not len(val_rows):
        transfer, X_val = _carve_from_transfer(transfer, seed)
    timings = {"soft_labels_s": time.perf_counter() - t0}
    context = {"random_state": seed, "input_shape": tuple(dataset.input_shape), "temperature": temperature}
    columns: dict[str, np.ndarray] = {}
    for label, fm in maps.items():  # each feature set mapped once, batched, on the teacher's device
        t1 = time.perf_counter()
        if isinstance(fm, PatternFeatures) and fm.scale is None:
            fm.fit(dataset.X_train)  # responses in units of each channel's top-1% response on the training data
        columns[label] = fm.transform(transfer.X)
        timings[f"features_{label}_s"] = time.perf_counter() - t1
        logger.info("%s features: %d columns in %.2fs", label, columns[label].shape[1], timings[f"features_{label}_s"])
    fitted: dict[str, Any] = {}
    units = dataset.units()

    def configured(name: str, overrides: Mapping[str, Any] | None = None) -> Any:
        family, label = split_name(name)
        est = SURROGATES[family]()
        accepted = est.get_params(deep=False)
        user = dict(params.get(name, {}))
        for key in _CONTEXT_PARAMS:
            if key in accepted and key not in user:
                user[key] = None if (key == "input_shape" and label is not None) else context[key]
        if label is not None:
            user = {**FEATURE_PARAMS.get(family, {}), **user}
        if family in EPOCHS_WITH_QUERIES and "epochs" in accepted and "epochs" not in user and len(transfer) > transfer.n_real:
            user["epochs"] = EPOCHS_WITH_QUERIES[family]
        return est.set_params(**{**user, **dict(overrides or {})})

    def fit(est: Any, label: str | None = None) -> Any:
        fit_kwargs = {}
        extra = getattr(est, "_fit_extra", ())
        if "y_true" in extra:
            fit_kwargs["y_true"] = transfer.y
        if "teacher_attention" in extra and float(est.get_params().get("attention_weight", 0.0) or 0.0) > 0:
            if label is not None:
                raise ValueError(f"attention transfer needs raw image/signal inputs; set attention_weight=0 over {label}.")
            fit_kwargs["teacher_attention"] = _attention(teachers, w, transfer.X)
        if "oracle" in extra and label is None:
            fit_kwargs["oracle"] = _oracle(teachers, w, temperature)
        est.fit(transfer.X if label is None else columns[label], transfer.P, **fit_kwargs)
        if label is None:
            set_names(est, feature_names=dataset.feature_names, class_names=dataset.class_names)  # print with names
            set_units(est, units)  # ... and thresholds in the data's own units
        else:
            set_names(est, feature_names=list(maps[label].names), class_names=dataset.class_names)
        return est

    shared: dict[str, Any] = {}  # family -> the one fit its ladder and its configured model are read from

    def fit_one(name: str) -> None:
        family, label = split_name(name)
        t1 = time.perf_counter()
        est = None
        if name in families:
            est, big = _read_off_ladder_fit(
                configured(name), ladder_sizes.get(name) or list(SURROGATES[family].size_ladder),
                lambda size, name=name: configured(name, {**dict(getattr(SURROGATES[family], "ladder_params", {}) or {}),
                                                          SURROGATES[family].size_param: size}),
                lambda e, label=label: fit(e, label),
            )
            if big is not None:
                shared[name] = big
        if est is None:
            est = fit(configured(name), label)
        fitted[name] = est if label is None else FeatureSurrogate(maps[label], est, family=family)
        timings[f"fit_{name}_s"] = time.perf_counter() - t1
        logger.info("fitted %s in %.2fs", name, timings[f"fit_{name}_s"])

    # On a CPU with two cores or more, the neural student (torch on one thread) trains beside the
    # scikit-learn and numpy families (one core each; the tree builders release the GIL).  It starts
    # once the torch-based soft trees are fitted, so nothing else touches torch's global RNG or
    # thread count while it trains; every fit is seeded on its own, so the models are the same.
    beside = "student" if "student" in names and (os.cpu_count() or 1) >= 2 and not _on_gpu(configured("student")) else None
    first = [n for n in names if split_name(n)[0] in _TORCH_FAMILIES and n != beside]
    order = first + [n for n in names if n not in first and n != beside]
    if beside is None:
        for name in order:
            fit_one(name)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="explain_distill-student") as pool:
            pending = None
            for name in order:
                if pending is None and name not in first:
                    pending = pool.submit(fit_one, beside)
                fit_one(name)
            (pending or pool.submit(fit_one, beside)).result()
    fitted = {name: fitted[name] for name in names}  # the order asked for

    fitted_ladders: dict[str, list[Any]] = {}
    choice: dict[str, Any] = {}
    if families:
        t1 = time.perf_counter()
        t_val = ref.predict(X_val) if len(X_val) else np.zeros(0, dtype=np.int64)
        for name in families:
            family, label = split_name(name)
            cls = SURROGATES[family]
            sizes = ladder_sizes.get(name) or list(cls.size_ladder)
            main = shared.get(name) or (fitted[name].estimator if label is not None else fitted[name])
            t2 = time.perf_counter()
            inner = _fit_ladder(name, main, sizes, configured, lambda e, label=label: fit(e, label))
            timings[f"ladder_{name}_s"] = time.perf_counter() - t2
            for est in inner:
                if label is None:
                    set_names(est, feature_names=dataset.feature_names, class_names=dataset.class_names)
                    set_units(est, units)
                else:
                    set_names(est, feature_names=list(maps[label].names), class_names=dataset.class_names)
            fitted_ladders[name] = inner if label is None else [FeatureSurrogate(maps[label], e, family=family) for e in inner]
            rungs = []
            for est, core in zip(fitted_ladders[name], inner):
                agree = int(np.sum(np.asarray(est.predict(X_val)) == t_val)) if len(X_val) else 0
                lo, hi = wilson_interval(agree, len(X_val))
                rungs.append({
                    "param_value": core.get_params()[cls.size_param],
                    "size": int(core.size_),
                    "validation": agree / len(X_val) if len(X_val) else None,
                    "validation_interval": [lo, hi],
                })
            size_keys = {cls.size_param, *dict(getattr(cls, "ladder_params", {}) or {})}
            explicit = bool(size_keys & set(params.get(name, {})))
            chosen = None
            if min_agreement is not None:
                passing = [i for i, r in enumerate(rungs) if r["validation_interval"][0] >= min_agreement]
                chosen = passing[0] if passing else None
            choice[name] = {"unit": cls.size_unit, "param": cls.size_param, "rungs": rungs, "chosen": chosen,
                            "explicit": explicit}
            if chosen is not None:
                r = rungs[chosen]
                if explicit:
                    logger.info("%s: its size was set by you (%s), so it is kept; the smallest size clearing %.3f on "
                                "validation is %d %s", name, {k: params[name][k] for k in size_keys & set(params[name])},
                                min_agreement, r["size"], cls.size_unit)
                else:
                    fitted[name] = fitted_ladders[name][chosen]
                    logger.info(
                        "%s: the smallest model clearing %.3f is %d %s (%s=%s): validation agreement %.3f, "
                        "95%% interval [%.3f, %.3f] on %d held-out training rows",
                        name, min_agreement, r["size"], cls.size_unit, cls.size_param, r["param_value"],
                        r["validation"], *r["validation_interval"], len(X_val),
                    )
            elif min_agreement is not None:
                best = max(rungs, key=lambda r: r["validation_interval"][0])
                logger.warning(
                    "%s: no size on its ladder clears %.3f on validation (best: %d %s, lower end %.3f); "
                    "keeping the configured model", name, min_agreement, best["size"], cls.size_unit,
                    best["validation_interval"][0],
                )
        timings["ladders_s"] = time.perf_counter() - t1
        logger.info("fitted the ladders of %s in %.2fs (%s)", ", ".join(families), timings["ladders_s"],
                    ", ".join(f"{n} {timings[f'ladder_{n}_s']:.1f}s" for n in families))
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
            "transfer_set": {**transfer.counts(), **({"validation (held out)": int(len(X_val))} if families else {})},
            "timings": {k: round(v, 4) for k, v in timings.items()},
            "data_sha256": dataset.fingerprint(),
            "teacher_sha256": ref.fingerprint(),
            **({"features": {label: {**fm.spec(), "n_columns": fm.n_features} for label, fm in maps.items()}} if maps else {}),
        },
        features=maps,
        ladders=fitted_ladders,
        frontier={
            "min_agreement": min_agreement,
            "validation": {"n": int(len(X_val)), "rows": val_rows.tolist(),
                           "source": "training split" if len(val_rows) else "transfer set's training rows"},
            "families": choice,
        } if families else {},
    )
    result.evaluate()
    return result


def _check_ladders(ladders: Mapping[str, Sequence[int]] | None, families: list[str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for name, sizes in dict(ladders or {}).items():
        if name not in families:
            raise ValueError(
                f"ladders given for {name!r}, which is not a readable family among the requested surrogates "
                f"({', '.join(families) or 'none'}); the frontier sweeps only those."
            )
        try:
            values = sorted({int(v) for v in sizes})
        except (TypeError, ValueError) as exc:
            raise TypeError(f"ladders[{name!r}] must be a list of integers; received {sizes!r}.") from exc
        if not values or values[0] < 1:
            raise ValueError(f"ladders[{name!r}] must hold positive integers; received {sizes!r}.")
        out[name] = values
    return out


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


def _fit_ladder(name: str, main: Any, sizes: Sequence[int], configured: Any, fit: Any) -> list[Any]:
    """Every size of ``name``'s ladder, smallest first, fitting as little as possible.

    A family with ``ladder_`` reads its smaller sizes off one fit (the main surrogate itself when
    it is already that large and configured for it); the others fit once per size.  Sizes that
    the data cannot reach (a tree that stops growing) collapse into one.
    """
    cls = type(main)
    param = cls.size_param
    overrides = dict(getattr(cls, "ladder_params", {}) or {})
    if hasattr(main, "ladder_"):
        big_size = max(sizes)
        current = main.get_params().get(param)
        compatible = all(main.get_params().get(k) == v for k, v in overrides.items())
        big = main if (current is not None and current >= big_size and compatible) else fit(
            configured(name, {**overrides, param: big_size})
        )
        models = big.ladder_(sizes)
    else:
        models = [fit(configured(name, {**overrides, param: s})) for s in sizes]
    out, seen = [], set()
    for est in models:
        if est.size_ not in seen:
            seen.add(est.size_)
            out.append(est)
    return sorted(out, key=lambda e: e.size_)
