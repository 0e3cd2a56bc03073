"""The code as it was before issue 16 (commit 8d8999f), loaded beside the current code for side-by-side timings.

``benchmarks/baseline/soft_tree_8d8999f.py`` is a frozen copy of ``explain_distill/surrogates/soft_tree.py``
at that commit (the GPU machine gets a copy of the working tree without git history, so the file is kept,
not read with ``git show``).  It is executed as a module of ``explain_distill.surrogates`` so its relative
imports resolve to today's helpers (validation, device resolution, the soft-target mixin), which the
issue did not change in ways that matter for speed.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

BASELINE_COMMIT = "8d8999f"
_NAME = "explain_distill.surrogates._soft_tree_8d8999f"


def soft_tree_baseline() -> types.ModuleType:
    """The soft tree module of commit 8d8999f (``SoftDecisionTree``, ``_train_step_loss``, ...)."""
    if _NAME in sys.modules:
        return sys.modules[_NAME]
    import explain_distill.surrogates  # noqa: F401 - the parent package of the relative imports

    path = Path(__file__).resolve().parent / "baseline" / "soft_tree_8d8999f.py"
    module = types.ModuleType(_NAME)
    module.__package__ = "explain_distill.surrogates"
    module.__file__ = str(path)
    sys.modules[_NAME] = module
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), module.__dict__)  # noqa: S102 - our own file
    return module
