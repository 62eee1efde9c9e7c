"""``ecosystem``: several lineages (generator-config overrides) share one pool and split the samples."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ...config import Config, ConfigError, opt
from ...data import RealData
from ...loading import check_components, with_overrides
from .base import INTERACTIONS, lineage_generator, proportional_counts
from .replace import Replace


@dataclass
class EcosystemOptions:
    """Options of ``ecosystem`` (``loop.ecosystem.<key>``)."""

    lineages: Optional[list[dict]] = opt(None, "one mapping of generator overrides per lineage, e.g. [{ddpm: {guidance_scale: 1.0}}, {ddpm: {guidance_scale: 0.1}}] (None: two lineages with the base generator)", overrides="generator")
    shares: Optional[list[float]] = opt(None, "share of the shared pool each lineage contributes, one per lineage, summing to 1 (None: equal)", gt=0.0, le=1.0)

    def check_with(self, cfg: Config) -> None:
        """Each lineage a mapping of generator keys (checked as the generator's); one share per lineage, sum 1."""
        if self.lineages is not None:
            if not self.lineages:
                raise ConfigError("loop.ecosystem.lineages: an empty list gives no lineage (use null for the default of two)")
            for i, over in enumerate(self.lineages):
                check_components(with_overrides(cfg.generator, over, f"loop.ecosystem.lineages[{i}]"), cfg)
        if self.shares is not None:
            n = len(self.lineages) if self.lineages is not None else 2
            if len(self.shares) != n:
                raise ConfigError(f"loop.ecosystem.shares: {self.shares} has {len(self.shares)} entries but there are {n} "
                                  "lineages (one share per entry of loop.ecosystem.lineages; two when it is null)")
            if abs(sum(self.shares) - 1.0) > 1e-6:
                raise ConfigError(f"loop.ecosystem.shares: {self.shares} sums to {sum(self.shares):g}, must sum to 1")


@INTERACTIONS.register("ecosystem", options=EcosystemOptions)
class Ecosystem(Replace):
    """Several lineages, each its own generator config, train on one shared pool;
    each generation's samples are split into ``loop.ecosystem.shares`` between them and all
    of them form the next pool."""

    uses_lineages = True

    def __init__(self, config: Config, real: RealData) -> None:
        super().__init__(config, real)
        o: EcosystemOptions = config.loop.group("ecosystem")
        self._lineages = [dict(x) for x in (o.lineages or [{}, {}])]
        for i, over in enumerate(self._lineages):
            lineage_generator(config, over, i)  # clear errors before any work
        shares = o.shares or [1.0 / len(self._lineages)] * len(self._lineages)
        if len(shares) != len(self._lineages):
            raise ConfigError(f"loop.ecosystem.shares: {len(shares)} shares for {len(self._lineages)} lineages")
        self.shares = np.asarray(shares, dtype=np.float64)

    def lineages(self) -> list[dict]:
        return [dict(o) for o in self._lineages]

    def split_samples(self, generation: int, labels: Optional[np.ndarray], n: int) -> list[tuple[Optional[np.ndarray], int]]:
        counts = proportional_counts(self.shares, n)
        ends = np.cumsum(counts)
        return [(None if labels is None else labels[e - c:e], int(c)) for c, e in zip(counts, ends)]
