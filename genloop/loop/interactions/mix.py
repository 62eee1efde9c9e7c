"""``mix``: a fixed fraction of fresh real images plus the previous generation's samples."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...config import Config, opt
from ...data import RealData
import genloop.loop.interactions.schedule as schedule  # the module, not the package: no import circle
from .base import INTERACTIONS, History, Interaction, Pool, take


@dataclass
class MixOptions:
    """Options of ``mix`` (``loop.mix.<key>``)."""

    real_fraction: float = opt(0.5, "fraction of each later generation's training set drawn from the real training set (the rest: the previous generation's samples)", ge=0.0, le=1.0)


@INTERACTIONS.register("mix", options=MixOptions)
class Mix(Interaction):
    """round(real_fraction n) real images (redrawn each generation, class-stratified)
    plus n - that many of the previous generation's samples (class-stratified)."""

    @classmethod
    def checks_data(cls, config: Config) -> bool:
        return schedule.configured(config.loop)

    def __init__(self, config: Config, real: RealData) -> None:
        super().__init__(config, real)
        self.supply = schedule.RealSupply(config, real, self.sample_count()) if schedule.configured(config.loop) else None

    @classmethod
    def synthetic_default(cls, loop) -> float:
        return 1.0 - loop.group("mix").real_fraction

    @classmethod
    def generations_matter(cls, config: Config):
        s = schedule.options(config.loop)
        if s.real_draws == "fresh" and s.reserve is None:
            return ("loop.schedule.real_draws=fresh sizes its real reserve from loop.generations "
                    "(set loop.schedule.reserve to make a run that can be extended)")
        return None

    def real_reserve(self) -> np.ndarray:
        return np.sort(self.supply.reserve) if self.supply is not None else super().real_reserve()

    def next_pool(self, generation: int, history: History, rng: np.random.Generator) -> Pool:
        if self.supply is not None:  # a synthetic-fraction schedule (schedule.py)
            return self.supply.pool(generation, history.samples(generation - 1), rng)
        train = self.real.train
        n = len(train)
        k = int(round(self.config.loop.group("mix").real_fraction * n))
        real = take(Pool.real(train), k, rng, like=train)
        synth = take(history.samples(generation - 1), n - k, rng, like=train) if n - k else None
        return Pool.concat([real] + ([synth] if synth is not None else []))
