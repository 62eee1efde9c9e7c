"""Experiment trackers: MLflow, Weights & Biases and TensorBoard follow a run.

``tracking: [mlflow, wandb, tensorboard]`` (a config key, empty by default) names the
trackers; each is one module here that registers itself in ``TRACKERS`` and imports its
package only when a run uses it (``pip install 'genloop[mlflow]'``, ``[wandb]``,
``[tensorboard]`` or ``[all-trackers]``).  Per chain, each tracker gets one run of its
own that holds:

* the chain's resolved config, flattened to ``section.key`` parameters;
* one step per finished generation (step = generation) with every numeric column of
  that generation's metrics row (metric columns and timings; the chain's grid settings
  and seed are parameters, not metrics);
* the generation's sample grid (``grid.png``) or passages (``passages.json``), and at
  the end of the run the run folder's plots (``plots/*.png``).

Everything stays on this machine unless the user points a tracker elsewhere: MLflow
writes a local file store in ``RUN/tracking/mlruns`` (or to ``MLFLOW_TRACKING_URI``),
W&B runs in offline mode in ``RUN/tracking/wandb`` (``WANDB_MODE=online`` uploads),
TensorBoard writes event files in ``RUN/tracking/tensorboard/<chain>``.

Where it runs: rows reach the process that called ``genloop.run`` (``on_generation``)
whether the chains run there, in ``--workers`` processes or on Ray, so every tracker
runs in that one process only; workers never import a tracker package.

Resume: ``RUN/tracking/state.json`` records per tracker and chain its run id and the
generations logged so far.  A resumed or extended run reopens the same tracker run
(MLflow: the same run id; W&B: the same run id, as one more offline directory that
``wandb sync`` merges; TensorBoard: the same folder, with ``purge_step``) and logs only
the generations not logged yet, so no generation is logged twice.  Adding ``tracking``
to a finished run folder logs its finished generations (tracking is not part of a
chain's identity).

Failures: a tracker that cannot start (package missing, bad URI) or raises while
logging is switched off for the rest of the run with one warning line; the run itself
never stops because of a tracker.
"""
from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any, Iterator, Optional

from ..registry import Registry
from ..runfolder import Layout

log = logging.getLogger(__name__)

TRACKERS: Registry = Registry("tracker")

# Row columns that identify a generation; never logged as metrics.
ID_COLUMNS = ("chain", "seed", "generation")
# RUN/tracking/state.json is rewritten after a logged generation at most this often (seconds),
# always when a tracker run starts and at the end.
STATE_INTERVAL = 2.0


class TrackerUnavailable(RuntimeError):
    """A tracker's package is not installed (the message says what to install)."""


def import_package(module: str, extra: str) -> Any:
    """``importlib.import_module(module)``, or ``TrackerUnavailable`` naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise TrackerUnavailable(f"the {module} package is not installed ({exc}); "
                                 f"pip install 'genloop[{extra}]'") from None


class Tracker:
    """One tracker's run for one chain.  A tracker module registers a subclass::

        @TRACKERS.register("mlflow")
        class MLflowTracker(Tracker): ...

    ``__init__`` opens (or, with ``state`` from an earlier session, reopens) the run;
    ``state`` is a dict the tracker may fill with what it needs to reopen the run
    (e.g. ``run_id``); it is saved in ``RUN/tracking/state.json``.  ``new`` is True
    when no earlier session logged this chain (log the parameters then).

    ``state_every_step``: True for a tracker that cannot tell by itself what an earlier
    session logged (``logged_until`` None) and cannot hide it either; the state file is
    then saved after each of its generations, not every ``STATE_INTERVAL`` seconds."""

    state_every_step = False

    def __init__(self, root: Path, chain: str, experiment: str, params: dict, tags: dict,
                 state: dict, first_step: int) -> None:
        self.root, self.chain, self.experiment = Path(root), chain, experiment
        self.params, self.tags, self.state, self.first_step = params, tags, state, first_step

    def logged_until(self) -> Optional[int]:
        """Generations the tracker itself knows are logged (None: it cannot tell); the manager
        skips up to the larger of this and the state file's count."""
        return None

    def log_generation(self, step: int, metrics: dict, files: list) -> None:
        raise NotImplementedError

    def log_plots(self, step: int, plots: list) -> None:
        raise NotImplementedError

    def close(self, status: str) -> None:
        """``status``: "finished", "failed" or "killed" (interrupted)."""


def flat_params(cfg_dict: dict, prefix: str = "") -> dict:
    """A resolved config as ``section.key -> value``."""
    out: dict = {}
    for k, v in cfg_dict.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_params(v, key + "."))
        else:
            out[key] = v
    return out


def metric_values(row: dict, exclude: Any = ()) -> dict:
    """The numeric columns of a metrics row, as floats (not the id columns, not ``exclude``,
    not booleans; NaN kept: a metric that could not be computed is still a step)."""
    out = {}
    for k, v in row.items():
        if k in ID_COLUMNS or k in exclude or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        out[k] = float(v)
    return out


def generation_files(gen_dir: Path) -> list[Path]:
    """A finished generation's previews: its sample grids (one per lineage) or passages."""
    if not gen_dir.is_dir():
        return []
    return sorted(p for p in gen_dir.iterdir() if p.is_file() and Layout.is_preview(p))


class Tracking:
    """The trackers of one ``Experiment``, fed in the process that runs the sweep: ``on_row``
    for each finished generation, ``close`` at the end (backfills what was not logged yet,
    logs the plots, ends the tracker runs)."""

    def __init__(self, exp: Any) -> None:
        from ..loading import to_dict

        self.store = exp.store
        self.root = Path(exp.store.root)
        self.chains = {ch.id: ch for ch in exp.chains}
        self.names = {ch.id: list(dict.fromkeys(ch.config.tracking)) for ch in exp.chains}
        self._to_dict = to_dict
        self.open: dict[tuple[str, str], Tracker] = {}
        self.disabled: set[str] = set()
        self.state: Optional[dict] = None
        self.seconds: dict[str, float] = {}  # time spent in each tracker (logged at the end)
        self.steps: dict[str, int] = {}  # generations each tracker logged in this session
        self._saved = 0.0

    # ------------------------------------------------------------------ state
    @property
    def state_path(self) -> Path:
        return self.store.tracking_dir / "state.json"

    def _state(self) -> dict:
        if self.state is None:
            from ..runfolder import read_json

            try:
                self.state = read_json(self.state_path) if self.state_path.exists() else {}
            except (OSError, ValueError) as exc:
                log.warning("%s is unreadable (%s); the trackers start new runs", self.state_path, exc)
                self.state = {}
        return self.state

    def _save_state(self, force: bool = True) -> None:
        """Write the state file (atomically); ``force=False``: at most every ``STATE_INTERVAL``
        seconds (a state file that lags behind only makes a resume offer generations again,
        which each tracker skips: see the module docstring)."""
        from ..runfolder import write_json

        now = time.perf_counter()
        if force or now - self._saved >= STATE_INTERVAL:
            write_json(self.state_path, self.state)
            self._saved = now

    def _chain_state(self, name: str, chain: str) -> dict:
        st = self._state().setdefault(name, {}).setdefault(chain, {})
        st.setdefault("logged", 0)
        return st

    # ------------------------------------------------------------------ failures
    def _fail(self, name: str, exc: BaseException) -> None:
        """Switch ``name`` off for the rest of the run, with one warning line."""
        if name in self.disabled:
            return
        self.disabled.add(name)
        why = str(exc) if isinstance(exc, TrackerUnavailable) else f"{type(exc).__name__}: {exc}"
        why = (why.strip().splitlines() or [type(exc).__name__])[0]
        log.warning("tracker %s is off for the rest of this run (%s); the run goes on", name, why)
        for (n, chain), tr in list(self.open.items()):
            if n == name:
                del self.open[(n, chain)]
                with contextlib.suppress(Exception):
                    tr.close("failed")

    def _call(self, name: str, fn: Any, *args: Any) -> Any:
        """``fn(*args)``; an exception switches the tracker off (check ``name in self.disabled``)."""
        if name in self.disabled:
            return None
        t0 = time.perf_counter()
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - a tracker never stops the run
            self._fail(name, exc)
            return None
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    # ------------------------------------------------------------------ logging
    def _tracker(self, name: str, chain: str) -> Optional[Tracker]:
        """The open tracker run of (name, chain), opened (or reopened) on first use."""
        key = (name, chain)
        if key in self.open:
            return self.open[key]
        if name in self.disabled:
            return None
        ch = self.chains[chain]
        st = self._chain_state(name, chain)
        params = flat_params(self._to_dict(ch.config))
        tags = {"genloop.run_folder": str(self.root.resolve()), "genloop.chain": chain,
                **{f"genloop.setting.{k}": str(v) for k, v in ch.varied.items()}}

        def make() -> Tracker:
            return TRACKERS.get(name)(self.root, chain, ch.config.name, params, tags, st, int(st["logged"]))

        tr = self._call(name, make)
        if tr is None:
            return None
        self.open[key] = tr
        known = self._call(name, tr.logged_until)
        if name in self.disabled:
            return None
        if known is not None and known > st["logged"]:
            st["logged"] = int(known)
        self._save_state()
        return tr

    def _log_rows(self, name: str, chain: str, rows: list) -> None:
        """Log ``rows`` (consecutive generations of ``chain``) not logged yet; generations
        before the first of them that are not logged yet are read from the run folder."""
        tr = self._tracker(name, chain)
        if tr is None:
            return
        st = self._chain_state(name, chain)
        varied = self.chains[chain].varied
        rows = [r for r in rows if int(r["generation"]) >= st["logged"]]
        if rows and int(rows[0]["generation"]) > st["logged"]:  # e.g. tracking added to a started folder
            first = int(rows[0]["generation"])
            rows = [r for r in self.store.chain_rows(chain, st["logged"], varied=varied)
                    if int(r["generation"]) < first] + rows
        for row in rows:
            g = int(row["generation"])
            if g != st["logged"]:
                break  # a gap the run folder cannot fill yet
            files = generation_files(self.store.gen_dir(chain, g))
            self._call(name, tr.log_generation, g, metric_values(row, varied), files)
            if name in self.disabled:
                return
            st["logged"] = g + 1
            self.steps[name] = self.steps.get(name, 0) + 1
            self._save_state(force=tr.state_every_step)

    def on_row(self, row: dict) -> None:
        """One finished generation's row (in the process running the sweep)."""
        chain = row.get("chain")
        for name in self.names.get(chain, []):
            try:
                self._log_rows(name, chain, [row])
            except Exception as exc:  # noqa: BLE001 - e.g. the state file cannot be written
                self._fail(name, exc)

    def close(self, status: str) -> None:
        """After a run that finished: log what is not logged yet (every finished generation of
        every chain) and the plots, when they show generations they were not logged with yet.
        Then end every tracker run.  After a run that failed or was interrupted, only the
        trackers it opened are ended (a run stopped by another's lock touches nothing)."""
        plots = sorted(self.store.plots_dir.glob("*.png")) if self.store.plots_dir.is_dir() else []
        for chain, names in self.names.items() if status == "finished" else ():
            for name in names:
                if name in self.disabled:
                    continue
                try:
                    st = self._chain_state(name, chain)
                    if st["logged"] < self.store.finished_generations(chain):
                        self._log_rows(name, chain, self.store.chain_rows(chain, st["logged"],
                                                                            varied=self.chains[chain].varied))
                    if not plots or st.get("plots") == st["logged"] or name in self.disabled:
                        continue
                    tr = self._tracker(name, chain)
                    if tr is None:
                        continue
                    self._call(name, tr.log_plots, max(st["logged"] - 1, 0), plots)
                    if name not in self.disabled:
                        st["plots"] = st["logged"]
                        self._save_state()
                except Exception as exc:  # noqa: BLE001 - e.g. the state file cannot be written
                    self._fail(name, exc)
        for (name, chain), tr in list(self.open.items()):
            self._call(name, tr.close, status)
        self.open.clear()
        if self.state is not None:
            with contextlib.suppress(OSError):
                self._save_state()
        for name, seconds in self.seconds.items():
            log.info("tracker %s logged %d generation(s) in %.2fs (start, logging and end of its runs)",
                     name, self.steps.get(name, 0), seconds)


@contextlib.contextmanager
def tracked(exp: Any) -> Iterator[Optional[Tracking]]:
    """Feed the experiment trackers of ``exp``'s chains (config key ``tracking``) with every
    finished generation while the block runs (through ``exp.on_generation``), then close them;
    yields None (and does nothing) when no chain names a tracker."""
    if not any(ch.config.tracking for ch in exp.chains):
        yield None
        return
    tracking = Tracking(exp)
    user = exp.on_generation

    def on_generation(row: dict) -> None:
        if user is not None:
            user(row)
        tracking.on_row(row)

    exp.on_generation = on_generation
    status = "failed"
    try:
        yield tracking
        status = "finished"
    except KeyboardInterrupt:
        status = "killed"
        raise
    finally:
        exp.on_generation = user
        tracking.close(status)
