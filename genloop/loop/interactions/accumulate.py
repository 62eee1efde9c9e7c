"""``accumulate``: the real set plus every earlier generation's samples (it grows)."""
from __future__ import annotations

import numpy as np

from .base import INTERACTIONS, History, Interaction, Pool


@INTERACTIONS.register("accumulate")
class Accumulate(Interaction):
    """The real training set plus every earlier generation's samples (it grows)."""

    def next_pool(self, generation: int, history: History, rng: np.random.Generator) -> Pool:
        return Pool.concat([Pool.real(self.real.train)] + [history.samples(g) for g in range(generation)])
