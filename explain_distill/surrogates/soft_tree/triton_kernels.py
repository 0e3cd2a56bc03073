"""Fused Triton kernels for the soft tree's training step (GPU only; ``TRITON_INTERPRET=1`` runs them on a CPU).

The eager step (:class:`~explain_distill.surrogates.soft_tree.loss._TreeLoss`) builds the path
probabilities level by level and sweeps the "cost to go" back up with two tensor ops per level,
each reading and writing a ``(batch, 2**depth)`` buffer.  Here each program takes a tile of rows
and keeps a level's values in registers from one level to the next:

* :func:`tree_forward` reads the filter responses ``z`` (the output of the one large matrix product)
  and builds the path probabilities ``R`` level by level at full width (column ``j`` carries the
  level-``d`` ancestor of leaf ``j``, so each level is one multiply by ``sigmoid(+-z)`` with no
  reshuffling); it returns the per-node column sums ``S`` (for the balance penalty) and
  ``Mt = T^T R_leaf`` (for the data term and the leaf gradient), and writes the inner nodes' ``R``
  once for the backward pass.  Neither ``p``, ``1 - p`` nor the leaves' ``R`` are ever written.
* :func:`tree_backward` recomputes ``p`` and ``1 - p`` from ``z``, starts from the leaves' cost to
  go ``V = a_leaf - T log(Q)^T / B`` (one small matrix product per tile), sweeps up the levels in
  registers and writes only the pre-activation gradient ``dz`` (in the dtype of the second large
  matrix product) and its column sums.

Layout and maths are those of ``_TreeLoss`` (training layout: level ``d`` holds columns
``2**d - 1 .. 2**(d+1) - 2``, a node's children sit at the same position in the left and right
halves of the next level).  Partial sums are per program and summed afterwards in a fixed order, so
results are deterministic.  Only imported on CUDA or when the interpreter is requested: the eager
path stays the CPU path and the reference these kernels are tested against.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

__all__ = ["supported", "tree_forward", "tree_backward", "launch_config"]

#: Smallest tree the kernels take: ``tl.dot`` needs 16 leaves (depth 4); smaller trees stay eager.
MIN_DEPTH = 4
#: Largest tree: a tile keeps ``(rows, 2**depth)`` values in registers (depth 10 spills heavily: eager).
MAX_DEPTH = 9
#: Classes the leaf products take (padded to a power of two >= 16).
MAX_CLASSES = 64


def supported(depth: int, n_classes: int, dtype: torch.dtype, device: torch.device) -> bool:
    """Whether the fused kernels handle this step (else the eager ``_TreeLoss`` runs)."""
    if not (MIN_DEPTH <= depth <= MAX_DEPTH and 1 <= n_classes <= MAX_CLASSES):
        return False
    if device.type == "cuda":
        return dtype == torch.float32  # float64 training on a GPU stays eager (tl.dot in fp64 is not everywhere)
    return triton_interpreting() and dtype in (torch.float32, torch.float64)


def triton_interpreting() -> bool:
    import os

    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def launch_config(depth: int, n_rows: int, device: torch.device) -> dict[str, int]:
    """Rows per tile, warps and the number of programs (about two per SM, each looping over its tiles).

    16 rows per tile and 8 warps from depth 8 on keep a tile in registers: compiled for sm_90 with
    Triton 3.9, depth 8 uses 238 (forward) and 227 (backward) registers per thread and spills
    nothing; 32 rows spill.  (``tests/test_triton_tree.py`` compiles them for sm_90 on any machine.)
    """
    block = 16
    warps = 4 if depth <= 7 else 8
    if device.type == "cuda":
        programs = 2 * torch.cuda.get_device_properties(device).multi_processor_count
    else:
        programs = 4
    tiles = max(1, math.ceil(n_rows / block))
    programs = max(1, min(programs, tiles))
    tiles_per_program = math.ceil(tiles / programs)
    programs = math.ceil(tiles / tiles_per_program)
    # num_stages=1: software pipelining of the row-tile loop would prefetch every level's z tile in
    # float32 into shared memory (280 KB at depth 8 for sm_90, over the H100's 227 KB: the launch fails)
    return {"BM": block, "num_warps": warps, "fwd_num_stages": 1, "programs": programs, "rows_per_program": tiles_per_program * block}


@triton.jit
def _tree_fwd_kernel(
    Z, PB, R, S_PART, M_PART,
    n_rows, n_classes, rows_per_program,
    stride_z, stride_pb, stride_r,
    DEPTH: tl.constexpr, L: tl.constexpr, KP: tl.constexpr, BM: tl.constexpr,
):
    pid = tl.program_id(0)
    acc_t = R.dtype.element_ty
    row_lo = pid * rows_per_program
    row_hi = tl.minimum(row_lo + rows_per_program, n_rows)
    kk = tl.arange(0, KP)
    ll = tl.arange(0, L)
    m_acc = tl.zeros((KP, L), dtype=acc_t)
    s_row = S_PART + pid * (2 * L)
    for r0 in range(row_lo, row_hi, BM):
        rows = r0 + tl.arange(0, BM)
        rmask = rows < row_hi
        m2 = rmask[:, None]
        # Every level is held at full width L: column j carries the level-d ancestor of leaf j
        # (layout column j mod 2**d), so no level changes shape and nothing is reshuffled.
        # The root's path probability is 1 for real rows, 0 for the padding rows of the last tile.
        mu = tl.where(m2, 1.0, 0.0).to(acc_t) + tl.zeros((BM, L), dtype=acc_t)
        for d in tl.static_range(DEPTH):
            node = ((1 << d) - 1) + (ll & ((1 << d) - 1))  # layout column of each leaf's ancestor
            first = ll < (1 << d)  # one copy of each node of level d
            tl.store(R + rows[:, None] * stride_r + node[None, :], mu, mask=m2 & first[None, :])
            tl.atomic_add(s_row + node, tl.sum(mu, axis=0), mask=first)
            z = tl.load(Z + rows[:, None] * stride_z + node[None, :], mask=m2, other=0.0).to(acc_t)
            # right child (bit d of j set): p = sigmoid(z); left: 1 - p = sigmoid(-z), exact either way
            right = ((ll >> d) & 1) == 1
            mu = mu * tl.sigmoid(tl.where(right[None, :], z, -z))
        tl.atomic_add(s_row + (L - 1) + ll, tl.sum(mu, axis=0))
        pb = tl.load(
            PB + rows[:, None] * stride_pb + kk[None, :],
            mask=rmask[:, None] & (kk[None, :] < n_classes), other=0.0,
        ).to(acc_t)
        m_acc += tl.dot(tl.trans(pb), mu, input_precision="ieee")
    tl.store(M_PART + pid * (KP * L) + kk[:, None] * L + ll[None, :], m_acc)


@triton.jit
def _tree_bwd_kernel(
    Z, PB, R, C, A, DZ, G_PART,
    n_rows, n_classes, rows_per_program,
    stride_z, stride_pb, stride_r, stride_dz,
    DEPTH: tl.constexpr, L: tl.constexpr, KP: tl.constexpr, BM: tl.constexpr,
):
    pid = tl.program_id(0)
    acc_t = R.dtype.element_ty
    row_lo = pid * rows_per_program
    row_hi = tl.minimum(row_lo + rows_per_program, n_rows)
    kk = tl.arange(0, KP)
    ll = tl.arange(0, L)
    # C = -log(Q)^T / B, padded with zero rows: the leaves' cross-entropy per row is T @ C
    c = tl.load(C + kk[:, None] * L + ll[None, :])
    a_leaf = tl.load(A + (L - 1) + ll)
    g_row = G_PART + pid * L
    for r0 in range(row_lo, row_hi, BM):
        rows = r0 + tl.arange(0, BM)
        rmask = rows < row_hi
        pb = tl.load(
            PB + rows[:, None] * stride_pb + kk[None, :],
            mask=rmask[:, None] & (kk[None, :] < n_classes), other=0.0,
        ).to(acc_t)
        v = tl.dot(pb, c, input_precision="ieee") + a_leaf[None, :]  # cost to go at the leaves
        for dd in tl.static_range(DEPTH):
            cols = ((1 << (DEPTH - 1 - dd)) - 1) + tl.arange(0, 1 << (DEPTH - 1 - dd))  # level DEPTH-1-dd
            m2 = rmask[:, None]
            z = tl.load(Z + rows[:, None] * stride_z + cols[None, :], mask=m2, other=0.0).to(acc_t)
            p = tl.sigmoid(z)
            q = tl.sigmoid(-z)
            r = tl.load(R + rows[:, None] * stride_r + cols[None, :], mask=m2, other=0.0)
            v_left, v_right = tl.split(tl.permute(tl.reshape(v, (BM, 2, 1 << (DEPTH - 1 - dd))), (0, 2, 1)))
            gz = r * (v_right - v_left) * p * q  # d loss / d z: path prob x value gap x sigmoid'
            tl.store(DZ + rows[:, None] * stride_dz + cols[None, :], gz.to(DZ.dtype.element_ty), mask=m2)
            tl.atomic_add(g_row + cols, tl.sum(gz, axis=0))
            if dd < DEPTH - 1:
                a_d = tl.load(A + cols)
                v = (v_right * p + v_left * q) + a_d[None, :]


def _class_pad(n_classes: int) -> int:
    return max(16, triton.next_power_of_2(int(n_classes)))


def tree_forward(z: torch.Tensor, pb: torch.Tensor, depth: int, acc_dtype: torch.dtype, r_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Path probabilities of a batch from the filter responses ``z`` (B, 2**depth), training layout.

    Writes the inner nodes' path probabilities into ``r_out`` (B, 2**depth; the last column is
    left as it is) and returns ``S`` (2 * 2**depth,) — column sums of every node's path probability,
    inner nodes then leaves, the last entry 0 — and ``Mt = pb^T R_leaf`` (K, 2**depth).
    """
    B = z.shape[0]
    L = 2**depth
    K = pb.shape[1]
    KP = _class_pad(K)
    cfg = launch_config(depth, B, z.device)
    n_prog = cfg["programs"]
    s_part = torch.zeros(n_prog, 2 * L, device=z.device, dtype=acc_dtype)
    m_part = torch.empty(n_prog, KP, L, device=z.device, dtype=acc_dtype)
    _tree_fwd_kernel[(n_prog,)](
        z, pb, r_out, s_part, m_part,
        B, K, cfg["rows_per_program"],
        z.stride(0), pb.stride(0), r_out.stride(0),
        DEPTH=depth, L=L, KP=KP, BM=cfg["BM"], num_warps=cfg["num_warps"], num_stages=cfg["fwd_num_stages"],
    )
    return s_part.sum(dim=0), m_part.sum(dim=0)[:K]


def tree_backward(
    z: torch.Tensor, pb: torch.Tensor, r: torch.Tensor, log_q: torch.Tensor, a: torch.Tensor, depth: int, dz_out: torch.Tensor
) -> torch.Tensor:
    """The bottom-up sweep: writes ``d loss / d z`` into ``dz_out`` (B, 2**depth; the last column is
    left as it is) and returns its column sums (2**depth,) for the bias gradient (last entry 0).

    ``log_q`` (2**depth, K) are the leaves' log distributions and ``a`` (2 * 2**depth,) the
    penalty's derivative with respect to every node's path probability.
    """
    B = z.shape[0]
    L = 2**depth
    K = pb.shape[1]
    KP = _class_pad(K)
    acc = r.dtype
    cfg = launch_config(depth, B, z.device)
    n_prog = cfg["programs"]
    c = torch.zeros(KP, L, device=z.device, dtype=acc)
    c[:K] = log_q.T.to(acc) * (-1.0 / B)
    g_part = torch.zeros(n_prog, L, device=z.device, dtype=acc)
    _tree_bwd_kernel[(n_prog,)](
        z, pb, r, c, a.to(acc).contiguous(), dz_out, g_part,
        B, K, cfg["rows_per_program"],
        z.stride(0), pb.stride(0), r.stride(0), dz_out.stride(0),
        DEPTH=depth, L=L, KP=KP, BM=cfg["BM"], num_warps=cfg["num_warps"],
    )
    return g_part.sum(dim=0)
