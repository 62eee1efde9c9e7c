"""``mix``: a fixed fraction of fresh real images plus the previous generation's samples."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...config import opt
from .base import INTERACTIONS, History, Interaction, Pool, take


@dataclass
class MixOptions:
    """Options of ``mix`` (``loop.<key>``)."""

    real_fraction: float = opt(0.5, "mix: fraction of each later generation's training set drawn from the real training set (the rest: the previous generation's samples)", ge=0.0, le=1.0)


@INTERACTIONS.register("mix", options=MixOptions)
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
