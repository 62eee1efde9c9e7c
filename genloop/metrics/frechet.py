"""Fréchet distance between Gaussians fitted to two feature sets (FID when the
features are Inception-v3 pool3 activations).

    FD = ||mu_r - mu_f||^2 + Tr(S_r) + Tr(S_f) - 2 Tr((S_r S_f)^{1/2})

Reference: M. Heusel, H. Ramsauer, T. Unterthiner, B. Nessler, S. Hochreiter,
"GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", NeurIPS 2017 (the FID), after D. C. Dowson and B. V. Landau,
"The Fréchet distance between multivariate normal distributions", 1982.

The usual implementation (TTUR, pytorch-fid) takes a general matrix square root
of the non-symmetric product ``S_r S_f`` (``scipy.linalg.sqrtm``, a Schur
decomposition) and drops the spurious imaginary part.  Only its trace is
needed, and that is a sum over eigenvalues.  For any factor ``S_r = F F^T``,
``S_r S_f = F (F^T S_f F) F^{-1}`` (on the range of ``F``) has the same
non-zero eigenvalues as the symmetric PSD matrix ``F^T S_f F``, so

    Tr((S_r S_f)^{1/2}) = sum_i sqrt(lambda_i(F^T S_f F)).

``F`` is the Cholesky factor of ``S_r`` when it exists (fast), else - a
covariance singular to working precision, e.g. from fewer samples than
dimensions - ``F = V diag(sqrt w)`` from ``S_r = V diag(w) V^T``, i.e.
``F^T S_f F`` is orthogonally similar to ``S_r^{1/2} S_f S_r^{1/2}``.  Both
factorisations are backward stable, everything stays real and symmetric, and
eigenvalues below 0 (rounding noise) are clipped to 0.
"""
from __future__ import annotations

from typing import Union

import numpy as np
import torch


def feature_stats(x: Union[np.ndarray, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of features ``x`` (N, D) -> ``(mu (D,), sigma (D, D))``, float64.

    ``sigma`` is the unbiased sample covariance (divisor N - 1), as
    ``numpy.cov(x, rowvar=False)`` in pytorch-fid.  Needs N >= 2."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"feature_stats: features must be 2-d (N, D), got shape {x.shape}")
    if len(x) < 2:
        raise ValueError(f"feature_stats: need at least 2 samples, got {len(x)}")
    mu = x.mean(0)
    xc = x - mu
    sigma = xc.T @ xc / (len(x) - 1)
    return mu, (sigma + sigma.T) / 2


def trace_sqrt_product(sigma_real: np.ndarray, sigma_fake: np.ndarray) -> float:
    """``Tr((S_r S_f)^{1/2})`` for symmetric PSD ``sigma_real``, ``sigma_fake`` (D, D), float64.

    Eigenvalue route (see the module docstring): a factor ``S_r = F F^T``
    (Cholesky, or ``V diag(sqrt w)`` from the eigendecomposition when Cholesky
    fails), then ``sum sqrt(max(eig(F^T S_f F), 0))``."""
    s_r = np.asarray(sigma_real, dtype=np.float64)
    s_f = np.asarray(sigma_fake, dtype=np.float64)
    s_r = (s_r + s_r.T) / 2
    try:
        factor = np.linalg.cholesky(s_r)
    except np.linalg.LinAlgError:  # singular (or not PSD by rounding): the symmetric square root route
        w, v = np.linalg.eigh(s_r)
        factor = v * np.sqrt(np.clip(w, 0.0, None))[None, :]
    b = factor.T @ s_f @ factor
    lam = np.linalg.eigvalsh((b + b.T) / 2)
    return float(np.sqrt(np.clip(lam, 0.0, None)).sum())


def frechet_distance(mu_real: np.ndarray, sigma_real: np.ndarray, mu_fake: np.ndarray,
                     sigma_fake: np.ndarray) -> float:
    """Fréchet distance between N(mu_real, sigma_real) and N(mu_fake, sigma_fake).

    Args:
        mu_real, mu_fake: means, float (D,).
        sigma_real, sigma_fake: covariances, symmetric PSD float (D, D); may be
            singular (e.g. from fewer samples than dimensions).

    Returns:
        ``||mu_r - mu_f||^2 + Tr(S_r) + Tr(S_f) - 2 Tr((S_r S_f)^{1/2})`` as a
        float, computed in float64 and clipped at 0 (it is a squared distance).

    Heusel et al. 2017 (FID).  Equal to the pytorch-fid ``sqrtm`` formula
    within rounding and several times faster at D = 2048 (benchmarks/bench_metrics.py).
    """
    mu_r = np.atleast_1d(np.asarray(mu_real, dtype=np.float64))
    mu_f = np.atleast_1d(np.asarray(mu_fake, dtype=np.float64))
    s_r = np.atleast_2d(np.asarray(sigma_real, dtype=np.float64))
    s_f = np.atleast_2d(np.asarray(sigma_fake, dtype=np.float64))
    d = mu_r.shape[0]
    if mu_f.shape != (d,) or s_r.shape != (d, d) or s_f.shape != (d, d):
        raise ValueError(f"frechet_distance: shapes do not match: mu_real {mu_r.shape}, sigma_real {s_r.shape}, "
                         f"mu_fake {mu_f.shape}, sigma_fake {s_f.shape}")
    for name, a in (("mu_real", mu_r), ("mu_fake", mu_f), ("sigma_real", s_r), ("sigma_fake", s_f)):
        if not np.isfinite(a).all():
            raise ValueError(f"frechet_distance: {name} has non-finite values")
    diff = mu_r - mu_f
    value = float(diff @ diff + np.trace(s_r) + np.trace(s_f) - 2.0 * trace_sqrt_product(s_r, s_f))
    return max(value, 0.0)


def frechet_distance_features(real: Union[np.ndarray, torch.Tensor], fake: Union[np.ndarray, torch.Tensor]) -> float:
    """Fréchet distance between Gaussians fitted to ``real`` (N, D) and ``fake`` (M, D) features."""
    return frechet_distance(*feature_stats(real), *feature_stats(fake))
