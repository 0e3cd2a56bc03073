"""The benchmark runner: it runs what it finds, records failures without crashing, writes RESULTS.md.

Timings are never asserted: only that the suite executes and writes what it promises.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from benchmarks import run as runner
from benchmarks.bench_e2e import parse_stages
from benchmarks.bench_scaling import _slope

ROOT = Path(__file__).resolve().parents[1]


def _fake(result=None, exc=None):
    def run(*, device="cpu", quick=False):
        if exc is not None:
            raise exc
        return result

    return types.SimpleNamespace(run=run)


def test_a_failing_benchmark_is_recorded_and_the_rest_still_run(tmp_path):
    fakes = {
        "good": _fake({"title": "Good one", "markdown": "| a | b |\n|---|---|\n| 1 | 2 |", "data": {"x": 1.5}}),
        "boom": _fake(exc=RuntimeError("kaboom at step 3")),
        "shape": _fake(["not", "a", "dict"]),
        "after": _fake({"title": "After", "markdown": "still ran", "data": {}}),
    }
    records = runner.run_benchmarks(list(fakes), quick=True, loader=fakes.__getitem__)
    assert [r["status"] for r in records] == ["ok", "failed", "failed", "ok"]
    machine = runner.machine_info("cpu")
    md_path, js_path = runner.write_results(tmp_path / "out" / "RESULTS.md", machine, records, quick=True)
    md = md_path.read_text()
    assert "| CPU |" in md and "| RAM |" in md and machine["versions"]["torch"] in md
    assert "## Good one" in md and "| 1 | 2 |" in md and "still ran" in md
    assert "RuntimeError: kaboom at step 3" in md and md.count("**Failed**") == 2
    assert "must return a dict" in md
    # sections in the order run
    assert md.index("## Good one") < md.index("## boom") < md.index("## After")
    doc = json.loads(js_path.read_text())
    assert js_path.name == "results.json" and js_path.parent == md_path.parent
    assert doc["benchmarks"]["good"]["data"] == {"x": 1.5}
    assert doc["benchmarks"]["boom"]["status"] == "failed" and "kaboom" in doc["benchmarks"]["boom"]["error"]


def test_discover_uses_the_fixed_order_then_the_rest(tmp_path):
    for name in ("zeta", "e2e", "soft_labels", "alpha", "scaling"):
        (tmp_path / f"bench_{name}.py").write_text("")
    (tmp_path / "helpers.py").write_text("")
    assert runner.discover(tmp_path) == ["soft_labels", "e2e", "scaling", "alpha", "zeta"]


def test_the_real_suite_has_the_modules_this_runner_promises():
    found = runner.discover()
    assert {"soft_labels", "e2e", "scaling"} <= set(found)


def test_unknown_names_are_a_usage_error(tmp_path, capsys):
    assert runner.main(["--only", "no_such_bench", "--output", str(tmp_path / "R.md")]) == 2
    assert "available" in capsys.readouterr().err
    assert not (tmp_path / "R.md").exists()


def test_parse_stages_reads_the_cli_log():
    log = "\n".join(
        [
            "data: digits (1347 train, 450 test, 64 features, 10 classes) [0.2s]",
            "teacher: cnn, 93000 params, test accuracy 0.980 [12.2s]",
            "fitted tree in 0.35s",
            "  tree         fidelity 0.900 [0.870, 0.925]  accuracy 0.880  size 120",
            "distilled [15.0s]",
            "done in 17.5s",
        ]
    )
    stages = parse_stages(log)
    assert stages == pytest.approx(
        {"data": 0.2, "teacher": 12.0, "fit tree": 0.35, "distilled": 2.8, "save + report": 2.5, "total (logged)": 17.5}
    )


def test_slope_of_a_power_law():
    xs = [1e4, 1e5, 1e6]
    assert _slope(xs, [x * 3e-6 for x in xs]) == pytest.approx(1.0)
    assert _slope(xs, [5.0, 5.0, 5.0]) == pytest.approx(0.0, abs=1e-9)
    assert _slope(xs, [None, 1.0, None]) is None


def test_quick_run_from_the_command_line_writes_results(tmp_path):
    out = tmp_path / "res" / "RESULTS.md"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--threads", "1", "--only", "soft_labels", "--output", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == str(out)
    md = out.read_text()
    assert "# Benchmark results" in md and "Soft-label generation overhead" in md and "| ok |" in md
    doc = json.loads((out.parent / "results.json").read_text())
    assert doc["quick"] is True and doc["machine"]["torch_threads"] == 1
    data = doc["benchmarks"]["soft_labels"]["data"]
    assert doc["benchmarks"]["soft_labels"]["status"] == "ok"
    for case in data["cases"].values():  # the library's soft labels equal the bare loop's
        assert case["max_abs_diff_vs_bare"] <= 1e-6


def _record(name, text):
    return {"name": name, "status": "ok", "title": f"Bench {name}", "markdown": text, "data": {"v": text}, "seconds": 1.0}


def test_merge_replaces_only_the_benchmarks_run_again(tmp_path):
    out = tmp_path / "RESULTS.md"
    first = {**runner.machine_info("cpu"), "date_utc": "2026-01-01 10:00 UTC", "git_commit": "aaa1111"}
    runner.write_results(out, first, [_record("a", "A one"), _record("b", "B one")], quick=True)
    later = {**first, "date_utc": "2026-01-02 11:00 UTC", "git_commit": "bbb2222"}
    runner.write_results(out, later, [_record("b", "B two"), _record("c", "C two")], quick=True, merge=True)
    md = out.read_text()
    assert "A one" in md and "B two" in md and "C two" in md and "B one" not in md
    assert md.index("## Bench a") < md.index("## Bench b") < md.index("## Bench c")  # kept order, new ones last
    section_a = md[md.index('<a id="a">') : md.index('<a id="b">')]
    assert "measured 2026-01-01 10:00 UTC at commit aaa1111" in section_a
    assert "measured" not in md[md.index('<a id="b">') : md.index('<a id="c">')]  # this run's own section
    assert "Merged (`--merge`)" in md
    doc = json.loads(out.with_name("results.json").read_text())
    assert list(doc["benchmarks"]) == ["a", "b", "c"]
    assert doc["benchmarks"]["a"]["measured"]["git_commit"] == "aaa1111"
    assert doc["benchmarks"]["b"]["data"] == {"v": "B two"} and doc["machine"]["git_commit"] == "bbb2222"
    # without --merge the file holds only this run
    runner.write_results(out, later, [_record("c", "C three")], quick=True)
    assert "A one" not in out.read_text() and "Merged" not in out.read_text()


def test_merge_refuses_results_without_markdown(tmp_path):
    out = tmp_path / "RESULTS.md"
    out.with_name("results.json").write_text(json.dumps({"benchmarks": {"old": {"title": "Old", "status": "ok", "data": {}}}}))
    with pytest.raises(ValueError, match="entry 'old' has no markdown"):
        runner.write_results(out, runner.machine_info("cpu"), [_record("b", "B")], quick=True, merge=True)


def test_readable_benchmark_reports_targets_met_and_not_met():
    from benchmarks import bench_readable as br

    def seed(s, tree16, rules100):
        fam = {
            "tree": {16: tree16, 64: 0.85, 256: 0.96}, "tree (requested)": {16: tree16, 64: 0.85, 256: 0.96},
            "tree (target auto)": {16: 0.5, 64: 0.5, 256: 0.5}, "figs": {16: 0.7, 64: 0.7, 256: 0.7},
            "rules": {30: 0.9, 100: rules100}, "rules (requested)": {30: 0.9, 100: rules100}, "gam": {60: 0.99},
        }
        return {"dataset": "digits", "seed": s, "teacher_accuracy": 0.98, "n_transfer": 100, "n_test": 10, "fidelity": fam,
                "fit_s": {k: 1.0 for k in ("tree", "tree (target auto)", "figs", "rules", "gam")}, "extra": {"rule_length": 3.0},
                "peers": [{"peer": "InterpretML EBM", "skipped": "not installed"}], "seconds": 5.0}

    md = br._markdown({"digits": [seed(0, 0.80, 0.92), seed(1, 0.78, 0.95)]}, quick=False)
    rows = {line.split("|")[1].strip() + line.split("|")[2].strip(): line for line in md.splitlines() if line.startswith("| digits")}
    assert "**met**" in rows["digits: best of tree / figs (tree)<= 16"] and "0.790 ± 0.010" in rows["digits: best of tree / figs (tree)<= 16"]
    assert "**not met**" not in rows["digits: rules<= 100"] and "0.935" in rows["digits: rules<= 100"]
    assert "**not met**" in rows["digits: best of tree / figs (tree)<= 64"]
    assert "skipped: not installed" in md
    assert set(br.peers_available()) == {"imodels", "interpret"}


def test_side_by_side_table_says_who_leads_and_by_how_much():
    import numpy as np

    from benchmarks._side_by_side import _paired, markdown

    a = np.array([1, 1, 1, 0] * 25, dtype=bool)
    b = np.array([1, 1, 0, 0] * 25, dtype=bool)
    diff, lo, hi = _paired(a, b)
    assert diff == pytest.approx(0.25) and lo < 0.25 < hi and lo > 0  # 25 discordant pairs, all for a
    assert _paired(a, a) == (0.0, 0.0, 0.0)
    row = {"dataset": "mnist1d", "view": "raw", "family": "figs", "bucket": 16, "unit": "leaves", "ours_size": 16, "ours": 0.28,
           "ours_setting": "hard/squared_error/depth None", "peer": "imodels FIGS", "peer_size": 17, "peer_fid": 0.30,
           "diff": -0.02, "diff_low": -0.05, "diff_high": 0.01, "lead": "peer"}
    lead = dict(row, family="gam", bucket="additive", unit="terms", ours=0.5, peer_fid=0.46, diff=0.04, lead="ours")
    md = markdown([{"rows": [row, lead, {"dataset": "mnist1d", "view": "raw", "fit_cpu_s": {"tree_fit_s": 1.0},
                                        "peer_fit_cpu_s": {"EBM": 9.0}, "skipped": {}}]}])
    lines = [line for line in md.splitlines() if line.startswith("| mnist1d")]
    assert "<= 16 leaves" in lines[0] and "peer, by 0.020" in lines[0] and "imodels FIGS (17)" in lines[0]
    assert lines[1].endswith("| ours |") and "additive" in lines[1]
    assert "EBM 9.0" in md and "tree 1.0" in md


def test_tree_seeds_table_averages_over_seeds_and_counts_the_seeds_at_or_above_the_peer():
    from benchmarks._side_by_side import tree_seeds_markdown

    rows = [{"dataset": "digits", "view": "raw", "bucket": 16, "seed": s, "peer": 0.70, "plain": p, "refined": r, "kept": k}
            for s, p, r, k in ((0, 0.69, 0.72, True), (1, 0.70, 0.69, False))]
    rows.append({"dataset": "digits", "view": "patterns", "bucket": 64, "seed": 0, "peer": 0.9, "plain": 0.9, "refined": 0.95, "kept": True})
    lines = tree_seeds_markdown(rows).splitlines()
    raw = next(line for line in lines if line.startswith("| digits | raw | 16 |"))
    assert "| 2 | 0.700 | 0.695 | 0.705 | +0.0050 | 1 / 1 of 2 | 1 |" in raw
    assert lines.index(raw) < lines.index(next(line for line in lines if "| patterns |" in line))
    assert lines[-1].startswith("| all |  |  | 3 |") and "2 / 2 of 3" in lines[-1] and lines[-1].endswith("| 2 |")


def test_gpu_fit_benchmark_runs_on_the_cpu_and_the_new_fit_equals_the_old():
    """bench_gpu_fit --quick on the CPU: in memory the new fit visits the rows in the order of 8d8999f
    with the same arithmetic, so both versions train the same tree (the benchmark checks predict too)."""
    from benchmarks.bench_gpu_fit import run

    r = run(device="cpu", quick=True)
    mem = r["data"]["fit_in_memory"]
    assert mem["max_abs_diff_proba"] < 1e-5 and mem["agreement"] == 1.0
    assert mem["new"]["fit_info"]["in_memory"] and not r["data"]["fit_streamed"]["new"]["fit_info"]["in_memory"]
    assert "new / old" in r["markdown"] and r["data"]["predict"]["new"]["rows_per_s"] > 0


def test_user_nets_are_the_networks_the_image_benchmark_promises():
    import torch

    from benchmarks._user_nets import LeNet, SmallResNet
    from explain_distill.features import conv_layer_names

    lenet, resnet = LeNet(), SmallResNet()
    assert sum(p.numel() for p in lenet.parameters()) == 114_206  # two 5x5 convolutions, ~114k parameters
    assert conv_layer_names(lenet) == ["c1", "c3"]
    assert lenet(torch.zeros(2, 1, 28, 28)).shape == (2, 10) and resnet.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in resnet.modules())
    assert isinstance(resnet.pool, torch.nn.AdaptiveAvgPool2d)


def test_image_benchmark_markdown_reports_every_surrogate_and_stage():
    from benchmarks.bench_images import _markdown

    stage = {"seconds": 1.5, "peak_mib": 10.0, "load": 2.0}
    rec = {"case": "digits28", "n_images": 5000, "input_shape": [1, 28, 28], "network": "LeNet",
           "teacher": {"params": 114206, "epochs": 8, "test_accuracy": 0.97}, "pattern_layer": "act3", "grid": 3,
           "pattern_columns": 576,
           "surrogates": {"tree": {"fidelity": 0.7, "interval": [0.68, 0.72], "params": 127, "readable": True},
                          "rules@patterns": {"fidelity": 0.88, "interval": [0.86, 0.9], "params": 132, "readable": True}},
           "best_readable": {"tree": {"size": 64, "fidelity": 0.7, "interval": [0.68, 0.72]}},
           "chosen": "No readable model clears 0.900.", "stages": {"distill": stage, "run_analyses": stage, "report": stage},
           "distill_stages": {"transfer": 1.0}, "distill_analyses_report_s": 95.0, "cores": 2}
    md = _markdown([rec])
    assert "| rules@patterns | 0.880 [0.860, 0.900] | 132 | yes |" in md
    assert "| run_analyses | 1.5 | 10 | 2.0 |" in md and "**95.0 s** on 2 cores" in md and "NOT met" in md
    assert "No readable model clears 0.900." in md and "tree 0.700 at 64" in md
