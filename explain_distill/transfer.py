"""The transfer set: inputs paired with the teacher's soft labels at temperature T.

Soft labels are softmax(z / T) of the teacher's logits z (Hinton et al. 2015).  With several
teachers the soft labels are their (optionally weighted) average.  Inputs come from the training
split; synthesized queries (added by :func:`build_transfer_set`'s ``queries``) extend it where the
training data is thin.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np

from ._validation import (
    check_array_2d,
    check_consistent_length,
    check_int,
    check_labels,
    check_positive,
    check_soft_labels,
)
from .teacher import Teacher

logger = logging.getLogger(__name__)

__all__ = [
    "TransferSet",
    "QuerySpec",
    "QUERY_KINDS",
    "soft_labels",
    "build_transfer_set",
    "synthesize_queries",
    "check_teachers",
    "estimate_bytes",
    "QueryMemoryError",
]


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
    domain : dict
        How the synthesized queries met the data's domain: ``{"queries", "outside", "projected"}``
        (queries drawn, how many fell outside it as drawn, whether they were moved into it); empty
        when no domain was given.
    """

    X: np.ndarray
    P: np.ndarray
    temperature: float
    y: np.ndarray
    source: np.ndarray
    source_names: list[str] = field(default_factory=lambda: ["train"])
    domain: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.X = check_array_2d(self.X, name="TransferSet.X", dtype=np.float32)
        self.P = check_soft_labels(self.P, name="TransferSet.P").astype(np.float32)
        self.y = np.asarray(self.y, dtype=np.int64)
        self.source = np.asarray(self.source, dtype=np.int8)
        check_consistent_length(X=self.X, P=self.P, y=self.y, source=self.source)
        check_positive(self.temperature, "temperature")

    def __len__(self) -> int:
        return len(self.X)

    @property
    def n_real(self) -> int:
        return int(np.sum(self.y >= 0))

    def counts(self) -> dict[str, int]:
        return {name: int(np.sum(self.source == i)) for i, name in enumerate(self.source_names)}

    def __repr__(self) -> str:
        """Size, where the rows came from, the temperature and how soft the labels are (never the arrays)."""
        from ._display import array_summary

        conf = float(self.P.max(axis=1).mean()) if len(self.P) else float("nan")
        return (
            f"TransferSet(X {array_summary(self.X)}, P {array_summary(self.P)}, temperature={self.temperature:g}, "
            f"rows {({k: v for k, v in self.counts().items() if v})}, mean top probability {conf:.3f})"
        )


def check_teachers(teachers: Teacher | Sequence[Teacher], weights: Sequence[float] | None = None) -> tuple[list[Teacher], np.ndarray]:
    """A non-empty list of teachers that agree on their classes, and normalised weights."""
    if isinstance(teachers, Teacher):
        teachers = [teachers]
    if not isinstance(teachers, Sequence) or isinstance(teachers, (str, bytes)):
        raise TypeError(
            f"teacher must be a Teacher or a list of them; received a {type(teachers).__name__}. "
            f"Wrap your module first: Teacher(module, class_names=[...])."
        )
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
    """The (weighted) mean of the teachers' ``predict_proba(X, temperature)``, float32 (n, K).

    ``X`` is validated once.  Each teacher runs batch by batch on its device, where its inputs
    and outputs are scanned for NaN/inf (read once at the end); several teachers are averaged
    there, in float32 on a GPU and in float64 on the CPU, and the result crosses to the host once.
    """
    temperature = check_positive(temperature, "temperature")
    teachers, w = check_teachers(teachers, weights)
    X = check_array_2d(X, name="X", dtype=None, finite=False)  # the NaN/inf scan runs on the device
    if len(teachers) == 1:  # one teacher: its probabilities as they are, no accumulator pass
        return teachers[0]._proba(X, temperature).cpu().numpy()
    import torch

    dev = teachers[0].device
    acc_dtype = torch.float64 if dev.type == "cpu" else torch.float32
    P = None
    for t, wi in zip(teachers, w):
        p = t._proba(X, temperature, out_device=dev)
        if P is None:
            P = torch.zeros(p.shape, dtype=acc_dtype, device=dev)
        P.add_(p.to(acc_dtype), alpha=float(wi))
    return P.float().cpu().numpy()


# ---------------------------------------------------------------------------- query synthesis
QueryKind = Literal["jitter", "mixup", "class", "boundary"]
QUERY_KINDS: tuple[str, ...] = ("jitter", "mixup", "class", "boundary")

#: Default cap on the memory a synthesized transfer set may take (inputs + soft labels + scratch).
DEFAULT_MAX_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class QuerySpec:
    """How many synthesized queries of each kind the teacher labels, and how they are drawn.

    Parameters
    ----------
    jitter : int
        Training points plus Gaussian noise of ``jitter_scale`` times each feature's std.
    mixup : int
        Convex combinations ``lam * x_i + (1 - lam) * x_j`` of random training pairs,
        ``lam ~ Beta(mixup_alpha, mixup_alpha)`` (Zhang et al. 2018).
    class_ : int
        Class-conditional samples: a class is drawn with its training frequency, then a point from
        a diagonal Gaussian fitted to that class (``"class"`` in a dict).
    boundary : int
        TREPAN-style queries near the decision boundary of a quick depth-``boundary_depth`` tree fitted
        to the real soft labels: a training point has one split feature on its tree path moved to
        that split's threshold plus noise of ``boundary_scale`` times the feature's std.
    clip : bool
        Keep every value inside the training range of its feature.
    in_domain : bool
        With a data domain given (``build_transfer_set(domain=...)``, which ``distill`` passes):
        move every query into it (one level hot per one-hot group, 0/1 columns in {0, 1}, integers
        integral, inside the range), so the teacher is never asked about inputs that cannot exist.
        False keeps the queries as drawn (and still counts those outside).
    seed : int
    max_bytes : int
        The synthesized set must fit in this many bytes (and in the memory available);
        checked before anything is drawn.
    """

    jitter: int = 0
    mixup: int = 0
    class_: int = 0
    boundary: int = 0
    jitter_scale: float = 0.5
    mixup_alpha: float = 1.0
    boundary_scale: float = 0.1
    boundary_depth: int = 8
    clip: bool = True
    in_domain: bool = True
    seed: int = 0
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        for kind in ("jitter", "mixup", "class_", "boundary"):
            check_int(getattr(self, kind), f"queries[{kind.rstrip('_')!r}]", low=0, hint="Pass a count of queries >= 0.")
        check_positive(self.jitter_scale, "jitter_scale", strict=False)
        check_positive(self.mixup_alpha, "mixup_alpha")
        check_positive(self.boundary_scale, "boundary_scale", strict=False)
        check_int(self.boundary_depth, "boundary_depth", low=1, high=32)
        check_int(self.seed, "seed")
        check_int(self.max_bytes, "max_bytes", low=1)

    @property
    def total(self) -> int:
        return self.jitter + self.mixup + self.class_ + self.boundary

    def counts(self) -> dict[str, int]:
        return {"jitter": self.jitter, "mixup": self.mixup, "class": self.class_, "boundary": self.boundary}

    @classmethod
    def coerce(cls, queries: "QuerySpec | Mapping[str, Any] | None", *, seed: int | None = None) -> "QuerySpec":
        """``None`` -> no queries; a dict such as ``{"jitter": 2000, "boundary": 2000}``; or a QuerySpec."""
        if queries is None:
            return cls(seed=0 if seed is None else seed)
        if isinstance(queries, QuerySpec):
            return queries
        if not isinstance(queries, Mapping):
            raise TypeError(
                f"queries must be a dict like {{'jitter': 2000, 'mixup': 2000, 'boundary': 2000}} or a QuerySpec; "
                f"received {type(queries).__name__}."
            )
        kw = dict(queries)
        if "class" in kw:
            kw["class_"] = kw.pop("class")
        known = {f.name for f in fields(cls)}
        unknown = [k for k in kw if k not in known]
        if unknown:
            raise ValueError(
                f"Unknown query option(s) {unknown}. Kinds: {', '.join(QUERY_KINDS)}; options: "
                f"{', '.join(sorted(k for k in known if k not in ('jitter', 'mixup', 'class_', 'boundary')))}."
            )
        if seed is not None and "seed" not in kw:
            kw["seed"] = seed
        return cls(**kw)


class QueryMemoryError(ValueError, MemoryError):
    """The requested synthesized queries would not fit in memory (raised before any work)."""


def _available_memory() -> int | None:
    """Bytes the OS says are available (Linux ``MemAvailable``), None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def estimate_bytes(n_rows: int, n_features: int, n_classes: int) -> int:
    """Peak bytes to synthesize and label ``n_rows`` queries: float32 inputs, float64 scratch for
    drawing them, float64 soft-label accumulator and its float32 copy."""
    return int(n_rows) * (n_features * (4 + 8) + n_classes * (8 + 4 + 4) + 16)


def check_query_memory(spec: QuerySpec, n_real: int, n_features: int, n_classes: int) -> int:
    """Raise before any work when the synthesized set would not fit; returns the estimate."""
    need = estimate_bytes(spec.total + n_real, n_features, n_classes)
    avail = _available_memory()
    limit = spec.max_bytes if avail is None else min(spec.max_bytes, int(0.8 * avail))
    if need > limit:
        gib = 1024**3
        raise QueryMemoryError(
            f"The requested queries ({spec.counts()}, {spec.total} rows x {n_features} features) need about "
            f"{need / gib:.2f} GiB, over the limit of {limit / gib:.2f} GiB (max_bytes={spec.max_bytes}"
            + (f", {avail / gib:.2f} GiB available" if avail is not None else "")
            + "). Ask for fewer queries, or raise max_bytes if the memory is there."
        )
    return need


def _class_conditional(X: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    classes, counts = np.unique(labels, return_counts=True)
    picks = rng.choice(len(classes), size=n, p=counts / counts.sum())
    out = np.empty((n, X.shape[1]), dtype=np.float32)
    global_std = X.std(axis=0) + 1e-6
    for i, c in enumerate(classes):
        rows = picks == i
        if not rows.any():
            continue
        Xc = X[labels == c]
        mu = Xc.mean(axis=0)
        sd = Xc.std(axis=0) if len(Xc) > 1 else 0.1 * global_std
        out[rows] = mu + rng.standard_normal((int(rows.sum()), X.shape[1])) * sd
    return out


def _boundary(X: np.ndarray, P: np.ndarray, n: int, spec: QuerySpec, std: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """TREPAN-style: move one split feature of a point's tree path to that split's threshold (+ noise)."""
    from sklearn.tree import DecisionTreeRegressor

    tree = DecisionTreeRegressor(max_depth=spec.boundary_depth, random_state=spec.seed).fit(X, P)
    t = tree.tree_
    base = rng.integers(0, len(X), size=n)
    Q = X[base].astype(np.float32, copy=True)
    paths = tree.decision_path(Q).tocsr()
    inner = t.children_left >= 0
    for r in range(n):
        nodes = paths.indices[paths.indptr[r] : paths.indptr[r + 1]]
        nodes = nodes[inner[nodes]]
        if len(nodes) == 0:
            continue
        node = nodes[rng.integers(len(nodes))]
        f = t.feature[node]
        Q[r, f] = t.threshold[node] + spec.boundary_scale * std[f] * rng.standard_normal()
    return Q


def synthesize_queries(
    X: np.ndarray,
    *,
    spec: QuerySpec,
    P: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    domain: Any = None,
    report: dict[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the queries of ``spec`` around the real inputs ``X``.

    ``P`` (the real rows' soft labels) is needed for ``boundary`` and ``labels`` (a class per real
    row) for ``class``.  With a ``domain`` (:class:`explain_distill.data.Domain`) the queries that
    fall outside it are counted and, with ``spec.in_domain``, moved into it; ``report`` (a dict)
    receives ``{"queries", "outside", "projected"}``.  Returns (queries float32 (m, d), source codes
    (m,) indexing QUERY_KINDS + 1).
    """
    rng = np.random.default_rng(spec.seed)
    X64 = X.astype(np.float64)
    std = X64.std(axis=0)
    lo, hi = X.min(axis=0), X.max(axis=0)
    parts: list[np.ndarray] = []
    codes: list[np.ndarray] = []
    outside = 0
    for code, kind in enumerate(QUERY_KINDS, start=1):
        n = spec.counts()[kind]
        if n == 0:
            continue
        if kind == "jitter":
            Q = X64[rng.integers(0, len(X), size=n)] + rng.standard_normal((n, X.shape[1])) * (spec.jitter_scale * std)
        elif kind == "mixup":
            i = rng.integers(0, len(X), size=n)
            j = rng.integers(0, len(X), size=n)
            lam = rng.beta(spec.mixup_alpha, spec.mixup_alpha, size=(n, 1))
            Q = lam * X64[i] + (1.0 - lam) * X64[j]
        elif kind == "class":
            if labels is None:
                raise ValueError("class-conditional queries need a class per real row (labels).")
            Q = _class_conditional(X64, labels, n, rng)
        else:
            if P is None:
                raise ValueError("boundary queries need the real rows' soft labels (P).")
            Q = _boundary(X, P, n, spec, std, rng)
        Q = np.asarray(Q, dtype=np.float32)
        if spec.clip:
            np.clip(Q, lo, hi, out=Q)
        if domain is not None:
            outside += int(domain.outside(Q).sum())
            if spec.in_domain:
                Q = domain.project(Q)
        parts.append(Q)
        codes.append(np.full(n, code, dtype=np.int8))
    if report is not None and domain is not None:
        report.update({"queries": int(sum(len(q) for q in parts)), "outside": outside,
                       "projected": bool(spec.in_domain)})
    if not parts:
        return np.empty((0, X.shape[1]), dtype=np.float32), np.empty(0, dtype=np.int8)
    return np.concatenate(parts), np.concatenate(codes)


def build_transfer_set(
    teachers: Teacher | Sequence[Teacher],
    X: Any,
    y: Any = None,
    *,
    temperature: float = 4.0,
    weights: Sequence[float] | None = None,
    queries: QuerySpec | Mapping[str, Any] | None = None,
    seed: int | None = None,
    domain: Any = None,
) -> TransferSet:
    """Label the training inputs ``X`` (and synthesized queries) with the teachers' soft labels.

    Parameters
    ----------
    teachers : Teacher or list of Teacher
        Several teachers have their soft labels averaged, weighted by ``weights``.
    X : array (n, n_features)
        The real inputs (the training split).
    y : array (n,), optional
        Their true labels (kept in ``TransferSet.y``; queries get -1).
    temperature : float
        Softmax temperature T > 0.
    queries : dict or QuerySpec, optional
        e.g. ``{"jitter": 2000, "mixup": 2000, "boundary": 2000}``; counts per kind
        (``jitter``, ``mixup``, ``class``, ``boundary``) plus options of :class:`QuerySpec`.
        The memory it needs is checked before anything is drawn.  The teacher labels queries in
        batches on its own device (the GPU when it has one).
    seed : int, optional
        Seed of the synthesis when ``queries`` is a dict without one.
    domain : explain_distill.data.Domain, optional
        Where the data's inputs can lie (``Dataset.domain()``): queries are moved into it (see
        ``QuerySpec.in_domain``) and the share that fell outside as drawn is logged and recorded in
        ``TransferSet.domain``.
    """
    temperature = check_positive(temperature, "temperature")
    teachers, w = check_teachers(teachers, weights)
    X = check_array_2d(X, name="X", dtype=np.float32)
    K = teachers[0].n_classes
    spec = QuerySpec.coerce(queries, seed=seed)
    if spec.total:
        check_query_memory(spec, len(X), X.shape[1], K)
    if y is None:
        y_arr = np.full(len(X), -1, dtype=np.int64)
    else:
        y_arr = check_labels(y, name="y").astype(np.int64)
        check_consistent_length(X=X, y=y_arr)
    P = soft_labels(teachers, X, temperature=temperature, weights=w)
    source = np.zeros(len(X), dtype=np.int8)
    if not spec.total:
        return TransferSet(X=X, P=P, temperature=float(temperature), y=y_arr, source=source, source_names=["train"])
    labels = y_arr if (y is not None and (y_arr >= 0).all()) else P.argmax(axis=1)
    report: dict[str, Any] = {}
    Q, codes = synthesize_queries(X, spec=spec, P=P, labels=labels, domain=domain, report=report)
    PQ = soft_labels(teachers, Q, temperature=temperature, weights=w)
    logger.info("transfer set: %d real rows + %d synthesized queries %s", len(X), len(Q), spec.counts())
    if report.get("outside"):
        logger.info("%d of %d queries (%.1f%%) fell outside the data's domain as drawn (a fraction on a 0/1 column, "
                    "two levels of one category, a decimal count)%s", report["outside"], report["queries"],
                    100 * report["outside"] / max(report["queries"], 1),
                    "; they were moved into it" if report["projected"] else "; kept as drawn (in_domain=False)")
    return TransferSet(
        X=np.concatenate([X, Q]),
        P=np.concatenate([P, PQ]),
        temperature=float(temperature),
        y=np.concatenate([y_arr, np.full(len(Q), -1, dtype=np.int64)]),
        source=np.concatenate([source, codes]),
        source_names=["train", *QUERY_KINDS],
        domain=report,
    )
