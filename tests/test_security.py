"""No file can run code: every load path refuses pickles and crafted files with a clear error.

A malicious pickle whose ``__reduce__`` would create a sentinel file is planted wherever a model,
data or run file is expected; loading must fail with ValueError/FileNotFoundError and the
sentinel must never appear.  A source scan keeps pickle-capable loaders out of the package.
"""

from __future__ import annotations

import ast
import io
import json
import pickle
import re
import tokenize
from pathlib import Path

import numpy as np
import pytest
import torch

import explain_distill as ed
from explain_distill.surrogates import load_surrogate

PACKAGE = Path(ed.__file__).resolve().parent


class _Evil:
    def __init__(self, sentinel: Path):
        self.sentinel = str(sentinel)

    def __reduce__(self):  # unpickling calls open(sentinel, "w"): creates the file
        return (open, (self.sentinel, "w"))


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory, iris, iris_teacher):
    root = tmp_path_factory.mktemp("saved")
    run = ed.distill(iris_teacher, iris, surrogates=["tree", "logistic"], seed=0)
    run.save(root / "run")
    return root / "run"


@pytest.fixture
def run_copy(saved_run, tmp_path):
    import shutil

    dst = tmp_path / "run"
    shutil.copytree(saved_run, dst)
    return dst


@pytest.fixture
def payload(tmp_path):
    sentinel = tmp_path / "PWNED"
    blob = pickle.dumps(_Evil(sentinel))
    # control: the payload really runs code when unpickled
    pickle.loads(blob).close()
    assert sentinel.exists()
    sentinel.unlink()
    return blob, sentinel


def _torch_pickle(sentinel: Path) -> bytes:
    buf = io.BytesIO()
    torch.save({"weight": _Evil(sentinel)}, buf)  # a zip checkpoint whose data.pkl carries the payload
    return buf.getvalue()


TARGETS = {
    "teacher weights": ("teacher/teacher.safetensors", lambda d: ed.Teacher.load(d / "teacher", device="cpu")),
    "whole run via teacher": ("teacher/teacher.safetensors", lambda d: ed.load(d, device="cpu")),
    "surrogate arrays": ("surrogates/tree.safetensors", lambda d: load_surrogate(d / "surrogates" / "tree")),
    "data arrays": ("data/data.safetensors", lambda d: ed.load(d, device="cpu")),
    "run description": ("run.json", lambda d: ed.load(d, device="cpu")),
    "teacher config": ("teacher/teacher.json", lambda d: ed.Teacher.load(d / "teacher", device="cpu")),
    "surrogate description": ("surrogates/tree.json", lambda d: load_surrogate(d / "surrogates" / "tree")),
    "data description": ("data/data.json", lambda d: ed.load(d, device="cpu")),
}


@pytest.mark.parametrize("kind", ["raw pickle", "torch.save checkpoint"])
@pytest.mark.parametrize("target", list(TARGETS))
def test_planted_pickle_is_refused_and_never_runs(run_copy, payload, target, kind):
    blob, sentinel = payload
    if kind == "torch.save checkpoint":
        blob = _torch_pickle(sentinel)
    rel, loader = TARGETS[target]
    (run_copy / rel).write_bytes(blob)
    with pytest.raises((ValueError, FileNotFoundError)) as e:
        loader(run_copy)
    assert str(run_copy) in str(e.value) or rel.split("/")[-1] in str(e.value)  # names the file
    assert not sentinel.exists()


@pytest.mark.parametrize(
    "rel,content,needle",
    [
        ("teacher/teacher.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":1}", "not a valid safetensors"),
        ("teacher/teacher.safetensors", b"", "not a valid safetensors"),
        ("surrogates/tree.safetensors", b"\xff" * 64, "not a valid safetensors"),
        ("data/data.safetensors", b"PK\x03\x04 zip", "not a valid safetensors"),
        ("run.json", b"\x80\x04K\x01.", "not a valid JSON"),
        ("surrogates/tree.json", json.dumps({"format": "explain_distill.surrogate/1", "name": "os.system"}).encode(),
         "unknown surrogate"),
    ],
)
def test_crafted_files_fail_with_a_clear_message(run_copy, rel, content, needle):
    (run_copy / rel).write_bytes(content)
    with pytest.raises(ValueError, match=needle):
        if rel.startswith("surrogates"):
            load_surrogate(run_copy / "surrogates" / "tree")
        else:
            ed.load(run_copy, device="cpu")


def test_missing_files_say_which(run_copy):
    (run_copy / "teacher" / "teacher.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="teacher.safetensors"):
        ed.load(run_copy, device="cpu")


def test_pickled_npy_transfer_shard_is_refused(tmp_path, payload):
    """The memory-mapped transfer sets (explain_distill.parallel) load .npy without pickle."""
    parallel = pytest.importorskip("explain_distill.parallel", reason="parallel transfer sets not present")
    blob, sentinel = payload
    X = np.empty(2, dtype=object)
    X[:] = [_Evil(sentinel), 1]
    np.save(tmp_path / "bad.npy", X, allow_pickle=True)  # an object .npy: a pickle inside
    with pytest.raises(ValueError, match="never loaded"):
        parallel._open_npy(tmp_path / "bad.npy", "X")
    assert not sentinel.exists()


# ----------------------------------------------------------------------------- source scan
def _code_without_strings_and_comments(path: Path) -> str:
    out = []
    with path.open("rb") as fh:
        for tok in tokenize.tokenize(fh.readline):
            if tok.type in (tokenize.STRING, tokenize.COMMENT, tokenize.ENCODING) or tok.type == getattr(
                tokenize, "FSTRING_MIDDLE", -1
            ):
                continue
            out.append(tok.string)
    return " ".join(out)


FORBIDDEN = [
    (r"\bpickle\b", "the pickle module"),
    (r"\b(cloudpickle|dill|joblib|shelve|marshal)\b", "a pickle-based serialiser"),
    (r"allow_pickle\s*=\s*True", "np.load/np.save with allow_pickle=True"),
    (r"(?<!\. )\b(eval|exec)\s*\(", "eval/exec (module.eval() is fine)"),
]


def test_package_source_has_no_pickle_capable_loader():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        code = _code_without_strings_and_comments(path)
        for pattern, what in FORBIDDEN:
            if re.search(pattern, code):
                offenders.append(f"{path.relative_to(PACKAGE)}: {what}")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = ast.unparse(node.func)
            kw = {k.arg: ast.unparse(k.value) for k in node.keywords if k.arg}
            if func == "torch.load" and kw.get("weights_only") != "True":
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: torch.load without weights_only=True")
            if func in ("np.load", "numpy.load") and kw.get("allow_pickle") != "False":
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: np.load without allow_pickle=False")
            if func.endswith("read_pickle") or func.endswith("torch.hub.load"):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {func}")
    assert offenders == [], "\n".join(offenders)


def test_the_scan_catches_what_it_looks_for(tmp_path):
    """The scanner itself would flag a violation (so the test above can fail)."""
    bad = tmp_path / "bad.py"
    bad.write_text("import pickle\nx = np.load('a', allow_pickle=True)  # pickle\n")
    code = _code_without_strings_and_comments(bad)
    assert re.search(FORBIDDEN[0][0], code) and re.search(FORBIDDEN[2][0], code)
    doc = tmp_path / "doc.py"
    doc.write_text('"""We never pickle."""\n# pickle\n')
    assert not re.search(FORBIDDEN[0][0], _code_without_strings_and_comments(doc))


def test_crafted_config_cannot_allocate_beyond_the_weights_file(run_copy):
    """A teacher.json asking for a 1e12-parameter network is refused before any allocation."""
    path = run_copy / "teacher" / "teacher.json"
    meta = json.loads(path.read_text())
    meta["config"]["n_features"] = 10**12
    path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not match the weights"):
        ed.Teacher.load(run_copy / "teacher", device="cpu")
