"""explain_distill: distill a trained neural network into explainable surrogates, and measure
how faithful each explanation is.

The pipeline, one module per stage (imports only point left; nothing imports ``report`` or
``cli``; ``_validation``, ``_stats``, ``_io``, ``_device`` and ``_display`` sit below everything)::

    data -> teacher -> features -> transfer -> parallel -> surrogates -> distill -> analysis -> viz -> report -> cli

``features`` maps inputs to the teacher's own pattern detectors (a convolutional layer's
channels: strongest response and where) or a user function, with the prototypes that show each
pattern; ``distill`` fits ``NAME@patterns`` surrogates on those columns.  ``parallel``
(torchrun/DDP labelling, memory-mapped transfer sets) is a stage of its own after
``transfer``; ``surrogates`` see arrays only, never a teacher.  Where DESIGN.md shows
``result.report(dir)``, the call is ``ed.build_report(result, dir)``: ``distill`` may not import
``report``.  Rich display is the one exception: ``analysis`` display methods (``TreeView.draw``,
``_repr_svg_``) import ``viz`` inside the method, and surrogates get ``draw()``/``to_dot()``/
``export_text()``/``to_dict()`` through views that ``analysis.views`` registers with
``surrogates._base`` (surrogates never import ``analysis``).

Quick start::

    import explain_distill as ed
    data = ed.load_dataset("digits")
    teacher = ed.train_teacher(data, device="auto", seed=0)
    result = ed.distill(teacher, data, temperature=4.0)
    print(result)                                   # fidelity with 95% intervals per surrogate
    print(result.surrogates["rules"])               # with the data's feature and class names
    ed.TreeView.of(result.surrogates["tree"]).highlight(data.X_test[0])   # drawn in a notebook
    result.surrogates["tree@patterns"]              # a tree over the teacher's pattern detectors (CNN teachers)
    ed.audit(teacher, result.surrogates["tree"], data.X_test, min_agreement=0.95)
    ed.build_report(result, "reports/digits")
"""

from __future__ import annotations

import logging

from ._version import __version__
from .data import DATASETS, Dataset, load_dataset
from .distill import DEFAULT_FEATURE_SURROGATES, DEFAULT_SURROGATES, Distillation, distill, load
from .features import FeatureSurrogate, FunctionFeatures, PatternFeatures, PatternPrototypes
from .surrogates import SURROGATES
from .teacher import Teacher, train_teacher
from .transfer import TransferSet, build_transfer_set, soft_labels
from .analysis import AuditResult, TreeView, audit, run_analyses
from .parallel import ShardedTransferSet, label_memmap, open_transfer_shards
from .report import build_report

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "__version__",
    "AuditResult",
    "ShardedTransferSet",
    "TreeView",
    "audit",
    "label_memmap",
    "open_transfer_shards",
    "run_analyses",
    "DATASETS",
    "DEFAULT_FEATURE_SURROGATES",
    "DEFAULT_SURROGATES",
    "Dataset",
    "Distillation",
    "FeatureSurrogate",
    "FunctionFeatures",
    "PatternFeatures",
    "PatternPrototypes",
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
