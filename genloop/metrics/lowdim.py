"""Metrics for low-dimensional vector data (the analytic generators' worked
examples), comparing a generation's samples with the real training set.

Data are flattened to (N, D) float64 (uint8 images are scaled to [0, 1], so
these also run on images, though they are meant for vectors):

- ``frechet``        Fréchet (2-Wasserstein) distance between the Gaussians fitted
                     to the real training set and to the samples,
                     ``||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^{1/2})``
                     (squared; maximum-likelihood covariances, divisor N).
- ``wasserstein``    mean over dimensions of the 1-D Wasserstein-1 distance between
                     the real and generated marginals (``scipy.stats.wasserstein_distance``).
- ``variance_ratio`` mean over dimensions of var(fake) / var(real) (1 = no collapse,
                     -> 0 under collapse).

``reference()`` gives the same numbers for the real test set.
"""
from __future__ import annotations

import numpy as np

from ..data import ImageSet
from . import METRICS, MetricContext


def as_vectors(s: ImageSet) -> np.ndarray:
    """(N, C, H, W) -> float64 (N, C*H*W); uint8 scaled to [0, 1]."""
    x = s.images.reshape(len(s), -1).astype(np.float64)
    return x / 255.0 if s.images.dtype == np.uint8 else x


def gaussian_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood mean and covariance (divisor N) of x (N, D), float64."""
    mu = x.mean(0)
    xc = x - mu
    # einsum (no BLAS threads) for few dimensions, where a threaded product costs more than it saves
    cov = np.einsum("ni,nj->ij", xc, xc) if x.shape[1] < 16 else xc.T @ xc
    return mu, cov / max(len(x), 1)


def frechet_gaussian(mu_r: np.ndarray, s_r: np.ndarray, mu_f: np.ndarray, s_f: np.ndarray) -> float:
    """Squared Fréchet distance between N(mu_r, s_r) and N(mu_f, s_f), float64, >= 0."""
    try:
        from .frechet import frechet_distance
    except ImportError:  # pragma: no cover - the shared implementation is absent
        from scipy.linalg import sqrtm

        d = mu_r - mu_f
        covmean = sqrtm(s_r @ s_f)
        return max(float(d @ d + np.trace(s_r) + np.trace(s_f) - 2.0 * np.trace(covmean).real), 0.0)
    return frechet_distance(mu_r, s_r, mu_f, s_f)


class _LowDim:
    """Shared set-up: the real training set as vectors and its statistics."""

    def __init__(self, ctx: MetricContext) -> None:
        self.real = as_vectors(ctx.real.train)
        self.test = ctx.real.test
        self.mu, self.cov = gaussian_stats(self.real)
        self.var = self.real.var(0)

    def reference(self) -> dict[str, float]:
        return self(self.test)


@METRICS.register("frechet")
class FrechetMetric(_LowDim):
    """Gaussian Fréchet distance between the real training set and the samples."""

    def __call__(self, fake: ImageSet) -> dict[str, float]:
        x = as_vectors(fake)
        if len(x) == 0:
            return {"frechet": float("nan")}
        return {"frechet": frechet_gaussian(self.mu, self.cov, *gaussian_stats(x))}


@METRICS.register("wasserstein")
class WassersteinMetric(_LowDim):
    """Mean over dimensions of the 1-D Wasserstein-1 distance of the marginals."""

    def __call__(self, fake: ImageSet) -> dict[str, float]:
        from scipy.stats import wasserstein_distance

        x = as_vectors(fake)
        if len(x) == 0:
            return {"wasserstein": float("nan")}
        return {"wasserstein": float(np.mean([wasserstein_distance(self.real[:, j], x[:, j])
                                              for j in range(x.shape[1])]))}


@METRICS.register("variance_ratio")
class VarianceRatioMetric(_LowDim):
    """Mean over dimensions of var(fake) / var(real) (both with divisor N)."""

    def __call__(self, fake: ImageSet) -> dict[str, float]:
        x = as_vectors(fake)
        if len(x) == 0:
            return {"variance_ratio": float("nan")}
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = x.var(0) / self.var
        return {"variance_ratio": float(np.mean(ratio))}
