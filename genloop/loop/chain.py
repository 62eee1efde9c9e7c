"""One chain's generations, in order: the runner that ``genloop.run`` (through
``Experiment.iter_chain``, into a run folder) and ``run_in_memory`` (no folder) share.

``ChainRunner.generations(start, keep)`` builds the chain's interaction model, runs
generation after generation (``run_generation``) and hands each result to ``keep``
(the run folder saves it; in memory it becomes a row).  Finished generations' kept
samples come back through ``KeptSamples``: from memory, or from the run folder.  A
resume that needs samples the folder did not keep recomputes the chain in memory from
generation 0 (logged; same seeds, same numbers) and keeps only the generations after
the finished ones.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch

from ..config import Config
from ..data import ImageSet, RealData
from ..runfolder import RunStore
from .generation import GenerationResult, run_generation
from .interactions import INTERACTIONS, History

log = logging.getLogger(__name__)

# Kept samples of finished generations are cached in memory up to this many bytes per chain
# (the accumulating interaction models read every earlier generation each generation).
SAMPLE_CACHE_BYTES = 512 << 20


class MissingSamples(LookupError):
    """A generation's kept samples are needed but were not kept (store.samples last/none)."""

    def __init__(self, generation: int) -> None:
        super().__init__(f"the samples of generation {generation} were not kept")
        self.generation = generation


class KeptSamples:
    """A chain's kept samples of finished generations, as ``History`` reads them
    (``kept(generation, lineage)``): those this process made and the folder does not
    keep (``remember``) from memory, the others from the run folder
    (``RunStore.kept_sample_arrays``; none without a ``store``), cached up to
    ``SAMPLE_CACHE_BYTES`` in ``cache`` (shared by the chains of an experiment, which
    run side by side, generation by generation).  Raises ``MissingSamples`` for samples
    that were not kept."""

    def __init__(self, store: Optional[RunStore], chain: str, real: RealData, cache: Optional[dict] = None) -> None:
        self.store, self.chain, self.real = store, chain, real
        self.cache: dict[tuple[str, int], dict] = {} if cache is None else cache
        self.memory: dict[tuple[int, int], ImageSet] = {}

    def remember(self, generation: int, kept: list) -> None:
        self.memory.update({(generation, lin): k for lin, k in enumerate(kept)})

    def __call__(self, generation: int, lineage: int = 0) -> ImageSet:
        if (generation, lineage) in self.memory:
            return self.memory[(generation, lineage)]
        slot = (self.chain, generation)
        if slot not in self.cache:
            arrays = self.store.kept_sample_arrays(self.chain, generation) if self.store is not None else None
            if arrays is None:
                raise MissingSamples(generation)
            while self.cache and sum(a.nbytes for z in self.cache.values() for a in z.values()) > SAMPLE_CACHE_BYTES:
                self.cache.pop(next(iter(self.cache)))
            self.cache[slot] = arrays
        # a set of the real data's kind
        return self.real.train.from_arrays(RunStore.lineage_arrays(self.cache[slot], lineage))


class ChainRunner:
    """The generations of one chain with config ``cfg`` on ``real`` data: its interaction
    model, its ``History`` (over ``kept``), the metrics (``metrics``, ``scorer``: the
    metric context, also the interaction's ``select`` scorer) and how each generation
    runs (``run_generation``'s ``state_path``, ``progress``, ``fit``; ``label`` names the
    chain in logs and progress bars)."""

    def __init__(self, cfg: Config, real: RealData, device: torch.device, metrics: list, scorer: Any,
                 kept: KeptSamples, *, label: str = "", progress: bool = False,
                 state_path: Optional[Callable[[int], Path]] = None, fit: Optional[Callable[..., dict]] = None) -> None:
        self.cfg, self.real, self.device, self.metrics, self.scorer = cfg, real, device, metrics, scorer
        self.interaction = INTERACTIONS.get(cfg.loop.interaction)(cfg, real)
        self.lineages = len(self.interaction.lineages())
        self.kept = kept
        self.history = History(real, kept, self.lineages)
        self.label, self.progress, self.state_path, self.fit = label, progress, state_path, fit

    def run(self, g: int, replaying: bool = False) -> GenerationResult:
        """Generation ``g`` (``replaying``: recomputed in memory only, no bars, every model trained)."""
        return run_generation(self.cfg, self.interaction, self.history, g, self.real, self.device, self.metrics,
                              self.scorer, state_path=self.state_path, progress=self.progress and not replaying,
                              desc=f"{self.label} gen {g}" if self.label else "", fit=None if replaying else self.fit)

    def generations(self, start: int, keep: Callable[[int, GenerationResult], None],
                    remember: bool) -> Iterator[int]:
        """Run generations ``start``.. to ``loop.generations``, calling ``keep(g, result)`` and
        yielding ``g`` after each (``remember``: keep the kept samples in memory for later
        generations).  Generations recomputed because their samples were not kept are
        neither kept nor yielded."""
        replay_until = 0  # generations below this are recomputed in memory only (their results are stored)
        g = start
        while g < self.cfg.loop.generations:
            replaying = g < replay_until
            try:
                res = self.run(g, replaying)
            except MissingSamples as exc:
                if replay_until or g == 0:
                    raise
                log.warning("chain %s: generation %d needs the samples of generation %d, which were not kept "
                            "(store.samples=%s); recomputing generations 0..%d in memory (same seeds, same numbers)",
                            self.label, g, exc.generation, self.cfg.store.samples, g - 1)
                replay_until, g = g, 0
                continue
            if remember or replaying:
                self.kept.remember(g, res.kept)
            if not replaying:
                keep(g, res)
            res = None  # the generation's models go now, not while the next generation trains
            g += 1
            if not replaying:
                yield g - 1
