"""The README's Python section runs as written and everything it prints carries names.

The snippet is executed with the slow parts made quick (the session's digits teacher, two
surrogates, no queries, fidelity analyses only); every call it shows is run unchanged.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import explain_distill as ed

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_section() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## In Python") :]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_readme_python_section_prints_names(tmp_path, monkeypatch, digits, digits_teacher):
    code = _python_section()
    real_distill, real_analyses = ed.distill, ed.run_analyses
    monkeypatch.setattr(ed, "load_dataset", lambda name, **kw: digits)
    monkeypatch.setattr(ed, "train_teacher", lambda data, **kw: digits_teacher)
    monkeypatch.setattr(ed, "distill", lambda t, d, **kw: real_distill(t, d, **{**kw, "surrogates": ["tree", "rules"], "queries": None}))
    monkeypatch.setattr(ed, "run_analyses", lambda r, **kw: real_analyses(r, **{**kw, "robustness": False, "attributions": False}))
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    printed = out.getvalue()
    assert printed.count("pixel_") >= 5, printed[:500]  # rules, tree text and the rule of x name their features
    assert not re.search(r"\bx\[?\d+\]?\s*(<=|>)", printed), printed[:500]  # no anonymous x0 / x[3] features
    assert re.search(r"THEN \d \(p=", printed) and "class: " in printed  # class names ('0'..'9' for digits)
    assert (tmp_path / "tree.svg").read_text().lstrip().startswith("<svg")
    assert (tmp_path / "reports" / "digits" / "index.html").is_file()
