"""``accumulate_subsample``: a real-set-sized draw from the accumulated pool."""
from __future__ import annotations

import numpy as np

from .base import INTERACTIONS, History, Pool, take
from .accumulate import Accumulate


@INTERACTIONS.register("accumulate_subsample")
class AccumulateSubsample(Accumulate):
    """A fixed-size training set (size of the real training set) drawn uniformly
    without replacement from the accumulated pool (real + all earlier samples)."""

    def real_reserve(self) -> np.ndarray:
        return np.sort(self.supply.reserve) if self.supply is not None else super().real_reserve()

    def next_pool(self, generation: int, history: History, rng: np.random.Generator) -> Pool:
        if self.supply is not None and self.supply.share(generation) is not None:  # a schedule (schedule.py)
            return self.supply.pool(generation, self.synthetic(generation, history), rng)
        if self.supply is not None:  # loop.schedule.train_size without a share: uniform from the accumulated pool
            everything = Pool.concat([Pool.real(self.real.train)] + [history.samples(g) for g in range(generation)])
            return take(everything, self.supply.size, rng)
        return take(super().next_pool(generation, history, rng), len(self.real.train), rng)
