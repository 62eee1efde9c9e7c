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

References: T. Kynkäänniemi, T. Karras, S. Laine, J. Lehtinen, T. Aila,
"Improved Precision and Recall Metric for Assessing Generative Models",
NeurIPS 2019.  M. F. Naeem, S. J. Oh, Y. Uh, Y. Choi, J. Yoo, "Reliable
Fidelity and Diversity Metrics for Generative Models", ICML 2020.
"""
from __future__ import annotations

from typing import Optional, Union

import torch

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
            prdc 0.2, up to exact ties).
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
    with torch.inference_mode():
        r, f = centred_pair(real, fake, dtype, dev)
        if len(r) <= k or len(f) <= k:
            raise ValueError(f"prdc: need more than k={k} real and fake samples, got {len(r)} real and {len(f)} fake")
        real_r2 = kth_nn_sq_radii(r, k, chunk_size)   # (N,)
        fake_r2 = kth_nn_sq_radii(f, k, chunk_size)   # (M,)
        counts = torch.zeros(len(f), dtype=torch.int64, device=r.device)   # real balls holding fake j
        recall_hit = torch.zeros(len(r), dtype=torch.bool, device=r.device)
        coverage_hit = torch.zeros(len(r), dtype=torch.bool, device=r.device)
        f_sq = sq_norms(f)
        for sl, block in iter_blocks(r, f, chunk_size, cols_sq=f_sq):
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
