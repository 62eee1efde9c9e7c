"""The registered image-quality metrics ``fd``, ``kid`` and ``prdc``.

Each is built from a ``MetricContext``: it takes the feature extractor named by
``metrics.features`` and compares a generation's samples (fake) with the real
training set (real).  ``reference()`` gives the same numbers for the real
held-out (test) set against the real training set: what a perfect generator
would reach at the same sample counts.

Equal N (``metrics.equal_n``, on by default): FD, precision, recall, density and
coverage depend on the sample counts even for identical distributions, so a
generation and the reference are scored at the same counts: ``n`` real
training images against ``n`` other images, ``n = min(real training set, real
held-out set, samples scored)``.  A side larger than ``n`` is subsampled
without replacement and the figures are averaged over ``metrics.draws``
draws (drawn from the run's metric seed, ``n`` and the set sizes, so resumed
and repeated runs draw the same subsets).  KID cuts the samples (or the real
test set) to ``n`` by one such draw and uses subsets of
``m = min(metrics.kid.subset_size, n // 2)`` from it and from the real training set, so
that both sides vary from subset to subset in every row and ``kid_std`` of a
generation and of the reference row measure the same spread.  The ``n`` used is the column ``eval_n``
(``eval_n_<features>``) of every row, the reference row included.

Column names say which features were used: with ``inception`` they are the
usual ``fid``, ``kid_mean``, ``kid_std``, ``precision``, ``recall``,
``density``, ``coverage``; with another extractor the extractor's name is
appended, e.g. ``fd_classifier``, ``kid_mean_pixels``, ``coverage_classifier``.

The real set's features (and its mean and covariance for ``fd``) are computed
once per run and cached in ``ctx.cache_dir``, keyed by a hash of the images
and of the extractor's weights.  Sample-count guidance is in docs/metrics.md;
``too_few_samples`` is the one rule for "too few samples" (N against the
feature dimension for FD, N against ``metrics.min_samples_warning`` for all);
its message is logged once per metric and sample count.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import ConfigError, opt
from ..data import ImageSet
from ..loading import register_validator
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


def too_few_samples(kind: str, n: int, dim: int, min_samples: int) -> Optional[str]:
    """The one rule for "too few samples": a one-line reason, or None when ``n`` samples
    per side are enough for metric ``kind`` (``fd``, ``kid``, ``prdc``) on ``dim``-d features.

    FD: ``n <= dim`` makes the covariance singular (rank < D; the value is defined but
    dominated by its ~D^2/N bias).  Every metric: fewer than ``min_samples``
    (``metrics.min_samples_warning``) per side is biased (FD) or noisy (KID, PRDC)."""
    if kind == "fd" and n <= dim:
        return (f"{n} samples <= {dim} feature dimensions: the covariance is singular and FD is dominated by "
                f"its bias (needs N > D, and N >> D to be stable)")
    if n < min_samples:
        why = {"fd": "biased upwards (the bias shrinks like 1/N; compare FDs only at equal N)",
               "kid": "noisy (unbiased, but its spread grows as the subsets shrink)",
               "prdc": "noisy (k-NN radii from few samples are unstable; density and coverage especially)"}
        return f"{n} samples < metrics.min_samples_warning={min_samples}: {why.get(kind, 'noisy')}"
    return None


def equal_n(n_real: int, n_fake: int, n_heldout: int) -> int:
    """The common sample count of a generation and the reference: the smallest of the three sets."""
    return min(n_real, n_fake, n_heldout)


def _draw_pairs(real: np.ndarray, fake: np.ndarray, n: int, draws: int, seed: int):
    """``(real_part, fake_part, real_is_whole)`` for each draw: both sides cut to ``n`` rows
    (without replacement; a side of exactly ``n`` rows is used whole, and then once if both are)."""
    if len(real) == n and len(fake) == n:
        yield real, fake, True
        return
    rng = np.random.default_rng([seed, n, len(real), len(fake), 0xE0A1])
    for _ in range(draws):
        ri = np.sort(rng.choice(len(real), n, replace=False)) if len(real) > n else None
        fi = np.sort(rng.choice(len(fake), n, replace=False)) if len(fake) > n else None
        yield (real if ri is None else real[ri]), (fake if fi is None else fake[fi]), ri is None


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

    def _check_size(self, n_real: int, n_fake: int, dim: int) -> None:
        n = min(n_real, n_fake)
        if n < self.min_useful:
            raise ValueError(f"metrics: {self.kind} needs at least {self.min_useful} real and fake samples, "
                             f"got {n_real} real and {n_fake} fake")
        why = too_few_samples(self.kind, n, dim, self.mcfg.min_samples_warning)
        if why and n not in self._warned:
            self._warned.add(n)
            log.warning("metrics: %s with %s features on %d real and %d fake samples: %s; see docs/metrics.md "
                        "for the sample counts it needs", self.kind, self.extractor.name, n_real, n_fake, why)

    def reference(self) -> dict[str, float]:
        """The same metrics for the real held-out (test) set against the real training set,
        at the generations' sample counts (``metrics.equal_n``)."""
        return self._score(self._features(self.ctx.real.test, persist=True))

    def __call__(self, fake: ImageSet) -> dict[str, float]:
        return self._score(self._features(fake))

    def _n(self, n_fake: int) -> Optional[int]:
        """The common sample count with ``metrics.equal_n``, else None (every image is used)."""
        if not self.mcfg.equal_n:
            return None
        held_out = len(self.ctx.real.test)
        return equal_n(len(self.real), n_fake, held_out if held_out >= self.min_useful else len(self.real))

    def _score(self, fake: np.ndarray) -> dict[str, float]:
        n = self._n(len(fake))
        if n is None:
            self._check_size(len(self.real), len(fake), fake.shape[1])
            return self._score_pair(self.real, fake, True)
        self._check_size(n, n, fake.shape[1])
        total: dict[str, float] = {}
        parts = list(_draw_pairs(self.real, fake, n, self.mcfg.draws, self.ctx.seed))
        for r, f, whole in parts:
            for key, value in self._score_pair(r, f, whole).items():
                total[key] = total.get(key, 0.0) + value / len(parts)
        total[metric_name("eval_n", self.extractor.name)] = float(n)
        return total

    def _score_pair(self, real: np.ndarray, fake: np.ndarray, real_is_whole: bool) -> dict[str, float]:
        raise NotImplementedError  # pragma: no cover - abstract


@METRICS.register("fd")
class FrechetMetric(_FeatureMetric):
    """Fréchet distance (``fid`` with Inception features, ``fd_<features>`` otherwise)."""

    kind = "fd"

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
                from ..runfolder import load_npz

                z = load_npz(path)
                return z["mu"], z["sigma"]
        mu, sigma = feature_stats(self.real)
        if path is not None:
            from ..runfolder import save_npz

            save_npz(path, mu=mu, sigma=sigma)
        return mu, sigma

    def _score_pair(self, real: np.ndarray, fake: np.ndarray, real_is_whole: bool) -> dict[str, float]:
        mu_r, sigma_r = (self.mu, self.sigma) if real_is_whole else feature_stats(real)
        mu, sigma = feature_stats(fake)
        return {self.name: frechet_distance(mu_r, sigma_r, mu, sigma)}


@dataclass
class KIDOptions:
    """Options of ``kid`` (and of the validation KID of ``train.select_every``; ``metrics.kid.<key>``)."""

    subsets: int = opt(100, "number of random subsets averaged", ge=1, old="kid_subsets")
    subset_size: int = opt(1000, "images per subset (capped at the smaller set size)", ge=2, old="kid_subset_size")


@METRICS.register("kid", options=KIDOptions)
class KIDMetric(_FeatureMetric):
    """Kernel distance: ``kid_mean``, ``kid_std`` (suffixed by the features unless Inception)."""

    kind = "kid"

    def __init__(self, ctx: MetricContext) -> None:
        super().__init__(ctx)
        self.names = (metric_name("kid_mean", self.extractor.name), metric_name("kid_std", self.extractor.name))

    def _score(self, fake: np.ndarray) -> dict[str, float]:
        # KID is unbiased at any N; its subsets are its draws.  So that kid_std means the same
        # in every row, the reference included, both sides are resampled alike: the other side
        # (samples, or the real test set) is cut to n by one fixed draw, and each subset takes
        # m = min(metrics.kid.subset_size, n // 2) rows of it and m of the real training set.  (With
        # the whole test set in every subset the reference's spread came from the real side only.)
        n = self._n(len(fake))
        n_other = len(fake) if n is None else n
        self._check_size(len(self.real) if n is None else n, n_other, fake.shape[1])
        if len(fake) > n_other:
            rng = np.random.default_rng([self.ctx.seed, n_other, len(self.real), len(fake), 0x41D])
            fake = fake[np.sort(rng.choice(len(fake), n_other, replace=False))]
        o: KIDOptions = self.mcfg.group("kid")
        size = max(2, min(o.subset_size, min(len(self.real), n_other) // 2))
        mean, std = kid(self.real, fake, subsets=o.subsets, subset_size=size,
                        seed=self.ctx.seed, device=self.ctx.device)
        out = {self.names[0]: mean, self.names[1]: std}
        if n is not None:
            out[metric_name("eval_n", self.extractor.name)] = float(n)
        return out


@dataclass
class PRDCOptions:
    """Options of ``prdc`` (``metrics.prdc.<key>``)."""

    k: int = opt(5, "nearest neighbours k of precision, recall, density and coverage (prdc's nearest_k)", ge=1)
    chunk_size: int = opt(1024, "rows per distance block in precision/recall/density/coverage (memory ~ chunk_size x N floats)", ge=1)
    distance_dtype: str = opt("float64", "precision of the pairwise distances: float64 (same counts as prdc 0.2) or float32 (about 2x faster)", choices=("float64", "float32"))


@METRICS.register("prdc", options=PRDCOptions)
class PRDCMetric(_FeatureMetric):
    """Precision, recall, density, coverage (suffixed by the features unless Inception)."""

    kind = "prdc"

    def __init__(self, ctx: MetricContext) -> None:
        super().__init__(ctx)
        self.options: PRDCOptions = self.mcfg.group("prdc")
        self.min_useful = self.options.k + 1

    def _score_pair(self, real: np.ndarray, fake: np.ndarray, real_is_whole: bool) -> dict[str, float]:
        o = self.options
        out = prdc(real, fake, k=o.k, chunk_size=o.chunk_size, dtype=o.distance_dtype, device=self.ctx.device)
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
        o: KIDOptions = self.mcfg.group("kid")
        mean, _ = kid(self._real, feats, subsets=o.subsets, subset_size=o.subset_size,
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
