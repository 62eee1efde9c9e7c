"""One chain attempt outside the sweep's own process: in a local worker process or a Ray
task (``run_one_chain``).  Every such attempt starts in ``start_worker``, the one place
where a worker sets itself up before it resolves anything of the config."""
from __future__ import annotations

import json
import logging
import traceback
from typing import Any

from ..config import ConfigError
from ..data import DataError
from ..generators import TrainingDiverged
from ..loop.experiment import Experiment
from .policy import outcome
from .threads import limit_threads

_EXPERIMENTS: dict = {}  # (config, run folder) -> Experiment, reused by the chains a worker process runs


def start_worker(raw: dict, chain_id: str, log_level: int) -> None:
    """What every worker (a local worker process or a Ray task) does before its chain:
    logs that name the chain; the components (built-ins and the config's plugins)
    registered before anything is resolved."""
    logging.basicConfig(level=log_level, format=f"%(levelname)s %(name)s [{chain_id}]: %(message)s")
    from ..builtins import load as load_builtins

    load_builtins(raw.get("plugins"))


def _worker_experiment(raw: dict, out_dir: str, share_models: bool = True) -> Any:
    """The worker's ``Experiment`` of ``raw`` in ``out_dir``: built once per process, so that
    the chains a worker runs one after the other share the real data and metric set-up."""
    key = (json.dumps(raw, sort_keys=True, default=str), out_dir, share_models)
    exp = _EXPERIMENTS.get(key)
    if exp is None:
        _EXPERIMENTS.clear()
        # The parent rewrites the tables as generations finish; workers writing them
        # too would only race with it (each write is atomic, but could be stale).
        exp = _EXPERIMENTS[key] = Experiment(raw, out_dir, keep_tables=False, share_models=share_models)
    return exp


def run_one_chain(raw: dict, out_dir: str, chain_id: str, threads: int,
                  log_level: int = logging.WARNING, share_models: bool = True) -> tuple[str, str]:
    """Run (or resume) one chain of ``raw`` in ``out_dir`` in this process, with
    ``threads`` torch threads (``share_models``: see ``Experiment``).  Returns ("ok" | "diverged" | "invalid" | "error", message);
    never raises (a worker's result must reach the parent)."""
    try:
        start_worker(raw, chain_id, log_level)
        exp = _worker_experiment(raw, out_dir, share_models)
        chain = next((c for c in exp.chains if c.id == chain_id), None)
        if chain is None:
            return "error", f"chain {chain_id!r} is not in the config"
        try:
            with limit_threads(threads):
                exp.run_chain(chain)
        except (TrainingDiverged, ConfigError, DataError, SystemExit) as exc:  # the same again on a retry
            return outcome(exc, chain_id)
        return "ok", ""
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which decides
        if isinstance(exc, KeyboardInterrupt):
            return "error", "interrupted"
        return "error", traceback.format_exc()[-6000:]
