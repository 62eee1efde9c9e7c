"""``pixels`` features: the flattened image scaled to [0, 1] (D = C*H*W).

Useful for small images (8x8 digits, 28x28 MNIST) where a pixel-space metric
is meaningful and no network is needed.  Float32 vector data (N, D, 1, 1) of
the analytic generators is passed through unscaled.
"""
from __future__ import annotations

import numpy as np
import torch

from ...data.vectors import as_vectors
from ...utils import chunks
from . import EXTRACTORS, FeatureExtractor


class PixelFeatures(FeatureExtractor):
    name = "pixels"
    key = "pixels-v1"
    batch_size = 4096

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.check(images)
        n = len(images)
        d = int(np.prod(images.shape[1:]))
        out = np.empty((n, d), dtype=np.float32)
        for s in chunks(n, self.batch_size):
            as_vectors(images[s], out=out[s])
        return out


@EXTRACTORS.register("pixels")
def pixels(ctx=None) -> PixelFeatures:
    return PixelFeatures()
