"""Which metric columns of a chain have a closed-form expectation the report draws next to
the measured curve (``genloop.report.theory``), recorded per chain in ``chains.json``.

The runner asks the components, never names them: the interaction model says which
process its generations run (``theory_process(config)``, e.g. ``replace``), the
generator class which of its columns have a closed form under that process
(``theory_columns(config, process, real)``); the columns the chain measures among
those are the answer.
"""
from __future__ import annotations

from ..config import Config
from ..data import RealData
from ..generators import GENERATORS
from .interactions import INTERACTIONS


def theory_columns(cfg: Config, real: RealData) -> list[str]:
    """The metric columns of ``cfg``'s chain (on the real data ``real``) with a closed-form
    expectation: those its interaction's process and its generator both promise, among
    ``metrics.names``."""
    process = INTERACTIONS.get(cfg.loop.interaction).theory_process(cfg)
    promise = getattr(GENERATORS.get(cfg.generator.name), "theory_columns", None)
    if process is None or promise is None:
        return []
    return [c for c in promise(cfg, process, real) if c in cfg.metrics.names]
