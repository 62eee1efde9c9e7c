"""Score a set of generated images against a set of real images, outside the loop.

``evaluate(real, fake, features="inception")`` returns the Fréchet distance,
KID and precision / recall / density / coverage, named as in the loop (``fid``,
``kid_mean``, ... with Inception features; ``fd_pixels``, ``kid_mean_pixels``,
... otherwise).  It backs the command ``genloop eval --real PATH --fake PATH``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from ..config import Config, ConfigError
from ..loading import defaults, from_dict, load_components, set_path
from ..data import ImageSet, RealData
from ..utils import resolve_device
from . import METRICS, MetricContext

log = logging.getLogger(__name__)

IMAGE_METRICS = ("fd", "kid", "prdc")


def evaluate(real: ImageSet, fake: ImageSet, features: str = "inception", k: int = 5, *,
             metrics: Sequence[str] = IMAGE_METRICS, kid_subsets: int = 100, kid_subset_size: int = 1000,
             chunk_size: int = 1024, distance_dtype: str = "float64", inception_weights: Optional[str] = None,
             batch_size: int = 50, device: Union[str, torch.device] = "auto",
             cache_dir: Optional[Union[str, Path]] = None, seed: int = 0,
             config: Optional[Config] = None) -> dict[str, float]:
    """Image-quality metrics of ``fake`` against ``real``.

    Args:
        real, fake: the image sets (uint8 (N, C, H, W); ``pixels`` also takes float32 vectors).
        features: feature extractor: ``inception`` (needs the FID weights file, see
            docs/metrics.md), ``pixels``, or ``classifier`` (trains the domain
            classifier on ``real``, which must be labelled).
        k: nearest neighbours of precision / recall / density / coverage.
        metrics: which of ``fd``, ``kid``, ``prdc`` to compute.
        kid_subsets, kid_subset_size, chunk_size, distance_dtype, inception_weights, batch_size:
            as the ``metrics.<metric>.*`` config keys (``kid_subsets`` is ``metrics.kid.subsets``, ``batch_size`` is
            ``metrics.inception.batch_size``).
        device: ``auto``, ``cpu``, ``cuda`` or a torch device.
        cache_dir: folder for cached real features (None: no cache).
        seed: seed of the KID subsets and of the classifier's training.
        config: a base config (default: the defaults); the arguments above override its ``metrics`` keys.
            Every image of both sets is used (``metrics.equal_n`` is off: there is no reference
            here), so the numbers are those of the array functions, e.g. prdc 0.2's.

    Returns:
        ``{name: value}`` for every metric, in the order fd, kid, prdc.
    """
    for m in metrics:
        if m not in IMAGE_METRICS:
            raise ConfigError(f"evaluate: unknown metric {m!r} (choose from {', '.join(IMAGE_METRICS)})")
    load_components()  # the plugins, after the built-ins (genloop.evaluate and the CLI load those)
    from .features import EXTRACTORS

    if features not in EXTRACTORS:
        raise ConfigError(f"evaluate: unknown features {features!r} (known: {', '.join(EXTRACTORS.names())})")
    if features == "classifier" and not real.labelled:
        raise ConfigError("evaluate: features=classifier trains the domain classifier on the real images, "
                         "which needs labels; these real images have none (use features=inception or pixels)")
    _check_same_shape(real, fake)
    raw = defaults() if config is None else _to_raw(config)
    for key, value in (("names", list(metrics)), ("features", features), ("prdc.k", k), ("prdc.chunk_size", chunk_size),
                       ("prdc.distance_dtype", distance_dtype), ("kid.subsets", kid_subsets),
                       ("kid.subset_size", kid_subset_size), ("inception.weights", inception_weights),
                       ("inception.batch_size", batch_size), ("equal_n", False)):
        set_path(raw, f"metrics.{key}", value)
    raw["seed"] = seed
    raw["seeds"] = None
    cfg = from_dict(raw)  # checks every value, naming the key on error
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    ctx = MetricContext(config=cfg, real=RealData(train=real, test=real), device=dev,
                        cache_dir=Path(cache_dir) if cache_dir is not None else None, seed=seed)
    log.info("evaluate: %d real, %d fake images, %s features", len(real), len(fake), features)
    out: dict[str, float] = {}
    for name in metrics:
        out.update(METRICS.get(name)(ctx)(fake))
    return out


def _check_same_shape(real: ImageSet, fake: ImageSet) -> None:
    """A one-line ``ConfigError`` when the two sets' images differ in size or channels."""
    if tuple(real.images.shape[1:]) != tuple(fake.images.shape[1:]):
        def shape(s: ImageSet) -> str:
            return " x ".join(str(d) for d in s.images.shape[1:])

        raise ConfigError(f"evaluate: the real images are {shape(real)} (C x H x W) and the generated ones "
                          f"{shape(fake)}; compare sets of the same size and channels (resize or convert one set)")


def _to_raw(cfg: Config) -> dict:
    from ..loading import to_dict

    return to_dict(cfg)
