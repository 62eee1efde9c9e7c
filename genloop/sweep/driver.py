"""``run_sweep``: the settings checked, GPUs and threads resolved, the run folder locked
and prepared, the backend chosen and run, failures raised at the end."""
from __future__ import annotations

import logging
from typing import Any, Optional, Union

from ..config import ConfigError
from ..runfolder import update_lock
from .base import Backend
from .gpus import local_gpu_plan, resolve_gpus
from .inline import InlineBackend
from .local import LocalBackend
from .policy import DEFAULT_RETRIES, FailurePolicy
from .pool import POLL_SECONDS
from .progress import Progress
from .ray_backend import RayBackend, ray_gpus_per_node
from .threads import resolve_workers

log = logging.getLogger(__package__)  # one logger for the whole sweep: "genloop.sweep"

BACKENDS = ("local", "ray")


def _check_arguments(backend: str, retries: Any, address: Optional[str]) -> None:
    if backend not in BACKENDS:
        raise ConfigError(f"--backend: {backend!r} is not a backend (choose one of: {', '.join(BACKENDS)})")
    if retries is None or int(retries) < 0:
        raise ConfigError(f"--retries: {retries!r} must be 0 or more")
    if address and backend != "ray":
        raise ConfigError("--address is only used with --backend ray")


def run_sweep(exp: Any, workers: Union[int, str, None] = 1, backend: str = "local", address: Optional[str] = None,
              retries: int = DEFAULT_RETRIES, threads: Optional[int] = None,
              poll_seconds: float = POLL_SECONDS, gpus_per_chain: Optional[float] = None,
              return_rows: bool = True) -> Optional[list[dict]]:
    """Run every unfinished chain of ``exp`` (an ``Experiment``); returns the metric rows
    (None with ``return_rows=False``: a big sweep's driver then holds no rows).

    ``gpus_per_chain`` (None: ``sweep.gpus_per_chain`` of the config, else the default:
    1 when CUDA devices exist and the device is not cpu, else 0).  See the package
    docstring for the modes, retries and reproducibility."""
    _check_arguments(backend, retries, address)
    if gpus_per_chain is None:
        gpus_per_chain = exp.chains[0].config.sweep.gpus_per_chain if exp.chains else None
    n_workers, n_threads = resolve_workers(workers, backend, len(exp.chains), threads)
    # a clear error before any work when ray is missing
    ray_pool = RayBackend(address, cap=n_workers, poll_seconds=poll_seconds) if backend == "ray" else None
    try:
        # GPUs first: a request the machine cannot meet stops before the run folder is touched
        slots: list = []
        if ray_pool is not None:
            gpus = resolve_gpus(gpus_per_chain, ray_gpus_per_node(ray_pool.ray), exp.chains,
                                where="on any node of the Ray cluster")
            ray_pool.configure(n_threads, gpus)
        else:
            gpus, n_workers, slots = local_gpu_plan(gpus_per_chain, workers, n_workers, exp.chains)
        if gpus:
            log.info("%g GPU(s) per chain (%s)", gpus, backend)
        exp.check_data()  # settings checked against the real data (sizes), before the folder is touched
        with exp.store.lock():  # one writer per run folder; stops here, naming the holder, if another run has it
            _sweep_locked(exp, backend, ray_pool, slots, n_workers, n_threads, int(retries), poll_seconds)
    finally:
        if ray_pool is not None:
            ray_pool.shutdown()
    return exp.store.metric_rows() if return_rows else None


def _backend_for(pending: list, ray_pool: Optional[RayBackend], slots: list, n_workers: Optional[int],
                 poll_seconds: float) -> Backend:
    """Ray when asked for; one worker: the chains in this process (with its devices);
    else a local pool of at most one worker per pending chain."""
    if ray_pool is not None:
        return ray_pool
    if n_workers == 1:
        return InlineBackend()
    envs = [{"CUDA_VISIBLE_DEVICES": d} if d is not None else {} for d in slots[:len(pending)]]
    return LocalBackend(envs, poll_seconds=poll_seconds)


def _sweep_locked(exp: Any, backend: str, ray_pool: Optional[RayBackend], slots: list, n_workers: Optional[int],
                  n_threads: int, retries: int, poll_seconds: float) -> None:
    """``run_sweep``'s work while it holds the run folder's lock: prepare, then the chains."""
    store = exp.store
    exp.prepare()  # the parent trains the shared classifier once (cached in RUN/cache)
    pending = [ch for ch in exp.chains if store.finished_generations(ch.id) < ch.config.loop.generations]
    done_before = len(exp.chains) - len(pending)
    if done_before:
        log.info("%d of %d chains already finished; running the other %d", done_before, len(exp.chains),
                 len(pending))
    update_lock(store.root, backend=backend, workers=n_workers, threads=n_threads,
                chains=len(exp.chains), pending=len(pending))
    progress = Progress(exp)
    runner = _backend_for(pending, ray_pool, slots, n_workers, poll_seconds)
    policy = FailurePolicy(store, retries, in_workers=runner.in_workers)
    try:
        if pending:
            runner.run(exp, pending, n_threads, policy, progress)
    finally:
        progress.close()
        exp.write_tables()
        exp.prune_shared()
    policy.raise_failures()
