"""explain_distill: distill a trained neural network into explainable surrogates, and measure
how faithful each explanation is.

The pipeline, one module per stage (imports only point left; nothing imports ``report`` or
``cli``; ``_validation``, ``_stats`` and ``_io`` sit below everything)::

    data -> teacher -> transfer -> surrogates -> distill -> analysis -> viz -> report -> cli

Quick start::

    import explain_distill as ed
    data = ed.load_dataset("digits")
    teacher = ed.train_teacher(data, device="auto", seed=0)
    result = ed.distill(teacher, data, temperature=4.0)
    print(result.fidelity())
    ed.build_report(result, "reports/digits")
"""

from __future__ import annotations

import logging

from ._version import __version__
from .data import DATASETS, Dataset, load_dataset
from .distill import DEFAULT_SURROGATES, Distillation, distill, load
from .surrogates import SURROGATES
from .teacher import Teacher, train_teacher
from .transfer import TransferSet, build_transfer_set, soft_labels
from .report import build_report

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "__version__",
    "DATASETS",
    "DEFAULT_SURROGATES",
    "Dataset",
    "Distillation",
    "SURROGATES",
    "Teacher",
    "TransferSet",
    "build_report",
    "build_transfer_set",
    "distill",
    "load",
    "load_dataset",
    "soft_labels",
    "train_teacher",
]
