"""The import rules of DESIGN.md, checked by parsing every module's imports.

Stages form a line; a module may import only stages to its left (and the base modules
``_validation``, ``_stats``, ``_io``, ``_version`` that sit under everything).  Nothing imports
``report`` or ``cli`` except the package ``__init__`` (the public API) and ``cli`` itself.

The one allowed exception (DESIGN.md, "Rich display"): a display method in ``analysis`` imports
``viz`` inside the method (``TreeView.draw``, ``_repr_svg_``), never at module level.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "explain_distill"
ORDER = ["data", "teacher", "features", "transfer", "parallel", "surrogates", "distill", "analysis", "viz", "report", "cli"]
BASE = {"_validation", "_stats", "_gate", "_progress", "_io", "_version", "_device", "_display"}
# (importer, imported) pairs allowed only inside a function body: rich display drawing lazily.
LAZY_ONLY = {("analysis", "viz")}
# Stages that must not touch torch or models at all.
NO_TORCH = {"viz"}


def _stage(module: str) -> str:
    """'explain_distill.surrogates.shallow' -> 'surrogates'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path, *, lazy: bool | None = None) -> list[tuple[str, int]]:
    """Imports of ``path`` as (module, line); ``lazy=True`` keeps those inside functions only, False
    those outside any function, None all."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_function = {
        id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(f)
    }
    rel = path.relative_to(PKG.parent).with_suffix("")
    pkg_parts = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    if rel.name == "__init__":
        pkg_parts = list(rel.parts[:-1])
    out = []
    for node in ast.walk(tree):
        if lazy is not None and (id(node) in in_function) != lazy:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[: len(pkg_parts) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                if not node.module:
                    out += [(f"{mod}.{a.name}", node.lineno) for a in node.names]
                    continue
            else:
                mod = node.module or ""
            out.append((mod, node.lineno))
    return out


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py"))


def test_package_has_every_stage():
    for stage in ORDER:
        assert (PKG / f"{stage}.py").exists() or (PKG / stage).is_dir(), stage


def _violations(me: str, imports: list[tuple[str, int]], lazy: list[tuple[str, int]] = ()) -> list[str]:
    """Upward imports; ``lazy`` (imports inside functions) may also take the LAZY_ONLY pairs."""
    violations = []
    allowed = {(m, line) for m, line in lazy if (me, _stage(m)) in LAZY_ONLY}
    for mod, line in imports:
        if (mod, line) in allowed:
            continue
        if not mod.startswith("explain_distill"):
            if me in NO_TORCH and mod.split(".")[0] in {"torch", "captum"}:
                violations.append(f"line {line}: {me} imports {mod} (viz draws plain data, never a model)")
            continue
        other = _stage(mod)
        if other in BASE or other == me:
            continue
        if other == "__init__":
            violations.append(f"line {line}: imports the package root (circular); import the stage module")
        elif me in BASE:
            violations.append(f"line {line}: base module {me} imports {other}")
        elif ORDER.index(other) > ORDER.index(me):
            violations.append(f"line {line}: {me} imports {other}, which is to its right in {ORDER}")
    return violations


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_point_left(path: Path):
    me = _stage(".".join(("explain_distill",) + path.relative_to(PKG).with_suffix("").parts))
    if me == "__init__":
        return  # the public API may import every stage
    violations = _violations(me, _imports(path), _imports(path, lazy=True))
    assert not violations, "\n".join(violations)


def test_checker_flags_upward_and_torch_imports(tmp_path):
    # The checker must be able to fail: feed it a fake surrogates module importing distill,
    # and a fake viz module importing torch.
    fake = PKG / "surrogates" / "_fake_for_test.py"
    try:
        fake.write_text("from ..distill import distill\nfrom .._validation import check_int\n")
        got = _violations("surrogates", _imports(fake))
    finally:
        fake.unlink()
    assert len(got) == 1 and "surrogates imports distill" in got[0]
    assert _violations("viz", [("torch.nn", 3)]) and not _violations("analysis", [("torch.nn", 3)])


def test_checker_resolves_imports_inside_a_subpackage():
    # surrogates/soft_tree/ is a package inside a stage: three dots reach the base modules (allowed)
    # and the other stages (checked), two dots the surrogates' own helpers (allowed).
    fake = PKG / "surrogates" / "soft_tree" / "_fake_for_test.py"
    try:
        fake.write_text(
            "from ...distill import distill\nfrom ..._validation import check_int\nfrom .._base import SoftTargetMixin\n"
            "from . import loss\nfrom .module import _level_slices\n"
        )
        imports = _imports(fake)
        got = _violations("surrogates", imports)
    finally:
        fake.unlink()
    assert [m for m, _ in imports] == [
        "explain_distill.distill",
        "explain_distill._validation",
        "explain_distill.surrogates._base",
        "explain_distill.surrogates.soft_tree.loss",
        "explain_distill.surrogates.soft_tree.module",
    ]
    assert got == ["line 1: surrogates imports distill, which is to its right in " + str(ORDER)]


def test_analysis_may_import_viz_only_inside_a_function():
    fake = PKG / "analysis" / "_fake_for_test.py"
    try:
        fake.write_text(
            "from ..viz.trees import tree_to_dot\n\n\ndef draw():\n    from ..viz.trees import TreeDrawing\n    return TreeDrawing\n"
        )
        got = _violations("analysis", _imports(fake), _imports(fake, lazy=True))
    finally:
        fake.unlink()
    # the module-level import is flagged, the one inside draw() is the allowed exception
    assert got == ["line 1: analysis imports viz, which is to its right in " + str(ORDER)]
    # the exception is for analysis -> viz only: surrogates may not draw lazily either
    assert _violations("surrogates", [("explain_distill.viz.trees", 5)], [("explain_distill.viz.trees", 5)])


def _print_calls(source: str) -> list[int]:
    tree = ast.parse(source)
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
    ]


@pytest.mark.parametrize("path", [p for p in _modules() if p.name != "cli.py"], ids=lambda p: str(p.relative_to(PKG)))
def test_library_code_logs_and_only_the_cli_prints(path: Path):
    lines = _print_calls(path.read_text(encoding="utf-8"))
    assert not lines, f"{path.relative_to(PKG)} calls print() on line(s) {lines}: log instead (the CLI prints)"


def test_print_checker_finds_calls():
    assert _print_calls("def f():\n    print('x')\n") == [2]
    assert _print_calls("'''print(x) in a docstring'''\nlogger.info('print')\n") == []
