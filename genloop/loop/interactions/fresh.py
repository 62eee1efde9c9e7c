"""``fresh``: a held-back reserve of real images feeds each later generation a few never-used ones."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ...config import Config, ConfigError, opt
from ...data import RealData
import genloop.loop.interactions.schedule as schedule  # the module, not the package: no import circle
from .base import INTERACTIONS, History, Interaction, Pool, take

log = logging.getLogger(__name__)


@dataclass
class FreshOptions:
    """Options of ``fresh`` (``loop.fresh.<key>``; the size of the reserve is ``loop.schedule.reserve``)."""

    fraction: float = opt(0.1, "fraction of each later generation's training set that is new real images never used before (from a reserve held back from generation 0)", gt=0.0, lt=1.0, old="fresh_fraction")


@INTERACTIONS.register("fresh", options=FreshOptions)
class Fresh(Interaction):
    """Each later generation: k never-used real images from a held-back reserve plus
    n0 - k samples of the previous generation (n0: generation 0's size)."""

    @classmethod
    def synthetic_default(cls, loop) -> float:
        return 1.0 - loop.group("fresh").fraction

    @classmethod
    def generations_matter(cls, config: Config) -> Optional[str]:
        if schedule.options(config.loop).reserve is None:
            return ("loop.interaction=fresh sizes its real-image reserve from loop.generations "
                    "(set loop.schedule.reserve to make a run that can be extended)")
        return None

    @classmethod
    def checks_data(cls, config: Config) -> bool:
        return True  # the reserve's size against the real training set

    def __init__(self, config: Config, real: RealData) -> None:
        super().__init__(config, real)
        self.supply = None
        if schedule.configured(config.loop):  # a synthetic-fraction schedule (schedule.py)
            self.supply = schedule.RealSupply(config, real, self.sample_count())
            self.reserve, self.per_generation = self.supply.reserve, None
            return
        loop = config.loop
        train = real.train
        n, later = len(train), loop.generations - 1
        f = loop.group("fresh").fraction
        reserve = schedule.options(loop).reserve
        if reserve is None:
            k = int(round(f * n / (1.0 + f * later))) if later else 0
            size = k * later
        else:
            size = int(round(reserve * n))
            k = int(round(f * (n - size)))
        if later and k < 1:
            raise ConfigError(f"loop.fresh.fraction: {f} of {n} real images over {loop.generations} generations "
                              "is less than one fresh image per generation (raise it, or use more data)")
        if n - size < 1:
            raise ConfigError(f"loop.schedule.reserve: holding back {size} of {n} real images leaves none for generation 0")
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
        if self.supply is not None:
            return self.supply.pool(generation, history.samples(generation - 1), rng)
        train = self.real.train
        idx = self.fresh_index(generation)
        fresh = Pool.real(train.subset(idx), idx)
        n0 = len(train) - len(self.reserve)
        synth = take(history.samples(generation - 1), n0 - len(idx), rng, like=train)
        return Pool.concat([fresh, synth])
