"""Interaction models: what each generation trains on.

An interaction model is a class registered in ``INTERACTIONS`` under
``loop.interaction``, built as ``cls(config, real)``.  For generation ``g`` it
returns the training ``Pool`` (images plus where each came from), says which
labels to sample, and may filter the samples before they enter the history.
It keeps no state between generations: everything it needs comes from the
``History`` (the real data and every finished generation's kept samples,
read back from the run folder), so a resumed run sees exactly what an
uninterrupted one saw.  Randomness comes only from the ``rng`` it is handed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..config import Config
from ..data import ImageSet, RealData
from ..registry import Registry

INTERACTIONS: Registry = Registry("interaction model")

REAL = -1  # origin code of real images


@dataclass
class Pool:
    """A training set and the provenance of each image: ``origin`` int (N,) is
    ``REAL`` (-1) for real images or the generation that sampled it; ``lineage``
    int (N,) the lineage that made it (0 for real images and single-lineage runs)."""

    data: ImageSet
    origin: np.ndarray
    lineage: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.origin = np.asarray(self.origin, dtype=np.int64)
        if self.lineage is None:
            self.lineage = np.zeros(len(self.origin), dtype=np.int64)
        if len(self.origin) != len(self.data) or len(self.lineage) != len(self.data):
            raise ValueError("pool provenance does not match its images")

    def __len__(self) -> int:
        return len(self.data)

    @staticmethod
    def real(data: ImageSet) -> "Pool":
        return Pool(data, np.full(len(data), REAL))

    @staticmethod
    def concat(pools: list["Pool"]) -> "Pool":
        pools = [p for p in pools if len(p)]
        return Pool(ImageSet.concat([p.data for p in pools]), np.concatenate([p.origin for p in pools]),
                    np.concatenate([p.lineage for p in pools]))

    def subset(self, index: np.ndarray) -> "Pool":
        return Pool(self.data.subset(index), self.origin[index], self.lineage[index])

    def composition(self) -> dict[str, float]:
        """Fractions of the pool by origin: ``pool_real`` and ``pool_gen_<g>``."""
        out = {"pool_size": float(len(self)), "pool_real": float(np.mean(self.origin == REAL)) if len(self) else 0.0}
        for g in np.unique(self.origin[self.origin >= 0]):
            out[f"pool_gen_{int(g)}"] = float(np.mean(self.origin == g))
        return out


@dataclass
class History:
    """The real data and a loader of each finished generation's kept samples."""

    real: RealData
    load_samples: Callable[[int], ImageSet]

    def samples(self, generation: int) -> Pool:
        s = self.load_samples(generation)
        return Pool(s, np.full(len(s), generation))


def class_balanced_labels(real: ImageSet, n: int, rng: np.random.Generator) -> Optional[np.ndarray]:
    """Labels whose per-class counts equal ``real``'s when ``n == len(real)``
    (proportional, largest remainder, otherwise), in random order."""
    if not real.labelled:
        return None
    counts = real.class_counts().astype(np.float64)
    exact = counts / counts.sum() * n
    base = np.floor(exact).astype(np.int64)
    rest = n - base.sum()
    if rest:
        base[np.argsort(-(exact - base), kind="stable")[:rest]] += 1
    labels = np.repeat(np.arange(real.num_classes), base)
    rng.shuffle(labels)
    return labels


class Interaction:
    """Base class: generation 0 trains on the real training set; later ones as a
    subclass says.  Samples per generation: ``loop.sample_count`` or the size of
    the real training set, with its class balance."""

    def __init__(self, config: Config, real: RealData) -> None:
        self.config = config
        self.real = real

    def sample_count(self) -> int:
        return self.config.loop.sample_count or len(self.real.train)

    def training_set(self, generation: int, history: History, rng: np.random.Generator) -> Pool:
        if generation == 0:
            return Pool.real(self.real.train)
        return self.next_pool(generation, history, rng)

    def next_pool(self, generation: int, history: History, rng: np.random.Generator) -> Pool:
        raise NotImplementedError

    def sample_labels(self, generation: int, rng: np.random.Generator) -> tuple[Optional[np.ndarray], int]:
        n = self.sample_count()
        return class_balanced_labels(self.real.train, n, rng), n

    def select(self, generation: int, samples: ImageSet, rng: np.random.Generator, scorer=None) -> tuple[ImageSet, dict]:
        """Filter samples before they enter the history; returns (kept, stats)."""
        return samples, {}


@INTERACTIONS.register("replace")
class Replace(Interaction):
    """The paper's model: generation g+1 trains only on the samples of generation g,
    as many as the real training set and with its class counts."""

    def next_pool(self, generation: int, history: History, rng: np.random.Generator) -> Pool:
        return history.samples(generation - 1)
