"""``ecosystem``: several lineages (generator-config overrides) share one pool and split the samples."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ...config import Config, ConfigError, opt
from ...data import RealData
from ...loading import check_components, register_validator, with_overrides
from .base import INTERACTIONS, lineage_generator, proportional_counts
from .replace import Replace


@dataclass
class EcosystemOptions:
    """Options of ``ecosystem`` (``loop.<key>``)."""

    lineages: Optional[list[dict]] = opt(None, "ecosystem: one mapping of generator overrides per lineage, e.g. [{ddpm: {guidance_scale: 1.0}}, {ddpm: {guidance_scale: 0.1}}] (None: two lineages with the base generator)", overrides="generator")
    shares: Optional[list[float]] = opt(None, "ecosystem: share of the shared pool each lineage contributes, one per lineage, summing to 1 (None: equal)", gt=0.0, le=1.0)


@INTERACTIONS.register("ecosystem", options=EcosystemOptions)
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


@register_validator
def _check_lineages(cfg: Config) -> None:
    """``loop.lineages``: each a mapping of GeneratorConfig keys; ``loop.shares``: one per lineage, sum 1."""
    loop = cfg.loop
    if loop.lineages is not None:
        if not loop.lineages:
            raise ConfigError("loop.lineages: an empty list gives no lineage (use null for the default of two)")
        for i, over in enumerate(loop.lineages):
            check_components(with_overrides(cfg.generator, over, f"loop.lineages[{i}]"), cfg)
    if loop.shares is not None:
        n = len(loop.lineages) if loop.lineages is not None else 2
        if len(loop.shares) != n:
            raise ConfigError(f"loop.shares: {loop.shares} has {len(loop.shares)} entries but there are {n} lineages "
                              "(one share per entry of loop.lineages; two when loop.lineages is null)")
        if abs(sum(loop.shares) - 1.0) > 1e-6:
            raise ConfigError(f"loop.shares: {loop.shares} sums to {sum(loop.shares):g}, must sum to 1")
