"""Interaction models: what each generation trains on.

An interaction model is a class registered in ``INTERACTIONS`` under
``loop.interaction``, built as ``cls(config, real)``.  For generation ``g`` it
returns the training ``Pool`` (images plus where each came from), says which
labels to sample, and may filter the samples before they enter the history.
It keeps no state between generations: everything it needs comes from the
``History`` (the real data and every finished generation's kept samples,
read back from the run folder), so a resumed run sees exactly what an
uninterrupted one saw.  Randomness comes only from the ``rng`` it is handed
(and, for fixed set-up such as ``fresh``'s reserve, from the chain seed).

The runner calls, per generation ``g`` and in this order (the ``rng`` is the
generation's, shared by the calls)::

    pool = training_set(g, history, rng)          # what every lineage trains on
    labels, n = sample_labels(g, rng)             # what the generation samples ...
    parts = split_samples(g, labels, n)           # ... and how it splits over lineages
    for each lineage l (``lineages()``; one unless ``ecosystem``):
        fit a generator (config overridden by lineages()[l]) on pool, sample parts[l]
        kept_l, stats = select(g, samples_l, rng, scorer)

and stores every lineage's kept samples; ``history.samples(g)`` returns them
(all lineages, tagged), ``history.samples(g, l)`` one lineage's.

Models (n = size of the real training set, N_s = samples per generation):

- ``replace``  (the paper) generation g trains on generation g-1's samples.
- ``mix``      round(``real_fraction`` n) real images (a fresh class-stratified
               draw each generation) + the rest from generation g-1's samples; size n.
- ``accumulate``  the real set plus every earlier generation's samples (grows by
               N_s per generation).
- ``accumulate_subsample``  n images drawn uniformly without replacement from
               that growing pool.
- ``fresh``    a reserve of real images is held back from generation 0 (class-
               stratified, chosen from the chain seed), so generation 0 trains on the
               other n0 images; generation g >= 1 trains on k = round(``fresh_fraction``
               n0) reserve images never used before (taken in a fixed random order)
               plus n0 - k of generation g-1's samples.  The reserve holds exactly
               (generations - 1) k images unless ``loop.fresh_reserve`` fixes its size
               (then images are reused, oldest first, once it is exhausted).
- ``curate``   like ``replace``, but samples enter the history only if the filter's
               classifier (``MetricContext.filter_classifier``: the domain classifier's
               recipe from another seed, never the judge that measures accuracy) gives
               their conditioning label probability >=
               ``curate_threshold`` (or: the top ``curate_top_fraction`` by that
               probability).  The pool is the kept samples (smaller than n).  Unlabelled
               data: the score is the log-density under a Gaussian fitted to the real
               training set, and ``curate_top_fraction`` must be set.
- ``detect``   the candidates are the real training set plus generation g-1's
               samples (a web holding real and the newest synthetic images); a
               detector removes those it flags and the rest is the pool.  ``oracle``:
               each synthetic image is removed with probability ``detector_recall``,
               each real one with ``detector_false_positive_rate``.  ``learned``: a
               logistic-regression real-vs-generated classifier (L2, C = 1) on standardised
               pixels (and their squares when D <= 256), cross-fitted on two random halves so
               that every candidate is judged by a model that did not see it; its
               measured recall and false-positive rate go into the metrics row.
- ``ecosystem``  several lineages (``loop.lineages``: generator-config overrides
               each) train on one shared pool; generation g's N_s samples are split
               into shares ``loop.shares``, lineage l sampling its share; the pool of
               g+1 is all of them (so it is ``replace`` on the shared web).
"""
from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ..config import Config, ConfigError, GeneratorConfig, register_validator, to_dict
from ..data import ImageSet, RealData, concat_sets
from ..registry import Registry

log = logging.getLogger(__name__)

INTERACTIONS: Registry = Registry("interaction model")

REAL = -1  # origin code of real images


@dataclass
class Pool:
    """A training set and the provenance of each image: ``origin`` int (N,) is
    ``REAL`` (-1) for real images or the generation that sampled it; ``lineage``
    int (N,) the lineage that made it (0 for real images and single-lineage runs);
    ``index`` int (N,) its position in its source (the real training set, or that
    generation's (and lineage's) kept samples; -1 when unknown).  ``stats`` are
    numbers about how the pool was made (e.g. a detector's error rates) that go
    into the generation's metrics row."""

    data: ImageSet
    origin: np.ndarray
    lineage: Optional[np.ndarray] = None
    index: Optional[np.ndarray] = None
    stats: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.origin = np.asarray(self.origin, dtype=np.int64)
        if self.lineage is None:
            self.lineage = np.zeros(len(self.origin), dtype=np.int64)
        if self.index is None:
            self.index = np.full(len(self.origin), -1, dtype=np.int64)
        self.lineage = np.asarray(self.lineage, dtype=np.int64)
        self.index = np.asarray(self.index, dtype=np.int64)
        if not (len(self.origin) == len(self.lineage) == len(self.index) == len(self.data)):
            raise ValueError("pool provenance does not match its images")

    def __len__(self) -> int:
        return len(self.data)

    @staticmethod
    def real(data: ImageSet, index: Optional[np.ndarray] = None) -> "Pool":
        """Real images; ``index`` their positions in the real training set (default: 0..N-1)."""
        idx = np.arange(len(data)) if index is None else index
        return Pool(data, np.full(len(data), REAL), index=idx)

    @staticmethod
    def concat(pools: list["Pool"]) -> "Pool":
        full = [p for p in pools if len(p)]
        if not full:
            return pools[0]
        return Pool(concat_sets([p.data for p in full]), np.concatenate([p.origin for p in full]),
                    np.concatenate([p.lineage for p in full]), np.concatenate([p.index for p in full]))

    def subset(self, index: np.ndarray) -> "Pool":
        return Pool(self.data.subset(index), self.origin[index], self.lineage[index], self.index[index])

    def composition(self, lineages: int = 1) -> dict[str, float]:
        """Fractions of the pool by origin: ``pool_real`` and ``pool_gen_<g>``; with
        several lineages also ``pool_lineage_<l>`` (synthetic images made by lineage l)."""
        n = len(self)
        counts = np.bincount(self.origin + 1) if n else np.zeros(1, np.int64)  # [real, gen 0, gen 1, ...]
        out = {"pool_size": float(n), "pool_real": float(counts[0] / n) if n else 0.0}
        for g in np.flatnonzero(counts[1:]):
            out[f"pool_gen_{int(g)}"] = float(counts[g + 1] / n)
        if lineages > 1:
            per = np.bincount(self.lineage[self.origin >= 0], minlength=lineages)
            for lin in range(lineages):
                out[f"pool_lineage_{lin}"] = float(per[lin] / n) if n else 0.0
        return out


@dataclass
class History:
    """The real data and a loader of each finished generation's kept samples.

    ``load_samples(generation)`` returns lineage 0's kept samples (all of a
    single-lineage run's); ``load_samples(generation, lineage)`` is called for
    the other lineages of a run with ``lineages`` > 1."""

    real: RealData
    load_samples: Callable[..., ImageSet]
    lineages: int = 1

    def samples(self, generation: int, lineage: Optional[int] = None) -> Pool:
        """Generation ``generation``'s kept samples of one lineage, or of all (concatenated)."""
        if lineage is None:
            if self.lineages == 1:
                return self.samples(generation, 0)
            return Pool.concat([self.samples(generation, lin) for lin in range(self.lineages)])
        s = self.load_samples(generation, lineage) if lineage else self.load_samples(generation)
        n = len(s)
        return Pool(s, np.full(n, generation), np.full(n, lineage), np.arange(n))


def class_balanced_labels(real: ImageSet, n: int, rng: np.random.Generator) -> Optional[np.ndarray]:
    """Labels whose per-class counts equal ``real``'s when ``n == len(real)``
    (proportional, largest remainder, otherwise), in random order."""
    if not real.labelled:
        return None
    labels = np.repeat(np.arange(real.num_classes), proportional_counts(real.class_counts(), n))
    rng.shuffle(labels)
    return labels


def proportional_counts(weights: np.ndarray, n: int) -> np.ndarray:
    """Split ``n`` into integers proportional to ``weights`` (largest remainder)."""
    w = np.asarray(weights, dtype=np.float64)
    exact = w / w.sum() * n
    base = np.floor(exact).astype(np.int64)
    rest = n - base.sum()
    if rest:
        base[np.argsort(-(exact - base), kind="stable")[:rest]] += 1
    return base


def take(pool: Pool, n: int, rng: np.random.Generator, like: Optional[ImageSet] = None) -> Pool:
    """``n`` images of ``pool`` without replacement (all of them when it has fewer).
    When ``like`` and the pool are labelled, the class counts follow ``like``'s
    proportions (largest remainder; a class short of images is topped up at random)."""
    m = len(pool)
    if n >= m:
        return pool
    if like is not None and like.labelled and pool.data.labelled:
        want = proportional_counts(like.class_counts(), n)
        chosen = []
        for c, k in enumerate(want):
            idx = np.flatnonzero(pool.data.labels == c)
            chosen.append(rng.permutation(idx)[:k] if len(idx) > k else idx)
        chosen = np.concatenate(chosen)
        short = n - len(chosen)
        if short:
            rest = np.setdiff1d(np.arange(m), chosen)
            chosen = np.concatenate([chosen, rng.permutation(rest)[:short]])
        return pool.subset(np.sort(chosen))
    return pool.subset(np.sort(rng.permutation(m)[:n]))


def lineage_generator(config: Config, overrides: dict, lineage: int) -> GeneratorConfig:
    """The generator config of a lineage: ``config.generator`` with ``overrides`` applied
    (checked like any config key; errors name ``loop.lineages[i].key``)."""
    from ..config import _build

    if not overrides:
        return config.generator
    return _build(GeneratorConfig, {**to_dict(config.generator), **overrides}, f"loop.lineages[{lineage}]")


def lineage_config(config: Config, overrides: dict, lineage: int) -> Config:
    """``config`` with the lineage's generator overrides applied (``config`` itself when none)."""
    if not overrides:
        return config
    return dataclasses.replace(config, generator=lineage_generator(config, overrides, lineage))


class Interaction:
    """Base class: generation 0 trains on the real training set (less any reserve
    a subclass holds back); later ones as a subclass says.  Samples per
    generation: ``loop.sample_count`` or the size of the real training set, with
    its class balance; one lineage."""

    uses_lineages = False  # True: reads loop.lineages / loop.shares

    def __init__(self, config: Config, real: RealData) -> None:
        self.config = config
        self.real = real

    @classmethod
    def generations_matter(cls, config: Config) -> Optional[str]:
        """Why earlier generations would differ with another ``loop.generations`` (a run
        folder then cannot be extended to more generations), or None when they would not."""
        return None

    def sample_count(self) -> int:
        return self.config.loop.sample_count or len(self.real.train)

    def real_reserve(self) -> np.ndarray:
        """Indices of real training images held back from generation 0 (none here)."""
        return np.zeros(0, dtype=np.int64)

    def initial_pool(self) -> Pool:
        """Generation 0's training set: the real training set less ``real_reserve()``."""
        reserve = self.real_reserve()
        if not len(reserve):
            return Pool.real(self.real.train)
        keep = np.setdiff1d(np.arange(len(self.real.train)), reserve)
        return Pool.real(self.real.train.subset(keep), keep)

    def training_set(self, generation: int, history: History, rng: np.random.Generator) -> Pool:
        if generation == 0:
            return self.initial_pool()
        return self.next_pool(generation, history, rng)

    def next_pool(self, generation: int, history: History, rng: np.random.Generator) -> Pool:
        raise NotImplementedError

    def lineages(self) -> list[dict]:
        """Generator-config overrides, one mapping per lineage (one lineage, no overrides)."""
        return [{}]

    def sample_labels(self, generation: int, rng: np.random.Generator) -> tuple[Optional[np.ndarray], int]:
        """Labels (or None) and count of all the samples of a generation (every lineage's)."""
        n = self.sample_count()
        return class_balanced_labels(self.real.train, n, rng), n

    def split_samples(self, generation: int, labels: Optional[np.ndarray], n: int) -> list[tuple[Optional[np.ndarray], int]]:
        """What each lineage samples: one ``(labels, n)`` per entry of ``lineages()``."""
        return [(labels, n)]

    def select(self, generation: int, samples: ImageSet, rng: np.random.Generator, scorer=None) -> tuple[ImageSet, dict]:
        """Filter samples before they enter the history; returns (kept, stats)."""
        return samples, {}


@register_validator
def _check_interaction_options(cfg: Config) -> None:
    """loop.lineages / loop.shares only mean something to an interaction that runs lineages."""
    if cfg.loop.interaction not in INTERACTIONS:
        return  # the runner's name check reports it
    cls = INTERACTIONS.get(cfg.loop.interaction)
    if not cls.uses_lineages:
        for key in ("lineages", "shares"):
            if getattr(cfg.loop, key) is not None:
                users = ", ".join(n for n in INTERACTIONS.names() if INTERACTIONS.get(n).uses_lineages)
                raise ConfigError(f"loop.{key}: only used by interaction models with several lineages ({users}); "
                                  f"loop.interaction is {cfg.loop.interaction!r}")


# --------------------------------------------------------------------------- models


@INTERACTIONS.register("replace")
class Replace(Interaction):
    """The paper's model: generation g+1 trains only on the samples of generation g,
    as many as the real training set and with its class counts."""

    def next_pool(self, generation: int, history: History, rng: np.random.Generator) -> Pool:
        return history.samples(generation - 1)


@INTERACTIONS.register("mix")
class Mix(Interaction):
    """round(real_fraction n) real images (redrawn each generation, class-stratified)
    plus n - that many of the previous generation's samples (class-stratified)."""

    def next_pool(self, generation: int, history: History, rng: np.random.Generator) -> Pool:
        train = self.real.train
        n = len(train)
        k = int(round(self.config.loop.real_fraction * n))
        real = take(Pool.real(train), k, rng, like=train)
        synth = take(history.samples(generation - 1), n - k, rng, like=train) if n - k else None
        return Pool.concat([real] + ([synth] if synth is not None else []))


@INTERACTIONS.register("accumulate")
class Accumulate(Interaction):
    """The real training set plus every earlier generation's samples (it grows)."""

    def next_pool(self, generation: int, history: History, rng: np.random.Generator) -> Pool:
        return Pool.concat([Pool.real(self.real.train)] + [history.samples(g) for g in range(generation)])


@INTERACTIONS.register("accumulate_subsample")
class AccumulateSubsample(Accumulate):
    """A fixed-size training set (size of the real training set) drawn uniformly
    without replacement from the accumulated pool (real + all earlier samples)."""

    def next_pool(self, generation: int, history: History, rng: np.random.Generator) -> Pool:
        return take(super().next_pool(generation, history, rng), len(self.real.train), rng)


@INTERACTIONS.register("fresh")
class Fresh(Interaction):
    """Each later generation: k never-used real images from a held-back reserve plus
    n0 - k samples of the previous generation (n0: generation 0's size)."""

    @classmethod
    def generations_matter(cls, config: Config) -> Optional[str]:
        if config.loop.fresh_reserve is None:
            return ("loop.interaction=fresh sizes its real-image reserve from loop.generations "
                    "(set loop.fresh_reserve to make a run that can be extended)")
        return None

    def __init__(self, config: Config, real: RealData) -> None:
        super().__init__(config, real)
        loop = config.loop
        train = real.train
        n, later = len(train), loop.generations - 1
        f = loop.fresh_fraction
        if loop.fresh_reserve is None:
            k = int(round(f * n / (1.0 + f * later))) if later else 0
            size = k * later
        else:
            size = int(round(loop.fresh_reserve * n))
            k = int(round(f * (n - size)))
        if later and k < 1:
            raise ConfigError(f"loop.fresh_fraction: {f} of {n} real images over {loop.generations} generations "
                              "is less than one fresh image per generation (raise it, or use more data)")
        if n - size < 1:
            raise ConfigError(f"loop.fresh_reserve: holding back {size} of {n} real images leaves none for generation 0")
        self.per_generation = k
        rng = np.random.default_rng([config.seed, config.data.split_seed, 0xF2E5])
        reserve = take(Pool.real(train), size, rng, like=train).index if size else np.zeros(0, np.int64)
        self.reserve = rng.permutation(reserve)  # the order in which reserve images are used
        if later and k * later > size:
            log.warning("fresh: the reserve of %d real images is smaller than %d generations x %d fresh images; "
                        "images are reused once it is exhausted", size, later, k)

    def real_reserve(self) -> np.ndarray:
        return np.sort(self.reserve)

    def fresh_index(self, generation: int) -> np.ndarray:
        """Positions in the real training set of generation ``generation``'s fresh images."""
        k = self.per_generation
        return self.reserve[(np.arange(k) + (generation - 1) * k) % len(self.reserve)]

    def next_pool(self, generation: int, history: History, rng: np.random.Generator) -> Pool:
        train = self.real.train
        idx = self.fresh_index(generation)
        fresh = Pool.real(train.subset(idx), idx)
        n0 = len(train) - len(self.reserve)
        synth = take(history.samples(generation - 1), n0 - len(idx), rng, like=train)
        return Pool.concat([fresh, synth])


def _image_curate_score(config: Config, real: RealData) -> Callable:
    """Images: p(label | x) from the filter's own classifier (another seed than the metric's
    judge; max over classes for unlabelled samples of labelled data); unlabelled data: the log-density under a Gaussian fitted
    to the real training set (needs loop.curate_top_fraction)."""
    if real.train.labelled:
        def score(samples: ImageSet, scorer) -> np.ndarray:
            if scorer is None:
                raise ValueError("curate: select() needs the metric context (scorer) for the filter's classifier")
            import torch

            probs = torch.softmax(scorer.filter_classifier().logits(samples.images).float(), 1).numpy()
            if samples.labels is None:
                return probs.max(1)
            return probs[np.arange(len(samples)), samples.labels]

        return score
    if config.loop.curate_top_fraction is None:
        raise ConfigError(f"loop.curate_top_fraction: {config.data.name!r} has no labels, so curate scores samples "
                          "by their log-density under a Gaussian fitted to the real data, which has no natural "
                          "threshold; set loop.curate_top_fraction (e.g. 0.8)")
    from ..generators.analytic import to_space

    x = to_space(real.train.images)
    mean = x.mean(0)
    cov = np.atleast_2d(np.cov(x, rowvar=False, bias=True)) + 1e-6 * np.eye(x.shape[1])
    precision = np.linalg.inv(cov)

    def gaussian(samples: ImageSet, scorer) -> np.ndarray:
        d = to_space(samples.images) - mean
        return -0.5 * np.einsum("ni,ij,nj->n", d, precision, d)

    return gaussian


def _text_curate_score(config: Config, real: RealData) -> Callable:
    """Text: minus the mean negative log-likelihood per token (so the lowest-perplexity blocks
    score highest) under a Kneser-Ney filter model of order loop.curate_order trained on the
    real training text; not the text metrics' judge (order metrics.judge_order).  Perplexity
    has no natural threshold: needs loop.curate_top_fraction."""
    if config.loop.curate_top_fraction is None:
        raise ConfigError("loop.curate_top_fraction: curate on text keeps the lowest-perplexity samples under its "
                          "filter model, which has no natural threshold; set loop.curate_top_fraction (e.g. 0.8)")
    from ..generators.ngram import KneserNey

    model = KneserNey(config.loop.curate_order, real.train.vocab_size).fit(real.train.tokens)
    return lambda samples, scorer: model.log_probs(samples.tokens).mean(1)


# How curate scores samples, by data kind: factory(config, real) -> score(samples, scorer), higher is better.
CURATE_SCORES: dict[str, Callable] = {"images": _image_curate_score, "tokens": _text_curate_score}


@INTERACTIONS.register("curate")
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
        top = self.config.loop.curate_top_fraction
        if top is not None:
            m = max(1, int(math.ceil(top * len(s))))
            keep = np.sort(np.argsort(-s, kind="stable")[:m])
        else:
            keep = np.flatnonzero(s >= self.config.loop.curate_threshold)
            if not len(keep):  # keep the best one so the chain can go on
                keep = np.array([int(np.argmax(s))])
        return samples.subset(keep), {"curate_kept_fraction": len(keep) / len(s),
                                      "curate_score_kept": float(np.mean(s[keep])), "curate_score_all": float(np.mean(s))}


@INTERACTIONS.register("detect")
class Detect(Interaction):
    """Candidates = real training set + previous generation's samples; a detector
    (oracle with given error rates, or a learned classifier) removes what it flags."""

    def next_pool(self, generation: int, history: History, rng: np.random.Generator) -> Pool:
        loop = self.config.loop
        cand = Pool.concat([Pool.real(self.real.train), history.samples(generation - 1)])
        synth = cand.origin >= 0
        if loop.detector == "oracle":
            u = rng.random(len(cand))
            flagged = np.where(synth, u < loop.detector_recall, u < loop.detector_false_positive_rate)
        else:
            flagged = learned_detector(cand.data, synth, rng)
        keep = np.flatnonzero(~flagged)
        if not len(keep):
            raise ValueError(f"detect: the detector removed every candidate at generation {generation} "
                             f"(detector_recall={loop.detector_recall}, "
                             f"detector_false_positive_rate={loop.detector_false_positive_rate})")
        pool = cand.subset(keep)
        pool.stats = {"detect_recall": float(flagged[synth].mean()) if synth.any() else float("nan"),
                      "detect_false_positive_rate": float(flagged[~synth].mean()) if (~synth).any() else float("nan"),
                      "detect_removed": float(flagged.sum())}
        return pool


def _image_features(data: ImageSet) -> np.ndarray:
    """Pixels in [-1, 1] (vectors as they are), flattened; squares appended when D <= 256."""
    from ..generators.analytic import to_space

    x = to_space(data.images)
    return np.concatenate([x, x * x], 1) if x.shape[1] <= 256 else x


TEXT_FEATURES = 256  # hashed n-gram buckets of the learned text detector


def _text_features(data) -> np.ndarray:
    """Per block, the frequencies of its 1-, 2- and 3-grams hashed into 256 buckets
    (a fixed multiplicative hash of the token ids), plus the block's share of distinct tokens."""
    t = data.tokens.astype(np.int64)
    n, length = t.shape
    x = np.zeros((n, TEXT_FEATURES + 1))
    rows = np.arange(n)
    for order in (1, 2, 3):
        if length < order:
            continue
        h = np.zeros((n, length - order + 1), dtype=np.int64)
        for j in range(order):
            h = h * 1_000_003 + t[:, j:length - order + 1 + j] + 1
        b = (h * 2_654_435_761 + order) % TEXT_FEATURES
        np.add.at(x, (np.repeat(rows, b.shape[1]), b.reshape(-1)), 1.0 / b.shape[1])
    x[:, -1] = [len(np.unique(r)) / length for r in t]
    return x


# Features of the learned real-vs-generated detector, by data kind.
DETECTOR_FEATURES: dict[str, Callable] = {"images": _image_features, "tokens": _text_features}


def detector_features(data) -> np.ndarray:
    return DETECTOR_FEATURES[data.kind](data)


def learned_detector(data: ImageSet, synthetic: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cross-fitted real-vs-generated logistic regression: the candidates are split
    into two random halves, a model trained on each half flags the other half.
    Returns the flags (True: judged synthetic) of every candidate."""
    x = detector_features(data)
    y = synthetic.astype(np.float64)
    fold = np.zeros(len(x), dtype=bool)
    fold[rng.permutation(len(x))[: len(x) // 2]] = True
    flagged = np.zeros(len(x), dtype=bool)
    for train_mask in (fold, ~fold):
        test_mask = ~train_mask
        xt, yt = x[train_mask], y[train_mask]
        if len(np.unique(yt)) < 2:  # one kind only in this half: nothing to learn, flag by majority
            flagged[test_mask] = bool(yt.mean() > 0.5) if len(yt) else False
            continue
        mu, sd = xt.mean(0), xt.std(0) + 1e-8
        w, b = fit_logistic((xt - mu) / sd, yt)
        flagged[test_mask] = ((x[test_mask] - mu) / sd) @ w + b > 0
    return flagged


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float = 1.0, iters: int = 50) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression (scikit-learn's objective with C = ``c``:
    sum of log-losses + ||w||^2 / (2c), intercept not penalised).  Newton's method
    (a D x D solve per step, a few steps) for D <= 300 features; scikit-learn's
    L-BFGS above that."""
    n, d = x.shape
    if d > 300:
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=c, max_iter=1000).fit(x, y.astype(np.int64))
        return clf.coef_[0].astype(np.float64), float(clf.intercept_[0])
    xa = np.concatenate([x, np.ones((n, 1))], 1)
    theta = np.zeros(d + 1)
    reg = np.full(d + 1, 1.0 / c)
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(xa @ theta, -30, 30)))
        grad = xa.T @ (p - y) + reg * theta
        hess = (xa * (p * (1 - p))[:, None]).T @ xa + np.diag(reg) + 1e-10 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    return theta[:-1], float(theta[-1])


@INTERACTIONS.register("ecosystem")
class Ecosystem(Replace):
    """Several lineages, each its own generator config, train on one shared pool;
    each generation's samples are split into ``loop.shares`` between them and all
    of them form the next pool."""

    uses_lineages = True

    def __init__(self, config: Config, real: RealData) -> None:
        super().__init__(config, real)
        self._lineages = [dict(o) for o in (config.loop.lineages or [{}, {}])]
        for i, over in enumerate(self._lineages):
            lineage_generator(config, over, i)  # clear errors before any work
        shares = config.loop.shares or [1.0 / len(self._lineages)] * len(self._lineages)
        if len(shares) != len(self._lineages):
            raise ConfigError(f"loop.shares: {len(shares)} shares for {len(self._lineages)} lineages")
        self.shares = np.asarray(shares, dtype=np.float64)

    def lineages(self) -> list[dict]:
        return [dict(o) for o in self._lineages]

    def split_samples(self, generation: int, labels: Optional[np.ndarray], n: int) -> list[tuple[Optional[np.ndarray], int]]:
        counts = proportional_counts(self.shares, n)
        ends = np.cumsum(counts)
        return [(None if labels is None else labels[e - c:e], int(c)) for c, e in zip(counts, ends)]
