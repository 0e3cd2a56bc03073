"""Fidelity as a function of one setting: temperature, surrogate size, soft vs hard labels.

Each function refits cheap surrogates on the run's data and returns plain data (lists of
numbers) for the report; nothing is drawn here.  Fidelity is top-1 agreement with the
teacher on the test split.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .._progress import progress
from ..distill import Distillation
from ..surrogates import SURROGATES
from ..transfer import TransferSet, build_transfer_set

logger = logging.getLogger(__name__)

__all__ = ["temperature_curve", "size_curve", "kd_vs_hard"]

CHEAP = ("tree", "logistic", "naive_bayes", "rules")

#: The curves refit surrogates many times over; past this many rows each refit uses a seeded sample of
#: the rows (the one place this is decided; the curve records ``rows_used`` and ``rows_total``).
MAX_ROWS = 20_000


def _sample(n: int, seed: int, what: str) -> np.ndarray:
    """Row indices a curve fits on: all ``n``, or ``MAX_ROWS`` of them (seeded, sorted), logged."""
    if n <= MAX_ROWS:
        return np.arange(n)
    logger.info("%s: refitting on %d of %d rows (MAX_ROWS)", what, MAX_ROWS, n)
    return np.sort(np.random.default_rng(seed).choice(n, MAX_ROWS, replace=False))


def _check(distillation: Any) -> Distillation:
    if not isinstance(distillation, Distillation):
        raise TypeError(f"Expected a Distillation (from distill()); received {type(distillation).__name__}.")
    return distillation


def _scores(est: Any, d: Distillation, t_pred: np.ndarray) -> dict[str, float]:
    pred = np.asarray(est.predict(d.dataset.X_test))
    return {"fidelity": float(np.mean(pred == t_pred)), "accuracy": float(np.mean(pred == d.dataset.y_test))}


def _make(name: str, seed: int, **params: Any) -> Any:
    if name not in SURROGATES:
        raise ValueError(f"Unknown surrogate {name!r}; available: {', '.join(SURROGATES)}.")
    est = SURROGATES[name]()
    accepted = est.get_params()
    if "random_state" in accepted:
        params.setdefault("random_state", seed)
    if "progress" in accepted:
        params.setdefault("progress", False)
    return est.set_params(**{k: v for k, v in params.items() if k in accepted})


def temperature_curve(
    distillation: Distillation,
    temperatures: Iterable[float] = (1, 2, 4, 8, 20),
    surrogates: Sequence[str] = CHEAP,
    *,
    queries: Mapping[str, Any] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Refit each surrogate on soft labels at each temperature; fidelity and accuracy per T.

    ``queries`` (as in ``distill``) is None by default: the curve uses the training split only, so
    a CLI run can afford it.  Returns ``{"temperatures": [...], "surrogates": {name:
    {"fidelity": [...], "accuracy": [...]}}, "queries": ...}``.
    """
    d = _check(distillation)
    temps = [float(t) for t in temperatures]
    if not temps or any(not np.isfinite(t) or t <= 0 for t in temps):
        raise ValueError(f"temperatures must be positive finite numbers; received {temps}.")
    params = dict(params or {})
    t_pred = d.teacher.predict(d.dataset.X_test)
    rows = _sample(len(d.dataset.X_train), d.seed, "temperature curve")
    out: dict[str, Any] = {"temperatures": temps, "surrogates": {n: {"fidelity": [], "accuracy": []} for n in surrogates},
                           "queries": dict(queries) if queries else None, "rows_used": int(len(rows)),
                           "rows_total": int(len(d.dataset.X_train))}
    bar = progress(len(temps), "temperature curve", unit="T")
    for T in temps:
        bar.update(1)
        ts = build_transfer_set(d.teacher, d.dataset.X_train[rows], d.dataset.y_train[rows], temperature=T,
                                queries=queries, seed=d.seed)
        for name in surrogates:
            est = _make(name, d.seed, **{**dict(params.get(name, {})), "temperature": T, "input_shape": tuple(d.dataset.input_shape)})
            kw = {"y_true": ts.y} if "y_true" in getattr(est, "_fit_extra", ()) else {}
            est.fit(ts.X, ts.P, **kw)
            s = _scores(est, d, t_pred)
            out["surrogates"][name]["fidelity"].append(s["fidelity"])
            out["surrogates"][name]["accuracy"].append(s["accuracy"])
        logger.debug("temperature %.3g done", T)
    bar.close()
    return out


_SIZE_PARAM = {"tree": "max_depth", "rules": "max_depth", "soft_tree": "depth"}


def size_curve(
    distillation: Distillation,
    depths: Iterable[int] = range(2, 11),
    surrogates: Sequence[str] = ("tree",),
    *,
    hard_baseline: bool = True,
    transfer: TransferSet | None = None,
) -> dict[str, Any]:
    """Fidelity and size (``n_params_``) per depth for tree-like surrogates.

    Fitted on the run's transfer set (``distillation.transfer``; rebuilt from the training split
    when the run was loaded from disk).  ``hard_baseline`` adds ``"tree_hard"``: the same tree
    fitted on the true hard labels of the training split only, and ``"tree_hard_gini"``: scikit-learn's
    default ``DecisionTreeClassifier`` (Gini) on those labels, the classical surrogate.
    """
    d = _check(distillation)
    depths = [int(k) for k in depths]
    if not depths or min(depths) < 1:
        raise ValueError(f"depths must be positive integers; received {depths}.")
    bad = [s for s in surrogates if s not in _SIZE_PARAM]
    if bad:
        raise ValueError(f"size_curve handles tree-like surrogates {sorted(_SIZE_PARAM)}; received {bad}.")
    ts = transfer or d.transfer or build_transfer_set(d.teacher, d.dataset.X_train, d.dataset.y_train, temperature=d.temperature)
    t_pred = d.teacher.predict(d.dataset.X_test)
    names = list(surrogates) + (["tree_hard", "tree_hard_gini"] if hard_baseline else [])
    fit_rows = _sample(len(ts), d.seed, "size curve")
    hard_rows = _sample(len(d.dataset.X_train), d.seed, "size curve (hard labels)")
    X_fit, P_fit = np.asarray(ts.X)[fit_rows], np.asarray(ts.P)[fit_rows]
    X_hard, y_hard = d.dataset.X_train[hard_rows], d.dataset.y_train[hard_rows]
    out: dict[str, Any] = {"depths": depths, "surrogates": {n: {"fidelity": [], "accuracy": [], "params": []} for n in names},
                           "transfer_set": ts.counts(), "temperature": ts.temperature,
                           "rows_used": int(len(fit_rows)), "rows_total": int(len(ts))}
    deepest = max(depths)
    bar = progress(len(names), "size curve", unit="model")
    for name in names:
        bar.update(1)
        row = out["surrogates"][name]
        if name in ("tree", "tree_hard", "tree_hard_gini"):
            # Greedy top-down growth: the depth-k tree is the deepest tree cut at depth k (node
            # values are stored at every node), so one fit serves every depth.  Identical to separate
            # fits but for ties between equally good splits, which sklearn breaks at random.
            if name == "tree_hard_gini":
                from sklearn.tree import DecisionTreeClassifier

                est = DecisionTreeClassifier(max_depth=deepest, random_state=d.seed).fit(X_hard, y_hard)
            elif name == "tree_hard":
                est = _make("tree", d.seed, max_depth=deepest).fit(X_hard, y_hard)
            else:
                est = _make("tree", d.seed, max_depth=deepest).fit(X_fit, P_fit)
            for k, pred, n_nodes in _truncations(est, d.dataset.X_test, depths):
                row["fidelity"].append(float(np.mean(pred == t_pred)))
                row["accuracy"].append(float(np.mean(pred == d.dataset.y_test)))
                row["params"].append(n_nodes)
            continue
        for k in depths:
            est = _make(name, d.seed, **{_SIZE_PARAM[name]: k})
            if name == "rules":
                est.set_params(max_rules=2**k)
            est.fit(X_fit, P_fit)
            s = _scores(est, d, t_pred)
            row["fidelity"].append(s["fidelity"])
            row["accuracy"].append(s["accuracy"])
            row["params"].append(int(est.n_params_))
    bar.close()
    return out


def _truncations(est: Any, X: np.ndarray, depths: Sequence[int]) -> list[tuple[int, np.ndarray, int]]:
    """Predictions and node counts of a fitted sklearn-style tree cut at each depth in ``depths``
    (vectorised: each row's leaf, then the leaf's ancestor at depth k)."""
    tree = est.tree_
    n = tree.node_count
    node_depth = np.zeros(n, dtype=np.int64)
    parent = np.full(n, -1, dtype=np.int64)
    for i in range(n):  # parents precede children in sklearn's node order
        for child in (tree.children_left[i], tree.children_right[i]):
            if child >= 0:
                node_depth[child] = node_depth[i] + 1
                parent[child] = i
    inner = getattr(est, "estimator_", est)
    leaf = inner.apply(np.asarray(X, dtype=np.float32))
    values = tree.value.reshape(n, -1)
    out = []
    for k in depths:
        anc = np.arange(n)
        while True:  # move every node deeper than k up to its parent, until all sit at depth <= k
            deep = node_depth[anc] > k
            if not deep.any():
                break
            anc[deep] = parent[anc[deep]]
        pred = est.classes_[np.argmax(values[anc[leaf]], axis=1)]
        out.append((k, pred, int(np.sum(node_depth <= k))))
    return out


def kd_vs_hard(
    distillation: Distillation,
    *,
    params: Mapping[str, Any] | None = None,
    transfer: TransferSet | None = None,
) -> dict[str, Any]:
    """The same NeuralStudent trained with the KD loss on the soft transfer set vs on hard labels.

    ``soft``: the run's transfer set at its temperature (queries included), alpha from ``params``.
    ``hard``: the training split's true labels only, plain cross-entropy (alpha=1, T=1).
    Returns ``{"soft": {"fidelity", "accuracy", "params"}, "hard": {...}, "student_params": {...}}``.
    """
    d = _check(distillation)
    ts = transfer or d.transfer or build_transfer_set(d.teacher, d.dataset.X_train, d.dataset.y_train, temperature=d.temperature)
    params = dict(params or {})
    t_pred = d.teacher.predict(d.dataset.X_test)
    shape = tuple(d.dataset.input_shape)
    if not params and transfer is None and "student" in d.surrogates:
        soft = d.surrogates["student"]  # the run's own KD student: same settings, no second fit
    else:
        rows = _sample(len(ts), d.seed, "KD student")
        soft = _make("student", d.seed, **{"input_shape": shape, "temperature": ts.temperature, **params})
        soft.fit(np.asarray(ts.X)[rows], np.asarray(ts.P)[rows], y_true=np.asarray(ts.y)[rows])
    hard_rows = _sample(len(d.dataset.X_train), d.seed, "hard-label student")
    hard = _make("student", d.seed, **{"input_shape": shape, **params, "temperature": 1.0, "alpha": 1.0})
    if "epochs" not in params:  # the run's budget of sample-passes, as distill spends it
        from ..distill.fitting import SAMPLE_BUDGET

        epochs = max(1, min(int(hard.epochs), -(-SAMPLE_BUDGET // max(len(hard_rows), 1))))
        if epochs < hard.epochs:
            logger.info("hard-label student: %d epochs instead of %d over %d rows (SAMPLE_BUDGET %d sample-passes)",
                        epochs, hard.epochs, len(hard_rows), SAMPLE_BUDGET)
            hard.set_params(epochs=epochs)
    hard.fit(d.dataset.X_train[hard_rows], d.dataset.y_train[hard_rows])
    res = {}
    for key, est in (("soft", soft), ("hard", hard)):
        res[key] = {**_scores(est, d, t_pred), "params": int(est.n_params_),
                    "n_train": int(len(ts) if key == "soft" else len(hard_rows))}
    res["student_params"] = {k: v for k, v in soft.get_params().items() if isinstance(v, (int, float, str, tuple, type(None)))}
    return res
