"""The registered image-quality metrics ``fd``, ``kid`` and ``prdc``.

Each is built from a ``MetricContext``: it takes the feature extractor named by
``metrics.features`` and compares a generation's samples (fake) with the real
training set (real).  ``reference()`` gives the same numbers for the real test
set against the real training set: the floor a perfect generator would reach
with that many samples.

Column names say which features were used: with ``inception`` they are the
usual ``fid``, ``kid_mean``, ``kid_std``, ``precision``, ``recall``,
``density``, ``coverage``; with another extractor the extractor's name is
appended, e.g. ``fd_classifier``, ``kid_mean_pixels``, ``coverage_classifier``.

The real set's features (and its mean and covariance for ``fd``) are computed
once per run and cached in ``ctx.cache_dir``, keyed by a hash of the images
and of the extractor's weights.  Sample-count guidance is in docs/metrics.md;
below ``metrics.min_samples_warning`` a warning is logged.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import ConfigError, register_validator
from ..data import ImageSet
from ..utils import digest
from . import METRICS, MetricContext
from .features import EXTRACTORS, extractor_for, features_of
from .frechet import feature_stats, frechet_distance
from .kid import kid
from .prdc import prdc

log = logging.getLogger(__name__)


def metric_name(base: str, extractor: str) -> str:
    """``fid`` / ``kid_mean`` / ``precision`` ... with Inception features, ``<base>_<extractor>`` otherwise.

    ``base`` is the generic name (``fd``, ``kid_mean``, ``precision``, ...); ``fd``
    becomes ``fid`` with Inception features."""
    if extractor == "inception":
        return "fid" if base == "fd" else base
    return f"{base}_{extractor}"


class _FeatureMetric:
    """Shared plumbing: the extractor, cached real features, the sample-count warning."""

    kind = ""
    min_useful = 2  # fewer samples than this cannot be scored at all

    def __init__(self, ctx: MetricContext) -> None:
        self.ctx = ctx
        self.mcfg = ctx.config.metrics
        self.extractor = extractor_for(ctx)
        self.real_set = ctx.real.train
        self.real = features_of(ctx, self.extractor, self.real_set.images, persist=True)
        self._warned: set = set()

    def _features(self, s: ImageSet, persist: bool = False) -> np.ndarray:
        return features_of(self.ctx, self.extractor, s.images, persist=persist)

    def _check_size(self, n_real: int, n_fake: int) -> None:
        n = min(n_real, n_fake)
        if n < self.min_useful:
            raise ValueError(f"metrics: {self.kind} needs at least {self.min_useful} real and fake samples, "
                             f"got {n_real} real and {n_fake} fake")
        limit = self.mcfg.min_samples_warning
        if n < limit and n not in self._warned:
            self._warned.add(n)
            log.warning("metrics: %s with %s features on %d real and %d fake samples (< %d): the estimate is %s; "
                        "see docs/metrics.md for the sample counts it needs", self.kind, self.extractor.name, n_real,
                        n_fake, limit, self.caveat)

    caveat = "noisy"

    def reference(self) -> dict[str, float]:
        """The same metrics for the real test set against the real training set."""
        return self._score(self._features(self.ctx.real.test, persist=True))

    def __call__(self, fake: ImageSet) -> dict[str, float]:
        return self._score(self._features(fake))

    def _score(self, fake: np.ndarray) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError


@METRICS.register("fd")
class FrechetMetric(_FeatureMetric):
    """Fréchet distance (``fid`` with Inception features, ``fd_<features>`` otherwise)."""

    kind = "fd"
    caveat = "biased upwards (the bias shrinks like 1/N; compare FDs only at equal sample counts)"

    def __init__(self, ctx: MetricContext) -> None:
        super().__init__(ctx)
        self.name = metric_name("fd", self.extractor.name)
        self.mu, self.sigma = self._real_stats()

    def _real_stats(self) -> tuple[np.ndarray, np.ndarray]:
        path: Optional[Path] = None
        if self.ctx.cache_dir is not None:
            key = digest(self.real_set.images, self.extractor.key, "fd-stats-v1")
            path = Path(self.ctx.cache_dir) / f"fd-stats-{self.extractor.name}-{key}.npz"
            if path.exists():
                from ..store import load_npz

                z = load_npz(path)
                return z["mu"], z["sigma"]
        mu, sigma = feature_stats(self.real)
        if path is not None:
            from ..store import save_npz

            save_npz(path, mu=mu, sigma=sigma)
        return mu, sigma

    def _score(self, fake: np.ndarray) -> dict[str, float]:
        self._check_size(len(self.real), len(fake))
        mu, sigma = feature_stats(fake)
        return {self.name: frechet_distance(self.mu, self.sigma, mu, sigma)}


@METRICS.register("kid")
class KIDMetric(_FeatureMetric):
    """Kernel distance: ``kid_mean``, ``kid_std`` (suffixed by the features unless Inception)."""

    kind = "kid"
    caveat = "noisy (unbiased, but its spread grows as the subsets shrink)"

    def __init__(self, ctx: MetricContext) -> None:
        super().__init__(ctx)
        self.names = (metric_name("kid_mean", self.extractor.name), metric_name("kid_std", self.extractor.name))

    def _score(self, fake: np.ndarray) -> dict[str, float]:
        self._check_size(len(self.real), len(fake))
        mean, std = kid(self.real, fake, subsets=self.mcfg.kid_subsets, subset_size=self.mcfg.kid_subset_size,
                        seed=self.ctx.seed, device=self.ctx.device)
        return {self.names[0]: mean, self.names[1]: std}


@METRICS.register("prdc")
class PRDCMetric(_FeatureMetric):
    """Precision, recall, density, coverage (suffixed by the features unless Inception)."""

    kind = "prdc"
    caveat = "noisy (density and coverage especially; k-NN radii from few samples are unstable)"

    def __init__(self, ctx: MetricContext) -> None:
        super().__init__(ctx)
        self.min_useful = self.mcfg.k + 1

    def _score(self, fake: np.ndarray) -> dict[str, float]:
        self._check_size(len(self.real), len(fake))
        out = prdc(self.real, fake, k=self.mcfg.k, chunk_size=self.mcfg.chunk_size,
                   dtype=self.mcfg.distance_dtype, device=self.ctx.device)
        return {metric_name(k, self.extractor.name): v for k, v in out.items()}


class ValidationKID:
    """KID (mean over subsets) of generated images against a fixed validation set,
    for choosing the best checkpoint during training (``train.select_every``), as
    the Keras DDIM example the paper's flowers/birds code derives from does.

    Call with uint8 images ``real`` (N, C, H, W) and ``fake`` (M, C, H, W); the
    features of the last ``real`` set are kept, so repeated calls during one
    generation extract them once.  Features: ``features`` or ``metrics.features``;
    subsets as in the ``kid`` metric."""

    def __init__(self, ctx: MetricContext, features: Optional[str] = None) -> None:
        self.ctx, self.mcfg = ctx, ctx.config.metrics
        self.extractor = extractor_for(ctx, features)
        self._key: Optional[str] = None
        self._real: Optional[np.ndarray] = None

    def __call__(self, real: np.ndarray, fake: np.ndarray) -> float:
        key = digest(real, self.extractor.key)
        if key != self._key:
            self._real, self._key = np.ascontiguousarray(self.extractor(real), dtype=np.float32), key
        feats = np.ascontiguousarray(self.extractor(fake), dtype=np.float32)
        mean, _ = kid(self._real, feats, subsets=self.mcfg.kid_subsets, subset_size=self.mcfg.kid_subset_size,
                      seed=self.ctx.seed, device=self.ctx.device)
        return mean


@register_validator
def _check_select_features(cfg) -> None:
    """``train.select_features`` (or ``metrics.features``) must name an extractor when checkpoints are selected."""
    name = cfg.train.select_features or cfg.metrics.features
    if cfg.train.select_every and name not in EXTRACTORS:
        key = "train.select_features" if cfg.train.select_features else "metrics.features"
        raise ConfigError(f"{key}: unknown feature extractor {name!r} for the validation KID of train.select_every "
                          f"(known: {', '.join(EXTRACTORS.names())})")


@register_validator
def _check_features(cfg) -> None:
    """``metrics.features`` must name a registered extractor when fd/kid/prdc are asked for."""
    if any(n in ("fd", "kid", "prdc") for n in cfg.metrics.names) and cfg.metrics.features not in EXTRACTORS:
        raise ConfigError(f"metrics.features: unknown feature extractor {cfg.metrics.features!r} "
                          f"(known: {', '.join(EXTRACTORS.names())})")
