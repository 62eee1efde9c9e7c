"""``categorical``: how far a generation has drifted from a known categorical distribution
(the ``categorical`` source).

Columns (samples: the generation's samples' empirical distribution q; truth p):

- ``gini_simpson``    1 - sum q_k^2, the chance that two draws differ (diversity).
- ``outcomes_lost``   outcomes with p_k > 0 that no sample shows.
- ``tv_truth``        total variation 1/2 sum |q_k - p_k|.
- ``kl_q_truth``      KL(q || p) in nats (finite: q is 0 wherever it loses an outcome).
- ``valid_share``     share of samples that are valid outcomes (``data.categorical.valid``;
                      without it every outcome of positive probability).

With the generator that made the samples (``categorical``, which exposes its fitted
probabilities) also the same four of the fitted model, ``model_gini_simpson``,
``model_outcomes_lost``, ``model_tv_truth``, ``model_kl_q_truth``: the quantities of the
closed forms (docs/safe-synthetic.md).  The reference row scores the real test set.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..config import Config, ConfigError
from ..data.categorical import OFFSET, Categorical, gini_simpson
from ..loading import register_validator
from . import METRICS, MetricContext


def columns(q: np.ndarray, p: np.ndarray, prefix: str = "") -> dict[str, float]:
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = float(np.sum(np.where(q > 0, q * np.log(q / p), 0.0)))
    return {f"{prefix}gini_simpson": gini_simpson(q), f"{prefix}outcomes_lost": float(np.sum((p > 0) & (q == 0))),
            f"{prefix}tv_truth": float(0.5 * np.abs(q - p).sum()), f"{prefix}kl_q_truth": kl}


@METRICS.register("categorical")
class CategoricalMetric:
    uses_model = True

    def __init__(self, ctx: MetricContext) -> None:
        truth = ctx.real.truth
        if not isinstance(truth, Categorical):
            raise ValueError(f"metrics.names: categorical needs data.name=categorical, not {ctx.config.data.name!r}")
        self.truth = truth
        self.test = ctx.real.test

    def __call__(self, fake: Any, model: Optional[Any] = None) -> dict[str, float]:
        out = columns(self.truth.frequencies(fake.tokens), self.truth.probs) if len(fake) else {}
        if len(fake):
            out["valid_share"] = float(self.truth.is_valid(fake.tokens).mean())
        if model is not None and hasattr(model, "probs") and callable(model.probs):
            out.update(columns(model.probs(self.truth.k, OFFSET), self.truth.probs, "model_"))
        return out

    def reference(self) -> dict[str, float]:
        return {**columns(self.truth.frequencies(self.test.tokens), self.truth.probs),
                "valid_share": float(self.truth.is_valid(self.test.tokens).mean())}


@register_validator
def _check_categorical_metric(cfg: Config) -> None:
    if "categorical" in cfg.metrics.names and cfg.data.name != "categorical":
        raise ConfigError(f"metrics.names: categorical scores the categorical source's outcomes; data.name is "
                          f"{cfg.data.name!r} (use data.name=categorical, or drop the metric)")
