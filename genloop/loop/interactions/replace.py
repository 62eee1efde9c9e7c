"""``replace`` (the paper): generation g trains on generation g-1's samples."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ...config import Config

from .base import INTERACTIONS, History, Interaction, Pool


@INTERACTIONS.register("replace")
class Replace(Interaction):
    """The paper's model: generation g+1 trains only on the samples of generation g,
    as many as the real training set and with its class counts."""

    @classmethod
    def theory_process(cls, config: Config) -> Optional[str]:
        """``replace``: each generation refits on exactly the previous one's n samples
        (``loop.sample_count`` unset).  Not for subclasses, which filter or split them."""
        return "replace" if cls is Replace and config.loop.sample_count is None else None

    def next_pool(self, generation: int, history: History, rng: np.random.Generator) -> Pool:
        return history.samples(generation - 1)
