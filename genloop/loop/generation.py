"""One generation of a chain, in four steps, each a function of its own:

1. ``build_pool``      the interaction model's training pool and what each lineage samples;
2. ``fit_and_sample``  per lineage: fit a generator on the pool, sample, select (filter);
3. ``score``           the metric columns of the samples;
4. ``generation_row``  the pool's, the fits' and the selections' columns.

``run_generation`` chains them and adds the timing columns; the chain runner
(``genloop.loop.chain``) runs it generation after generation, and the run folder
(``Experiment.iter_chain``) or ``run_in_memory`` keeps what it returns.

Each generator gets what its class declares it needs (``genloop.generators.needs_of``):
the data's class labels, and a validation set (the real test split) with the
metrics' validation score; the loop never asks which generator it runs.

All randomness of generation ``g`` derives from (``cfg.seed``, ``g``): the interaction's
rng (shared, in this order, by the pool, the labels and every lineage's selection) and
each lineage's generator seed (``lineage_seed``).  Columns: with one lineage as the
metrics name them; with several, the metrics of all lineages' samples together
(unsuffixed) and of each lineage's (suffix ``_l<k>``); the same for the select
statistics and ``train_loss`` (unsuffixed: the mean over lineages).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from ..config import Config
from ..data import ImageSet, RealData, concat_sets
from ..generators import GenContext, build_generator, needs_of
from ..metrics import MetricContext
from ..metrics.validation import validation_score
from ..runfolder import Layout
from .interactions import History, Interaction, Pool, lineage_config

# Per-generation columns that measure time, not results (excluded when comparing runs).
TIME_COLUMNS = ("train_seconds", "sample_seconds", "score_seconds", "total_seconds")


def lineage_seed(seed: int, generation: int, lineage: int) -> int:
    """Seed of a generation's generator: ``seed * 100003 + generation`` for lineage 0
    (as in single-lineage runs), a hash of (seed, generation, lineage) for the others."""
    if lineage == 0:
        return seed * 100_003 + generation
    return int(np.random.SeedSequence([seed, generation, lineage, 0x11AE]).generate_state(1)[0])


def lineage_file_suffix(lineage: int) -> str:
    """File-name suffix of a lineage's model and grid: none for lineage 0 (so single-lineage
    runs keep their names and every run has ``model.safetensors``), ``_l<k>`` for the others."""
    return Layout.lineage_suffix(lineage)


def column_suffix(lineage: int, lineages: int) -> str:
    """Suffix of a lineage's columns: none in a single-lineage run, ``_l<k>`` otherwise."""
    return "" if lineages == 1 else f"_l{lineage}"


def _suffixed(columns: dict, suffix: str) -> dict:
    return {f"{k}{suffix}": v for k, v in columns.items()} if suffix else dict(columns)


@dataclass
class LineagePlan:
    """What one lineage does in a generation: its generator-config overrides, the
    labels (or None) and the number of samples it draws."""

    overrides: dict
    labels: Optional[np.ndarray]
    count: int


@dataclass
class LineageResult:
    """One lineage's part of a generation: the fitted generator, its samples, the
    samples kept by the interaction's ``select``, what ``fit`` and ``select``
    returned, and the seconds spent fitting, sampling and selecting."""

    generator: Any
    samples: Any
    kept: Any
    fit: dict
    select: dict
    train_seconds: float
    sample_seconds: float
    select_seconds: float


@dataclass
class GenerationResult:
    """One generation of a chain: the training pool, and per lineage the generator,
    its samples and the kept samples; ``row`` holds the generation's numbers."""

    pool: Pool
    generators: list
    samples: list[ImageSet]
    kept: list[ImageSet]
    row: dict


def build_pool(interaction: Interaction, history: History, g: int,
               rng: np.random.Generator) -> tuple[Pool, list[LineagePlan]]:
    """Step 1: generation ``g``'s training pool and, per lineage, what it samples."""
    pool = interaction.training_set(g, history, rng)
    labels, n = interaction.sample_labels(g, rng)
    overrides = interaction.lineages()
    parts = interaction.split_samples(g, labels, n)
    if len(parts) != len(overrides):
        raise ValueError(f"{type(interaction).__name__}: split_samples gave {len(parts)} parts for {len(overrides)} lineages")
    return pool, [LineagePlan(over, lab, m) for over, (lab, m) in zip(overrides, parts)]


def generator_context(lcfg: Config, real: RealData, device: torch.device, seed: int, scorer: Any = None,
                      state_path: Optional[Path] = None, progress: bool = False, desc: str = "") -> GenContext:
    """The ``GenContext`` of a generator with config ``lcfg``, holding what its class
    ``needs``: the class count of labelled data, and the real test split with the
    metrics' validation score (when ``scorer`` is a metric context)."""
    needs = needs_of(lcfg)
    score = None
    if needs.validation and isinstance(scorer, MetricContext):
        score = validation_score(scorer, needs.features)
    return GenContext(config=lcfg, shape=real.train.shape, num_classes=real.train.num_classes if needs.labels else 0,
                      device=device, seed=seed, state_path=state_path, progress=progress, desc=desc,
                      select_score=score, validation=real.test if needs.validation else None, real_train=real.train)


def fit_and_sample(cfg: Config, interaction: Interaction, pool: Pool, g: int, lineage: int, plan: LineagePlan,
                   lineages: int, rng: np.random.Generator, real: RealData, device: torch.device, scorer: Any = None,
                   state_path: Optional[Callable[[int], Path]] = None, progress: bool = False,
                   desc: str = "", fit: Optional[Callable[..., dict]] = None) -> LineageResult:
    """Step 2, one lineage: build its generator (the config with its overrides), fit it on
    the pool, draw its samples and let the interaction model select the kept ones.
    ``fit(generator, lineage_config, data, generation, lineage, seed)``, when given, fits
    in place of ``generator.fit(data)`` (the run folder's runner: shared models,
    ``genloop.loop.sharing``)."""
    lcfg = lineage_config(cfg, plan.overrides, lineage)
    ta = time.perf_counter()
    gctx = generator_context(lcfg, real, device, lineage_seed(cfg.seed, g, lineage), scorer,
                             state_path(lineage) if state_path else None, progress,
                             desc + (f" lineage {lineage}" if lineages > 1 else ""))
    gen = build_generator(gctx)
    fitted = gen.fit(pool.data) if fit is None else fit(gen, lcfg, pool.data, g, lineage, gctx.seed)
    tb = time.perf_counter()
    samples = gen.sample(plan.labels, plan.count)
    tc = time.perf_counter()
    kept, stats = interaction.select(g, samples, rng, scorer)
    td = time.perf_counter()
    return LineageResult(gen, samples, kept, fitted, stats, tb - ta, tc - tb, td - tc)


def measure(metric: Any, samples: Any, model: Any) -> dict:
    """A metric's columns for ``samples``; a metric with ``uses_model = True`` also gets the
    generator that made them (None for the pooled samples of several lineages), e.g. to
    measure its perplexity on real text."""
    if getattr(metric, "uses_model", False):
        return metric(samples, model=model)
    return metric(samples)


def score(metrics: list, lineages: list[LineageResult]) -> dict:
    """Step 3: the metric columns.  Several lineages: first all their samples together
    (unsuffixed, no model), then each lineage's samples that are not empty (``_l<k>``)."""
    nl = len(lineages)
    row: dict[str, Any] = {}
    if nl > 1:
        everything = concat_sets([lr.samples for lr in lineages if len(lr.samples)])
        for _, metric in metrics:
            row.update(measure(metric, everything, None))
    for lin, lr in enumerate(lineages):
        if nl == 1 or len(lr.samples):
            for _, metric in metrics:
                row.update(_suffixed(measure(metric, lr.samples, lr.generator), column_suffix(lin, nl)))
    return row


def generation_row(pool: Pool, lineages: list[LineageResult]) -> dict:
    """Step 4: the pool's composition and statistics, each lineage's kept checkpoint
    (``ckpt_*``, ``train.select_every``) and selection statistics, and the training loss."""
    nl = len(lineages)
    row: dict[str, Any] = dict(pool.composition(nl))
    row.update(pool.stats)
    for lin, lr in enumerate(lineages):
        row.update(_suffixed({k: v for k, v in lr.fit.items() if k.startswith("ckpt_")}, column_suffix(lin, nl)))
    for lin, lr in enumerate(lineages):
        row.update(_suffixed(lr.select, column_suffix(lin, nl)))
    losses = [lr.fit.get("train_loss", float("nan")) for lr in lineages]
    if nl == 1:
        row["train_loss"] = losses[0]
        return row
    finite = [x for x in losses if isinstance(x, (int, float)) and np.isfinite(x)]
    row["train_loss"] = float(np.mean(finite)) if finite else float("nan")
    row.update({f"train_loss_l{lin}": x for lin, x in enumerate(losses)})
    row.update({f"samples_l{lin}": float(len(lr.samples)) for lin, lr in enumerate(lineages)})
    return row


def run_generation(cfg: Config, interaction: Interaction, history: History, g: int, real: RealData,
                   device: torch.device, metrics: list, scorer: Any = None,
                   state_path: Optional[Callable[[int], Path]] = None, progress: bool = False,
                   desc: str = "", fit: Optional[Callable[..., dict]] = None) -> GenerationResult:
    """Generation ``g``: build the pool, fit and sample every lineage (``fit``: see
    ``fit_and_sample``), score, and the row
    (with ``train_seconds`` (pool and fits), ``sample_seconds``, ``score_seconds``
    (selection and metrics) and ``total_seconds``)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng([cfg.seed, g, 7])
    pool, plans = build_pool(interaction, history, g, rng)
    pool_seconds = time.perf_counter() - t0
    lineages = [fit_and_sample(cfg, interaction, pool, g, lin, plan, len(plans), rng, real, device, scorer,
                               state_path, progress, desc, fit) for lin, plan in enumerate(plans)]
    tm = time.perf_counter()
    row = score(metrics, lineages)
    metric_seconds = time.perf_counter() - tm
    row.update(generation_row(pool, lineages))
    row.update({"train_seconds": pool_seconds + sum(lr.train_seconds for lr in lineages),
                "sample_seconds": sum(lr.sample_seconds for lr in lineages),
                "score_seconds": sum(lr.select_seconds for lr in lineages) + metric_seconds,
                "total_seconds": time.perf_counter() - t0})
    return GenerationResult(pool, [lr.generator for lr in lineages], [lr.samples for lr in lineages],
                            [lr.kept for lr in lineages], row)
