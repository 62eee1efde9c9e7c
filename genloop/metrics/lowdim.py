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

``reference()`` gives the same numbers for the real test set against the real
training set, at the generations' sample counts (``metrics.equal_n``, on by
default; see ``image_metrics`` for the same rule):

- ``frechet`` and ``wasserstein`` depend on the sample counts even for one
  distribution (their estimates are biased upwards, more so for small N), so a
  generation and the reference are both scored at ``n`` real training points
  against ``n`` other points, ``n = min(real training set, real held-out set,
  samples)``; a larger side is subsampled without replacement and the values are
  averaged over ``metrics.draws`` draws.  ``n`` is the column ``eval_n_vectors``.
- ``variance_ratio`` is a ratio of two maximum-likelihood variances, each
  ``(N-1)/N`` of the true one in expectation, so it is unbiased when both sides
  have the same N, whatever N is: both sides are cut to the smaller of the two
  (draws averaged).  A generation with as many samples as the real training set
  (the default) is therefore scored on every point, exactly as before; the
  reference compares the held-out set with as many training points.  Its N is
  ``eval_n_variance_ratio``.

With ``metrics.equal_n=false`` every point is used on both sides (the reference
then has other counts than the generations).
"""
from __future__ import annotations

import numpy as np

from ..data import ImageSet
from ..data.vectors import as_vectors
from . import METRICS, MetricContext
from .image_metrics import _draw_pairs, equal_n


def gaussian_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood mean and covariance (divisor N) of x (N, D), float64."""
    mu = x.mean(0)
    xc = x - mu
    # einsum (no BLAS threads) for few dimensions, where a threaded product costs more than it saves
    cov = np.einsum("ni,nj->ij", xc, xc) if x.shape[1] < 16 else xc.T @ xc
    return mu, cov / max(len(x), 1)


def frechet_gaussian(mu_r: np.ndarray, s_r: np.ndarray, mu_f: np.ndarray, s_f: np.ndarray) -> float:
    """Squared Fréchet distance between N(mu_r, s_r) and N(mu_f, s_f), float64, >= 0.
    In one dimension it is ``(mu_r - mu_f)^2 + (sqrt(s_r) - sqrt(s_f))^2`` (computed so)."""
    if mu_r.shape == (1,):
        return float((mu_r[0] - mu_f[0]) ** 2 + (np.sqrt(max(s_r[0, 0], 0.0)) - np.sqrt(max(s_f[0, 0], 0.0))) ** 2)
    from .frechet import frechet_distance

    return frechet_distance(mu_r, s_r, mu_f, s_f)


class _LowDim:
    """Shared set-up: the real training set as vectors; the equal-N rule (module docstring).
    A subclass names its column (``name``) and scores one (real, fake) pair of (n, D) arrays."""

    name = ""
    n_column = "eval_n_vectors"

    def __init__(self, ctx: MetricContext) -> None:
        self.ctx = ctx
        self.mcfg = ctx.config.metrics
        self.real = as_vectors(ctx.real.train.images)
        self.test = ctx.real.test

    def reference(self) -> dict[str, float]:
        return self(self.test)

    def _n(self, n_fake: int) -> int:
        held_out = len(self.test)
        return equal_n(len(self.real), n_fake, held_out if held_out >= 2 else len(self.real))

    def __call__(self, fake: ImageSet) -> dict[str, float]:
        x = as_vectors(fake.images)
        if len(x) == 0:
            return {self.name: float("nan")}
        if not self.mcfg.equal_n:
            return {self.name: self._pair(self.real, x)}
        n = self._n(len(x))
        parts = list(_draw_pairs(self.real, x, n, self.mcfg.draws, self.ctx.seed))
        return {self.name: float(np.mean([self._pair(r, f) for r, f, _ in parts])), self.n_column: float(n)}

    def _pair(self, real: np.ndarray, fake: np.ndarray) -> float:
        raise NotImplementedError  # pragma: no cover - abstract


@METRICS.register("frechet")
class VectorFrechetMetric(_LowDim):
    """Gaussian Fréchet distance between the real training set and the samples, on the data
    vectors themselves (maximum-likelihood covariances; closed form in 1-D).  The Fréchet
    distance on features of images is ``fd`` (``image_metrics.FrechetMetric``); both use
    ``frechet.frechet_distance`` for D > 1."""

    name = "frechet"

    def _pair(self, real: np.ndarray, fake: np.ndarray) -> float:
        return frechet_gaussian(*gaussian_stats(real), *gaussian_stats(fake))


@METRICS.register("wasserstein")
class WassersteinMetric(_LowDim):
    """Mean over dimensions of the 1-D Wasserstein-1 distance of the marginals."""

    name = "wasserstein"

    def _pair(self, real: np.ndarray, fake: np.ndarray) -> float:
        from scipy.stats import wasserstein_distance

        return float(np.mean([wasserstein_distance(real[:, j], fake[:, j]) for j in range(fake.shape[1])]))


@METRICS.register("variance_ratio")
class VarianceRatioMetric(_LowDim):
    """Mean over dimensions of var(fake) / var(real) (both with divisor N, both sides at one N)."""

    name = "variance_ratio"
    n_column = "eval_n_variance_ratio"

    def _n(self, n_fake: int) -> int:
        return min(len(self.real), n_fake)  # equal sides suffice: the (N-1)/N factors cancel

    def _pair(self, real: np.ndarray, fake: np.ndarray) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = fake.var(0) / real.var(0)
        return float(np.mean(ratio))
