"""The soft decision tree's scikit-learn face: :class:`SoftDecisionTree` and its sparse variant.

The estimators validate at the door, run a fit as named steps (check the parameters and the data,
seed, build the module, open the feed, train, store the filters in the caller's input space, the
leaf masses), predict in torch on the estimator's device in row chunks, cut the fitted tree for
the frontier (:meth:`SoftDecisionTree.ladder_`) and save and load without pickle.  The model, the
loss, the feeds and the trainer they drive live in the package's other modules.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any, Literal

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ..._device import resolve_device as _resolve_device
from ..._validation import (
    check_choice,
    check_consistent_length,
    check_int,
    check_min_classes,
    check_positive,
    check_soft_labels,
    check_targets,
)
from .._base import SoftTargetMixin, TreeDisplayMixin
from .feeds import _CHUNK, _open_feed
from .loss import _BUFFERS_PER_NODE, _fused_kernels, _greedy_torch, _paths_torch
from .module import _FittedSoftTree, _SoftTreeModule
from .trainer import _threads, _Trainer

logger = logging.getLogger(__name__)

__all__ = ["SoftDecisionTree", "SparseSoftDecisionTree"]

#: Inputs larger than this are streamed batch by batch instead of copied to one tensor.
_STREAM_BYTES = 1 << 30


def _memory_limit(device: torch.device) -> int:
    """Bytes a fit may plan to use: half the host RAM on CPU, 80% of the GPU's memory on CUDA."""
    if device.type == "cuda":
        return int(0.8 * torch.cuda.get_device_properties(device).total_memory)
    try:
        return int(0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


class SoftDecisionTree(TreeDisplayMixin, SoftTargetMixin, ClassifierMixin, BaseEstimator):
    """Soft decision tree (Frosst & Hinton 2017) trained on hard or soft labels.

    A complete binary tree of ``depth`` levels of oblique, sigmoid-gated splits with a learned
    class distribution at each of its ``2**depth`` leaves, trained end to end with Adam.

    Parameters
    ----------
    depth : int, default=8
        Number of split levels: ``2**depth - 1`` inner nodes and ``2**depth`` leaves.
    beta : float, default=1.0
        Initial inverse temperature of every node's sigmoid.
    learn_beta : bool, default=True
        Learn a per-node inverse temperature (kept positive as ``exp(log beta)``); fixed otherwise.
    lam : float, default=0.1
        Strength lambda of the balance penalty; a node at depth d gets ``lam * 2**-d``.
    learning_rate : float, default=0.01
        Adam's step size (annealed to 0 by a cosine schedule over the run).
    weight_decay : float, default=10.0
        Decoupled decay of the filters (AdamW: each step shrinks them by ``learning_rate *
        weight_decay``), against overfitting small transfer sets.  As beta is learned and not
        decayed, this bounds the filters' size while beta sets the sharpness of the split.
    epochs : int, default=40
    batch_size : int, default=256
        256 is right for small data on CPU; on a GPU use thousands.
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        Where to train and predict (``"auto"``: CUDA when available).  On CUDA the training step is
        captured in a CUDA graph and uses fused Triton kernels when Triton is installed; prediction
        runs in torch, batched, on this device (on the CPU when the machine has no GPU).
    compile : bool, default=False
        Wrap the training step in ``torch.compile`` instead (no CUDA graph, no fused kernels).
    input_shape : tuple of int or None, default=None
        Shape of one sample, for :meth:`filters_` (``distill`` fills it from the data set).
    max_weights : int or None, default=None
        Sparse filters: each inner node keeps at most this many nonzero weights, so a person can
        read a split as "these few pixels / features against those".  Pruned by magnitude (in the
        standardised space) on a cubic schedule over the first half of the epochs, then the
        survivors are fine-tuned with the others held at zero.  ``nonzero_per_node_`` reports the
        count.  None keeps dense filters.
    inference_dtype : {"auto", "float32", "float64"}, default="auto"
        Precision of :meth:`predict_proba`, :meth:`path_probabilities` and :meth:`apply`:
        ``"auto"`` is float64 on the CPU and float32 on CUDA.
    random_state : int or None, default=None
        Seeds the initialisation and the batch order.

    Attributes
    ----------
    classes_ : ndarray (K,)
    n_features_in_ : int
    n_inner_, n_leaves_ : int
    inner_weight_ : ndarray (n_inner_, n_features_in_), float32
        Filters in the space of the inputs given to ``fit`` (the internal standardisation is folded in).
    inner_bias_ : ndarray (n_inner_,)
    beta_ : ndarray (n_inner_,)
    leaf_logits_ : ndarray (n_leaves_, K)
    leaf_distributions_ : ndarray (n_leaves_, K)
        ``softmax(leaf_logits_)``.
    leaf_mass_ : ndarray (n_leaves_,)
        Mean path probability of each leaf over the training inputs.
    n_params_ : int

    Notes
    -----
    Where this follows the paper:

    - Branching ``p_i(x) = sigmoid(beta (x w_i + b_i))`` with a learned inverse temperature, leaf
      distributions ``softmax(phi^l)``, and both ways of predicting: the mixture over all leaves
      weighted by their path probabilities (:meth:`predict_proba`) and a single max path
      (:meth:`predict_proba_max_path`).
    - The loss is the path-probability-weighted cross-entropy between the target distribution T
      (one-hot labels or the teacher's soft labels) and each leaf's distribution,
      ``L(x) = -sum_l P^l(x) sum_k T_k log Q^l_k``, averaged over the batch.
    - The balance penalty ``C = -lam sum_i 2^-d(i) 0.5 (log alpha_i + log(1 - alpha_i))`` with
      ``alpha_i = sum_x P^i(x) p_i(x) / sum_x P^i(x)``, computed with an exponentially decaying
      running average whose window grows exponentially with depth (``2**d`` batches), as the
      paper describes.

    Where it deviates, and why:

    - The paper prints ``L(x) = -log sum_l P^l(x) sum_k T_k log Q^l_k``: the outer log is of a
      negative number.  Like the public reproductions we drop it and minimise the expected
      cross-entropy under the path distribution.
    - The running average of alpha gives the penalty's *value*, but its gradient flows through the
      current batch's alpha (a straight-through estimate); differentiating the running average
      itself would scale the gradient of deep nodes down by their window.
    - beta is one learned value per inner node (the paper uses a single learned scalar) and is kept
      positive, so "right" always means ``x w_i + b_i > 0``.
    - Inputs are standardised internally and the scaling folded back into ``inner_weight_`` and
      ``inner_bias_``, so the filters read in the caller's input space.
    - Max path: by default (``how="greedy"``) the path follows the more probable branch at every
      node, so the leaf reached is described exactly by the conjunction of its ``filter > 0``
      conditions (what :class:`~explain_distill.analysis.tree_view.TreeView` shows).  The paper's
      "leaf with the greatest path probability" is ``how="argmax"``; the two rarely differ once
      beta has grown.
    - Adam with a cosine-annealed step size instead of the paper's unspecified schedule.
    """

    #: The frontier protocol: the size is the number of leaves, set by ``depth``; smaller trees are
    #: the fitted one cut at a shallower depth (:meth:`ladder_`), not separate fits.
    size_unit = "leaves"
    size_param = "depth"
    size_ladder = (2, 3, 4, 5, 6, 7, 8)
    ladder_params: dict[str, Any] = {}

    def __init__(
        self,
        *,
        depth: int = 8,
        beta: float = 1.0,
        learn_beta: bool = True,
        lam: float = 0.1,
        learning_rate: float = 0.01,
        weight_decay: float = 10.0,
        epochs: int = 40,
        batch_size: int = 256,
        device: str = "auto",
        compile: bool = False,
        input_shape: tuple[int, ...] | None = None,
        max_weights: int | None = None,
        inference_dtype: Literal["auto", "float32", "float64"] = "auto",
        random_state: int | None = None,
    ) -> None:
        self.depth = depth
        self.max_weights = max_weights
        self.beta = beta
        self.learn_beta = learn_beta
        self.lam = lam
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.device = device
        self.compile = compile
        self.input_shape = input_shape
        self.inference_dtype = inference_dtype
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def _check_params(self) -> torch.device:
        depth = check_int(self.depth, "depth", low=1, high=30, hint="A soft tree has 2**depth leaves; 4 to 10 is usual.")
        check_positive(self.beta, "beta")
        if not isinstance(self.learn_beta, (bool, np.bool_)):
            raise TypeError(f"learn_beta must be True or False; received {self.learn_beta!r}.")
        if not isinstance(self.compile, (bool, np.bool_)):
            raise TypeError(f"compile must be True or False; received {self.compile!r}.")
        check_positive(self.lam, "lam", strict=False)
        check_positive(self.learning_rate, "learning_rate")
        check_positive(self.weight_decay, "weight_decay", strict=False)
        check_int(self.epochs, "epochs", low=1)
        batch = check_int(self.batch_size, "batch_size", low=1)
        check_choice(self.inference_dtype, "inference_dtype", ["auto", "float32", "float64"])
        if self.max_weights is not None:
            check_int(self.max_weights, "max_weights", low=1, hint="None keeps dense filters.")
        device = _resolve_device(self.device)
        return device

    def _check_memory(self, n_features: int, n_classes: int, batch: int, device: torch.device) -> None:
        n_nodes = 2 ** (self.depth + 1) - 1
        need = 4 * (_BUFFERS_PER_NODE * batch * n_nodes + 4 * (2**self.depth) * (n_features + 2 + n_classes))
        limit = _memory_limit(device)
        if need > limit:
            raise ValueError(
                f"depth={self.depth} with batch_size={batch} and {n_features} features needs about "
                f"{need / 2**30:.1f} GiB to train (2**depth={2 ** self.depth} leaves times the batch, plus the "
                f"filters), more than the {limit / 2**30:.1f} GiB this fit may use on {device.type}. "
                f"Lower depth (each level doubles the cost) or batch_size."
            )

    def _validate_stream(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Validation for memory-mapped / very large inputs without copying X (chunked checks)."""
        X = validate_data(self, X, dtype=[np.float32, np.float64], ensure_all_finite=False, copy=False)
        for s in range(0, len(X), _CHUNK):
            chunk = X[s : s + _CHUNK]
            if not np.isfinite(chunk).all():
                r, c = np.argwhere(~np.isfinite(chunk))[0]
                raise ValueError(
                    f"X contains NaN or infinity: row {s + r}, column {c} = {chunk[r, c]}. "
                    f"Drop or impute these values before calling (e.g. sklearn.impute.SimpleImputer)."
                )
        hard, soft = check_targets(y) if not isinstance(y, np.memmap) or y.ndim == 1 else (None, None)
        if isinstance(y, np.memmap) and y.ndim == 2:
            for s in range(0, len(y), _CHUNK):
                check_soft_labels(y[s : s + _CHUNK], name="y")
            soft = y
        if soft is not None:
            check_consistent_length(X=X, y=soft)
            self.classes_ = np.arange(soft.shape[1])
            self.soft_fit_ = True
            return X, soft
        from sklearn.utils.multiclass import check_classification_targets

        check_consistent_length(X=X, y=hard)
        check_classification_targets(hard)
        check_min_classes(hard, name="y")
        self.classes_, idx = np.unique(hard, return_inverse=True)
        self.soft_fit_ = False
        P = np.zeros((len(hard), len(self.classes_)), dtype=np.float32)
        P[np.arange(len(hard)), idx] = 1.0
        return X, P

    def _validate_training_data(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray, bool]:
        """``X`` and the targets as soft labels ``P`` (n, K), and whether the fit streams ``X``: memory
        maps and inputs over ``_STREAM_BYTES`` are checked chunk by chunk and never copied whole."""
        streamed = isinstance(X, np.memmap) or isinstance(y, np.memmap) or getattr(X, "nbytes", 0) > _STREAM_BYTES
        if streamed:
            X, P = self._validate_stream(X, y)
        else:
            X, P = self._validate_fit(X, y, dtype=np.float32)
        return X, P, streamed

    def _generator(self) -> torch.Generator:
        """The fit's one random stream (the initialisation, then every epoch's order), seeded by
        ``random_state`` or, when it is None, by a fresh seed."""
        seed = self.random_state
        if seed is None:
            seed = int(np.random.default_rng().integers(2**31 - 1))
        elif not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise TypeError(f"random_state must be an int or None; received {seed!r}.")
        return torch.Generator().manual_seed(int(seed))

    def fit(self, X: Any, y: Any) -> "SoftDecisionTree":
        """Train the tree.

        Parameters
        ----------
        X : array-like (n_samples, n_features)
            ``np.memmap`` inputs (and any larger than 1 GiB) are never copied whole on a CPU: they
            are streamed in contiguous blocks.  On CUDA the inputs are copied to the GPU once when
            they fit in its free memory, and streamed in blocks (two pinned buffers, a side
            stream) when they do not.
        y : array-like (n_samples,) or (n_samples, K)
            Hard labels, or soft labels whose rows are probability distributions.

        Returns
        -------
        self
        """
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None. "
                f"Pass hard labels (n_samples,) or soft labels (n_samples, n_classes)."
            )
        device = self._check_params()
        X, P, streamed = self._validate_training_data(X, y)
        n, d = X.shape
        K = P.shape[1]
        batch = min(int(self.batch_size), n)
        self._check_memory(d, K, batch, device)
        gen = self._generator()
        module = _SoftTreeModule(d, int(self.depth), K, float(self.beta), bool(self.learn_beta), gen).to(device)
        on_cuda = device.type == "cuda"
        kernels = _fused_kernels(int(self.depth), K, module.weight.dtype, device) if on_cuda else None
        x_dtype = torch.bfloat16 if on_cuda else torch.float32  # the step's matrix products run in bf16 on CUDA
        # small CPU fits: one torch thread (hand-offs cost more than they gain, and far more on a busy machine)
        threads = 1 if device.type == "cpu" and batch * (2**self.depth) * (d + K) < 2e7 else None
        with _threads(threads):
            feed = _open_feed(X, P, streamed=streamed, batch=batch, depth=int(self.depth), device=device, x_dtype=x_dtype)
        logger.debug(
            "soft tree fit: %d rows on %s (%s), fused kernels %s", n, device, "in memory" if feed.in_memory else "streamed",
            kernels is not None,
        )
        trainer = _Trainer(
            module, self, steps_total=math.ceil(n / batch) * int(self.epochs), batch=batch, n_features=d, n_classes=K,
            device=device, x_dtype=x_dtype, kernels=kernels,
        )
        trainer.run(feed, gen, epochs=int(self.epochs), threads=threads)
        # how this fit ran (for benchmarks and logs; not part of the fitted model)
        self._fit_info = {"in_memory": feed.in_memory, "cuda_graph": trainer.graph is not None, "fused_kernels": kernels is not None}
        self._store_filters(module, feed.mean, feed.std)
        del feed, trainer, module  # the device memory of the fit, freed before the leaf masses
        self._store_leaf_mass(X, device, threads)
        return self

    def _store_filters(self, module: _SoftTreeModule, mean: np.ndarray, std: np.ndarray) -> None:
        """The trained parameters in heap order, the standardisation folded into the filters and
        biases (they read in the caller's input space); sparse filters keep exactly their kept weights."""
        weight, bias, log_beta, leaf_logits = module.heap_order()
        W = weight.double().cpu().numpy()
        b = bias.double().cpu().numpy()
        self.beta_ = log_beta.exp().double().cpu().numpy()
        self.leaf_logits_ = leaf_logits.double().cpu().numpy()
        if self.max_weights is not None:  # exactly the kept weights, whatever the last step's rounding
            keep = min(int(self.max_weights), W.shape[1])
            small_idx = np.argsort(-np.abs(W), axis=1, kind="stable")[:, keep:]
            np.put_along_axis(W, small_idx, 0.0, axis=1)
        W_raw = W * (1.0 / std)[None, :]
        self.inner_weight_ = W_raw.astype(np.float32)
        self.inner_bias_ = b - W_raw @ mean
        self._set_derived()

    def _store_leaf_mass(self, X: np.ndarray, device: torch.device, threads: int | None) -> None:
        """Leaf masses: mean path probabilities over the training inputs, on the device."""
        dev, dtype = device, (torch.float32 if device.type == "cuda" else torch.float64)
        tensors = self._tree_tensors(dev, dtype)
        mass = torch.zeros(self.n_leaves_, device=dev, dtype=torch.float64)
        with torch.no_grad(), _threads(threads):
            for chunk in self._device_chunks(X, dev, dtype):
                mass += _paths_torch(chunk, *tensors[:3]).sum(dim=0, dtype=torch.float64)
        self.leaf_mass_ = (mass / len(X)).cpu().numpy()

    def _set_derived(self) -> None:
        self.n_inner_ = int(self.inner_weight_.shape[0])
        self.n_leaves_ = self.n_inner_ + 1
        z = self.leaf_logits_ - self.leaf_logits_.max(axis=1, keepdims=True)
        e = np.exp(z)
        self.leaf_distributions_ = e / e.sum(axis=1, keepdims=True)

    @property
    def n_params_(self) -> int:
        """Model size: nonzero filter weights, biases, betas and leaf logits."""
        check_is_fitted(self)
        return int(np.count_nonzero(self.inner_weight_) + self.inner_bias_.size + self.beta_.size + self.leaf_logits_.size)

    @property
    def nonzero_per_node_(self) -> np.ndarray:
        """Nonzero filter weights of every inner node (heap order): the readability of its split."""
        check_is_fitted(self)
        return np.count_nonzero(self.inner_weight_, axis=1)

    # ------------------------------------------------------------------ inference (torch, on the device)
    def _inference_setup(self) -> tuple[torch.device, torch.dtype]:
        """Where and in which precision the fitted tree runs: the estimator's device when it is
        there (a tree fitted on a GPU still predicts on a machine without one), float64 on the CPU
        and float32 on CUDA unless ``inference_dtype`` asks otherwise."""
        check_choice(self.inference_dtype, "inference_dtype", ["auto", "float32", "float64"])
        wanted = self.device if isinstance(self.device, (str, torch.device)) else "cpu"
        cuda = str(wanted) == "auto" or str(wanted).startswith("cuda")
        device = _resolve_device(wanted) if cuda and torch.cuda.is_available() else torch.device("cpu")
        if self.inference_dtype == "auto":
            dtype = torch.float32 if device.type == "cuda" else torch.float64
        else:
            dtype = getattr(torch, self.inference_dtype)
        return device, dtype

    def _tree_tensors(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """(filters, biases, betas, leaf distributions) as tensors on ``device`` in ``dtype``."""
        return tuple(
            torch.as_tensor(np.asarray(a, dtype=np.float64)).to(device=device, dtype=dtype)
            for a in (self.inner_weight_, self.inner_bias_, self.beta_, self.leaf_distributions_)
        )

    def _rows_per_chunk(self, device: torch.device | None = None, dtype: torch.dtype = torch.float64) -> int:
        """Rows per inference chunk: ~128 MiB of path probabilities on a CPU, ~1 GiB on a GPU."""
        budget = (1 << 30) if device is not None and device.type == "cuda" else (1 << 27)
        per_row = 2 * self.n_leaves_ * torch.empty((), dtype=dtype).element_size()
        return int(max(256, min(1 << 20 if budget > (1 << 27) else _CHUNK, budget // max(1, per_row))))

    def _device_chunks(self, X: np.ndarray, device: torch.device, dtype: torch.dtype):
        """``X`` in row chunks as tensors on ``device`` (one host-to-device copy per chunk)."""
        rows = self._rows_per_chunk(device, dtype)
        for s in range(0, len(X), rows):
            chunk = np.asarray(X[s : s + rows])
            if not chunk.flags.writeable:
                chunk = chunk.copy()
            yield torch.from_numpy(chunk).to(device=device, dtype=dtype, non_blocking=False)

    def _map(self, X: np.ndarray, fn: Any, cols: int, dtype_out: Any) -> np.ndarray:
        """``fn(chunk, W, b, beta, Q)`` over the chunks of ``X`` on the inference device, into one array."""
        device, dtype = self._inference_setup()
        tensors = self._tree_tensors(device, dtype)
        out = np.empty((len(X), cols) if cols else (len(X),), dtype=dtype_out)
        s = 0
        small = device.type == "cpu" and len(X) * (X.shape[1] + 2 * self.n_leaves_) < 2e7
        with torch.no_grad(), _threads(1 if small else None):
            for chunk in self._device_chunks(X, device, dtype):
                res = fn(chunk, *tensors)
                out[s : s + len(chunk)] = res.cpu().numpy()
                s += len(chunk)
        return out

    def _path_probabilities(self, X: np.ndarray) -> np.ndarray:
        """Path probabilities of every leaf for a validated array (float64 result)."""
        return self._map(X, lambda c, W, b, beta, Q: _paths_torch(c, W, b, beta), self.n_leaves_, np.float64)

    def torch_module(self) -> torch.nn.Module:
        """The fitted tree as a differentiable ``nn.Module``: flat (n, d) float32 -> log mixture probabilities.

        What Captum attributes through and FGSM differentiates (``analysis``); the forward is the
        same mixture ``log sum_l P(l | x) Q^l`` as :meth:`predict_proba`, in float32.
        """
        check_is_fitted(self)
        return _FittedSoftTree(self.inner_weight_, self.inner_bias_, self.beta_, self.leaf_distributions_)

    def _validate_inference(self, X: Any) -> np.ndarray:
        # float32 inputs stay float32 (each chunk is cast on the device); others become float64
        return self._validate_predict(X, dtype=[np.float64, np.float32])

    def path_probabilities(self, X: Any) -> np.ndarray:
        """Probability of reaching each leaf, shape (n_samples, n_leaves_); rows sum to 1."""
        return self._path_probabilities(self._validate_inference(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """The paper's mixture: leaf distributions weighted by their path probabilities.

        Runs in torch on the estimator's device (batched; float64 on the CPU, float32 on CUDA, see
        ``inference_dtype``) and returns float64.
        """
        X = self._validate_inference(X)
        K = self.leaf_distributions_.shape[1]
        return self._map(X, lambda c, W, b, beta, Q: _paths_torch(c, W, b, beta) @ Q, K, np.float64)

    def _greedy_leaf(self, X: np.ndarray) -> np.ndarray:
        return self._map(X, lambda c, W, b, beta, Q: _greedy_torch(c, W, b), 0, np.intp)

    def apply(self, X: Any, *, how: Literal["greedy", "argmax"] = "greedy") -> np.ndarray:
        """Heap id of the max-path leaf of every sample (``n_inner_ .. 2*n_inner_``).

        ``how="greedy"`` follows the more probable branch at every node; ``how="argmax"`` takes
        the leaf with the largest path probability (the paper's wording).
        """
        check_choice(how, "how", ["greedy", "argmax"])
        X = self._validate_inference(X)
        if how == "greedy":
            return self._greedy_leaf(X)
        n_inner = self.n_inner_
        return self._map(X, lambda c, W, b, beta, Q: _paths_torch(c, W, b, beta).argmax(dim=1) + n_inner, 0, np.intp)

    def predict_proba_max_path(self, X: Any, *, how: Literal["greedy", "argmax"] = "greedy") -> np.ndarray:
        """The distribution of the single max-path leaf of every sample (one readable path each)."""
        return self.leaf_distributions_[self.apply(X, how=how) - self.n_inner_]

    def predict_max_path(self, X: Any, *, how: Literal["greedy", "argmax"] = "greedy") -> np.ndarray:
        """Class of the max-path leaf."""
        return self.classes_[np.argmax(self.predict_proba_max_path(X, how=how), axis=1)]

    def max_path(self, x: Any) -> list[tuple[int, float, str]]:
        """The greedy max path of one sample: ``(inner node, filter response x.w+b, "left"/"right")``."""
        x = np.asarray(x)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if x.ndim != 2 or x.shape[0] != 1:
            raise ValueError(f"max_path takes one sample; received an array of shape {np.shape(x)}. Use apply(X) for many.")
        x = self._validate_predict(x)
        R = x @ self.inner_weight_.astype(np.float64).T + self.inner_bias_
        R = R[0]
        node, out = 0, []
        while node < self.n_inner_:
            right = bool(R[node] > 0)
            out.append((node, float(R[node]), "right" if right else "left"))
            node = 2 * node + 2 if right else 2 * node + 1
        return out

    def filters_(self, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """Inner-node filters shaped like one input, ``(n_inner_, *shape)`` (e.g. to show as images).

        ``shape`` defaults to ``input_shape`` (then to ``(n_features,)``).
        """
        check_is_fitted(self)
        shape = shape if shape is not None else self.input_shape
        if shape is None or (isinstance(shape, (tuple, list)) and len(shape) == 0):
            shape = (self.n_features_in_,)
        try:
            shape = tuple(int(s) for s in shape)
        except TypeError as exc:
            raise TypeError(f"shape must be a tuple of ints; received {shape!r}.") from exc
        if math.prod(shape) != self.n_features_in_:
            raise ValueError(
                f"shape {shape} holds {math.prod(shape)} values but the tree has {self.n_features_in_} features; "
                f"pass the shape of one sample, e.g. (8, 8) for 64 pixels."
            )
        return self.inner_weight_.reshape(self.n_inner_, *shape)

    # ------------------------------------------------------------------ the frontier
    @property
    def size_(self) -> int:
        """Number of leaves."""
        check_is_fitted(self)
        return int(self.n_leaves_)

    def ladder_(self, sizes: Any) -> list["SoftDecisionTree"]:
        """This tree cut at each depth in ``sizes`` (no refit).

        The cut keeps the top ``2**d - 1`` filters; each new leaf predicts the mixture of the leaf
        distributions below it, weighted by the training mass that reached them (``leaf_mass_``),
        which is what the fitted tree predicts for inputs that reach that node on average.
        """
        check_is_fitted(self)
        fitted = int(self.n_inner_.bit_length())
        out = []
        mass = np.asarray(self.leaf_mass_, dtype=np.float64)
        for d in sizes:
            d = check_int(d, "depth", low=1, high=fitted, hint=f"The fitted tree has depth {fitted}.")
            n_inner = 2**d - 1
            block = 2 ** (fitted - d)
            m = mass.reshape(2**d, block)
            dist = self.leaf_distributions_.reshape(2**d, block, -1)
            w = np.where(m.sum(axis=1, keepdims=True) > 0, m, 1.0)
            mix = (w[:, :, None] * dist).sum(axis=1) / w.sum(axis=1)[:, None]
            est = type(self)(**{**self.get_params(), "depth": int(d)})
            est.classes_ = self.classes_
            est.n_features_in_ = self.n_features_in_
            for attr in ("feature_names_in_", "class_names_"):
                if hasattr(self, attr):
                    setattr(est, attr, getattr(self, attr))
            est._set_state(
                {
                    "inner_weight": self.inner_weight_[:n_inner],
                    "inner_bias": self.inner_bias_[:n_inner],
                    "beta": self.beta_[:n_inner],
                    "leaf_logits": np.log(np.clip(mix, 1e-300, None)),
                    "leaf_mass": m.sum(axis=1),
                },
                {"soft_fit": bool(getattr(self, "soft_fit_", True))},
            )
            out.append(est)
        return out

    # ------------------------------------------------------------------ persistence (no pickle)
    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {
            "inner_weight": self.inner_weight_,
            "inner_bias": self.inner_bias_,
            "beta": self.beta_,
            "leaf_logits": self.leaf_logits_,
            "leaf_mass": self.leaf_mass_,
        }
        return arrays, {"depth_fitted": int(self.n_inner_.bit_length()), "soft_fit": bool(getattr(self, "soft_fit_", True))}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.inner_weight_ = np.asarray(arrays["inner_weight"], dtype=np.float32)
        self.inner_bias_ = np.asarray(arrays["inner_bias"], dtype=np.float64)
        self.beta_ = np.asarray(arrays["beta"], dtype=np.float64)
        self.leaf_logits_ = np.asarray(arrays["leaf_logits"], dtype=np.float64)
        self.leaf_mass_ = np.asarray(arrays["leaf_mass"], dtype=np.float64)
        self._set_derived()
        if self.inner_weight_.shape[1] != self.n_features_in_ or self.leaf_logits_.shape[0] != self.n_leaves_:
            raise ValueError("the saved soft tree's arrays do not fit together; re-save the surrogate.")
        self.soft_fit_ = bool(meta.get("soft_fit", True))


class SparseSoftDecisionTree(SoftDecisionTree):
    """The soft decision tree with sparse filters: at most ``max_weights`` (default 8) nonzero
    weights per inner node, so each split reads as a handful of pixels or features.

    The same model and training as :class:`SoftDecisionTree` (see there), registered as its own
    family (``soft_tree_sparse``) so the frontier shows what sparsity costs in fidelity.
    """

    def __init__(
        self,
        *,
        depth: int = 8,
        beta: float = 1.0,
        learn_beta: bool = True,
        lam: float = 0.1,
        learning_rate: float = 0.01,
        weight_decay: float = 10.0,
        epochs: int = 40,
        batch_size: int = 256,
        device: str = "auto",
        compile: bool = False,
        input_shape: tuple[int, ...] | None = None,
        max_weights: int | None = 8,
        inference_dtype: Literal["auto", "float32", "float64"] = "auto",
        random_state: int | None = None,
    ) -> None:
        super().__init__(
            depth=depth, beta=beta, learn_beta=learn_beta, lam=lam, learning_rate=learning_rate,
            weight_decay=weight_decay, epochs=epochs, batch_size=batch_size, device=device, compile=compile,
            input_shape=input_shape, max_weights=max_weights, inference_dtype=inference_dtype,
            random_state=random_state,
        )
