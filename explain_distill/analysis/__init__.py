"""Analysis: fidelity, robustness and attributions, computed as plain data (never drawn here)."""

from .fidelity import AuditResult, audit

__all__ = ["AuditResult", "audit"]
