"""The soft decision tree of Frosst & Hinton (2017), "Distilling a Neural Network Into a Soft
Decision Tree" (arXiv:1711.09784): torch inside, a scikit-learn classifier outside.

Every inner node ``i`` holds a learned filter ``w_i``, bias ``b_i`` and inverse temperature
``beta_i``, and sends a sample right with probability ``p_i(x) = sigmoid(beta_i (x . w_i + b_i))``.
Leaves hold learned class distributions ``Q^l = softmax(phi^l)``.  The probability of reaching leaf
``l`` is the product of the branch probabilities on its path.

Layout (heap numbering): inner nodes ``0 .. n_inner_-1``, node ``i`` has children ``2i+1`` (left)
and ``2i+2`` (right); leaf ``j`` is heap node ``n_inner_ + j``.

Vectorised: all inner filters are one ``(n_inner_, n_features)`` matrix product; path
probabilities are built level by level (``depth`` steps of two tensor ops each, written into one
buffer); the balance penalty is computed for every node at once; the backward pass is derived by
hand (:class:`_TreeLoss`) as one bottom-up sweep instead of autograd's replay of every level.
There is no per-node Python loop, and the training loop never synchronises with the device (no
``.item()``) except for one optional debug log per epoch.

The package, in the order a fit uses it:

- :mod:`.module`: the trainable parameters (:class:`_SoftTreeModule`) in their training layout
  (:func:`_training_layout`), and a fitted tree as a differentiable module (:class:`_FittedSoftTree`);
- :mod:`.loss`: the loss of one batch with its hand-derived backward (:class:`_TreeLoss`,
  :func:`_train_step_loss`), the step's workspace, the hookup of the fused kernels
  (:func:`_fused_kernels`) and the eager inference kernels (:func:`_paths_torch`, :func:`_greedy_torch`);
- :mod:`.triton_kernels`: the fused Triton kernels (imported only on CUDA or under ``TRITON_INTERPRET=1``);
- :mod:`.feeds`: where the transfer set lives during a fit (:class:`_InMemoryFeed`,
  :class:`_BlockStream`, :func:`_epoch_plan`) and its standardisation statistics;
- :mod:`.trainer`: the optimisation (:class:`_Trainer`: AdamW, the schedule, pruning by
  :func:`_kept_weights`, the CUDA-graph capture, the epoch loop) and the thread/precision contexts;
- :mod:`.estimators`: :class:`SoftDecisionTree` and :class:`SparseSoftDecisionTree`.

Every name below stays importable from here.  The package reads as one namespace to whoever tunes
it: assigning a name here (``soft_tree._TRITON = False``, ``soft_tree._CHUNK = 48``, as tests and
benchmarks do) assigns it in each module of the package that binds it, so it reaches the code that
reads it.
"""

from __future__ import annotations

import logging
import sys
import types
from typing import Any

from . import estimators, feeds, loss, module, trainer
from .estimators import _STREAM_BYTES, SoftDecisionTree, SparseSoftDecisionTree, _memory_limit, _resolve_device
from .feeds import (
    _CHUNK,
    _STREAM_BLOCKS,
    _BlockStream,
    _device_statistics,
    _epoch_plan,
    _fits_on_device,
    _host_tensor,
    _InMemoryFeed,
    _open_feed,
    _standardize,
    _statistics,
)
from .loss import (
    _BUFFERS_PER_NODE,
    _TRITON,
    _fused_kernels,
    _greedy_torch,
    _paths_torch,
    _train_step_loss,
    _TreeLoss,
    _Workspace,
)
from .module import _LAYOUTS, _bit_reverse, _FittedSoftTree, _level_slices, _SoftTreeModule, _training_layout
from .trainer import _CUDA_GRAPHS, _kept_weights, _matmul_precision, _threads, _Trainer

logger = logging.getLogger(__name__)

__all__ = ["SoftDecisionTree", "SparseSoftDecisionTree"]

_PARTS = (module, loss, feeds, trainer, estimators)


class _Namespace(types.ModuleType):
    """The package module: an assignment to one of its names also assigns it in every part that binds it."""

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        for part in _PARTS:
            if name in vars(part):
                setattr(part, name, value)


sys.modules[__name__].__class__ = _Namespace
