"""Chunked pairwise Euclidean distances for the k-NN metrics (precision, recall,
density, coverage).

Distances are never held as a full N x M matrix: every function walks over
blocks of ``chunk_size`` rows against all columns, so peak memory is about
``chunk_size x max(N, M)`` floats on top of the features themselves.

Squared distances come from one matrix product per block,

    ||x - y||^2 = ||x||^2 + ||y||^2 - 2 x.y      (clamped at 0),

in float32 (fast; BLAS / tensor cores) or float64 (exact enough to give the
same neighbour counts as ``prdc`` 0.2, which uses scikit-learn's float64
distances).  Features are first centred on the mean of the ``real`` set
(distances are translation-invariant) so that the norms stay small and the
cancellation in the formula above costs little precision in float32.

All functions accept numpy arrays or torch tensors and a torch ``device``; on a
GPU the blocks are computed there.
"""
from __future__ import annotations

from typing import Iterator, Optional, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_dtype(dtype: Union[str, torch.dtype]) -> torch.dtype:
    """``"float32"`` / ``"float64"`` / a torch dtype -> a torch floating dtype."""
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"distances: dtype must be float32 or float64, got {dtype}")
        return dtype
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ValueError(f"distances: dtype must be 'float32' or 'float64', got {dtype!r}") from None


def as_tensor(x: ArrayLike, dtype: torch.dtype, device: Optional[torch.device] = None) -> torch.Tensor:
    """A 2-d (N, D) feature array as a contiguous torch tensor of ``dtype`` on ``device`` (no copy when possible)."""
    t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    if t.ndim != 2:
        raise ValueError(f"distances: features must be 2-d (N, D), got shape {tuple(t.shape)}")
    return t.to(device=device if device is not None else t.device, dtype=dtype).contiguous()


def column_mean(x: torch.Tensor, chunk_size: int = 4096) -> torch.Tensor:
    """Mean of the rows of ``x`` (N, D), accumulated in float64 by chunks (no float64 copy of ``x``)."""
    total = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
    for start in range(0, len(x), chunk_size):
        total += x[start:start + chunk_size].to(torch.float64).sum(0)
    return total / max(len(x), 1)


def centred_pair(real: ArrayLike, fake: ArrayLike, dtype: Union[str, torch.dtype] = "float32",
                 device: Optional[torch.device] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``real`` (N, D) and ``fake`` (M, D) as tensors of ``dtype`` on ``device``, both minus the mean of ``real``.

    The mean is accumulated in float64; subtracting it leaves every distance
    unchanged and shrinks the norms in ``||x||^2 + ||y||^2 - 2 x.y``.  In
    float64 the mean is rounded to an integer first: integer-valued features
    (e.g. uint8 pixels) then stay integers, so their squared distances are
    computed exactly and tied distances stay exactly tied (float64 has
    precision to spare for the rest).  The caller's arrays are never modified
    (one copy of each set at most)."""
    dt = resolve_dtype(dtype)
    out = []
    for x in (real, fake):
        t = as_tensor(x, dt, device)
        source = torch.from_numpy(x) if isinstance(x, np.ndarray) and x.flags.c_contiguous else x
        shared = isinstance(source, torch.Tensor) and t.data_ptr() == source.data_ptr()
        out.append((t, shared))
    (r, r_shared), (f, f_shared) = out
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"distances: real has {r.shape[1]} features per sample, fake has {f.shape[1]}")
    mean = column_mean(r)
    mean = (mean.round() if dt == torch.float64 else mean).to(dt)
    r = r - mean if r_shared else r.sub_(mean)
    f = f - mean if f_shared else f.sub_(mean)
    return r, f


def sq_norms(x: torch.Tensor) -> torch.Tensor:
    """Squared row norms ``||x_i||^2`` of ``x`` (N, D) -> (N,), same dtype."""
    return x.square().sum(1)


def sq_dists_block(rows: torch.Tensor, cols: torch.Tensor, rows_sq: Optional[torch.Tensor] = None,
                   cols_sq: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Squared Euclidean distances between ``rows`` (c, D) and ``cols`` (M, D) -> (c, M).

    ``||x||^2 + ||y||^2 - 2 x.y`` with one ``addmm``, clamped at 0 against
    rounding.  Pass precomputed squared norms to save their recomputation."""
    if rows_sq is None:
        rows_sq = sq_norms(rows)
    if cols_sq is None:
        cols_sq = sq_norms(cols)
    block = torch.addmm(cols_sq.unsqueeze(0), rows, cols.T, beta=1.0, alpha=-2.0)
    block.add_(rows_sq.unsqueeze(1))
    return block.clamp_min_(0.0)


def iter_blocks(rows: torch.Tensor, cols: torch.Tensor, chunk_size: int, *, self_pairs: bool = False,
                rows_sq: Optional[torch.Tensor] = None,
                cols_sq: Optional[torch.Tensor] = None) -> Iterator[tuple[slice, torch.Tensor]]:
    """Yield ``(row_slice, squared-distance block (c, M))`` for chunks of ``chunk_size`` rows.

    With ``self_pairs=True`` (``rows`` and ``cols`` are the same set) the
    distance of each point to itself is set to exactly 0, as scikit-learn does
    for ``pairwise_distances(X)``."""
    if chunk_size < 1:
        raise ValueError(f"distances: chunk_size must be >= 1, got {chunk_size}")
    if rows_sq is None:
        rows_sq = sq_norms(rows)
    if cols_sq is None:
        cols_sq = sq_norms(cols)
    for start in range(0, len(rows), chunk_size):
        sl = slice(start, min(start + chunk_size, len(rows)))
        block = sq_dists_block(rows[sl], cols, rows_sq[sl], cols_sq)
        if self_pairs:
            idx = torch.arange(sl.stop - sl.start, device=block.device)
            block[idx, idx + start] = 0.0
        yield sl, block


def kth_nn_sq_radii(x: torch.Tensor, k: int, chunk_size: int = 1024) -> torch.Tensor:
    """Squared distance of each point of ``x`` (N, D) to its k-th nearest *other* point -> (N,).

    As in ``prdc`` 0.2 (``compute_nearest_neighbour_distances``): the
    (k+1)-th smallest entry of the point's row of self-distances, whose
    smallest entry is the point itself at distance 0.  A duplicate of the
    point therefore counts as a neighbour at distance 0.  Needs N > k.

    Uses the symmetry of the distance matrix: block ``i`` covers rows
    ``i*c .. (i+1)*c`` against columns from ``i*c`` on (the upper triangle,
    half the products).  Its row-wise k+1 smallest update those rows, its
    column-wise k+1 smallest (beyond the diagonal block) update the later
    rows; each pair is seen exactly once per row, so the result is exact."""
    n = len(x)
    if n <= k:
        raise ValueError(f"k-NN radii: need more than k={k} samples, got {n}")
    if chunk_size < 1:
        raise ValueError(f"distances: chunk_size must be >= 1, got {chunk_size}")
    sq = sq_norms(x)
    best = torch.full((n, k + 1), float("inf"), dtype=x.dtype, device=x.device)  # running k+1 smallest per row
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        c = stop - start
        block = sq_dists_block(x[start:stop], x[start:], sq[start:stop], sq[start:])  # (c, n - start)
        diag = torch.arange(c, device=block.device)
        block[diag, diag] = 0.0  # a point's distance to itself, exactly 0 as in scikit-learn
        rows = torch.topk(block, min(k + 1, n - start), dim=1, largest=False).values
        best[start:stop] = torch.topk(torch.cat([best[start:stop], rows], 1), k + 1, dim=1, largest=False).values
        if stop < n:
            cols = torch.topk(block[:, c:], min(k + 1, c), dim=0, largest=False).values  # (<=k+1, n - stop)
            best[stop:] = torch.topk(torch.cat([best[stop:], cols.T], 1), k + 1, dim=1, largest=False).values
        del block
    return best[:, k]
