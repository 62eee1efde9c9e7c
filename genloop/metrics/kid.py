"""Kernel Inception Distance (KID when the features are Inception-v3 pool3).

Reference: M. Bińkowski, D. J. Sutherland, M. Arbel, A. Gretton,
"Demystifying MMD GANs", ICLR 2018.

KID is the unbiased estimate of the squared maximum mean discrepancy with the
cubic polynomial kernel

    k(x, y) = (x.y / d + 1)^3                  (d = feature dimension)

between ``m`` real samples X and ``m`` fake samples Y:

    MMD^2_u = 1/(m(m-1)) sum_{i != j} [k(X_i, X_j) + k(Y_i, Y_j)] - 2/m^2 sum_{i,j} k(X_i, Y_j)

computed on ``subsets`` random subsets of ``m = min(subset_size, N, M)``
samples drawn without replacement from each set; the result is the mean and
the (population) standard deviation over subsets.  The subsets are drawn
exactly like torch-fidelity does (``numpy.random.RandomState(seed)``, for each
subset first a real then a fake ``choice(n, m, replace=False)``), so the two
agree exactly on the same features and seed.  The estimate is unbiased, so it
can be slightly negative when the distributions match.

The subsets can only differ when one set is larger than ``m``: there are
``C(N, m) C(M, m)`` distinct subset pairs.  When that is 1 (``N = M = m``,
e.g. both sets smaller than ``subset_size`` and of equal size) every subset is
a permutation of the whole sets, the spread over subsets is 0 by construction
and says nothing; ``kid`` then logs one warning naming the counts and returns
``std = NaN`` (torch-fidelity refuses this case).  With fewer distinct pairs
than ``subsets`` it warns that the spread is understated.
"""
from __future__ import annotations

from typing import Optional, Union

import logging
import math

import numpy as np
import torch

log = logging.getLogger(__name__)

_warned: set = set()  # (N, M, m, subsets) already warned about in this process


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef0: float = 1.0) -> torch.Tensor:
    """``(x @ y.T / d + coef0) ** degree`` for ``x`` (n, d), ``y`` (m, d) -> (n, m)."""
    return (x @ y.T / x.shape[1] + coef0).pow_(degree)


def mmd2_unbiased(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel between ``real`` (m, d) and ``fake`` (m, d).

    Equal-size samples; the formula is in the module docstring (Bińkowski et al. 2018)."""
    m = real.shape[0]
    if fake.shape[0] != m or m < 2:
        raise ValueError(f"mmd2_unbiased: need two samples of the same size >= 2, got {real.shape[0]} and {fake.shape[0]}")
    k_rr = polynomial_kernel(real, real)
    k_ff = polynomial_kernel(fake, fake)
    k_rf = polynomial_kernel(real, fake)
    within = (k_rr.sum() - k_rr.diagonal().sum() + k_ff.sum() - k_ff.diagonal().sum()) / (m * (m - 1))
    return float(within - 2.0 * k_rf.sum() / (m * m))


def kid(real: Union[np.ndarray, torch.Tensor], fake: Union[np.ndarray, torch.Tensor], subsets: int = 100,
        subset_size: int = 1000, seed: int = 0, device: Optional[Union[str, torch.device]] = None) -> tuple[float, float]:
    """KID of ``fake`` against ``real``: mean and standard deviation of MMD^2_u over random subsets.

    Args:
        real: real features, float (N, D), numpy or torch.
        fake: generated features, float (M, D).
        subsets: number of random subsets (torch-fidelity's ``kid_subsets``, default 100).
        subset_size: samples per subset, capped at ``min(N, M)`` (``kid_subset_size``, default 1000).
        seed: seed of ``numpy.random.RandomState`` that draws the subsets.
        device: torch device of the kernel products (default cpu).

    Returns:
        ``(mean, std)`` of the per-subset unbiased MMD^2 (cubic kernel ``(x.y/d + 1)^3``),
        computed in float64.  Bińkowski et al. 2018.  ``std`` is NaN when the subsets
        cannot differ (``N = M = m``; one warning is logged, see the module docstring).
    """
    r = torch.as_tensor(np.asarray(real) if not isinstance(real, torch.Tensor) else real)
    f = torch.as_tensor(np.asarray(fake) if not isinstance(fake, torch.Tensor) else fake)
    if r.ndim != 2 or f.ndim != 2 or r.shape[1] != f.shape[1]:
        raise ValueError(f"kid: features must be (N, D) and (M, D), got {tuple(r.shape)} and {tuple(f.shape)}")
    n_r, n_f = len(r), len(f)
    m = min(subset_size, n_r, n_f)
    if m < 2:
        raise ValueError(f"kid: need at least 2 real and 2 fake samples, got {n_r} and {n_f}")
    if subsets < 1:
        raise ValueError(f"kid: subsets must be >= 1, got {subsets}")
    distinct = distinct_subset_pairs(n_r, n_f, m, cap=subsets)
    if distinct < subsets and (n_r, n_f, m, subsets) not in _warned:
        _warned.add((n_r, n_f, m, subsets))
        if distinct == 1:
            log.warning("kid: subsets of %d from %d real and %d fake samples: 1 distinct subset pair, so all %d "
                        "subsets are the same and kid_std is NaN; use more samples than metrics.kid.subset_size on "
                        "either side or a smaller metrics.kid.subset_size", m, n_r, n_f, subsets)
        else:
            log.warning("kid: subsets of %d from %d real and %d fake samples: only %d distinct subset pairs for "
                        "%d subsets, so kid_std understates the spread; use a smaller metrics.kid.subset_size",
                        m, n_r, n_f, distinct, subsets)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    r = r.to(device=dev, dtype=torch.float64)
    f = f.to(device=dev, dtype=torch.float64)
    if distinct == 1:  # every subset is the whole of both sets: one value, no spread to measure
        with torch.inference_mode():
            return mmd2_unbiased(r, f), float("nan")
    rng = np.random.RandomState(seed)
    values = np.zeros(subsets)
    with torch.inference_mode():
        for i in range(subsets):
            idx_r = torch.from_numpy(rng.choice(n_r, m, replace=False)).to(dev)
            idx_f = torch.from_numpy(rng.choice(n_f, m, replace=False)).to(dev)
            values[i] = mmd2_unbiased(r[idx_r], f[idx_f])
    return float(values.mean()), float(values.std())


def distinct_subset_pairs(n_real: int, n_fake: int, m: int, cap: int) -> int:
    """``C(n_real, m) * C(n_fake, m)``, the number of distinct (real, fake) subset pairs of
    size ``m``, or ``cap + 1`` when it exceeds ``cap`` (the exact number can be astronomically large)."""
    total = 1
    for n in (n_real, n_fake):
        c = 1
        for i in range(min(m, n - m)):
            c = c * (n - i) // (i + 1)   # C(n, i + 1), exact
            if c * total > cap:
                return cap + 1
        total *= c
    return total if total <= cap else cap + 1
