"""Precision, recall (Kynkäänniemi et al. 2019) and density, coverage (Naeem et al. 2020).

Definitions (identical to the reference package ``prdc`` 0.2): for real
features ``X_1..X_N`` and fake features ``Y_1..Y_M``, let ``NND_k(X_i)`` be the
distance from ``X_i`` to its k-th nearest neighbour among the other real
points, and ``B(x, r)`` the open ball of radius ``r`` around ``x``.

    precision = 1/M  sum_j 1[ exists i: ||Y_j - X_i|| < NND_k(X_i) ]
    recall    = 1/N  sum_i 1[ exists j: ||X_i - Y_j|| < NND_k(Y_j) ]
    density   = 1/(kM) sum_j sum_i 1[ ||Y_j - X_i|| < NND_k(X_i) ]
    coverage  = 1/N  sum_i 1[ min_j ||X_i - Y_j|| < NND_k(X_i) ]

Precision asks "is each fake sample on the real manifold" (fidelity), recall
"is each real sample on the fake manifold" (diversity).  Density counts how
many real balls contain each fake sample (1 on average when the
distributions match), coverage how many real balls contain at least one fake
sample.  Swapping ``real`` and ``fake`` swaps precision and recall.

Ties.  prdc 0.2 takes the (k+1)-th smallest of each row of self-distances
(the point itself at 0 included, duplicates counted with their multiplicity,
so a duplicate is a neighbour at distance 0) and tests ``d < radius``
strictly: a point exactly on a ball's boundary is outside.  Its distances come
from scikit-learn's ``pairwise_distances``: for float64 input computed in
float64; for float32 input (two float32 arrays) the squared distances are
computed in float64, rounded to float32 and square-rooted in float32, so
distances that agree to float32 precision are exact ties there.  ``prdc``
here does the same: integer-valued features keep exact squared distances in
float64 (``distances.centred_pair`` centres on an integer), and with two
float32 inputs the squared distances are rounded to float32 and
square-rooted in float32 before every comparison.  The float64 path
therefore gives prdc 0.2's counts on tied and untied data (tests with integer
pixel features and duplicated points); the float32 path computes the squared
distances themselves in float32 and may differ from it in a few counts where
two distances differ by less than float32 rounding.

References: T. Kynkäänniemi, T. Karras, S. Laine, J. Lehtinen, T. Aila,
"Improved Precision and Recall Metric for Assessing Generative Models",
NeurIPS 2019.  M. F. Naeem, S. J. Oh, Y. Uh, Y. Choi, J. Yoo, "Reliable
Fidelity and Diversity Metrics for Generative Models", ICML 2020.
"""
from __future__ import annotations

from typing import Optional, Union

import torch

import numpy as np

from .distances import ArrayLike, centred_pair, iter_blocks, kth_nn_sq_radii, sq_norms

NAMES = ("precision", "recall", "density", "coverage")


def prdc(real: ArrayLike, fake: ArrayLike, k: int = 5, *, chunk_size: int = 1024,
         dtype: Union[str, torch.dtype] = "float32",
         device: Optional[Union[str, torch.device]] = None) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` against ``real``.

    Args:
        real: real features, float (N, D), numpy or torch; N > k.
        fake: generated features, float (M, D); M > k.
        k: the k of the k-th nearest-neighbour radii (``nearest_k`` of prdc; default 5).
        chunk_size: rows per distance block; peak extra memory is about
            ``chunk_size x max(N, M)`` values of ``dtype`` (never N x M).
        dtype: ``"float32"`` (fast) or ``"float64"`` (gives the same counts as
            prdc 0.2, ties included; see the module docstring).
        device: torch device for the products (default: where the tensors are; cpu for numpy).

    Returns:
        ``{"precision", "recall", "density", "coverage"}`` as Python floats.

    Formulas in the module docstring; distances are compared squared
    (``d^2 < NND_k^2``), which is the same test.  Three passes of chunked
    matrix products: real-real (radii), fake-fake (radii), real-fake.
    """
    if k < 1:
        raise ValueError(f"prdc: k must be >= 1, got {k}")
    dev = torch.device(device) if device is not None else None
    as_sklearn = _compared_values(_is_float32(real) and _is_float32(fake))
    with torch.inference_mode():
        r, f = centred_pair(real, fake, dtype, dev)
        if len(r) <= k or len(f) <= k:
            raise ValueError(f"prdc: need more than k={k} real and fake samples, got {len(r)} real and {len(f)} fake")
        # Rounding to float32 and the square root are monotone, so they commute with the k-th smallest.
        real_r2 = as_sklearn(kth_nn_sq_radii(r, k, chunk_size))   # (N,)
        fake_r2 = as_sklearn(kth_nn_sq_radii(f, k, chunk_size))   # (M,)
        counts = torch.zeros(len(f), dtype=torch.int64, device=r.device)   # real balls holding fake j
        recall_hit = torch.zeros(len(r), dtype=torch.bool, device=r.device)
        coverage_hit = torch.zeros(len(r), dtype=torch.bool, device=r.device)
        f_sq = sq_norms(f)
        for sl, block in iter_blocks(r, f, chunk_size, cols_sq=f_sq):
            block = as_sklearn(block)
            inside = block < real_r2[sl].unsqueeze(1)          # fake j in ball of real i
            counts += inside.view(torch.uint8).sum(0, dtype=torch.int32)  # < chunk_size per block: no overflow
            coverage_hit[sl] = inside.any(1)                   # == min_j d(i, j) < NND_k(X_i)
            recall_hit[sl] = (block < fake_r2.unsqueeze(0)).any(1)
            del inside, block
        m, n = len(f), len(r)
        return {
            "precision": float((counts > 0).sum().item() / m),
            "recall": float(recall_hit.sum().item() / n),
            "density": float(counts.sum().item() / (k * m)),
            "coverage": float(coverage_hit.sum().item() / n),
        }


def _is_float32(x: ArrayLike) -> bool:
    return x.dtype == (torch.float32 if isinstance(x, torch.Tensor) else np.float32)


def _compared_values(float32_input: bool):
    """What prdc 0.2 compares, as a function of our squared distances: the squared
    distances themselves for float64 input (the square root changes no order),
    ``sqrt`` in float32 of the squared distances rounded to float32 for two float32
    inputs (scikit-learn's float32 ``pairwise_distances``)."""
    if not float32_input:
        return lambda sq: sq
    # The square root is taken in float64 and rounded to float32: that is the correctly
    # rounded float32 square root (numpy's), which torch's float32 sqrt on CPU is not.
    return lambda sq: sq.to(torch.float32).clamp_min_(0.0).to(torch.float64).sqrt_().to(torch.float32)
