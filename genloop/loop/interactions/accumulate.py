"""``accumulate``: the real set plus every earlier generation's samples (it grows)."""
from __future__ import annotations

import numpy as np

from ...config import Config
from ...data import RealData
import genloop.loop.interactions.schedule as schedule  # the module, not the package: no import circle
from .base import INTERACTIONS, History, Interaction, Pool, take


@INTERACTIONS.register("accumulate")
class Accumulate(Interaction):
    """The real training set plus every earlier generation's samples (it grows)."""

    @classmethod
    def checks_data(cls, config: Config) -> bool:
        return schedule.configured(config.loop)

    def __init__(self, config: Config, real: RealData) -> None:
        super().__init__(config, real)
        self.supply = schedule.RealSupply(config, real, self.sample_count()) if schedule.configured(config.loop) else None

    def synthetic(self, generation: int, history: History) -> Pool:
        """Every earlier generation's samples."""
        return Pool.concat([history.samples(g) for g in range(generation)])

    def next_pool(self, generation: int, history: History, rng: np.random.Generator) -> Pool:
        if self.supply is not None and self.supply.share(generation) is not None:
            # the largest set with the scheduled synthetic share (at most loop.schedule.train_size)
            synth = self.synthetic(generation, history)
            s = self.supply.share(generation)
            k, m = schedule.largest_split(s, len(self.real.train), len(synth),
                                                  schedule.options(self.config.loop).train_size)
            parts = [take(Pool.real(self.real.train), k, rng, like=self.real.train), take(synth, m, rng)]
            out = Pool.concat([p for p in parts if len(p)] or parts[:1])
            out.stats = {"synthetic_target": s}
            return out
        return Pool.concat([Pool.real(self.real.train)] + [history.samples(g) for g in range(generation)])
