"""The Makefile's entry points on a fresh machine: `make demo` draws its trees, so it installs graphviz."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _dry_run(target: str) -> list[str]:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return out.replace("\\\n", " ").splitlines()  # one line per recipe command


def test_demo_installs_graphviz_before_the_run():
    lines = _dry_run("demo")
    dot = [i for i, line in enumerate(lines) if "command -v dot" in line and "apt-get install" in line and "graphviz" in line]
    run = [i for i, line in enumerate(lines) if "explain-distill run --dataset digits" in line]
    assert dot and run and dot[0] < run[0], "\n".join(lines)
    assert not any("chromium" in line for line in lines)  # the demo needs no browser


def test_test_target_installs_graphviz_and_chromium():
    lines = "\n".join(_dry_run("test"))
    assert "command -v dot" in lines and "graphviz" in lines and "chromium" in lines and "pytest" in lines
