"""Run an experiment: expand the config grid into chains, run each chain's
generations, resume after a crash, and keep the run folder's tables current.

Resume: a generation counts as finished when its ``DONE`` marker exists
(written last, atomically).  A chain restarts at its first unfinished
generation; inside a generation the generator resumes from its training
checkpoint.  All randomness of generation g derives from (chain seed, g), so a
resumed run gives the same numbers as an uninterrupted one.

Verified files: ``DONE`` records the size and SHA-256 of every file of its
generation; before running, ``prepare`` checks them, and a finished generation
whose file is missing or changed is redone, with every later generation of its
chain (they were computed from it), logged with the file's name.

Extend, never redo: a folder made with another config is continued when the new
config only raises ``loop.generations``, adds seeds or adds values to a grid key
(every chain of the folder is still a chain of the new config, with as many
generations or more); finished chains and generations are kept and keep their
chain ids (matched by their resolved config, ``chain_key``), new chains get new
ids.  Any other change is refused naming the keys that differ.
"""
from __future__ import annotations

import logging
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch

from ..config import Chain, Config, ConfigError, NON_IDENTITY_SECTIONS, dump_yaml, expand, get_path, identity_diff, to_dict
from ..data import ImageSet, RealData, concat_sets, load_real
from ..generators import GenContext, build_generator
from ..grid import make_grid
from ..metrics import MetricContext, build_metrics
from ..store import (LOCK_NAME, RunStore, json_bytes, load_npz, npz_bytes, weights_bytes, write_bytes, write_csv,
                     write_files, write_json)
from ..utils import digest, resolve_device
from .interactions import INTERACTIONS, History, Interaction, Pool, lineage_config

log = logging.getLogger(__name__)

# Per-generation columns that measure time, not results (excluded when comparing runs).
TIME_COLUMNS = ("train_seconds", "sample_seconds", "score_seconds", "total_seconds")

# metrics.csv / metrics.jsonl are rewritten after a generation at most this often (seconds),
# and always at the end of a chain, so that long chains of fast generations do not spend
# their time rewriting tables.
TABLE_INTERVAL = 2.0

# Rows of generations without a folder (store.samples / store.checkpoints not every) are
# appended to the chain's rows.jsonl at most this often (seconds; always at a chain's end).
LOG_INTERVAL = 2.0

# Kept samples of finished generations are cached in memory up to this many bytes per chain
# (the accumulating interaction models read every earlier generation each generation).
SAMPLE_CACHE_BYTES = 512 << 20


def lineage_seed(seed: int, generation: int, lineage: int) -> int:
    """Seed of a generation's generator: ``seed * 100003 + generation`` for lineage 0
    (as in single-lineage runs), a hash of (seed, generation, lineage) for the others."""
    if lineage == 0:
        return seed * 100_003 + generation
    return int(np.random.SeedSequence([seed, generation, lineage, 0x11AE]).generate_state(1)[0])


def lineage_file_suffix(lineage: int) -> str:
    """File-name suffix of a lineage's model and grid: none for lineage 0 (so single-lineage
    runs keep their names and every run has ``model.safetensors``), ``_l<k>`` for the others."""
    return f"_l{lineage}" if lineage else ""


@dataclass
class GenerationResult:
    """One generation of a chain: the training pool, and per lineage the generator,
    its samples and the kept samples; ``row`` holds the generation's numbers."""

    pool: Pool
    generators: list
    samples: list[ImageSet]
    kept: list[ImageSet]
    row: dict


def run_generation(cfg: Config, interaction: Interaction, history: History, g: int, real: RealData,
                   device: torch.device, metrics: list, scorer: Any = None,
                   state_path: Optional[Callable[[int], Path]] = None, progress: bool = False,
                   desc: str = "") -> GenerationResult:
    """Build generation ``g``'s pool, fit and sample every lineage, select, and measure.

    All randomness derives from (``cfg.seed``, ``g``): the interaction's rng and each
    lineage's generator seed.  Metric columns: with one lineage as the metrics name
    them; with several, the metrics of all lineages' samples together (unsuffixed) and
    of each lineage's (suffix ``_l<k>``); the same for the select statistics and
    ``train_loss`` (unsuffixed: mean over lineages)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng([cfg.seed, g, 7])
    pool = interaction.training_set(g, history, rng)
    labels, n = interaction.sample_labels(g, rng)
    overrides = interaction.lineages()
    parts = interaction.split_samples(g, labels, n)
    if len(parts) != len(overrides):
        raise ValueError(f"{type(interaction).__name__}: split_samples gave {len(parts)} parts for {len(overrides)} lineages")
    nl = len(overrides)
    train_s = time.perf_counter() - t0
    sample_s = score_s = 0.0
    gens, samples, kept, fits, sel = [], [], [], [], []
    for lin, (over, (lab, m)) in enumerate(zip(overrides, parts)):
        lcfg = lineage_config(cfg, over, lin)
        ta = time.perf_counter()
        gctx = GenContext(config=lcfg, shape=real.train.shape,
                          num_classes=real.train.num_classes if lcfg.generator.conditional else 0, device=device,
                          seed=lineage_seed(cfg.seed, g, lin), state_path=state_path(lin) if state_path else None,
                          progress=progress, desc=desc + (f" lineage {lin}" if nl > 1 else ""),
                          select_score=_select_score(scorer, lcfg),
                          validation=real.test if lcfg.train.select_every else None, real_train=real.train)
        gen = build_generator(gctx)
        fits.append(gen.fit(pool.data))
        tb = time.perf_counter()
        s = gen.sample(lab, m)
        tc = time.perf_counter()
        k, st = interaction.select(g, s, rng, scorer)
        td = time.perf_counter()
        train_s, sample_s, score_s = train_s + tb - ta, sample_s + tc - tb, score_s + td - tc
        gens.append(gen)
        samples.append(s)
        kept.append(k)
        sel.append(st)
    tm = time.perf_counter()
    row: dict[str, Any] = {}
    if nl == 1:
        for _, metric in metrics:
            row.update(measure(metric, samples[0], gens[0]))
    else:
        full = [s for s in samples if len(s)]
        everything = concat_sets(full)
        for _, metric in metrics:
            row.update(measure(metric, everything, None))
        for lin, s in enumerate(samples):
            if len(s):
                for _, metric in metrics:
                    row.update({f"{k}_l{lin}": v for k, v in measure(metric, s, gens[lin]).items()})
    score_s += time.perf_counter() - tm
    row.update(pool.composition(nl))
    row.update(pool.stats)
    losses = [f.get("train_loss", float("nan")) for f in fits]
    for lin, f in enumerate(fits):  # the kept checkpoint (train.select_every): its step and validation KID
        row.update({(k if nl == 1 else f"{k}_l{lin}"): v for k, v in f.items() if k.startswith("ckpt_")})
    if nl == 1:
        row.update(sel[0])
        row["train_loss"] = losses[0]
    else:
        for lin, st in enumerate(sel):
            row.update({f"{k}_l{lin}": v for k, v in st.items()})
        finite = [x for x in losses if isinstance(x, (int, float)) and np.isfinite(x)]
        row["train_loss"] = float(np.mean(finite)) if finite else float("nan")
        row.update({f"train_loss_l{lin}": x for lin, x in enumerate(losses)})
        row.update({f"samples_l{lin}": float(len(s)) for lin, s in enumerate(samples)})
    row.update({"train_seconds": train_s, "sample_seconds": sample_s, "score_seconds": score_s,
                "total_seconds": time.perf_counter() - t0})
    return GenerationResult(pool, gens, samples, kept, row)


def measure(metric: Any, samples: Any, model: Any) -> dict:
    """A metric's columns for ``samples``; a metric with ``uses_model = True`` also gets the
    generator that made them (None for the pooled samples of several lineages), e.g. to
    measure its perplexity on real text."""
    if getattr(metric, "uses_model", False):
        return metric(samples, model=model)
    return metric(samples)


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


def check_names(cfg: Config) -> None:
    """Every registry name in ``cfg`` must exist; the error names the key and the known names."""
    from ..data import DATASETS
    from ..data import sources  # noqa: F401
    from ..diffusion import SAMPLERS, SCHEDULES
    from ..generators import GENERATORS
    from ..generators import builtin as _gb  # noqa: F401
    from ..metrics import METRICS
    from ..metrics import builtin as _mb  # noqa: F401
    from ..models import NETWORKS
    from ..models import mlp, unet, unet_lite  # noqa: F401

    checks = [("data.name", cfg.data.name, DATASETS), ("generator.name", cfg.generator.name, GENERATORS),
              ("generator.network", cfg.generator.network, NETWORKS), ("sampler.name", cfg.sampler.name, SAMPLERS),
              ("generator.schedule", cfg.generator.schedule, SCHEDULES),
              ("loop.interaction", cfg.loop.interaction, INTERACTIONS)]
    checks += [(f"metrics.names", m, METRICS) for m in cfg.metrics.names]
    for key, value, reg in checks:
        if value not in reg:
            raise ConfigError(f"{key}: unknown {reg.kind} {value!r} (known: {', '.join(reg.names())})")
    for i, over in enumerate(cfg.loop.lineages or []):  # per-lineage generator overrides
        for key, reg in (("name", GENERATORS), ("network", NETWORKS)):
            if key in over and over[key] not in reg:
                raise ConfigError(f"loop.lineages[{i}].{key}: unknown {reg.kind} {over[key]!r} (known: {', '.join(reg.names())})")


def theory_columns(cfg: Config) -> list[str]:
    """Metric columns of ``cfg``'s chains with a closed-form expectation the report draws
    (``genloop.report.theory``): ``variance_ratio`` for a Gaussian refitted by maximum
    likelihood on its own n samples each generation (``replace``)."""
    if (cfg.generator.name == "gaussian" and cfg.loop.interaction == "replace" and not cfg.loop.lineages
            and cfg.loop.sample_count is None and (not cfg.generator.conditional or cfg.data.name == "gaussian")
            and "variance_ratio" in cfg.metrics.names):
        return ["variance_ratio"]
    return []


class MissingSamples(LookupError):
    """A generation's kept samples are needed but were not kept (store.samples last/none)."""

    def __init__(self, generation: int) -> None:
        super().__init__(f"the samples of generation {generation} were not kept")
        self.generation = generation


def _resume_samples(store: RunStore, chain: str, g: int) -> Optional[dict]:
    """The arrays of ``resume_samples.npz`` when it holds generation ``g``'s samples, else None."""
    path = store.resume_samples_path(chain)
    if not path.exists():
        return None
    arrays = load_npz(path)
    if int(arrays.pop("generation", -1)) != g:
        return None
    return arrays


PASSAGES = 8  # generated passages kept as text per generation (text data)


def _image_preview(samples: ImageSet, d: Path, suffix: str) -> dict:
    if samples.images.dtype != np.uint8:
        return {}
    import io

    from PIL import Image

    grid = make_grid(samples.images, samples.labels, samples.num_classes)
    buf = io.BytesIO()
    Image.fromarray(grid[..., 0] if grid.shape[2] == 1 else grid).save(buf, format="PNG")
    return {d / f"grid{suffix}.png": buf.getvalue()}


def _text_preview(samples: Any, d: Path, suffix: str) -> dict:
    return {d / f"passages{suffix}.json": json_bytes(samples.texts(PASSAGES))}


# What a generation folder shows of its samples, by data kind: a grid (images), passages (text).
PREVIEWS: dict[str, Callable[[Any, Path, str], dict]] = {"images": _image_preview, "tokens": _text_preview}


def preview_files(samples: Any, d: Path, suffix: str) -> dict:
    """Preview files (path -> bytes) of a generation's samples (written with the others, recorded in DONE)."""
    return PREVIEWS[samples.kind](samples, d, suffix)


class RunFolderMismatch(ConfigError):
    """The run folder was made with a different config."""


EXTENDABLE = "only raising loop.generations, adding seeds or adding values to a grid key continue a run folder"


def chain_key(chain: Chain) -> str:
    """What identifies a chain's results in a run folder across runs: a hash of its resolved
    config less ``loop.generations`` (unless that is a grid key), so that a chain keeps its
    identity (and id) when generations, seeds or grid values are added."""
    d = to_dict(chain.config)
    for section in NON_IDENTITY_SECTIONS:  # store.*, sweep.*: how a run is kept or spread, not what it computes
        d.pop(section, None)
    if "loop.generations" not in chain.varied:
        d["loop"].pop("generations", None)
    return digest(d)


def _values(raw: dict, key: str) -> list:
    try:
        v = get_path(raw, key)
    except (KeyError, TypeError):
        return []
    return [] if v is None else v if isinstance(v, list) else [v]


def extension_problem(old_raw: dict, new_raw: dict, new_chains: list[Chain], changed: list[str]) -> Optional[str]:
    """None when ``new_raw`` extends the run folder made with ``old_raw`` (every old chain is
    a new chain with as many generations or more, and its earlier generations would not
    change); else what is refused, naming the keys that differ."""
    try:
        old_chains = expand(old_raw)
    except (ConfigError, KeyError, TypeError, ValueError):
        return f"keys that differ: {', '.join(changed)}"
    new_by_key = {chain_key(c): c for c in new_chains}
    missing = False
    for oc in old_chains:
        nc = new_by_key.get(chain_key(oc))
        if nc is None:
            missing = True
            continue
        og, ng = oc.config.loop.generations, nc.config.loop.generations
        if ng < og:
            return f"keys that differ: loop.generations ({og} -> {ng}: a run folder can gain generations, not lose them)"
        if ng != og:
            why = INTERACTIONS.get(nc.config.loop.interaction).generations_matter(nc.config)
            if why:
                return f"keys that differ: loop.generations ({why})"
    if missing:
        grown = [k for k in changed if all(v in _values(new_raw, k) for v in _values(old_raw, k))
                 and k != "loop.generations"]
        return f"keys that differ: {', '.join([k for k in changed if k not in grown] or changed)}"
    return None


class Experiment:
    """One run folder and the chains of its config grid.

    ``on_generation(row)`` is called after every finished generation (the CLI
    prints its summary line from it); ``progress`` turns on progress bars.
    """

    def __init__(self, raw: dict, out_dir: Union[str, Path], *, force: bool = False, progress: bool = False,
                 on_generation: Optional[Callable[[dict], None]] = None,
                 on_reference: Optional[Callable[[list[dict]], None]] = None, keep_tables: bool = True) -> None:
        self.raw = raw
        self.chains: list[Chain] = expand(raw)
        for ch in self.chains:
            check_names(ch.config)  # fail early on unknown names, before any work
        self._fresh_ids = [ch.id for ch in self.chains]
        self.store = RunStore(Path(out_dir))
        self.force = force
        self.progress = progress
        self.on_generation = on_generation
        self.on_reference = on_reference  # called with the reference rows once prepare() wrote them
        self._real: dict[str, RealData] = {}
        self._metric_ctx: dict[str, MetricContext] = {}
        self._metrics: dict[str, list] = {}
        self._tables_due = 0.0
        self.keep_tables = keep_tables  # False: run_chain leaves the tables to the caller (the sweep's parent)
        self._adopt_ids()

    def _adopt_ids(self) -> None:
        """Chains already in the run folder keep their ids (found by ``chain_key``); chains
        new to it are numbered after the folder's (``c<N>_<settings>``)."""
        old = self.store.chains()
        if not old:
            return
        keys = [c.get("key") for c in old]
        if None in keys:  # chains.json written before keys were recorded: they follow config.yaml
            try:
                import yaml

                legacy = expand(yaml.safe_load(self.store.config_path.read_text()))
            except Exception:  # noqa: BLE001 - an unreadable old config: nothing to adopt
                return
            if [c.id for c in legacy] != [c.get("id") for c in old]:
                return
            keys = [chain_key(c) for c in legacy]
        by_key: dict[str, list[str]] = {}
        for k, c in zip(keys, old):
            by_key.setdefault(k, []).append(c["id"])
        taken = {c["id"] for c in old}
        numbers = [int(m.group(1)) for m in (re.match(r"c(\d+)", i) for i in taken) if m]
        nxt = max(numbers, default=-1) + 1
        for ch in self.chains:  # chains of the folder keep their ids; new ones are numbered after them
            ids = by_key.get(chain_key(ch))
            if ids:
                ch.id = ids.pop(0)
            else:
                ch.id = re.sub(r"^c\d+", f"c{nxt:02d}", ch.id)
                nxt += 1

    def folder_change(self) -> list[str]:
        """The keys in which the config differs from the run folder's (empty for a new folder or
        the same config).  Raises ``RunFolderMismatch`` when the difference is not an
        extension (unless ``force``, which then starts over)."""
        if not self.store.config_path.exists():
            return []
        import yaml

        old = yaml.safe_load(self.store.config_path.read_text()) or {}
        changed = identity_diff(old, self.raw)
        if changed and not self.force:
            problem = extension_problem(old, self.raw, self.chains, changed)
            if problem:
                raise RunFolderMismatch(f"{self.store.root}: made with a different config ({problem}); "
                                        f"{EXTENDABLE}; use another output folder, or --force to start over")
        return changed

    # ------------------------------------------------------------------ set-up
    def prepare(self) -> None:
        """Check or create the run folder, write the config and chain list,
        train the shared classifier and record the reference rows."""
        root = self.store.root
        changed = self.folder_change()
        if changed and self.force:
            log.warning("%s: config differs (%s); --force: starting over", root, ", ".join(changed))
            self._start_over()
        elif changed:
            log.info("%s: extending the run (%s); finished generations are kept", root, ", ".join(changed))
        elif self.force and root.exists() and not self.store.config_path.exists():
            self._start_over()
        root.mkdir(parents=True, exist_ok=True)
        from ..store import write_text

        write_text(self.store.config_path, dump_yaml(self.raw))
        from .summary import setting_label

        write_json(root / "chains.json", [{"id": c.id, "varied": c.varied, "seed": c.config.seed,
                                           "generations": c.config.loop.generations, "key": chain_key(c),
                                           "setting": setting_label({k: v for k, v in c.varied.items() if k != "seed"}),
                                           "theory": theory_columns(c.config)} for c in self.chains])
        self.verify()
        refs = []
        for ch in self.chains:
            key = self._metric_key(ch.config)
            if key in self._metrics:
                continue
            metrics = self.metrics_for(ch.config)
            real = self.real_for(ch.config)
            # n_test / n_train: the sets compared; fd/kid/prdc also give eval_n, the common
            # sample count they and the generations were scored at (metrics.equal_n).
            row: dict[str, Any] = {"reference": "real test set", "data": ch.config.data.name,
                                   "n_test": len(real.test), "n_train": len(real.train)}
            row.update({k: v for k, v in ch.varied.items() if k.startswith(("data.", "metrics."))})
            for name, m in metrics:
                if hasattr(m, "reference"):
                    row.update(m.reference())
            refs.append(row)
            n_eval = [v for k, v in row.items() if k.startswith("eval_n")]
            if n_eval:
                log.info("reference: real test set (%d) vs real training set (%d); fd/kid/prdc of the reference and "
                         "of every generation at n = %d per side (metrics.equal_n, %d draws when subsampled)",
                         len(real.test), len(real.train), int(n_eval[0]), ch.config.metrics.draws)
        write_csv(root / "reference.csv", refs)
        if self.on_reference is not None:
            self.on_reference(refs)

    def _start_over(self) -> None:
        """Empty the run folder (all but the lock this process holds) and use fresh chain ids."""
        root = self.store.root
        for p in list(root.iterdir()) if root.exists() else []:
            if p.name == LOCK_NAME:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        for ch, cid in zip(self.chains, self._fresh_ids):
            ch.id = cid

    def verify(self) -> list[tuple[str, int, str]]:
        """Check the files each finished generation's DONE vouches for; a generation with a
        missing or changed file is redone with every later one of its chain (they were made
        from it).  Returns (chain, generation, problem) per chain with a damaged generation."""
        store, found = self.store, []
        for ch in self.chains:
            n = store.finished_generations(ch.id)
            for g in range(n):
                problem = store.verify_done(ch.id, g)
                if problem is None:
                    continue
                log.warning("chain %s generation %d: %s; redoing generation%s %s", ch.id, g, problem,
                            "s" if n - g > 1 else "", f"{g}..{n - 1}" if n - g > 1 else g)
                for h in range(n - 1, g - 1, -1):
                    store.undo(ch.id, h)
                # the training state of the generation after the last finished one
                shutil.rmtree(store.train_state_path(ch.id).parent, ignore_errors=True)
                found.append((ch.id, g, problem))
                break
        return found

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
    def run_chain(self, chain: Chain) -> None:
        """Run (or resume) one chain.  What each generation writes follows ``store.samples``
        and ``store.checkpoints`` (see ``genloop.store``); rows of generations without a
        folder are logged in batches.  A resume that needs samples that were not kept
        recomputes the chain in memory from generation 0 (logged), never uses other data."""
        cfg = chain.config
        store = self.store
        real = self.real_for(cfg)
        interaction = INTERACTIONS.get(cfg.loop.interaction)(cfg, real)
        device = resolve_device(cfg.device)
        metrics = self.metrics_for(cfg)
        metric_ctx = self._metric_ctx.get(self._metric_key(cfg))  # once per chain (hashing the config is not free)
        nl = len(interaction.lineages())
        keep_samples, keep_models = cfg.store.samples, cfg.store.checkpoints
        last_g = cfg.loop.generations - 1
        cache: dict[int, dict] = {}
        memory: dict[tuple[int, int], ImageSet] = {}  # kept samples of this process's generations (not every)

        def from_arrays(arrays: dict, lineage: int):
            z = dict(arrays)
            lin = z.pop("lineage", None)
            if lin is not None or lineage:
                sel = lin == lineage if lin is not None else slice(0, 0)
                z = {k: v[sel] for k, v in z.items()}
            return real.train.from_arrays(z)  # a set of the real data's kind

        def load(g: int, lineage: int = 0) -> ImageSet:
            if (g, lineage) in memory:
                return memory[(g, lineage)]
            if g not in cache:
                if (store.gen_dir(chain.id, g) / "samples.npz").exists() and store.has_folder(chain.id, g):
                    arrays = store.load_sample_arrays(chain.id, g)
                else:
                    arrays = _resume_samples(store, chain.id, g)
                    if arrays is None:
                        raise MissingSamples(g)
                while cache and sum(a.nbytes for z in cache.values() for a in z.values()) > SAMPLE_CACHE_BYTES:
                    cache.pop(next(iter(cache)))
                cache[g] = arrays
            return from_arrays(cache[g], lineage)

        history = History(real, load, nl)
        start = store.finished_generations(chain.id)
        if start:
            log.info("chain %s: generations 0..%d already finished, resuming at %d", chain.id, start - 1, start)
        replay_until = 0  # generations below this are recomputed in memory only (their results are stored)
        pending: list[dict] = []  # logged rows not yet written
        newest: list = []  # [generation, arrays] of the newest kept samples (store.samples=last)
        last_flush = time.perf_counter()

        def flush() -> None:
            if not pending:
                return
            if keep_samples == "last" and newest and newest[0] == pending[-1]["generation"]:
                write_bytes(store.resume_samples_path(chain.id), npz_bytes(generation=np.array(newest[0]), **newest[1]))
            store.append_rows(chain.id, pending)
            pending.clear()

        g = start
        try:
            while g < cfg.loop.generations:
                replaying = g < replay_until
                try:
                    res = run_generation(cfg, interaction, history, g, real, device, metrics, metric_ctx,
                                         state_path=lambda lin: store.train_state_path(chain.id, lin),
                                         progress=self.progress and not replaying, desc=f"{chain.id} gen {g}")
                except MissingSamples as exc:
                    if replay_until or g == 0:
                        raise
                    log.warning("chain %s: generation %d needs the samples of generation %d, which were not kept "
                                "(store.samples=%s); recomputing generations 0..%d in memory (same seeds, same numbers)",
                                chain.id, g, exc.generation, keep_samples, g - 1)
                    replay_until, g = g, 0
                    continue
                if keep_samples != "every" or replaying:
                    memory.update({(g, lin): k for lin, k in enumerate(res.kept)})
                if replaying:
                    g += 1
                    continue
                row: dict[str, Any] = {"chain": chain.id, "seed": cfg.seed, "generation": g}
                row.update(chain.varied)
                row.update(res.row)
                final = g == last_g
                with_samples = keep_samples == "every" or (keep_samples == "last" and final)
                with_model = keep_models == "every" or (keep_models == "last" and final)
                files = self._generation_files(chain, g, res, row, nl, with_samples, with_model)
                if files:
                    flush()  # logged rows first: a folder never stands after a gap
                    write_files(files)  # all durable before the DONE marker
                    store.mark_done(chain.id, g, files)  # records each file's size and SHA-256
                else:
                    pending.append(row)
                    if keep_samples == "last":
                        newest[:] = [g, self._kept_arrays(res, nl)]
                for lin in range(nl):
                    sp = store.train_state_path(chain.id, lin)
                    if sp.exists():
                        sp.unlink()
                log.debug("chain %s generation %d done in %.3fs", chain.id, g, row["total_seconds"])
                if self.on_generation is not None:
                    self.on_generation(row)
                if pending and (final or time.perf_counter() - last_flush >= LOG_INTERVAL):
                    flush()
                    last_flush = time.perf_counter()
                if self.keep_tables:
                    self.write_tables(force=False)
                g += 1
        finally:
            flush()  # finished generations are kept whatever stops the chain
        if keep_samples != "every":
            rp = store.resume_samples_path(chain.id)
            if rp.exists() and store.finished_generations(chain.id) >= cfg.loop.generations:
                rp.unlink()

    @staticmethod
    def _kept_arrays(res: GenerationResult, nl: int) -> dict:
        if nl == 1:
            return res.kept[0].arrays()
        parts = [k.arrays() for k in res.kept]
        arrays = {name: np.concatenate([p[name] for p in parts]) for name in parts[0] if all(name in p for p in parts)}
        arrays["lineage"] = np.concatenate([np.full(len(k), lin, dtype=np.int64) for lin, k in enumerate(res.kept)])
        return arrays

    def _generation_files(self, chain: Chain, g: int, res: GenerationResult, row: dict, nl: int,
                          with_samples: bool, with_model: bool) -> dict:
        """The files of generation ``g``'s folder (path -> bytes); empty when it keeps none."""
        d = self.store.gen_dir(chain.id, g)
        files: dict = {}
        if with_samples:
            pool = res.pool
            files[d / "samples.npz"] = npz_bytes(**self._kept_arrays(res, nl))
            files[d / "provenance.npz"] = npz_bytes(origin=pool.origin, lineage=pool.lineage, index=pool.index)
        for lin, (gen, samples) in enumerate(zip(res.generators, res.samples)):
            suffix = lineage_file_suffix(lin)
            if with_model:
                state = gen.state_dict()
                if state:
                    meta = {"generation": g, "chain": chain.id, **({"lineage": lin} if nl > 1 else {})}
                    files[d / f"model{suffix}.safetensors"] = weights_bytes(state, meta)
            if with_samples and len(samples):  # a grid (images) or passages (text)
                files.update(preview_files(samples, d, suffix))
        if files:
            files[d / "metrics.json"] = json_bytes(row)
        return files

    def write_tables(self, force: bool = True) -> None:
        """Rewrite metrics.csv, metrics.jsonl and summary.csv (mean, std, 95% CI over seeds).
        ``force=False``: only when due; a rewrite is due ``TABLE_INTERVAL`` seconds after
        the last one, or ten times as long as the last one took (big sweeps spend their
        time on chains, not on rewriting tables)."""
        now = time.perf_counter()
        if not force and now < self._tables_due:
            return
        from .summary import write_tables

        write_tables(self.store)
        spent = time.perf_counter() - now
        self._tables_due = time.perf_counter() + max(TABLE_INTERVAL, 10 * spent)
