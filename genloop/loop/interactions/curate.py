"""``curate``: ``replace`` whose samples enter the history only when a filter scores them high.

The filter is independent of the metrics' judge: for labelled images it is the image
oracle (``genloop.metrics.oracle``: another model family, another feature family and
other real images than the judge's); for text a log-bilinear model
(``genloop.models.loglinear``: another model family than the Kneser-Ney judge, trained on
the same real training text).  Each row records the oracle's measured accuracy and error
rates (``curate_oracle_*``) when it is the filter."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ...config import Config, ConfigError, opt
from ...data import ImageSet, RealData
from ...data.vectors import as_vectors
from .base import INTERACTIONS
from .replace import Replace


def _image_curate_score(config: Config, real: RealData) -> Callable:
    """Images: p(label | x) from the image oracle (``genloop.metrics.oracle``: logistic
    regression on gradient histograms, trained on half of the real test set; not the
    metrics' judge, nor its recipe; max over classes for unlabelled samples of labelled
    data); unlabelled data: the log-density under a Gaussian fitted to the real training
    set (needs loop.curate.top_fraction)."""
    if real.train.labelled and real.train.images.dtype == np.uint8:
        from ...metrics.oracle import image_oracle

        try:
            oracle, rates = image_oracle(real)
        except ValueError as exc:
            raise ConfigError(f"loop.interaction: curate on data.name {config.data.name!r}: the image oracle that "
                              f"filters labelled images cannot be built ({exc})") from None

        def score(samples: ImageSet, scorer) -> np.ndarray:
            probs = score.filter.probs(samples.images)
            if samples.labels is None:
                return probs.max(1)
            return probs[np.arange(len(samples)), samples.labels]

        score.filter = oracle
        score.rates = {f"curate_oracle_{k}": v for k, v in rates.items()}
        return score
    if config.loop.group("curate").top_fraction is None:
        raise ConfigError(f"loop.curate.top_fraction: {config.data.name!r} has no labels, so curate scores samples "
                          "by their log-density under a Gaussian fitted to the real data, which has no natural "
                          "threshold; set loop.curate.top_fraction (e.g. 0.8)")
    x = as_vectors(real.train.images, signed=True)
    mean = x.mean(0)
    cov = np.atleast_2d(np.cov(x, rowvar=False, bias=True)) + 1e-6 * np.eye(x.shape[1])
    precision = np.linalg.inv(cov)

    def gaussian(samples: ImageSet, scorer) -> np.ndarray:
        d = as_vectors(samples.images, signed=True) - mean
        return -0.5 * np.einsum("ni,ij,nj->n", d, precision, d)

    return gaussian


def _text_curate_score(config: Config, real: RealData) -> Callable:
    """Text: minus the mean negative log-likelihood per token (so the lowest-perplexity blocks
    score highest) under a log-bilinear filter model of order loop.curate.order
    (``genloop.models.loglinear``) trained on the real training text: another model family
    than the text metrics' Kneser-Ney judge.  Perplexity has no natural threshold: needs
    loop.curate.top_fraction."""
    if config.loop.group("curate").top_fraction is None:
        raise ConfigError("loop.curate.top_fraction: curate on text keeps the lowest-perplexity samples under its "
                          "filter model, which has no natural threshold; set loop.curate.top_fraction (e.g. 0.8)")
    from ...models.loglinear import LogBilinear

    model = LogBilinear(config.loop.group("curate").order, real.train.vocab_size, seed=FILTER_SEED).fit(real.train.tokens)
    return lambda samples, scorer: model.log_probs(samples.tokens).mean(1)


FILTER_SEED = 7919  # the text filter's initial weights and batches (fixed: the same filter for every run seed)

# How curate scores samples, by data kind: factory(config, real) -> score(samples, scorer), higher is better.
CURATE_SCORES: dict[str, Callable] = {"images": _image_curate_score, "tokens": _text_curate_score}


@dataclass
class CurateOptions:
    """Options of ``curate`` (``loop.curate.<key>``)."""

    threshold: float = opt(0.9, "keep a sample when the filter (the image oracle) gives its conditioning label at least this probability", ge=0.0, le=1.0, old="curate_threshold")
    top_fraction: Optional[float] = opt(None, "keep this fraction of the samples, the most confident ones, instead of a threshold (needed for unlabelled data)", gt=0.0, le=1.0, old="curate_top_fraction")
    order: int = opt(2, "on text: n of the log-bilinear filter model (trained on the real training text) whose lowest-perplexity samples are kept", ge=1, le=8, old="curate_order")


@INTERACTIONS.register("curate", options=CurateOptions)
class Curate(Replace):
    """``replace`` with curated samples: only samples the filter (the image oracle, or a
    log-bilinear model for text; never the metrics' judge) assigns to their conditioning
    label with probability >= loop.curate.threshold (or the top loop.curate.top_fraction by that
    probability) enter the history."""

    def __init__(self, config: Config, real: RealData) -> None:
        super().__init__(config, real)
        self.score_fn = CURATE_SCORES[real.train.kind](config, real)

    def scores(self, samples, scorer) -> np.ndarray:
        """Higher is better (see the data kind's entry in ``CURATE_SCORES``)."""
        return self.score_fn(samples, scorer)

    def select(self, generation: int, samples: ImageSet, rng: np.random.Generator, scorer=None) -> tuple[ImageSet, dict]:
        if not len(samples):
            return samples, {"curate_kept_fraction": 0.0}
        s = self.scores(samples, scorer)
        top = self.config.loop.group("curate").top_fraction
        if top is not None:
            m = max(1, int(math.ceil(top * len(s))))
            keep = np.sort(np.argsort(-s, kind="stable")[:m])
        else:
            keep = np.flatnonzero(s >= self.config.loop.group("curate").threshold)
            if not len(keep):  # keep the best one so the chain can go on
                keep = np.array([int(np.argmax(s))])
        stats = {"curate_kept_fraction": len(keep) / len(s), "curate_score_kept": float(np.mean(s[keep])),
                 "curate_score_all": float(np.mean(s))}
        stats.update(getattr(self.score_fn, "rates", {}))
        return samples.subset(keep), stats
