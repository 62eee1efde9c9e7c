"""``brackets``: correctness and diversity of samples of the ``brackets`` language.

Columns, on as many samples as the real test set (a fixed random subset when there are
more, so that counts compare with the reference row):

- ``valid_share``     share of samples in the language (exact membership).
- ``distinct_valid``  distinct valid strings among them.
- ``length_mean``     mean length (characters before the first end marker) of the valid samples.
- ``depth_mean``      mean deepest nesting of the valid samples.
- ``length_tv``       total variation between the valid samples' length distribution and the
                      grammar's exact one (0 = the lengths of the truth).
- ``depth_drift``     ``depth_mean`` minus the real training set's.

The reference row scores the real test set.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..config import Config, ConfigError
from ..data.brackets import Brackets
from ..loading import register_validator
from . import METRICS, MetricContext


@METRICS.register("brackets")
class BracketsMetric:
    def __init__(self, ctx: MetricContext) -> None:
        truth = ctx.real.truth
        if not isinstance(truth, Brackets):
            raise ValueError(f"metrics.names: brackets needs data.name=brackets, not {ctx.config.data.name!r}")
        self.truth = truth
        self.test = ctx.real.test
        self.size = len(self.test)
        self.seed = ctx.seed
        self.real_depth = float(truth.depths(ctx.real.train.tokens).mean())
        self.length_probs = truth.length_probs()

    def equal_size(self, blocks: np.ndarray) -> np.ndarray:
        if len(blocks) <= self.size:
            return blocks
        rng = np.random.default_rng([self.seed, 0xB4AD])
        return blocks[np.sort(rng.permutation(len(blocks))[: self.size])]

    def columns(self, blocks: np.ndarray) -> dict[str, float]:
        b = self.equal_size(blocks)
        if not len(b):
            return {}
        valid = self.truth.is_valid(b)
        out = {"valid_share": float(valid.mean()), "distinct_valid": float(len(np.unique(b[valid], axis=0)))}
        if valid.any():
            lengths, depths = self.truth.lengths(b[valid]), self.truth.depths(b[valid])
            hist = np.bincount(lengths, minlength=len(self.length_probs))[: len(self.length_probs)] / valid.sum()
            out.update({"length_mean": float(lengths.mean()), "depth_mean": float(depths.mean()),
                        "length_tv": float(0.5 * np.abs(hist - self.length_probs).sum()),
                        "depth_drift": float(depths.mean() - self.real_depth)})
        else:
            out.update({k: float("nan") for k in ("length_mean", "depth_mean", "length_tv", "depth_drift")})
        return out

    def __call__(self, fake: Any) -> dict[str, float]:
        return self.columns(fake.tokens)

    def reference(self) -> dict[str, float]:
        return self.columns(self.test.tokens)


@register_validator
def _check_brackets_metric(cfg: Config) -> None:
    if "brackets" in cfg.metrics.names and cfg.data.name != "brackets":
        raise ConfigError(f"metrics.names: brackets scores strings of the brackets language; data.name is "
                          f"{cfg.data.name!r} (use data.name=brackets, or drop the metric)")
