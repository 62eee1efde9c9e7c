"""Low-dimensional synthetic data for the analytic generators.

``gaussian``: ``data.count`` points of N(``data.gaussian_mean``, ``data.gaussian_std``^2 I)
in ``data.dim`` dimensions, float32 (N, D, 1, 1), unlabelled, split into
train/test by ``data.test_fraction``.  The points are drawn with
``data.split_seed`` (like a real dataset they are fixed, independent of the
run seed), so every chain of a sweep sees the same real data.
"""
from __future__ import annotations

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


@dataclass
class GaussianOptions:
    """Options of the ``gaussian`` source (``data.<key>``)."""

    dim: int = opt(1, "dimension D of low-dimensional vector data (gaussian): float32 (N, D, 1, 1)", ge=1)
    gaussian_mean: float = opt(0.0, "mean of every coordinate of the gaussian source")
    gaussian_std: float = opt(1.0, "standard deviation of every coordinate of the gaussian source", gt=0.0)


@DATASETS.register("gaussian", options=GaussianOptions)
def load_gaussian(cfg: DataConfig, cache_dir: Optional[Path] = None) -> RealData:
    full = ImageSet(gaussian_points(cfg.count, cfg.dim, cfg.gaussian_mean, cfg.gaussian_std, cfg.split_seed))
    return split_holdout(full, cfg.test_fraction, cfg.split_seed)
