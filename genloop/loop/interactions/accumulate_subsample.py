"""``accumulate_subsample``: a real-set-sized draw from the accumulated pool."""
from __future__ import annotations

import numpy as np

from .base import INTERACTIONS, History, Pool, take
from .accumulate import Accumulate


@INTERACTIONS.register("accumulate_subsample")
class AccumulateSubsample(Accumulate):
    """A fixed-size training set (size of the real training set) drawn uniformly
    without replacement from the accumulated pool (real + all earlier samples)."""

    def next_pool(self, generation: int, history: History, rng: np.random.Generator) -> Pool:
        return take(super().next_pool(generation, history, rng), len(self.real.train), rng)
