"""Queries inside the data's domain: how many synthesized queries the old synthesis put where no input
can be (a fraction on a 0/1 column, two levels of one category half-on, a decimal count), and the
fidelity on the *real* test rows of surrogates fitted with the queries as drawn and moved into the domain.

Issue 21 item 3: report the share outside and the fidelity before and after on breast_cancer, wine,
iris, a CSV with mixed types (benchmarks/_tables.churn_csv) and digits; a drop is reported, not hidden.
Both arms share the teacher, the seed and the validation rows; only ``QuerySpec.in_domain`` differs.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

TITLE = "Queries inside the data's domain: share outside before, fidelity on real rows before and after"
SURROGATES = ["tree", "rules", "figs", "logistic"]


def _data(name: str, tmp: Path, quick: bool) -> Any:
    import explain_distill as ed

    if name == "churn.csv":
        from benchmarks._tables import churn_csv

        return ed.Dataset.from_csv(churn_csv(tmp / "churn.csv", n=1500 if quick else 4000), target="churn")
    return ed.load_dataset(name)


def _arm(teacher: Any, data: Any, queries: dict[str, Any], in_domain: bool) -> tuple[Any, dict[str, Any]]:
    import explain_distill as ed

    res = ed.distill(teacher, data, surrogates=SURROGATES, queries={**queries, "in_domain": in_domain}, seed=0,
                     min_agreement=0.9)
    rows = {n: {"fidelity": m["fidelity"], "interval": m["fidelity_interval"], "kappa": m["kappa"],
                "params": m["params"]} for n, m in res.metrics["surrogates"].items()}
    return res, rows


def _one(name: str, tmp: Path, quick: bool) -> dict[str, Any]:
    import explain_distill as ed
    from explain_distill.distill import DEFAULT_QUERIES

    t0 = time.perf_counter()
    data = _data(name, tmp, quick)
    teacher = ed.train_teacher(data, seed=0, epochs=10 if quick else 100, progress=False)
    queries = {"jitter": 1000, "mixup": 1000} if quick else dict(DEFAULT_QUERIES)
    before, rows_before = _arm(teacher, data, queries, in_domain=False)
    after, rows_after = _arm(teacher, data, queries, in_domain=True)
    dom = before.info.get("queries_domain") or {}
    return {
        "dataset": name, "kind": data.kind, "schema": data.schema.counts(),
        "queries": dom.get("queries"), "outside": dom.get("outside"),
        "outside_after": int(after.dataset.domain().outside(after.transfer.X[after.transfer.n_real:]).sum()),
        "teacher_accuracy": before.metrics["teacher"]["accuracy"], "n_test": len(data.X_test),
        "before": rows_before, "after": rows_after, "seconds": round(time.perf_counter() - t0, 1),
    }


def _markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "Default queries (jitter + mixup, clipped to the training range) labelled by the default teacher; "
        "*before*: the queries as drawn (`in_domain=False`), *after*: moved into the data's domain (one level hot "
        "per one-hot group, 0/1 columns in {0, 1}, integers integral; images keep continuous intensities). "
        "Fidelity: top-1 agreement with the teacher on the real test rows, 95% Wilson interval.",
        "",
        "| data | columns | queries outside the domain as drawn | after | surrogate | fidelity before | fidelity after | change |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cols = ", ".join(f"{v} {k}" for k, v in r["schema"].items())
        share = f"{r['outside']:,} of {r['queries']:,} ({100 * r['outside'] / max(r['queries'], 1):.1f}%)" if r["queries"] else "n/a"
        for i, name in enumerate(r["before"]):
            b, a = r["before"][name], r["after"][name]
            lines.append(
                f"| {r['dataset'] if i == 0 else ''} | {cols if i == 0 else ''} | {share if i == 0 else ''} | "
                f"{r['outside_after'] if i == 0 else ''} | {name} | {b['fidelity']:.3f} [{b['interval'][0]:.3f}, "
                f"{b['interval'][1]:.3f}] | {a['fidelity']:.3f} [{a['interval'][0]:.3f}, {a['interval'][1]:.3f}] | "
                f"{a['fidelity'] - b['fidelity']:+.3f} |"
            )
    return "\n".join(lines)


def run(*, device: str = "cpu", quick: bool = False) -> dict:
    """Both arms on breast_cancer, wine, iris, the mixed-type churn CSV and digits (iris and the CSV when quick)."""
    names = ["iris", "churn.csv"] if quick else ["breast_cancer", "wine", "iris", "churn.csv", "digits"]
    with tempfile.TemporaryDirectory() as tmp:
        results = [_one(n, Path(tmp), quick) for n in names]
    return {"title": TITLE, "markdown": _markdown(results), "data": {"results": results, "quick": quick}}


if __name__ == "__main__":
    import sys

    print(run(quick="--quick" in sys.argv)["markdown"])
