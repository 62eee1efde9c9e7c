"""``run_in_memory``: one chain without a run folder, on the runner ``genloop.run`` uses.

For fast generators (``gaussian``, ``gmm``, ``kde``, ``categorical``, ``ngram``), tests and
benchmarks that want rows and samples, not files::

    from genloop.loop import run_in_memory
    rows = run_in_memory(cfg)                      # cfg: a resolved Config (one chain)
    rows = run_in_memory(cfg, real, metrics=False, on_generation=lambda res: ...)

The generations, their numbers and their columns are those ``genloop.run`` writes for
the same chain (``ChainRunner``), less the chain id, the varied settings and the values
of the timing columns; nothing is written, no lock is taken and no model is shared.
"""
from __future__ import annotations

from typing import Callable, Optional, Union

import torch

from ..config import Config
from ..data import RealData, load_real
from ..metrics import MetricContext, build_metrics
from ..utils import resolve_device
from .chain import ChainRunner, KeptSamples
from .generation import GenerationResult


def run_in_memory(cfg: Config, real: Optional[RealData] = None, metrics: Union[bool, list] = True,
                  device: Optional[torch.device] = None,
                  on_generation: Optional[Callable[[GenerationResult], None]] = None) -> list[dict]:
    """Run the chain of ``cfg`` (a resolved ``Config``) in memory; returns one row per
    generation (``seed``, ``generation`` and the generation's columns).  ``real``: the real
    data (default: loaded from ``cfg.data``); ``metrics``: True for ``cfg.metrics.names``,
    False for none, or a list of (name, metric) pairs; ``on_generation(result)`` sees every
    generation's ``GenerationResult`` (pool, generators, samples, kept samples, row)."""
    real = real if real is not None else load_real(cfg.data)
    device = device or resolve_device(cfg.device)
    ctx = MetricContext(config=cfg, real=real, device=device, seed=cfg.data.split_seed)  # also the select() scorer
    metric_list = build_metrics(ctx) if metrics is True else (metrics or [])
    runner = ChainRunner(cfg, real, device, metric_list, ctx, KeptSamples(None, "", real))
    rows: list[dict] = []

    def keep(g: int, res: GenerationResult) -> None:
        rows.append({"seed": cfg.seed, "generation": g, **res.row})
        if on_generation is not None:
            on_generation(res)

    for _ in runner.generations(0, keep, remember=True):
        pass
    return rows
