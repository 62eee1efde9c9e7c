"""``curate``: ``replace`` whose samples enter the history only when a filter scores them high."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ...config import Config, ConfigError, opt
from ...data import ImageSet, RealData
from ...data.vectors import as_vectors
from ...loading import register_validator
from .base import INTERACTIONS
from .replace import Replace


# The filter's classifier seed is the metric context's plus this (any other seed would do).
FILTER_SEED_OFFSET = 7919


def filter_classifier(scorer):
    """The classifier of the curation filter: the domain classifier's recipe
    (``genloop.metrics.classifier``) trained from another seed than the judge that measures
    accuracy (``scorer.seed + FILTER_SEED_OFFSET``: other initial weights and batches), so the
    filter is never the model that scores the samples; trained once per metric context
    (kept in ``scorer.shared``) and cached in its ``cache_dir`` under its own key."""
    if "curate_filter" not in scorer.shared:
        from ...metrics.classifier import DomainClassifier

        other = dataclasses.replace(scorer, seed=scorer.seed + FILTER_SEED_OFFSET, shared={})
        scorer.shared["curate_filter"] = DomainClassifier.trained(other)
    return scorer.shared["curate_filter"]


def _image_curate_score(config: Config, real: RealData) -> Callable:
    """Images: p(label | x) from the filter's own classifier (another seed than the metric's
    judge; max over classes for unlabelled samples of labelled data); unlabelled data: the log-density under a Gaussian fitted
    to the real training set (needs loop.curate_top_fraction)."""
    if real.train.labelled:
        def score(samples: ImageSet, scorer) -> np.ndarray:
            if scorer is None:
                raise ValueError("curate: select() needs the metric context (scorer) for the filter's classifier")
            import torch

            probs = torch.softmax(filter_classifier(scorer).logits(samples.images).float(), 1).numpy()
            if samples.labels is None:
                return probs.max(1)
            return probs[np.arange(len(samples)), samples.labels]

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
    score highest) under a Kneser-Ney filter model of order loop.curate_order trained on the
    real training text; not the text metrics' judge (order metrics.judge_order).  Perplexity
    has no natural threshold: needs loop.curate_top_fraction."""
    if config.loop.group("curate").top_fraction is None:
        raise ConfigError("loop.curate.top_fraction: curate on text keeps the lowest-perplexity samples under its "
                          "filter model, which has no natural threshold; set loop.curate.top_fraction (e.g. 0.8)")
    from ...models.ngram import KneserNey

    model = KneserNey(config.loop.group("curate").order, real.train.vocab_size).fit(real.train.tokens)
    return lambda samples, scorer: model.log_probs(samples.tokens).mean(1)


# How curate scores samples, by data kind: factory(config, real) -> score(samples, scorer), higher is better.
CURATE_SCORES: dict[str, Callable] = {"images": _image_curate_score, "tokens": _text_curate_score}


@dataclass
class CurateOptions:
    """Options of ``curate`` (``loop.curate.<key>``)."""

    threshold: float = opt(0.9, "keep a sample when the domain classifier gives its conditioning label at least this probability", ge=0.0, le=1.0, old="curate_threshold")
    top_fraction: Optional[float] = opt(None, "keep this fraction of the samples, the most confident ones, instead of a threshold (needed for unlabelled data)", gt=0.0, le=1.0, old="curate_top_fraction")
    order: int = opt(2, "on text: n of the Kneser-Ney filter model (trained on the real training text) whose lowest-perplexity samples are kept; differs from the text metrics' judge (metrics.text.judge_order)", ge=1, le=8, old="curate_order")


@INTERACTIONS.register("curate", options=CurateOptions)
class Curate(Replace):
    """``replace`` with curated samples: only samples the filter's classifier (another seed
    than the metric's judge) assigns to their conditioning label with probability >= curate_threshold (or the top
    curate_top_fraction by that probability) enter the history."""

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
        return samples.subset(keep), {"curate_kept_fraction": len(keep) / len(s),
                                      "curate_score_kept": float(np.mean(s[keep])), "curate_score_all": float(np.mean(s))}


@register_validator
def _check_curate_order(cfg: Config) -> None:
    """The curate filter on text must not be the text metrics' judge."""
    if (cfg.loop.interaction == "curate" and "text" in cfg.metrics.names
            and cfg.loop.group("curate").order == cfg.metrics.group("text").judge_order):
        raise ConfigError(f"loop.curate.order: {cfg.loop.group('curate').order} equals metrics.text.judge_order; the curate filter "
                          "must not be the text metrics' judge (choose another order for one of them)")
