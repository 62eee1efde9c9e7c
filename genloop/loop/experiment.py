"""Run an experiment: expand the config grid into chains, run each chain's
generations (``genloop.loop.chain``; one generation: ``genloop.loop.generation``) into
the run folder, resume after a crash, and keep the run folder's tables current.  Runs
start at ``genloop.run`` (the CLI, the sweep's backends, tests and benchmarks all go
through it and ``genloop.sweep.run_sweep``; ``genloop.loop.run_in_memory`` runs a chain
on the same runner without a folder).

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

Extend, never redo: a folder made with another config is continued when the new config
only extends it (``genloop.loop.identity``); any other change is refused naming the keys
that differ.
"""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

from ..config import Config
from ..data import RealData, load_real
from ..chains import Chain, expand, identity_diff
from ..loading import dump_yaml, to_dict
from ..metrics import MetricContext, build_metrics
from ..runfolder import (LOCK_NAME, RUN_FOLDER_ENTRIES, TEMP_FILE, DamagedFile, NotARunFolder, RunStore,
                         clean_temp_files, folder_kind, write_csv, write_files, write_json)
from ..utils import digest, resolve_device
from .chain import ChainRunner, KeptSamples
from .generation import TIME_COLUMNS, GenerationResult  # noqa: F401  (TIME_COLUMNS: callers import it from here too)
from .identity import EXTENDABLE, RunFolderMismatch, adopt_ids, chain_key, extension_problem  # noqa: F401
from .interactions import INTERACTIONS
from .outputs import RowLog, RowLogs, generation_files, kept_arrays
from .sharing import SharedModels, config_key
from .theory import theory_columns

log = logging.getLogger(__name__)

# metrics.csv / metrics.jsonl are rewritten after a generation at most this often (seconds),
# and always at the end of a chain, so that long chains of fast generations do not spend
# their time rewriting tables.
TABLE_INTERVAL = 2.0


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
        self._config_keys: dict[tuple[str, Optional[int]], Optional[str]] = {}
        self._sample_cache: dict = {}  # (chain, generation) -> kept sample arrays, for every chain (KeptSamples)
        self._row_logs = RowLogs()  # the chains' row logs, flushed together
        self._damage: Optional[DamagedFile] = None  # a damaged chains.json (reported by folder_change)
        try:
            adopt_ids(self.chains, self.store)  # chains of the folder keep their ids
        except DamagedFile as exc:
            self._damage = exc

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
        self._write_chain_list()
        self.verify()
        refs = self._reference_rows()
        write_csv(self.store.reference_csv, refs)
        if self.on_reference is not None:
            self.on_reference(refs)

    def _write_chain_list(self) -> None:
        """``config.yaml`` and ``chains.json`` (per chain: id, settings, seed, generations, key,
        label and the metric columns with a closed-form expectation)."""
        from ..runfolder import write_text
        from .summary import setting_label

        write_text(self.store.config_path, dump_yaml(self.raw))
        write_json(self.store.chains_path,
                   [{"id": c.id, "varied": c.varied, "seed": c.config.seed, "generations": c.config.loop.generations,
                     "key": chain_key(c), "setting": setting_label({k: v for k, v in c.varied.items() if k != "seed"}),
                     "theory": theory_columns(c.config, self.real_for(c.config))} for c in self.chains])

    def _reference_rows(self) -> list[dict]:
        """One reference row per data and metrics setting: the real test set scored as a generation."""
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
        return refs

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
                shutil.rmtree(store.train_state_dir(ch.id), ignore_errors=True)
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
                shutil.rmtree(store.train_state_dir(ch.id), ignore_errors=True)
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
            self._real[key] = load_real(cfg.data, self.store.data_cache_dir)
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
        """Run (or resume) one chain (``ChainRunner``), yielding each generation's number once
        it is saved, so that a caller can run several chains generation by generation
        (``genloop.sweep``).  What each generation writes follows ``store.samples`` and
        ``store.checkpoints`` (see ``genloop.runfolder.store``); rows of generations without a folder
        are logged in batches.  A resume that needs samples that were not kept recomputes the
        chain in memory from generation 0 (logged), never uses other data.  Every number of a
        generation derives from (the chain's seed, the generation), so the order in which
        chains run does not change any of them."""
        cfg = chain.config
        real = self.real_for(cfg)
        metrics = self.metrics_for(cfg)
        metric_ctx = self._metric_ctx.get(self._metric_key(cfg))  # once per chain (hashing the config is not free)
        kept = KeptSamples(self.store, chain.id, real, self._sample_cache)
        runner = ChainRunner(cfg, real, resolve_device(cfg.device), metrics, metric_ctx, kept, label=chain.id,
                             progress=self.progress, fit=self._fit_for(chain),
                             state_path=lambda lin: self.store.train_state_path(chain.id, lin))
        rows = RowLog(self.store, chain.id, self._row_logs)
        start = self.store.finished_generations(chain.id)
        if start:
            log.info("chain %s: generations 0..%d already finished, resuming at %d", chain.id, start - 1, start)
        def save(g: int, res: GenerationResult) -> None:
            self._save_generation(chain, g, res, runner.lineages, rows)

        try:
            yield from runner.generations(start, save, remember=cfg.store.samples != "every")
        finally:
            rows.close()  # finished generations are kept whatever stops the chain
            for k in [k for k in self._sample_cache if k[0] == chain.id]:
                self._sample_cache.pop(k, None)
        if cfg.store.samples != "every":
            rp = self.store.resume_samples_path(chain.id)
            if rp.exists() and self.store.finished_generations(chain.id) >= cfg.loop.generations:
                rp.unlink()

    def _config_key(self, chain: Chain, generation: Optional[int] = None) -> Optional[str]:
        """``chain``'s sharing key at ``generation`` (0: the one that leaves out ``loop.*``, else any other)."""
        at = 0 if generation == 0 else None
        if (chain.id, at) not in self._config_keys:
            self._config_keys[(chain.id, at)] = config_key(chain.config, at)
        return self._config_keys[(chain.id, at)]

    def _fit_for(self, chain: Chain) -> Optional[Callable[..., dict]]:
        """The fit of ``chain``'s generators when another chain of this run can share its models
        (same config key, ``genloop.loop.sharing``), else None (every model trains)."""
        if not self.share_models or self._config_key(chain) is None:
            return None
        peers = {at: [c for c in self.chains if c.id != chain.id and self._config_key(c, at) == self._config_key(chain, at)]
                 for at in (0, None)}
        if not peers[0] and not peers[None]:
            return None

        def fit(gen: Any, lcfg: Config, data: Any, g: int, lineage: int, seed: int) -> dict:
            others = peers[0 if g == 0 else None]
            if not others:
                return gen.fit(data)
            keep = any(not self.store.is_done(p.id, g) for p in others)  # a peer has yet to run generation g
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
        files = generation_files(store, chain.id, g, res, row, nl, with_samples, with_model)
        if files:
            rows.flush()  # logged rows first: a folder never stands after a gap
            write_files(files)  # all durable before the DONE marker
            store.mark_done(chain.id, g, files)  # records each file's size and SHA-256
        else:
            rows.add(row, kept_arrays(res, nl) if cfg.store.samples == "last" else None)
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

    def write_tables(self, force: bool = True) -> None:
        """Rewrite metrics.csv, metrics.jsonl and summary.csv (mean, std, 95% CI over seeds);
        ``force``: first append the rows still pending in the chains' row logs.
        ``force=False``: only when due; a rewrite is due ``TABLE_INTERVAL`` seconds after
        the last one, or ten times as long as the last one took (big sweeps spend their
        time on chains, not on rewriting tables)."""
        now = time.perf_counter()
        if not force and now < self._tables_due:
            return
        from .summary import write_tables

        if force:  # the rows of every finished generation (the live report's redraw)
            self._row_logs.flush()

        write_tables(self.store)
        spent = time.perf_counter() - now
        self._tables_due = time.perf_counter() + max(TABLE_INTERVAL, 10 * spent)
