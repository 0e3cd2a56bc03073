"""The HTML report: one self-contained ``index.html`` per run."""

from .html import build_report

__all__ = ["build_report"]
