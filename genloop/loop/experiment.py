"""Run an experiment: expand the config grid into chains, run each chain's
generations (one generation: ``genloop.loop.generation``) into the run folder,
resume after a crash, and keep the run folder's tables current.  Runs start at
``genloop.run`` (the CLI, the sweep's backends, tests and benchmarks all go
through it and ``genloop.sweep.run_sweep``).

Resume: a generation counts as finished when its ``DONE`` marker exists
(written last, atomically).  A chain restarts at its first unfinished
generation; inside a generation the generator resumes from its training
checkpoint.  All randomness of generation g derives from (chain seed, g), so a
resumed run gives the same numbers as an uninterrupted one.

Verified files: ``DONE`` records the size and SHA-256 of every file of its
generation; before running, ``prepare`` checks them, and a finished generation
whose file is missing or changed is redone, with every later generation of its
chain (they were computed from it), logged with the file's name.

Order and sharing: ``iter_chain`` runs a chain one generation at a time, so the sweep
can run chains side by side, generation by generation; chains that differ only in
sampling options share a generation's trained model when it trains on identical data
(``genloop.loop.sharing``).  Neither changes a number.

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
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np

from ..config import Config, ConfigError
from ..data import ImageSet, RealData, load_real
from ..grid import make_grid
from ..loading import Chain, NON_IDENTITY_SECTIONS, dump_yaml, expand, get_path, identity_dict, identity_diff, to_dict
from ..metrics import MetricContext, build_metrics
from ..store import (LOCK_NAME, RUN_FOLDER_ENTRIES, TEMP_FILE, DamagedFile, NotARunFolder, RunStore,
                     clean_temp_files, folder_kind, json_bytes, npz_bytes, weights_bytes, write_csv, write_files,
                     write_json)
from ..utils import digest, resolve_device
# TIME_COLUMNS and simulate are re-exported: callers import them from here too.
from .generation import TIME_COLUMNS, GenerationResult, lineage_file_suffix, run_generation, simulate  # noqa: F401
from .interactions import INTERACTIONS, History
from .sharing import SharedModels, config_key

log = logging.getLogger(__name__)

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


class KeptSamples:
    """A chain's kept samples of finished generations, as ``History`` reads them
    (``kept(generation, lineage)``): those this process made and the folder does not
    keep (``remember``) from memory, the others from the run folder
    (``RunStore.kept_sample_arrays``), cached up to ``SAMPLE_CACHE_BYTES`` in ``cache``
    (shared by the chains of an experiment, which run side by side, generation by
    generation).  Raises ``MissingSamples`` for samples that were not kept."""

    def __init__(self, store: RunStore, chain: str, real: RealData, cache: Optional[dict] = None) -> None:
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
            arrays = self.store.kept_sample_arrays(self.chain, generation)
            if arrays is None:
                raise MissingSamples(generation)
            while self.cache and sum(a.nbytes for z in self.cache.values() for a in z.values()) > SAMPLE_CACHE_BYTES:
                self.cache.pop(next(iter(self.cache)))
            self.cache[slot] = arrays
        # a set of the real data's kind
        return self.real.train.from_arrays(RunStore.lineage_arrays(self.cache[slot], lineage))


class RowLog:
    """Rows of a chain's generations that keep no folder, appended to its ``rows.jsonl`` in
    batches (``flush_if_due``: at most every ``LOG_INTERVAL`` seconds, and at the chain's
    last generation); with ``store.samples=last`` the newest kept samples are written to
    ``resume_samples.npz`` with the rows that need them."""

    def __init__(self, store: RunStore, chain: str) -> None:
        self.store, self.chain = store, chain
        self.pending: list[dict] = []
        self.newest: Optional[tuple[int, dict]] = None  # (generation, arrays) of the newest kept samples
        self.last_flush = time.perf_counter()

    def add(self, row: dict, kept_arrays: Optional[dict] = None) -> None:
        self.pending.append(row)
        if kept_arrays is not None:
            self.newest = (row["generation"], kept_arrays)

    def flush(self) -> None:
        if not self.pending:
            return
        if self.newest is not None and self.newest[0] == self.pending[-1]["generation"]:
            self.store.save_resume_samples(self.chain, *self.newest)
        self.store.append_rows(self.chain, self.pending)
        self.pending.clear()

    def flush_if_due(self, final: bool) -> None:
        if self.pending and (final or time.perf_counter() - self.last_flush >= LOG_INTERVAL):
            self.flush()
            self.last_flush = time.perf_counter()


class RunFolderMismatch(ConfigError):
    """The run folder was made with a different config."""


EXTENDABLE = "only raising loop.generations, adding seeds or adding values to a grid key continue a run folder"


def chain_key(chain: Chain) -> str:
    """What identifies a chain's results in a run folder across runs: a hash of its resolved
    config less ``loop.generations`` (unless that is a grid key), so that a chain keeps its
    identity (and id) when generations, seeds or grid values are added."""
    d = identity_dict(chain.config)
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
    ``share_models``: chains whose generation trains the same model on the same data
    share it (``genloop.loop.sharing``); False trains every model in its chain.
    """

    def __init__(self, raw: dict, out_dir: Union[str, Path], *, force: bool = False, progress: bool = False,
                 on_generation: Optional[Callable[[dict], None]] = None,
                 on_reference: Optional[Callable[[list[dict]], None]] = None, keep_tables: bool = True,
                 share_models: bool = True) -> None:
        self.raw = raw
        self.chains: list[Chain] = expand(raw)
        # expand() checked every chain, names included (genloop.builtins.check_names), before any work
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
        self.share_models = share_models
        self.shared = SharedModels(self.store.cache_dir)
        self._config_keys: dict[str, Optional[str]] = {}
        self._sample_cache: dict = {}  # (chain, generation) -> kept sample arrays, for every chain (KeptSamples)
        self._damage: Optional[DamagedFile] = None  # a damaged chains.json (reported by folder_change)
        try:
            self._adopt_ids()
        except DamagedFile as exc:
            self._damage = exc

    def _adopt_ids(self) -> None:
        """Chains already in the run folder keep their ids (found by ``chain_key``); chains
        new to it are numbered after the folder's (``c<N>_<settings>``)."""
        old = self.store.chains()
        if not old:
            return
        keys = [c.get("key") for c in old]
        if None in keys:  # chains.json written before keys were recorded: they follow config.yaml
            try:
                legacy = expand(self.store.read_config())
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
        root = self.store.root
        kind, foreign = folder_kind(root)
        if kind == "foreign":
            shown = ", ".join(repr(e) for e in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise NotARunFolder(f"{root}: not a genloop run folder (it holds {len(foreign)} entr"
                                f"{'y' if len(foreign) == 1 else 'ies'} genloop did not write: {shown}); genloop "
                                "writes only into a new or empty folder or a run folder it made, --force or not: "
                                "choose another output folder (-o)")
        if kind != "genloop":
            return []
        try:
            if self._damage is not None:
                raise self._damage
            old = self.store.read_config() if self.store.config_path.exists() else None
        except DamagedFile as exc:
            if not self.force:
                raise
            return [f"{Path(str(exc).split(': ', 1)[0]).name} damaged"]
        if old is None:
            return []
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
        made = folder_kind(root)[0] in ("absent", "empty")  # nothing of a run here yet
        if changed and self.force:
            log.warning("%s: config differs (%s); --force: starting over", root, ", ".join(changed))
            self._start_over()
        elif changed:
            log.info("%s: extending the run (%s); finished generations are kept", root, ", ".join(changed))
        elif self.force and root.exists() and not self.store.config_path.exists():
            self._start_over()
        root.mkdir(parents=True, exist_ok=True)
        if not self.store.marker_path.exists():  # first: --force may start over only in folders genloop made
            write_json(self.store.marker_path, {"genloop": "run folder"})
        clean_temp_files(root)  # a killed run's half-written files (we hold the lock)
        try:
            for ch in self.chains:  # the data loads before the folder records a config
                self.real_for(ch.config)
        except BaseException:
            if made:  # leave nothing of a start that failed (the same command then starts afresh)
                self._start_over()
            raise
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
        """Remove what genloop wrote in the run folder (``RUN_FOLDER_ENTRIES`` and temp files; all
        but the lock this process holds; other entries stay) and use fresh chain ids."""
        root = self.store.root
        if folder_kind(root)[0] not in ("genloop", "empty", "absent"):  # folder_change refused it already
            raise NotARunFolder(f"{root}: not a genloop run folder; choose another output folder (-o)")
        for p in list(root.iterdir()) if root.exists() else []:
            if p.name == LOCK_NAME or (p.name not in RUN_FOLDER_ENTRIES and not TEMP_FILE.match(p.name)):
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
            bad = store.log_damage(ch.id)
            if bad is not None:  # rows.jsonl: keep the good lines before it, redo from its generation
                offset, line, problem = bad
                store.cut_log(ch.id, offset)
                n = store.finished_generations(ch.id)
                later = [g for g in range(n, ch.config.loop.generations + 1) if store.has_folder(ch.id, g)]
                log.warning("chain %s: rows.jsonl line %d: %s; redoing generations %d.. of the chain", ch.id, line,
                            problem, n)
                for g in later:
                    store.undo(ch.id, g)
                shutil.rmtree(store.train_state_path(ch.id).parent, ignore_errors=True)
                found.append((ch.id, n, f"rows.jsonl line {line}: {problem}"))
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

    def check_data(self) -> None:
        """Build, once, each chain's interaction model that checks its settings against the real
        data (``Interaction.checks_data``: sizes, data kinds), so that such an error is one line
        before the run folder is touched."""
        for ch in self.chains:
            cls = INTERACTIONS.get(ch.config.loop.interaction)
            if cls.checks_data(ch.config):
                cls(ch.config, self.real_for(ch.config))

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
        """Run (or resume) one chain to its end (``iter_chain``)."""
        for _ in self.iter_chain(chain):
            pass

    def iter_chain(self, chain: Chain):
        """Run (or resume) one chain, yielding each generation's number once it is saved, so
        that a caller can run several chains generation by generation (``genloop.sweep``).
        What each generation writes follows ``store.samples`` and ``store.checkpoints`` (see
        ``genloop.store``); rows of generations without a folder are logged in batches.  A
        resume that needs samples that were not kept recomputes the chain in memory from
        generation 0 (logged), never uses other data.  Every number of a generation derives
        from (the chain's seed, the generation), so the order in which chains run does not
        change any of them."""
        cfg = chain.config
        real = self.real_for(cfg)
        interaction = INTERACTIONS.get(cfg.loop.interaction)(cfg, real)
        device = resolve_device(cfg.device)
        metrics = self.metrics_for(cfg)
        metric_ctx = self._metric_ctx.get(self._metric_key(cfg))  # once per chain (hashing the config is not free)
        nl = len(interaction.lineages())
        kept = KeptSamples(self.store, chain.id, real, self._sample_cache)
        history = History(real, kept, nl)
        rows = RowLog(self.store, chain.id)
        fit = self._fit_for(chain)
        start = self.store.finished_generations(chain.id)
        if start:
            log.info("chain %s: generations 0..%d already finished, resuming at %d", chain.id, start - 1, start)
        replay_until = 0  # generations below this are recomputed in memory only (their results are stored)
        g = start
        try:
            while g < cfg.loop.generations:
                replaying = g < replay_until
                try:
                    res = run_generation(cfg, interaction, history, g, real, device, metrics, metric_ctx,
                                         state_path=lambda lin: self.store.train_state_path(chain.id, lin),
                                         progress=self.progress and not replaying, desc=f"{chain.id} gen {g}",
                                         fit=None if replaying else fit)
                except MissingSamples as exc:
                    if replay_until or g == 0:
                        raise
                    log.warning("chain %s: generation %d needs the samples of generation %d, which were not kept "
                                "(store.samples=%s); recomputing generations 0..%d in memory (same seeds, same numbers)",
                                chain.id, g, exc.generation, cfg.store.samples, g - 1)
                    replay_until, g = g, 0
                    continue
                if cfg.store.samples != "every" or replaying:
                    kept.remember(g, res.kept)
                if not replaying:
                    self._save_generation(chain, g, res, nl, rows)
                g += 1
                if not replaying:
                    yield g - 1
        finally:
            rows.flush()  # finished generations are kept whatever stops the chain
            for k in [k for k in self._sample_cache if k[0] == chain.id]:
                self._sample_cache.pop(k, None)
        if cfg.store.samples != "every":
            rp = self.store.resume_samples_path(chain.id)
            if rp.exists() and self.store.finished_generations(chain.id) >= cfg.loop.generations:
                rp.unlink()

    def _config_key(self, chain: Chain) -> Optional[str]:
        if chain.id not in self._config_keys:
            self._config_keys[chain.id] = config_key(chain.config)
        return self._config_keys[chain.id]

    def _fit_for(self, chain: Chain) -> Optional[Callable[..., dict]]:
        """The fit of ``chain``'s generators when another chain of this run can share its models
        (same config key, ``genloop.loop.sharing``), else None (every model trains)."""
        if not self.share_models:
            return None
        key = self._config_key(chain)
        if key is None:
            return None
        peers = [c for c in self.chains if c.id != chain.id and self._config_key(c) == key]
        if not peers:
            return None

        def fit(gen: Any, lcfg: Config, data: Any, g: int, lineage: int, seed: int) -> dict:
            keep = any(not self.store.is_done(p.id, g) for p in peers)  # a peer has yet to run generation g
            return self.shared.fit(gen, lcfg, data, g, lineage, seed, resolve_device(lcfg.device), chain.id, keep)

        return fit

    def prune_shared(self, below: Optional[int] = None) -> None:
        """Remove shared models of generations every chain has finished (or below ``below``)."""
        if not self.shared.dir.exists():
            return
        if below is None:
            below = min((self.store.finished_generations(c.id) for c in self.chains), default=0)
        self.shared.prune(below)

    def _save_generation(self, chain: Chain, g: int, res: GenerationResult, nl: int, rows: "RowLog") -> None:
        """Keep a finished generation: its folder of files with a ``DONE`` marker, or its row in
        the row log (``store.samples`` / ``store.checkpoints``); then report it."""
        cfg, store = chain.config, self.store
        row: dict[str, Any] = {"chain": chain.id, "seed": cfg.seed, "generation": g}
        row.update(chain.varied)
        row.update(res.row)
        final = g == cfg.loop.generations - 1
        with_samples = cfg.store.samples == "every" or (cfg.store.samples == "last" and final)
        with_model = cfg.store.checkpoints == "every" or (cfg.store.checkpoints == "last" and final)
        files = self._generation_files(chain, g, res, row, nl, with_samples, with_model)
        if files:
            rows.flush()  # logged rows first: a folder never stands after a gap
            write_files(files)  # all durable before the DONE marker
            store.mark_done(chain.id, g, files)  # records each file's size and SHA-256
        else:
            rows.add(row, self._kept_arrays(res, nl) if cfg.store.samples == "last" else None)
        for lin in range(nl):
            sp = store.train_state_path(chain.id, lin)
            if sp.exists():
                sp.unlink()
        log.debug("chain %s generation %d done in %.3fs", chain.id, g, row["total_seconds"])
        if self.on_generation is not None:
            self.on_generation(row)
        rows.flush_if_due(final)
        if self.keep_tables:
            self.write_tables(force=False)

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
