"""Is the teacher worth explaining?  The check lives with the teacher (:mod:`explain_distill.teacher`),
so ``distill`` runs it and its result carries it; this module re-exports it for ``analysis`` users."""

from __future__ import annotations

from ..teacher import LOGISTIC_MARGIN, TeacherCheck, teacher_check

__all__ = ["TeacherCheck", "teacher_check", "LOGISTIC_MARGIN"]
