"""Progress bars on long work: tqdm on stderr, shown only after a few seconds and only on a terminal.

A stage that can take long (labelling tens of thousands of images, fitting a dozen surrogates,
the analyses) wraps its loop in :func:`progress`; a bar appears when the stage is still running
after ``delay`` seconds and stderr is a terminal, so short runs, logs and CI output stay clean.
Imports nothing of ours.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress", "DELAY"]

#: Seconds a stage runs before its bar appears.
DELAY = 5.0


def progress(total: int | None = None, desc: str = "", *, unit: str = "it", delay: float = DELAY, **kwargs: Any) -> Any:
    """A tqdm bar (use as a context manager and ``.update(n)``), silent off a terminal or before ``delay`` s."""
    from tqdm.auto import tqdm

    options = {"disable": None, "leave": False, "file": sys.stderr, "dynamic_ncols": True, **kwargs}
    return tqdm(total=total, desc=desc, unit=unit, delay=delay, **options)
