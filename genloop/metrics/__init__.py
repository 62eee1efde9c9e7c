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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from ..config import Config, MetricsConfig
from ..data import ImageSet, RealData
from ..registry import Registry

log = logging.getLogger(__name__)

METRICS: Registry = Registry("metric", section=MetricsConfig, slot="names")


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


def build_metrics(ctx: MetricContext) -> list[tuple[str, Callable[[ImageSet], dict[str, Any]]]]:
    """Instantiate every metric named in ``ctx.config.metrics.names``."""
    return [(name, METRICS.get(name)(ctx)) for name in ctx.config.metrics.names]
