"""Feature extractors for the image-quality metrics (fd, kid, prdc).

An extractor is registered in ``EXTRACTORS`` under its name (a duplicate name
is an error) as a factory ``ctx: MetricContext -> FeatureExtractor``:

- ``inception``  - pool3 (2048-d) of the FID Inception-v3 (the 2015-12-05
  TensorFlow graph as ported by pytorch-fid); needs the published weights file.
- ``classifier`` - penultimate layer of the domain classifier trained on the
  real training set (``ctx.classifier()``).
- ``pixels``     - the flattened pixels scaled to [0, 1].

Every extractor takes uint8 images (N, C, H, W), works in fixed batches of
``batch_size`` under ``torch.inference_mode`` and returns float32 (N, D).
``key`` identifies the extractor *and its weights*; together with a hash of
the images it names the cached real-set features in ``ctx.cache_dir``.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Optional

import numpy as np

from ...config import MetricsConfig
from ...registry import Registry
from ...utils import digest

log = logging.getLogger(__name__)

EXTRACTORS: Registry = Registry("feature extractor", section=MetricsConfig, slot="features")


class FeatureExtractor:
    """Base class: ``name``, ``key`` (cache identity), ``dim``, ``batch_size``; call on uint8 (N, C, H, W)."""

    name: str = ""
    key: str = ""
    dim: Optional[int] = None
    batch_size: int = 1024

    def __call__(self, images: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, images: np.ndarray) -> None:
        if not isinstance(images, np.ndarray) or images.ndim != 4:
            raise ValueError(f"{self.name} features: expected an array (N, C, H, W), got "
                             f"{getattr(images, 'shape', type(images))}")


def extractor_for(ctx, name: Optional[str] = None) -> FeatureExtractor:
    """The extractor ``name`` (default ``ctx.config.metrics.features``), built once per context."""
    name = name or ctx.config.metrics.features
    slot = f"extractor:{name}"
    if slot not in ctx.shared:
        ctx.shared[slot] = EXTRACTORS.get(name)(ctx)
    return ctx.shared[slot]


_MEMORY_SLOTS = 6


def features_of(ctx, extractor: FeatureExtractor, images: np.ndarray, *, persist: bool = False) -> np.ndarray:
    """Features of ``images`` (float32 (N, D)), memoised by a hash of the images and ``extractor.key``.

    Recent results are kept in ``ctx.shared`` (so fd, kid and prdc share one
    extraction of a generation's samples); with ``persist=True`` (the real
    sets) they are also saved in ``ctx.cache_dir`` and reused by later runs."""
    key = digest(images, extractor.key)
    memo: OrderedDict = ctx.shared.setdefault("features", OrderedDict())
    if key in memo:
        memo.move_to_end(key)
        return memo[key]
    path: Optional[Path] = None
    feats = None
    if persist and ctx.cache_dir is not None:
        path = Path(ctx.cache_dir) / f"features-{extractor.name}-{key}.npz"
        if path.exists():
            from ...runfolder import load_npz

            feats = load_npz(path)["features"]
            log.info("%s features of %d images loaded from %s", extractor.name, len(feats), path)
    if feats is None:
        feats = np.ascontiguousarray(extractor(images), dtype=np.float32)
        if path is not None:
            from ...runfolder import save_npz

            save_npz(path, features=feats)
    memo[key] = feats
    while len(memo) > _MEMORY_SLOTS:
        memo.popitem(last=False)
    return feats

