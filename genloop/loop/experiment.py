"""Run an experiment: expand the config grid into chains, run each chain's
generations, resume after a crash, and keep the run folder's tables current.

Resume: a generation counts as finished when its ``DONE`` marker exists
(written last, atomically).  A chain restarts at its first unfinished
generation; inside a generation the generator resumes from its training
checkpoint.  All randomness of generation g derives from (chain seed, g), so a
resumed run gives the same numbers as an uninterrupted one.
"""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch

from ..config import Chain, Config, ConfigError, diff, dump_yaml, expand, to_dict
from ..data import ImageSet, RealData, load_real
from ..generators import GenContext, TrainingDiverged, build_generator
from ..grid import save_grid
from ..metrics import MetricContext, build_metrics
from ..store import RunStore, save_npz, save_weights, write_csv, write_json, write_jsonl
from ..utils import digest, resolve_device
from .interactions import INTERACTIONS, History

log = logging.getLogger(__name__)

# Per-generation columns that measure time, not results (excluded when comparing runs).
TIME_COLUMNS = ("train_seconds", "sample_seconds", "score_seconds", "total_seconds")


def check_names(cfg: Config) -> None:
    """Every registry name in ``cfg`` must exist; the error names the key and the known names."""
    from ..data import DATASETS
    from ..data import sources  # noqa: F401
    from ..diffusion import SAMPLERS
    from ..generators import GENERATORS
    from ..generators import builtin as _gb  # noqa: F401
    from ..metrics import METRICS
    from ..metrics import builtin as _mb  # noqa: F401
    from ..models import NETWORKS
    from ..models import mlp, unet  # noqa: F401

    checks = [("data.name", cfg.data.name, DATASETS), ("generator.name", cfg.generator.name, GENERATORS),
              ("generator.network", cfg.generator.network, NETWORKS), ("sampler.name", cfg.sampler.name, SAMPLERS),
              ("loop.interaction", cfg.loop.interaction, INTERACTIONS)]
    checks += [(f"metrics.names", m, METRICS) for m in cfg.metrics.names]
    for key, value, reg in checks:
        if value not in reg:
            raise ConfigError(f"{key}: unknown {reg.kind} {value!r} (known: {', '.join(reg.names())})")


class RunFolderMismatch(ConfigError):
    """The run folder was made with a different config."""


class Experiment:
    """One run folder and the chains of its config grid.

    ``on_generation(row)`` is called after every finished generation (the CLI
    prints its summary line from it); ``progress`` turns on progress bars.
    """

    def __init__(self, raw: dict, out_dir: Union[str, Path], *, force: bool = False, progress: bool = False,
                 on_generation: Optional[Callable[[dict], None]] = None) -> None:
        self.raw = raw
        self.chains: list[Chain] = expand(raw)
        for ch in self.chains:
            check_names(ch.config)  # fail early on unknown names, before any work
        self.store = RunStore(Path(out_dir))
        self.force = force
        self.progress = progress
        self.on_generation = on_generation
        self._real: dict[str, RealData] = {}
        self._metric_ctx: dict[str, MetricContext] = {}
        self._metrics: dict[str, list] = {}

    # ------------------------------------------------------------------ set-up
    def prepare(self) -> None:
        """Check or create the run folder, write the config and chain list,
        train the shared classifier and record the reference rows."""
        root = self.store.root
        if self.store.config_path.exists():
            import yaml

            old = yaml.safe_load(self.store.config_path.read_text())
            changed = diff(old, self.raw)
            if changed:
                if not self.force:
                    raise RunFolderMismatch(
                        f"{root}: made with a different config (keys that differ: {', '.join(changed)}); "
                        "use another output folder, or --force to start over")
                log.warning("%s: config differs (%s); --force: starting over", root, ", ".join(changed))
                shutil.rmtree(root)
        elif self.force and root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True, exist_ok=True)
        from ..store import write_text

        write_text(self.store.config_path, dump_yaml(self.raw))
        write_json(root / "chains.json", [{"id": c.id, "varied": c.varied, "seed": c.config.seed} for c in self.chains])
        refs = []
        for ch in self.chains:
            key = self._metric_key(ch.config)
            if key in self._metrics:
                continue
            metrics = self.metrics_for(ch.config)
            row: dict[str, Any] = {"reference": "real test set", "data": ch.config.data.name}
            row.update({k: v for k, v in ch.varied.items() if k.startswith(("data.", "metrics."))})
            for name, m in metrics:
                if hasattr(m, "reference"):
                    row.update(m.reference())
            refs.append(row)
        write_csv(root / "reference.csv", refs)

    def real_for(self, cfg: Config) -> RealData:
        key = digest(to_dict(cfg.data))
        if key not in self._real:
            self._real[key] = load_real(cfg.data, self.store.cache_dir / "data")
        return self._real[key]

    def _metric_key(self, cfg: Config) -> str:
        return digest(to_dict(cfg.data), to_dict(cfg.metrics))

    def metrics_for(self, cfg: Config) -> list:
        key = self._metric_key(cfg)
        if key not in self._metrics:
            ctx = MetricContext(config=cfg, real=self.real_for(cfg), device=resolve_device(cfg.device),
                                cache_dir=self.store.cache_dir, seed=cfg.data.split_seed)
            self._metric_ctx[key] = ctx
            self._metrics[key] = build_metrics(ctx)
        return self._metrics[key]

    # ------------------------------------------------------------------ running
    def run(self) -> list[dict]:
        """Run every chain one after the other; returns the metric rows."""
        self.prepare()
        failures = []
        for ch in self.chains:
            try:
                self.run_chain(ch)
            except TrainingDiverged as exc:
                log.error("chain %s stopped: %s", ch.id, exc)
                failures.append(f"{ch.id}: {exc}")
            finally:
                self.write_tables()
        if failures:
            raise TrainingDiverged("; ".join(failures) + " (finished generations are kept in the run folder)")
        return self.store.metric_rows()

    def run_chain(self, chain: Chain) -> None:
        cfg = chain.config
        store = self.store
        real = self.real_for(cfg)
        interaction = INTERACTIONS.get(cfg.loop.interaction)(cfg, real)
        device = resolve_device(cfg.device)
        metrics = self.metrics_for(cfg)
        num_classes = real.train.num_classes if cfg.generator.conditional else 0

        def load(g: int) -> ImageSet:
            images, labels = store.load_samples(chain.id, g)
            return ImageSet(images, labels, real.train.num_classes if labels is not None else 0)

        history = History(real, load)
        start = store.finished_generations(chain.id)
        if start:
            log.info("chain %s: generations 0..%d already finished, resuming at %d", chain.id, start - 1, start)
        for g in range(start, cfg.loop.generations):
            t0 = time.perf_counter()
            rng = np.random.default_rng([cfg.seed, g, 7])
            pool = interaction.training_set(g, history, rng)
            gctx = GenContext(config=cfg, shape=real.train.shape, num_classes=num_classes, device=device,
                              seed=cfg.seed * 100_003 + g, state_path=store.train_state_path(chain.id),
                              progress=self.progress, desc=f"{chain.id} gen {g}")
            gen = build_generator(gctx)
            fit_stats = gen.fit(pool.data)
            t1 = time.perf_counter()
            labels, n = interaction.sample_labels(g, rng)
            samples = gen.sample(labels, n)
            t2 = time.perf_counter()
            kept, select_stats = interaction.select(g, samples, rng, self._metric_ctx.get(self._metric_key(cfg)))
            row: dict[str, Any] = {"chain": chain.id, "seed": cfg.seed, "generation": g}
            row.update(chain.varied)
            for _, metric in metrics:
                row.update(metric(samples))
            t3 = time.perf_counter()
            row.update(pool.composition())
            row.update(select_stats)
            row["train_loss"] = fit_stats.get("train_loss", float("nan"))
            row.update({"train_seconds": t1 - t0, "sample_seconds": t2 - t1, "score_seconds": t3 - t2,
                        "total_seconds": t3 - t0})
            d = store.gen_dir(chain.id, g)
            store.save_samples(chain.id, g, kept.images, kept.labels)
            save_npz(d / "provenance.npz", origin=pool.origin, lineage=pool.lineage)
            state = gen.state_dict()
            if state:
                save_weights(d / "model.safetensors", state, metadata={"generation": g, "chain": chain.id})
            if samples.images.dtype == np.uint8:
                save_grid(d / "grid.png", samples.images, samples.labels, samples.num_classes)
            store.save_gen_metrics(chain.id, g, row)
            store.mark_done(chain.id, g)
            sp = store.train_state_path(chain.id)
            if sp.exists():
                sp.unlink()
            log.info("chain %s generation %d done in %.1fs", chain.id, g, row["total_seconds"])
            if self.on_generation is not None:
                self.on_generation(row)
            self.write_tables()

    def write_tables(self) -> None:
        rows = self.store.metric_rows()
        if rows:
            write_csv(self.store.root / "metrics.csv", rows)
            write_jsonl(self.store.root / "metrics.jsonl", rows)


def run_experiment(config: Union[Config, dict, str, Path, None] = None, out_dir: Union[str, Path] = "runs/default",
                   overrides: Optional[list[str]] = None, **kwargs: Any) -> list[dict]:
    """Python API: run a config (a ``Config``, a raw dict, a YAML path or None for
    the default) into ``out_dir``; returns the metric rows (one per chain and generation)."""
    from ..config import load_raw

    if isinstance(config, Config):
        raw = load_raw(to_dict(config), overrides)
    else:
        raw = load_raw(config, overrides)
    return Experiment(raw, out_dir, **kwargs).run()
