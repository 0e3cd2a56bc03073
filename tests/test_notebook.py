"""At home in a notebook: every object's display, rendered by a real Jupyter kernel (nbclient).

A small notebook is built here and executed in an ipykernel; its outputs are what Jupyter would
show: short text reprs for Dataset / Teacher / TransferSet, the fidelity table (HTML) for a
Distillation, SVG drawings for a highlighted TreeView, a soft tree and a rule list.  They run
after the tour in ``examples/`` in the same kernel (one start); the tour must run cleanly and be
committed without outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.ipynb"))
TOUR = ROOT / "examples" / "tour.ipynb"

SETUP = """
import numpy as np
import explain_distill as ed

rng = np.random.default_rng(0)
X = rng.normal(size=(150, 4))
y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)
data = ed.Dataset.from_arrays(X, y, feature_names=["<b>width</b>", "depth $d$", "height", "mass"],
                              class_names=["small", "<i>medium</i>", "large"], name="<script>nb</script>")
teacher = ed.train_teacher(data, device="cpu", seed=0, epochs=5, progress=False)
result = ed.distill(teacher, data, surrogates=["tree", "rules", "soft_tree"], queries=None, seed=0,
                    params={"tree": {"max_depth": 3}, "soft_tree": {"depth": 2, "epochs": 3}})
x = data.X_test[0]
"""

CELLS = {
    "dataset": "data",
    "teacher": "teacher",
    "transfer": "result.transfer",
    "distillation": "result",
    "view": "ed.TreeView.of(result.surrogates['tree']).highlight(x)",
    "soft_tree": "result.surrogates['soft_tree'].draw(x)",
    "rules_draw": "result.surrogates['rules'].draw(x)",
    "rules_print": "print(result.surrogates['rules'])",
    "export": "print(result.surrogates['tree'].export_text())",
}


def _execute(nb, cwd: Path):
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def _result(cell) -> dict:
    """The rich data of a cell's display (execute_result or display_data); fails on an error output."""
    for out in cell.outputs:
        assert out.output_type != "error", "\n".join(out.get("traceback", []))
    data = [o.data for o in cell.outputs if o.output_type in ("execute_result", "display_data")]
    assert len(data) == 1, f"expected one displayed value, got {cell.outputs}"
    return data[0]


def _stdout(cell) -> str:
    for out in cell.outputs:
        assert out.output_type != "error", "\n".join(out.get("traceback", []))
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The tour, then the display cells, in one kernel (one start, one import of the package)."""
    tour = nbformat.read(TOUR, as_version=4)
    n_tour = len(tour.cells)
    tour.cells += [nbformat.v4.new_code_cell(SETUP)] + [nbformat.v4.new_code_cell(src) for src in CELLS.values()]
    cwd = tmp_path_factory.mktemp("nb")
    _execute(tour, cwd)
    setup = tour.cells[n_tour]
    assert not [o for o in setup.outputs if o.output_type == "error"], setup.outputs
    return {"tour": tour.cells[:n_tour], "displayed": dict(zip(CELLS, tour.cells[n_tour + 1 :])), "cwd": cwd}


@pytest.fixture(scope="module")
def displayed(executed):
    return executed["displayed"]


def test_short_text_reprs_name_shapes_and_names(displayed):
    texts = {k: _result(displayed[k])["text/plain"] for k in ("dataset", "teacher", "transfer", "distillation")}
    for key, text in texts.items():
        if key == "distillation":  # one screen-wide line each: the run, the teacher check, the surrogates, the bar
            assert max(len(line) for line in text.splitlines()) < 300, text
        else:
            assert len(text) < 700, f"{key} repr is {len(text)} characters: {text[:200]}..."
        assert "array(" not in text and "tensor(" not in text, key
    assert texts["dataset"].startswith("Dataset('<script>nb</script>'")
    assert "(112, 4) float32" in texts["dataset"] and "'<i>medium</i>'" in texts["dataset"] and "'depth $d$'" in texts["dataset"]
    assert texts["teacher"].startswith("Teacher(MLP,") and "3 classes" in texts["teacher"] and "parameters" in texts["teacher"]
    # 112 training rows, 23 of them held out as the frontier's validation split
    assert "TransferSet(X (89, 4) float32, P (89, 3) float32, temperature=4" in texts["transfer"]
    assert "'train': 89" in texts["transfer"]
    lines = texts["distillation"].splitlines()
    assert lines[0].startswith("Distillation(") and len(lines) == 6  # the run, the teacher, one line per surrogate, the bar
    assert lines[1].strip().startswith(("teacher check:", "WARNING:"))
    assert all("fidelity" in line and "[" in line and "kappa" in line for line in lines[2:5])
    assert lines[5].strip().startswith("bar ")


def test_distillation_shows_the_fidelity_table_with_intervals_and_the_audit_verdict(displayed):
    html = _result(displayed["distillation"])["text/html"]
    assert "<table>" in html and "95% interval" in html and "audit (bar 0.95)" in html and "kappa" in html
    assert html.count("<tr>") == 4  # header and three surrogates
    for name in ("tree", "rules", "soft_tree"):
        assert f"<b>{name}</b>" in html
    assert html.count("audit-pass") + html.count("audit-fail") == 3
    assert "<script>" not in html and "&lt;script&gt;nb&lt;/script&gt;" in html  # the hostile name is escaped


def test_tree_views_and_drawings_display_as_svg_with_names(displayed):
    for key in ("view", "soft_tree", "rules_draw"):
        data = _result(displayed[key])
        assert "image/svg+xml" in data, f"{key} has no SVG display (is graphviz's dot installed?): {list(data)}"
        svg = data["image/svg+xml"]
        assert svg.lstrip().startswith("<svg") and "#d62728" in svg, key  # drawn, with the path of x in red
        assert "<script" not in svg.lower(), key
    view_svg = _result(displayed["view"])["image/svg+xml"]
    assert "&lt;b&gt;width&lt;/b&gt;" in view_svg or "depth $d$" in view_svg or "height" in view_svg  # feature names
    assert "highlighted=[0," in _result(displayed["view"])["text/plain"]
    assert "small" in _result(displayed["soft_tree"])["image/svg+xml"] or "large" in _result(displayed["soft_tree"])["image/svg+xml"]


def test_printed_rules_and_exported_text_use_the_data_names(displayed):
    rules = _stdout(displayed["rules_print"])
    assert rules.startswith("IF ") and "THEN" in rules and "x0" not in rules
    assert any(c in rules for c in ("small", "<i>medium</i>", "large"))
    assert any(f in rules for f in ("<b>width</b>", "depth $d$", "height", "mass"))
    text = _stdout(displayed["export"])
    assert text.startswith("|--- ") and "class: " in text and "x0" not in text


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_notebook_is_committed_without_outputs(path):
    doc = json.loads(path.read_text(encoding="utf-8"))
    for i, cell in enumerate(doc["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, f"{path.name} cell {i} has outputs"


def test_the_tour_runs_and_shows_tables_drawings_and_the_report(executed):
    cells = [c for c in executed["tour"] if c.cell_type == "code"]
    errors = [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert not errors, "\n".join("\n".join(o.get("traceback", [])) for o in errors)
    shown = [o.data for c in cells for o in c.outputs if o.output_type in ("execute_result", "display_data")]
    assert any("text/html" in d for d in shown) and sum("image/svg+xml" in d for d in shown) >= 2
    assert (executed["cwd"] / "reports" / "iris-tour" / "index.html").is_file()  # written where it runs
    assert (executed["cwd"] / "runs" / "iris-tour" / "run.json").is_file()


def test_there_is_an_example_notebook():
    assert TOUR in EXAMPLES, "examples/tour.ipynb is missing"
