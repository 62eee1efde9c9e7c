"""``ecosystem``: several lineages (generator-config overrides) share one pool and split the samples."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ...config import Config, ConfigError
from ...data import RealData
from .base import INTERACTIONS, lineage_generator, proportional_counts
from .replace import Replace


@INTERACTIONS.register("ecosystem")
class Ecosystem(Replace):
    """Several lineages, each its own generator config, train on one shared pool;
    each generation's samples are split into ``loop.shares`` between them and all
    of them form the next pool."""

    uses_lineages = True

    def __init__(self, config: Config, real: RealData) -> None:
        super().__init__(config, real)
        self._lineages = [dict(o) for o in (config.loop.lineages or [{}, {}])]
        for i, over in enumerate(self._lineages):
            lineage_generator(config, over, i)  # clear errors before any work
        shares = config.loop.shares or [1.0 / len(self._lineages)] * len(self._lineages)
        if len(shares) != len(self._lineages):
            raise ConfigError(f"loop.shares: {len(shares)} shares for {len(self._lineages)} lineages")
        self.shares = np.asarray(shares, dtype=np.float64)

    def lineages(self) -> list[dict]:
        return [dict(o) for o in self._lineages]

    def split_samples(self, generation: int, labels: Optional[np.ndarray], n: int) -> list[tuple[Optional[np.ndarray], int]]:
        counts = proportional_counts(self.shares, n)
        ends = np.cumsum(counts)
        return [(None if labels is None else labels[e - c:e], int(c)) for c, e in zip(counts, ends)]
