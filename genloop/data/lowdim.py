"""Low-dimensional synthetic data for the analytic generators.

``gaussian``: ``data.count`` points of N(``data.gaussian.mean``, ``data.gaussian.std``^2 I)
in ``data.gaussian.dim`` dimensions, float32 (N, D, 1, 1), unlabelled, split into
train/test by ``data.test_fraction``.  The points are drawn with
``data.split_seed`` (like a real dataset they are fixed, independent of the
run seed), so every chain of a sweep sees the same real data.  ``RealData.truth`` is the
distribution itself (``GaussianTruth``), so that a verifier can check samples against it
without reading the source's options.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import DataConfig, opt
from . import DATASETS, ImageSet, RealData, split_holdout


def gaussian_points(count: int, dim: int, mean: float, std: float, seed: int) -> np.ndarray:
    """``count`` draws of N(mean, std^2 I_dim) as float32 (count, dim, 1, 1)."""
    rng = np.random.default_rng([seed, 0x6A55])
    x = mean + std * rng.standard_normal((count, dim))
    return x.astype(np.float32).reshape(count, dim, 1, 1)


@dataclass(frozen=True)
class GaussianTruth:
    """N(mean, std^2 I_dim), the distribution the ``gaussian`` source draws from."""

    dim: int
    mean: float
    std: float

    def inside(self, x: np.ndarray, coverage: float) -> np.ndarray:
        """bool (N,): whether each row of ``x`` float (N, dim) lies in the central region holding
        ``coverage`` of the probability: sum_d ((x_d - mean) / std)^2 <= chi2_dim quantile(coverage)."""
        from scipy.stats import chi2

        z = (np.asarray(x) - self.mean) / self.std
        return (z ** 2).sum(1) <= float(chi2.ppf(coverage, self.dim))


@dataclass
class GaussianOptions:
    """Options of the ``gaussian`` source (``data.gaussian.<key>``)."""

    dim: int = opt(1, "dimension D of the points: float32 (N, D, 1, 1)", ge=1)
    mean: float = opt(0.0, "mean of every coordinate", old="gaussian_mean")
    std: float = opt(1.0, "standard deviation of every coordinate", gt=0.0, old="gaussian_std")

    def item_bytes(self, data: DataConfig) -> int:
        """Memory of one point as drawn (float64), for the check of data.count."""
        return 8 * self.dim


@DATASETS.register("gaussian", options=GaussianOptions)
def load_gaussian(cfg: DataConfig, cache_dir: Optional[Path] = None) -> RealData:
    o: GaussianOptions = cfg.options()
    full = ImageSet(gaussian_points(cfg.count, o.dim, o.mean, o.std, cfg.split_seed))
    real = split_holdout(full, cfg.test_fraction, cfg.split_seed)
    return dataclasses.replace(real, truth=GaussianTruth(o.dim, o.mean, o.std))
