"""Embedded dataset ``digits``: scikit-learn's bundled 8x8 handwritten digits.

1,797 grey images of 10 classes, pixel values 0..16 rescaled to 0..255.  It
ships with scikit-learn, so the paper's MNIST experiment runs offline.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..config import DataConfig
from . import DATASETS, ImageSet, RealData, split_holdout
from .transforms import resize_square


@DATASETS.register("digits")
def load_digits(cfg: DataConfig, cache_dir: Optional[Path] = None) -> RealData:
    from sklearn.datasets import load_digits as sk_load

    d = sk_load()
    images = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[:, None]
    full = ImageSet(images, d.target.astype(np.int64), 10)
    if cfg.image_size is not None and cfg.image_size != 8:
        full = ImageSet(resize_square(full.images, cfg.image_size), full.labels, 10)
    return split_holdout(full, cfg.test_fraction, cfg.split_seed)
