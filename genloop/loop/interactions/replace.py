"""``replace`` (the paper): generation g trains on generation g-1's samples."""
from __future__ import annotations

import numpy as np

from .base import INTERACTIONS, History, Interaction, Pool


@INTERACTIONS.register("replace")
class Replace(Interaction):
    """The paper's model: generation g+1 trains only on the samples of generation g,
    as many as the real training set and with its class counts."""

    def next_pool(self, generation: int, history: History, rng: np.random.Generator) -> Pool:
        return history.samples(generation - 1)
