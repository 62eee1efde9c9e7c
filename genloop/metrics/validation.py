"""The validation score a generator selects its checkpoints by (``train.select_every``)."""
from __future__ import annotations

from typing import Callable, Optional

from . import MetricContext


def validation_score(ctx: MetricContext, features: Optional[str] = None) -> Callable:
    """The score a generator selects checkpoints by, ``score(real, fake) -> float`` on uint8
    images, lower is better: the KID on ``features`` (None: ``metrics.features``),
    one per context and extractor, so a chain extracts each validation set's features once."""
    slot = f"validation_kid:{features or ctx.config.metrics.features}"
    if slot not in ctx.shared:
        from .image_metrics import ValidationKID

        ctx.shared[slot] = ValidationKID(ctx, features)
    return ctx.shared[slot]
