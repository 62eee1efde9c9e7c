"""One generation of a chain, in four steps, each a function of its own:

1. ``build_pool``      the interaction model's training pool and what each lineage samples;
2. ``fit_and_sample``  per lineage: fit a generator on the pool, sample, select (filter);
3. ``score``           the metric columns of the samples;
4. ``generation_row``  the pool's, the fits' and the selections' columns.

``run_generation`` chains them and adds the timing columns; the run folder's runner
(``Experiment.run_chain``) saves what it returns, ``simulate`` keeps it in memory.

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
from typing import Any, Callable, Optional, Union

import numpy as np
import torch

from ..config import Config
from ..data import ImageSet, RealData, concat_sets, load_real
from ..generators import GenContext, build_generator
from ..metrics import MetricContext, build_metrics
from ..runfolder import Layout
from ..utils import resolve_device
from .interactions import INTERACTIONS, History, Interaction, Pool, lineage_config

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
    gctx = GenContext(config=lcfg, shape=real.train.shape,
                      num_classes=real.train.num_classes if lcfg.generator.conditional else 0, device=device,
                      seed=lineage_seed(cfg.seed, g, lineage), state_path=state_path(lineage) if state_path else None,
                      progress=progress, desc=desc + (f" lineage {lineage}" if lineages > 1 else ""),
                      select_score=_select_score(scorer, lcfg),
                      validation=real.test if lcfg.train.select_every else None, real_train=real.train)
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


def _select_score(scorer: Any, cfg: Config) -> Optional[Callable[[np.ndarray, np.ndarray], float]]:
    """The validation KID for ``train.select_every`` (None when off or without a metric context);
    one per (context, features), so a chain extracts each validation split's features once."""
    if not cfg.train.select_every or not isinstance(scorer, MetricContext):
        return None
    from ..metrics.image_metrics import ValidationKID

    slot = f"validation_kid:{cfg.train.select_features or cfg.metrics.features}"
    if slot not in scorer.shared:
        scorer.shared[slot] = ValidationKID(scorer, cfg.train.select_features)
    return scorer.shared[slot]


def simulate(cfg: Config, real: Optional[RealData] = None, metrics: Union[bool, list] = True,
             device: Optional[torch.device] = None,
             on_generation: Optional[Callable[[GenerationResult], None]] = None) -> list[dict]:
    """Run one chain in memory (no run folder): the same generations, numbers and
    columns as ``Experiment.run_chain`` (less the chain id, the varied settings and
    the timing columns' values), for fast generators (``gaussian``, ``gmm``, ``kde``) and tests.  ``metrics``: True for
    ``cfg.metrics.names``, False for none, or a list of (name, metric) pairs.
    ``on_generation(result)`` sees every generation's ``GenerationResult``."""
    real = real if real is not None else load_real(cfg.data)
    device = device or resolve_device(cfg.device)
    interaction = INTERACTIONS.get(cfg.loop.interaction)(cfg, real)
    ctx = MetricContext(config=cfg, real=real, device=device, seed=cfg.data.split_seed)  # also the select() scorer
    metric_list = build_metrics(ctx) if metrics is True else (metrics or [])
    kept: dict[tuple[int, int], Any] = {}
    history = History(real, lambda g, lin=0: kept[(g, lin)], len(interaction.lineages()))
    rows = []
    for g in range(cfg.loop.generations):
        res = run_generation(cfg, interaction, history, g, real, device, metric_list, ctx)
        for lin, k in enumerate(res.kept):
            kept[(g, lin)] = k
        rows.append({"seed": cfg.seed, "generation": g, **res.row})
        if on_generation is not None:
            on_generation(res)
    return rows
