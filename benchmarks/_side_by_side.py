"""Ours against the best peer, size bucket by size bucket (issue 24), in one process.

Per data set (digits, mnist1d; default CNN teacher, seed 0) the stages run as ``distill`` runs them:
the validation split held out of the training rows, the transfer set (train + jitter + mixup at
T=4) on the rest, the teacher's pattern columns.  Ours are fitted as ``distill`` fits them (its
``VALIDATED_PARAMS``, with ``validation=`` the held-out real rows) and read off their ladders; the
peers are fitted on the same transfer rows (raw, or the same pattern columns) with the teacher's
hard labels: scikit-learn's tree (gini and entropy, the better on the test split is the peer),
imodels' FIGS and BoostedRules (one-vs-rest), InterpretML's EBM with main effects only.  Fidelity
is agreement with the teacher on the test split; the difference ours - peer comes with a paired
95% interval (the same test rows; McNemar's variance of the discordant pairs).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

TREE_BUCKETS = (16, 64, 256)
RULE_BUCKETS = (10, 30, 100)
#: imodels FIGS max_rules per bucket (leaves = rules + trees).  Not at 256 leaves: FIGS refits a stump on
#: every open leaf at every step, so 255 rules take tens of minutes per data set on 2 shared cores; the
#: issue's measurement there (mnist1d 0.603, digits 0.936) is quoted in RESULTS.md instead.
FIGS_RULES = {16: 15, 64: 63}


def _stage(name: str, seed: int, quick: bool) -> dict[str, Any]:
    import explain_distill as ed
    from explain_distill.distill.plan import DEFAULT_QUERIES, make_plan
    from explain_distill.distill.transfer_set import feature_columns, transfer_stage

    data = ed.load_dataset(name, seed=seed)
    teacher = ed.train_teacher(data, device="cpu", seed=seed, progress=False, **({"epochs": 3} if quick else {}))
    queries = {"jitter": 300, "mixup": 300} if quick else DEFAULT_QUERIES
    plan = make_plan(teacher, data, surrogates=("tree", "tree@patterns"), temperature=4.0, params=None, weights=None,
                     seed=seed, min_agreement=None, frontier=True, ladders=None, features="auto", feature_layer=None)
    stage = transfer_stage(plan, data, transfer=None, queries=queries)
    cols = feature_columns(plan, data, stage.transfer, {})
    fm = plan.maps["patterns"]
    tr = stage.transfer
    Pv = teacher.predict_proba(stage.X_val, temperature=4.0)
    return {"raw": (tr.X, stage.X_val, data.X_test), "patterns": (cols["patterns"], fm.transform(stage.X_val), fm.transform(data.X_test)),
            "P": tr.P, "Pv": Pv, "t_test": teacher.predict(data.X_test), "n_transfer": len(tr), "n_val": len(stage.X_val),
            "n_test": len(data.X_test), "teacher_accuracy": float(np.mean(teacher.predict(data.X_test) == data.y_test))}


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(mean(a) - mean(b), low, high): a paired 95% interval for the difference of two agreement rates."""
    from explain_distill._stats import paired_difference

    return paired_difference(a, b)


def _timed(fn):
    t0 = time.process_time()
    out = fn()
    return out, time.process_time() - t0


def _ours(view: str, X, Xv, P, Pv, quick: bool) -> dict[str, list[tuple[int, Any]]]:
    """Family -> [(bucket, fitted model)] as distill fits them (VALIDATED_PARAMS, the held-out rows)."""
    from explain_distill.distill.plan import FEATURE_PARAMS, VALIDATED_PARAMS
    from explain_distill.surrogates import AdditiveClassifier, RuleListClassifier, SoftLabelTreeClassifier, SumOfTreesClassifier

    val = (Xv, Pv)
    out: dict[str, Any] = {}
    feat = FEATURE_PARAMS if view == "patterns" else {}
    tree = SoftLabelTreeClassifier(**{**VALIDATED_PARAMS.get("tree", {}), "max_depth": None,
                                      "max_leaf_nodes": max(TREE_BUCKETS), "random_state": 0})
    tree, out["tree_fit_s"] = _timed(lambda: tree.fit(X, P, validation=val))
    out["tree"] = list(zip(TREE_BUCKETS, tree.ladder_(list(TREE_BUCKETS))))
    figs = SumOfTreesClassifier(**{**feat.get("figs", {}), **VALIDATED_PARAMS.get("figs", {}), "max_leaves": max(TREE_BUCKETS),
                                   "random_state": 0})
    figs, out["figs_fit_s"] = _timed(lambda: figs.fit(X, P, validation=val))
    out["figs"] = list(zip(TREE_BUCKETS, figs.ladder_(list(TREE_BUCKETS))))
    rules = RuleListClassifier(**{**VALIDATED_PARAMS.get("rules", {}), "max_rules": max(RULE_BUCKETS), "random_state": 0})
    rules, out["rules_fit_s"] = _timed(lambda: rules.fit(X, P))
    out["rules"] = list(zip(RULE_BUCKETS, rules.ladder_(list(RULE_BUCKETS))))
    if view == "raw":
        gam_kw = VALIDATED_PARAMS.get("gam", {})
        gam = AdditiveClassifier(**gam_kw, random_state=0)
        fit_kw = {"validation": val} if "validation" in getattr(gam, "_fit_extra", ()) else {}
        gam, out["gam_fit_s"] = _timed(lambda: gam.fit(X, P, **fit_kw))
        out["gam"] = [("additive", gam)]
    return out


def _peers(view: str, X, y, quick: bool) -> dict[str, list[tuple[Any, str, int, Any]]]:
    """Family -> [(bucket, peer name, size, fitted model)], on hard labels."""
    from sklearn.tree import DecisionTreeClassifier

    out: dict[str, list] = {"tree": [], "figs": [], "rules": [], "gam": []}
    for k in TREE_BUCKETS:
        for crit in ("gini", "entropy"):
            m = DecisionTreeClassifier(criterion=crit, max_leaf_nodes=k, random_state=0).fit(X, y)
            out["tree"].append((k, f"scikit-learn tree ({crit})", int(m.get_n_leaves()), m))
    try:
        from imodels import BoostedRulesClassifier, FIGSClassifier
        from sklearn.multiclass import OneVsRestClassifier
    except Exception as exc:  # noqa: BLE001 - the bench extra is optional
        out["skipped imodels"] = f"{type(exc).__name__}: {exc}"
    else:
        for k in [b for b in TREE_BUCKETS if b in FIGS_RULES][: 1 if quick else None]:
            # FIGS counts rules (splits); its leaves are rules + trees, which max_rules does not bound: fewer
            # rules until the model fits the bucket (mnist1d: 15 rules gave 18 leaves, 14 gave 16)
            for rules in range(FIGS_RULES[k], max(FIGS_RULES[k] - 8, 0), -1):
                (m, s) = _timed(lambda: FIGSClassifier(max_rules=rules, random_state=0).fit(X, y))
                if int(m.complexity_) + len(m.trees_) <= k:
                    break
            out["figs"].append((k, "imodels FIGS", int(m.complexity_) + len(m.trees_), m))
            out.setdefault("fit_s", {})[f"FIGS {k}"] = s
        K = len(np.unique(y))
        for k in RULE_BUCKETS if not quick else RULE_BUCKETS[:1]:
            n_est = max(1, k // K)
            m = OneVsRestClassifier(BoostedRulesClassifier(n_estimators=n_est, random_state=0)).fit(X, y)
            out["rules"].append((k, "imodels BoostedRules (one-vs-rest)", n_est * len(m.estimators_), m))
    if view == "raw":
        try:
            from interpret.glassbox import ExplainableBoostingClassifier
        except Exception as exc:  # noqa: BLE001
            out["skipped interpret"] = f"{type(exc).__name__}: {exc}"
        else:
            kw = {"interactions": 0, **({"outer_bags": 2, "max_rounds": 200} if quick else {})}
            (m, s) = _timed(lambda: ExplainableBoostingClassifier(random_state=0, n_jobs=2, **kw).fit(X, y))
            out["gam"].append(("additive", "InterpretML EBM (main effects)", len(m.term_features_), m))
            out.setdefault("fit_s", {})["EBM"] = s
    return out


def _size(est: Any) -> int:
    return int(est.size_)


def side_by_side(name: str, *, seed: int = 0, quick: bool = False, views: tuple[str, ...] = ("raw", "patterns")) -> dict[str, Any]:
    """The rows of the side-by-side table for one data set (plain data)."""
    st = _stage(name, seed, quick)
    t_test = st["t_test"]
    rows = []
    for view in views:
        X, Xv, Xt = st[view]
        ours = _ours(view, X, Xv, st["P"], st["Pv"], quick)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peers = _peers(view, X, np.argmax(st["P"], axis=1), quick)
        for fam, unit in (("tree", "leaves"), ("figs", "leaves"), ("rules", "rules"), ("gam", "terms")):
            for bucket, est in ours.get(fam, []):
                mine = np.asarray(est.predict(Xt)) == t_test
                cands = [(p, sz, np.asarray(m.predict(Xt)) == t_test) for b, p, sz, m in peers.get(fam, []) if b == bucket]
                row = {"dataset": name, "view": view, "family": fam, "bucket": bucket, "unit": unit, "ours_size": _size(est),
                       "ours": float(mine.mean()), "ours_setting": _setting(est)}
                if cands:
                    p, sz, hit = max(cands, key=lambda c: c[2].mean())
                    diff, lo, hi = _paired(mine, hit)
                    row.update(peer=p, peer_size=sz, peer_fid=float(hit.mean()), diff=diff, diff_low=lo, diff_high=hi,
                               lead="ours" if diff >= 0 else "peer")
                rows.append(row)
        rows.append({"dataset": name, "view": view, "fit_cpu_s": {k: v for k, v in ours.items() if k.endswith("_fit_s")},
                     "peer_fit_cpu_s": peers.get("fit_s", {}),
                     "skipped": {k: v for k, v in peers.items() if k.startswith("skipped")}})
    return {"dataset": name, "seed": seed, "rows": rows, "teacher_accuracy": st["teacher_accuracy"],
            "n_transfer": st["n_transfer"], "n_val": st["n_val"], "n_test": st["n_test"]}


def _setting(est: Any) -> str:
    parts = []
    for attr in ("target_", "criterion_", "loss_"):
        v = getattr(est, attr, None)
        if v is not None:
            parts.append(str(v))
    if getattr(est, "loss_", None) is not None:
        parts.append(f"depth {getattr(est, 'depth_', None)}")
    refinement = getattr(est, "refinement_", None)
    if refinement is not None:
        parts.append("refined" if refinement["kept"] else "refinement not kept")
    return "/".join(parts)


def tree_over_seeds(name: str, seeds: tuple[int, ...] = tuple(range(10)), *, quick: bool = False) -> list[dict[str, Any]]:
    """The single tree over many seeds (a new teacher, split and transfer set each): per seed, inputs and
    bucket, the test fidelity of distill's tree without and with ``refine`` (the same candidates, the same
    choice on validation) and of the better of scikit-learn's two hard-label trees on the test split."""
    from sklearn.tree import DecisionTreeClassifier

    from explain_distill.distill.plan import VALIDATED_PARAMS
    from explain_distill.surrogates import SoftLabelTreeClassifier

    rows = []
    for seed in seeds:
        st = _stage(name, seed, quick)
        t_test, P, Pv = st["t_test"], st["P"], st["Pv"]
        for view in ("raw", "patterns"):
            X, Xv, Xt = st[view]
            fits = {}
            for refine in (False, True):
                est = SoftLabelTreeClassifier(**{**VALIDATED_PARAMS["tree"], "refine": refine, "max_depth": None,
                                                 "max_leaf_nodes": max(TREE_BUCKETS), "random_state": seed})
                fits[refine] = dict(zip(TREE_BUCKETS, est.fit(X, P, validation=(Xv, Pv)).ladder_(list(TREE_BUCKETS))))
            for k in TREE_BUCKETS:
                peer = max(np.mean(DecisionTreeClassifier(criterion=c, max_leaf_nodes=k, random_state=seed)
                                   .fit(X, np.argmax(P, axis=1)).predict(Xt) == t_test) for c in ("gini", "entropy"))
                rung = fits[True][k]
                rows.append({"dataset": name, "seed": seed, "view": view, "bucket": k, "peer": float(peer),
                             "plain": float(np.mean(fits[False][k].predict(Xt) == t_test)),
                             "refined": float(np.mean(rung.predict(Xt) == t_test)), "kept": bool(rung.refinement_["kept"])})
    return rows


def tree_seeds_markdown(rows: list[dict[str, Any]]) -> str:
    """Per data set, inputs and bucket: the mean over seeds of each tree's fidelity, of ours - peer, and in
    how many seeds ours is at or above the peer's point estimate."""
    lines = ["| data | inputs | bucket | seeds | peer (best of 2 on test) | ours, greedy | ours, refined | refined - peer | seeds at or above the peer: greedy / refined | refinements kept |",
             "|---|---|---|---:|---:|---:|---:|---:|---|---:|"]
    keys = sorted({(r["dataset"], r["view"], r["bucket"]) for r in rows}, key=lambda k: (k[0], k[1] != "raw", k[2]))
    for key in keys + [("all", "", "")]:
        sel = [r for r in rows if key[0] == "all" or (r["dataset"], r["view"], r["bucket"]) == key]
        m = {f: float(np.mean([r[f] for r in sel])) for f in ("peer", "plain", "refined")}
        at_plain = sum(r["plain"] >= r["peer"] - 1e-12 for r in sel)
        at_ref = sum(r["refined"] >= r["peer"] - 1e-12 for r in sel)
        kept = sum(r["kept"] for r in sel)
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {len(sel)} | {m['peer']:.3f} | {m['plain']:.3f} | {m['refined']:.3f} | "
                     f"{m['refined'] - m['peer']:+.4f} | {at_plain} / {at_ref} of {len(sel)} | {kept} |")
    return "\n".join(lines)


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| data | inputs | family | bucket | ours (size, choice) | best peer (size) | ours - peer [95% paired] | leads |",
             "|---|---|---|---|---:|---:|---:|---|"]
    notes = []
    for res in results:
        for r in res["rows"]:
            if "family" not in r:
                notes.append(f"{r['dataset']} {r['view']}: fit CPU s ours {', '.join(f'{k[:-6]} {v:.1f}' for k, v in r['fit_cpu_s'].items())}; "
                             f"peers {', '.join(f'{k} {v:.1f}' for k, v in r['peer_fit_cpu_s'].items()) or '-'}"
                             + (f"; skipped {r['skipped']}" if r["skipped"] else ""))
                continue
            b = r["bucket"] if r["bucket"] == "additive" else f"<= {r['bucket']} {r['unit']}"
            ours = f"{r['ours']:.3f} ({r['ours_size']}, {r['ours_setting'] or '-'})"
            if "peer" in r:
                lead = "ours" if r["diff"] >= 0 else f"peer, by {-r['diff']:.3f}"
                lines.append(f"| {r['dataset']} | {r['view']} | {r['family']} | {b} | {ours} | {r['peer_fid']:.3f} {r['peer']} ({r['peer_size']}) | "
                             f"{r['diff']:+.3f} [{r['diff_low']:+.3f}, {r['diff_high']:+.3f}] | {lead} |")
            else:
                lines.append(f"| {r['dataset']} | {r['view']} | {r['family']} | {b} | {ours} | no peer run | | |")
    return "\n".join(lines + [""] + [f"- {n}" for n in notes])


if __name__ == "__main__":
    import json
    import os
    import sys

    import torch

    torch.set_num_threads(1)
    quick = "--quick" in sys.argv
    names = [a for a in sys.argv[1:] if not a.startswith("--")] or ["digits", "mnist1d"]
    if "--tree-seeds" in sys.argv:  # the single tree over 10 seeds, greedy against refined (~15 min for both sets)
        print(tree_seeds_markdown([r for nm in names for r in tree_over_seeds(nm, (0, 1) if quick else tuple(range(10)), quick=quick)]))
        sys.exit(0)
    res = []
    for nm in names:
        r = side_by_side(nm, quick=quick)
        res.append(r)
        out = os.environ.get("SIDE_BY_SIDE_OUT")
        if out:
            with open(os.path.join(out, f"{nm}.json"), "w", encoding="utf-8") as fh:
                json.dump(r, fh, default=float)
    print(markdown(res))
