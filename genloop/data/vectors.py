"""Images (or vector data) as one row of numbers per item.

``as_vectors`` is the one place the package flattens a set of images to (N, D):
the analytic generators and the interaction models' Gaussian scores work in
[-1, 1] (``signed``), the low-dimensional metrics and the ``pixels`` features in
[0, 1].  Float data (the vectors of the low-dimensional sources, float32
(N, D, 1, 1)) passes through unscaled.  Each form keeps its arithmetic bit for
bit (float64 divides; the float32 features multiply into ``out``), so stored
feature caches and metric values do not move.
"""
from __future__ import annotations

from typing import Optional

import numpy as np


def as_vectors(images: np.ndarray, signed: bool = False, out: Optional[np.ndarray] = None) -> np.ndarray:
    """(N, ...) uint8 or float -> (N, D).  Without ``out``: float64, uint8 mapped to
    [0, 1] (x / 255) or, ``signed``, to [-1, 1] (x / 127.5 - 1).  With ``out`` (a
    float32 (N, D) array, filled in place and returned): uint8 times float32(1 / 255)."""
    x = images.reshape(len(images), -1)
    uint8 = images.dtype == np.uint8
    if out is not None:
        if signed:
            raise ValueError("as_vectors: signed vectors are float64; call it without out")
        np.multiply(x, np.float32(1.0 / 255.0) if uint8 else np.float32(1.0), out=out, dtype=np.float32)
        return out
    if not uint8:
        return x.astype(np.float64)
    return x.astype(np.float64) / 127.5 - 1.0 if signed else x.astype(np.float64) / 255.0
