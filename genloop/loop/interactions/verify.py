"""``verify``: synthetic samples enter the history only when a verifier with known error
rates accepts them; the next generation trains on the accepted samples, mixed with real
data as the synthetic-fraction schedule says (schedule.py; without a schedule: accepted
samples only).

Each sample is checked against the exact truth of its data kind (``VERIFIERS``):

- ``categorical``: the sample is one of the valid outcomes (the support, or
  ``data.valid_categories``);
- ``brackets``: the string is in the language (exact membership);
- ``gaussian``: the sample lies in the region of the true N(mean, std^2 I) that holds
  ``loop.verify.coverage`` of its probability (squared distance from the true mean, in
  true standard deviations, at most the chi-square quantile with D degrees of freedom);
- labelled images (``digits``, ``mnist``, labelled folders ...): the image oracle
  (``genloop.metrics.oracle``), a logistic regression on gradient-orientation histograms
  trained on half of the real test set, independent of the metrics' judge, accepts the
  sample as showing its conditioning label (its most probable class, with probability at
  least ``loop.verify.oracle_threshold``).  For images the oracle's decision *is* the
  truth the counts below refer to; its own accuracy and error rates on the other half of
  the test set (real images with their labels and with wrong ones) are in every row as
  ``verify_oracle_accuracy``, ``verify_oracle_false_reject``, ``verify_oracle_false_accept``.

A valid sample is rejected with probability ``loop.verify.false_reject``, an invalid one
accepted with probability ``loop.verify.false_accept`` (independent draws from the
generation's random stream), so the verifier's quality is a setting of the experiment.
Each generation's row records ``verify_offered``, ``verify_valid`` (valid samples offered),
``verify_accepted``, ``verify_wrongly_accepted`` (invalid and accepted),
``verify_wrongly_rejected`` (valid and rejected) and ``verify_valid_kept`` (the share of
valid samples among the accepted ones).  When the verifier accepts fewer samples than the
schedule's synthetic part, all accepted samples are used and the training set is smaller
(``pool_size``, ``pool_real`` say so).  A data kind without a verifier is a one-line error
before the run folder is made; so are images without labels, or not uint8.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...config import Config, ConfigError, opt
from ...data import RealData
import genloop.loop.interactions.schedule as schedule  # the module, not the package: no import circle
from .base import INTERACTIONS, History, Pool
from .mix import Mix


def _categorical(config: Config, real: RealData) -> Callable:
    return lambda samples: real.truth.is_valid(samples.tokens)


def _brackets(config: Config, real: RealData) -> Callable:
    return lambda samples: real.truth.is_valid(samples.tokens)


def _image_oracle(config: Config, real: RealData) -> Callable:
    from ...metrics.oracle import image_oracle

    threshold = config.loop.group("verify").oracle_threshold
    try:
        oracle, rates = image_oracle(real, threshold)
    except ValueError as exc:
        raise ConfigError(f"loop.interaction: verify on data.name {config.data.name!r}: the image oracle cannot judge "
                          f"these data ({exc}); verify needs labelled uint8 images or a source with an exact truth "
                          f"({', '.join(sorted(VERIFIERS))})") from None

    def valid(samples) -> np.ndarray:
        if samples.labels is None:
            raise ValueError("verify: the image oracle judges whether a sample shows its conditioning class, and these "
                             "samples have no labels; use a class-conditional generator (generator.conditional=true)")
        return oracle.accepts(samples.images, samples.labels, threshold)

    valid.rates = {f"verify_oracle_{k}": v for k, v in rates.items()}
    return valid


def _gaussian(config: Config, real: RealData) -> Callable:
    from ...data.vectors import as_vectors

    coverage = config.loop.group("verify").coverage
    return lambda samples: real.truth.inside(as_vectors(samples.images), coverage)


# data.name -> factory(config, real) -> valid(samples) -> bool (N,): the exact truth a verifier checks.
VERIFIERS: dict[str, Callable] = {"categorical": _categorical, "brackets": _brackets, "gaussian": _gaussian}


@dataclass
class VerifyOptions:
    """Options of ``verify`` (``loop.verify.<key>``)."""

    false_accept: float = opt(0.0, "probability that the verifier accepts an invalid sample", ge=0.0, le=1.0, old="verify_false_accept")
    false_reject: float = opt(0.0, "probability that the verifier rejects a valid sample", ge=0.0, le=1.0, old="verify_false_reject")
    oracle_threshold: float = opt(0.0, "on labelled images: the oracle accepts a sample when its conditioning label is the oracle's most probable class with at least this probability", ge=0.0, le=1.0, old="verify_oracle_threshold")
    coverage: float = opt(0.95, "on the gaussian source: a sample is valid when it lies in the region of the true distribution holding this much probability", gt=0.0, lt=1.0, old="verify_coverage")


@INTERACTIONS.register("verify", options=VerifyOptions)
class Verify(Mix):
    """Samples are kept when the verifier accepts them (module docstring); later generations
    train on the kept samples of the previous one, mixed with real data by the schedule."""

    @classmethod
    def checks_data(cls, config: Config) -> bool:
        return True  # the data kind must have a verifier

    @classmethod
    def synthetic_default(cls, loop) -> float:
        return 1.0  # without a schedule: the accepted samples only

    def __init__(self, config: Config, real: RealData) -> None:
        super().__init__(config, real)
        name = config.data.name
        if name in VERIFIERS:
            self.valid = VERIFIERS[name](config, real)
        elif real.train.kind == "images":
            self.valid = _image_oracle(config, real)
        else:
            raise ConfigError(f"loop.interaction: verify checks samples against an exact truth or an image oracle, "
                              f"which data.name {name!r} does not have (verifiable: labelled images, "
                              f"{', '.join(sorted(VERIFIERS))})")
        if self.supply is None:
            self.supply = schedule.RealSupply(config, real, self.sample_count())

    def next_pool(self, generation: int, history: History, rng: np.random.Generator) -> Pool:
        return self.supply.pool(generation, history.samples(generation - 1), rng, short_ok=True)

    def select(self, generation: int, samples, rng: np.random.Generator, scorer=None):
        o: VerifyOptions = self.config.loop.group("verify")
        n = len(samples)
        valid = np.asarray(self.valid(samples), dtype=bool) if n else np.zeros(0, bool)
        u = rng.random(n)
        accept = np.where(valid, u >= o.false_reject, u < o.false_accept)
        if not accept.any() and n:  # keep one sample so the chain can go on (counted as accepted)
            accept[int(np.argmax(valid))] = True
        kept = samples.subset(np.flatnonzero(accept))
        stats = {"verify_offered": float(n), "verify_valid": float(valid.sum()), "verify_accepted": float(accept.sum()),
                 "verify_wrongly_accepted": float((accept & ~valid).sum()),
                 "verify_wrongly_rejected": float((~accept & valid).sum()),
                 "verify_valid_kept": float(valid[accept].mean()) if accept.any() else float("nan")}
        stats.update(getattr(self.valid, "rates", {}))
        return kept, stats
