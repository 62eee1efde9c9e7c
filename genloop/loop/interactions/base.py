"""The interaction models' shared parts: the ``INTERACTIONS`` registry, ``Pool``
(a training set and where each image came from), ``History`` (the real data and
every finished generation's kept samples), the ``Interaction`` base class and
the helpers the models share (class-balanced labels, stratified draws, lineage
configs).  The models themselves live one a file next to this one."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from ...config import Config, ConfigError, GeneratorConfig, LoopConfig
from ...loading import register_validator, to_dict, with_overrides
from ...data import ImageSet, RealData, concat_sets
from ...registry import Registry

INTERACTIONS: Registry = Registry("interaction model", section=LoopConfig, slot="interaction")

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
    (checked like any config key; errors name ``loop.ecosystem.lineages[i].key``)."""
    if not overrides:
        return config.generator
    return with_overrides(config.generator, overrides, f"loop.ecosystem.lineages[{lineage}]")


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

    uses_lineages = False  # True: runs several lineages (its options hold their generator overrides)

    def __init__(self, config: Config, real: RealData) -> None:
        self.config = config
        self.real = real
        self.options = config.loop.options()  # this model's options (loop.<interaction>), None when it has none

    @classmethod
    def synthetic_default(cls, loop: Any) -> Optional[float]:
        """The synthetic share of a later training set without a synthetic-fraction schedule
        (``loop.schedule``), from this model's own options; None: it has no share."""
        return None

    @classmethod
    def generations_matter(cls, config: Config) -> Optional[str]:
        """Why earlier generations would differ with another ``loop.generations`` (a run
        folder then cannot be extended to more generations), or None when they would not."""
        return None

    @classmethod
    def checks_data(cls, config: Config) -> bool:
        """True when building the model with ``config`` checks settings against the real data
        (sizes, data kinds): the runner then builds it once before it makes a run folder, so
        such an error is one line and leaves nothing behind."""
        return False

    @classmethod
    def theory_process(cls, config: Config) -> Optional[str]:
        """The name of the process this model runs with ``config`` when closed-form
        expectations exist for it (a generator says which of its columns have one,
        ``theory_columns(config, process, real)``), or None."""
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
    """The options of a model with several lineages (``loop.ecosystem.lineages``, ``.shares``) set while
    another model runs: they would be ignored; one line says so."""
    if cfg.loop.interaction not in INTERACTIONS:
        return  # the runner's name check reports it
    if INTERACTIONS.get(cfg.loop.interaction).uses_lineages:
        return
    users = [n for n in INTERACTIONS.names() if INTERACTIONS.get(n).uses_lineages and INTERACTIONS.options(n)]
    for name in users:
        group = cfg.loop.group(name)
        for f in dataclasses.fields(group):
            if f.name in ("lineages", "shares") and getattr(group, f.name) is not None:
                raise ConfigError(f"loop.{name}.{f.name}: only used by interaction models with several lineages "
                                  f"({', '.join(users)}); loop.interaction is {cfg.loop.interaction!r}")
