"""Metrics of a generation's samples against the real data.

A *metric* is registered in ``METRICS`` under the name used in
``metrics.names``; its factory takes a ``MetricContext`` and returns a
callable ``fake: ImageSet -> dict[str, float]``.  The context holds the real
data, the device, a cache folder and the shared domain classifier, so
expensive real-side work (features, statistics, the classifier) happens once
per run.  Array-level metric functions (Fréchet distance, KID, PRDC) live in
their own files and know nothing of images.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from ..config import Config, MetricsConfig
from ..data import ImageSet, RealData
from ..registry import Registry

log = logging.getLogger(__name__)

METRICS: Registry = Registry("metric", section=MetricsConfig)


@dataclass
class MetricContext:
    """What a metric may use: config, real data, device, a cache folder, shared state."""

    config: Config
    real: RealData
    device: torch.device
    cache_dir: Optional[Path] = None
    seed: int = 0
    shared: dict = field(default_factory=dict)

    def classifier(self):
        """The domain classifier trained once on the real training set (cached in ``cache_dir``)."""
        if "classifier" not in self.shared:
            from .domain_classifier import DomainClassifier

            self.shared["classifier"] = DomainClassifier.trained(self)
        return self.shared["classifier"]

    def filter_classifier(self):
        """The classifier of the curation filter (``loop.interaction: curate``): the judge's
        recipe trained from another seed (``seed + FILTER_SEED_OFFSET``: other initial weights
        and batches), so the filter is never the model that then measures accuracy.
        Cached in ``cache_dir`` under its own key."""
        if "filter_classifier" not in self.shared:
            from .domain_classifier import DomainClassifier

            other = replace(self, seed=self.seed + FILTER_SEED_OFFSET, shared={})
            self.shared["filter_classifier"] = DomainClassifier.trained(other)
        return self.shared["filter_classifier"]


# The filter's classifier seed is the judge's plus this (any other seed would do).
FILTER_SEED_OFFSET = 7919


def build_metrics(ctx: MetricContext) -> list[tuple[str, Callable[[ImageSet], dict[str, Any]]]]:
    """Instantiate every metric named in ``ctx.config.metrics.names``."""
    return [(name, METRICS.get(name)(ctx)) for name in ctx.config.metrics.names]
