"""Run the chains of an experiment's grid: one at a time, in parallel worker
processes on this machine, or as tasks on a Ray cluster.

``run_sweep(exp, workers, backend, address, retries, threads)``:

* The parent calls ``exp.prepare()`` first: it checks or creates the run folder,
  writes the chain list and trains the shared domain classifier once (cached in
  ``RUN/cache``, where every worker finds it).
* The parent holds the run folder's lock (``RunStore.lock``) from ``prepare`` to the
  end: a second run on the same folder stops at once naming the holder.  Workers
  and Ray tasks take no lock (their parent holds it for them).
* A chain that fails for good leaves ``chains/<chain>/FAILED.json`` (its last error
  line, for ``genloop status``), removed when the chain later finishes.
* Chains whose every generation is finished are never run again; the others
  run through ``Experiment.run_chain``, which resumes at the first unfinished
  generation (and inside it from the training checkpoint).
* ``backend="local"``, ``workers=1``: the chains run in this process side by side,
  generation by generation (generation 0 of every chain first, then generation 1,
  ...), so tables and report fill evenly; a resumed or extended run catches its
  chains up the same way.  ``workers=N > 1``: each chain runs in a fresh worker process
  (``spawn``), at most N at once.  ``workers="auto"``: as many workers as fit the
  cores (at most one per chain).
* ``backend="ray"``: each chain is a Ray task on the cluster at ``address``
  (``auto``, ``ray://host:10001``, ...) or on a local Ray started for the run when
  ``address`` is None.  The run folder must be on storage every Ray node can
  read and write (the same path), and genloop must be installed on the nodes.
  Ray is imported only here, only when asked for (``pip install genloop[ray]``).
* A worker that dies (killed, out of memory, an unexpected exception) is retried
  up to ``retries`` times; each retry resumes from the chain's last finished
  generation.  A chain whose training diverged (``TrainingDiverged``) is not
  retried: it would diverge again.  Failures are raised at the end, after every
  other chain has finished.
* Progress: the parent watches the run folder (``DONE`` markers, written last by
  each generation), calls ``exp.on_generation(row)`` once per newly finished
  generation of any chain, rewrites the tables and advances one progress bar for
  the whole sweep (generations finished / total).

Chains that differ only in sampling options share the model of a generation that
trains on identical data (``genloop.loop.sharing``; in every mode, through
``RUN/cache/models``); the parent removes shared models every chain is past.

Reproducibility: the numbers of a chain do not depend on where, in which order or
alongside what it runs, only on the config and on the number of torch CPU threads (reductions
are split differently with more threads).  Every chain runs with exactly
``threads`` torch threads (and as many BLAS / OpenMP threads for numpy and scipy,
through threadpoolctl) in every mode, so a sweep run with ``--workers 2`` and
one run one chain at a time give identical numbers *at equal thread counts*
(``--threads``).  The default, ``threads = cores // workers`` (``cores`` = torch's
thread count in the parent, by default the physical cores), differs between
``--workers 1`` and ``--workers 2``; pass ``--threads`` to compare runs.  Ray
tasks default to 1 thread (and reserve ``num_cpus=threads``).  The shared
classifier is trained in the parent with the parent's thread count in every mode.

When workers pay off: a chain that already keeps every core busy with its torch
threads gains little from running beside others.  On a 2-core machine the default
digits job runs a generation in 7.5 s with 2 threads and 11.2 s with 1 thread
beside a second chain, so ``--workers 2`` is only 1.19x faster than ``--workers 1``
on 9 chains x 10 generations (benchmarks/bench_sweep.py); at equal threads it is
1.58x faster.  Many cores or
small models (poor thread scaling) are where workers help.  In scripts, start a
sweep with workers under ``if __name__ == "__main__":`` (the workers are spawned
processes, which import the main module).
"""
from __future__ import annotations

import contextlib
import logging
import os
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from .store import update_lock
from .utils import beat, heartbeat_due, mark_activity

log = logging.getLogger(__name__)

BACKENDS = ("local", "ray")
DEFAULT_RETRIES = 2
POLL_SECONDS = 0.5


class SweepError(RuntimeError):
    """Chains failed after every retry (finished generations are kept in the run folder)."""


def _config_error(msg: str) -> Exception:
    from .config import ConfigError

    return ConfigError(msg)


def cores() -> int:
    """CPU threads available to this process for torch: torch's intra-op thread
    count (the physical cores unless OMP_NUM_THREADS or torch.set_num_threads say otherwise)."""
    import torch

    return max(1, torch.get_num_threads())


def resolve_workers(workers: Union[int, str, None], backend: str, n_chains: int,
                    threads: Optional[int] = None, ncores: Optional[int] = None) -> tuple[Optional[int], int]:
    """(chains run at once, torch threads per chain) for a sweep of ``n_chains`` chains.

    Local: ``None`` -> 1 worker; ``"auto"`` -> as many as fit the cores (``cores //
    threads`` when ``threads`` is given, else one per core), at most one per chain.
    Threads default to ``cores // workers``.  Ray: ``None`` or ``"auto"`` -> no limit
    (Ray schedules by ``num_cpus=threads``); threads default to 1.  Neither depends on
    how many chains are left, so a resumed sweep uses the same thread count."""
    ncores = ncores or cores()
    if threads is not None and (isinstance(threads, bool) or int(threads) < 1):
        raise _config_error(f"--threads: {threads!r} must be a positive integer")
    if isinstance(workers, str):
        if workers.strip().lower() != "auto":
            try:
                workers = int(workers)
            except ValueError:
                raise _config_error(f"--workers: {workers!r} is not a number or 'auto'") from None
        else:
            workers = "auto"
    if workers != "auto" and workers is not None and (isinstance(workers, bool) or int(workers) < 1):
        raise _config_error(f"--workers: {workers!r} must be a positive integer or 'auto'")
    if backend == "ray":
        cap = None if workers in (None, "auto") else int(workers)
        return cap, int(threads) if threads else 1
    if workers is None:
        n = 1
    elif workers == "auto":
        n = max(1, min(ncores // int(threads) if threads else ncores, max(n_chains, 1)))
    else:
        n = int(workers)
    return n, int(threads) if threads else max(1, ncores // n)


# --------------------------------------------------------------------------- progress


class _Progress:
    """Counts finished generations per chain, reports new ones (``on_generation``),
    rewrites the tables and drives one tqdm bar for the whole sweep.  Polling looks at a
    chain's files again only when its row log grew or its next generation folder appeared,
    and holds no rows (memory bounded by the number of chains)."""

    def __init__(self, exp: Any) -> None:
        self.exp = exp
        self.store = exp.store
        self.known = {ch.id: self.store.finished_generations(ch.id) for ch in exp.chains}
        self.log_size = {ch.id: -1 for ch in exp.chains}
        self.planned = {ch.id: ch.config.loop.generations for ch in exp.chains}
        self.total = sum(self.planned.values())
        self.callback: Optional[Callable[[dict], None]] = exp.on_generation
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        self.bar = tqdm(total=self.total, initial=sum(self.known.values()), desc="sweep", unit="gen",
                        disable=not exp.progress, dynamic_ncols=True, leave=True, mininterval=0.5)

    def report(self, row: dict) -> None:
        """One finished generation: advance the bar, call the user's callback."""
        self.known[row["chain"]] = max(self.known.get(row["chain"], 0), int(row["generation"]) + 1)
        self.bar.update(1)
        mark_activity()
        if self.callback is not None:
            if self.bar.disable:
                self.callback(row)
            else:
                with self._tqdm.external_write_mode():
                    self.callback(row)

    def _changed(self, chain: str) -> bool:
        try:
            size = self.store.rows_log_path(chain).stat().st_size
        except FileNotFoundError:
            size = -1
        grew = size != self.log_size[chain]
        self.log_size[chain] = size
        return grew or self.store.has_folder(chain, self.known[chain])

    def poll(self) -> int:
        """Report generations finished (by any process) since the last poll."""
        new = 0
        for ch in self.exp.chains:
            if not self._changed(ch.id):
                continue
            for row in self.store.chain_rows(ch.id, self.known[ch.id], varied=ch.varied):
                self.report(row)
                new += 1
        if new:
            self.exp.write_tables(force=False)
        elif self.bar.disable and heartbeat_due():  # workers log no heartbeat of their own: one here
            beat("%d of %d generations finished; %d chain(s) not finished", sum(self.known.values()), self.total,
                 sum(1 for c, n in self.known.items() if n < self.planned[c]))
        return new

    def close(self) -> None:
        self.bar.close()


# --------------------------------------------------------------------------- one chain in a worker


def limit_threads(threads: int) -> Any:
    """Context: ``threads`` threads for torch and for the BLAS / OpenMP pools numpy and
    scipy use (threadpoolctl, which scikit-learn brings), restored on exit; the same in
    every mode, so that no library splits its sums differently in one mode than in another."""
    import torch

    saved = torch.get_num_threads()
    stack = contextlib.ExitStack()
    try:
        from threadpoolctl import threadpool_limits

        stack.enter_context(threadpool_limits(limits=int(threads)))
    except Exception:  # noqa: BLE001 - threadpoolctl missing or a library it cannot drive
        pass
    torch.set_num_threads(int(threads))
    stack.callback(torch.set_num_threads, saved)
    return stack


_EXPERIMENTS: dict = {}  # (config, run folder) -> Experiment, reused by the chains a worker process runs


def _worker_experiment(raw: dict, out_dir: str, share_models: bool = True) -> Any:
    """The worker's ``Experiment`` of ``raw`` in ``out_dir``: built once per process, so that
    the chains a worker runs one after the other share the real data and metric set-up."""
    import json

    from .loop.experiment import Experiment

    key = (json.dumps(raw, sort_keys=True, default=str), out_dir, share_models)
    exp = _EXPERIMENTS.get(key)
    if exp is None:
        _EXPERIMENTS.clear()
        # The parent rewrites the tables as generations finish; workers writing them
        # too would only race with it (each write is atomic, but could be stale).
        exp = _EXPERIMENTS[key] = Experiment(raw, out_dir, keep_tables=False, share_models=share_models)
    return exp


def plugin_exit_message(chain_id: str, exc: SystemExit) -> str:
    return (f"chain {chain_id}: a component called sys.exit({exc.code!r}) (a plugin must raise an exception "
            "instead); finished generations are kept, fix the plugin and rerun to resume")


def run_one_chain(raw: dict, out_dir: str, chain_id: str, threads: int,
                  log_level: int = logging.WARNING, share_models: bool = True) -> tuple[str, str]:
    """Run (or resume) one chain of ``raw`` in ``out_dir`` in this process, with
    ``threads`` torch threads (``share_models``: see ``Experiment``).  Returns ("ok" | "diverged" | "invalid" | "error", message);
    never raises (a worker's result must reach the parent)."""
    try:
        logging.basicConfig(level=log_level, format=f"%(levelname)s %(name)s [{chain_id}]: %(message)s")
        from .config import ConfigError
        from .data import DataError
        from .generators import TrainingDiverged
        from .builtins import load as load_builtins

        load_builtins(raw.get("plugins"))  # built-ins and the config's plugins, before anything is resolved
        exp = _worker_experiment(raw, out_dir, share_models)
        chain = next((c for c in exp.chains if c.id == chain_id), None)
        if chain is None:
            return "error", f"chain {chain_id!r} is not in the config"
        try:
            with limit_threads(threads):
                exp.run_chain(chain)
        except TrainingDiverged as exc:
            return "diverged", str(exc)
        except (ConfigError, DataError) as exc:  # the same again on a retry
            return "invalid", f"{type(exc).__name__}: {exc}"
        except SystemExit as exc:  # a component (a plugin's) exited: a plugin error, never retried
            return "invalid", plugin_exit_message(chain_id, exc)
        return "ok", ""
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which decides
        if isinstance(exc, KeyboardInterrupt):
            return "error", "interrupted"
        return "error", traceback.format_exc()[-6000:]


def _die_with_parent() -> None:
    """Linux: ask the kernel to SIGTERM this worker when the parent dies, so a killed
    sweep leaves no orphan writing into the run folder."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort, not on every platform
        pass


def _local_worker(conn: Any, env: dict) -> None:
    """A worker process: runs the calls it is sent (``(function, args)``), one at a time,
    and sends back each result, until it is sent None or its parent goes away."""
    _die_with_parent()
    os.environ.update(env)  # already set at spawn; before anything imports torch
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        target, args = msg
        conn.send(target(*args))


# --------------------------------------------------------------------------- GPUs


def cuda_devices() -> list[str]:
    """The CUDA devices this process may use, as ``CUDA_VISIBLE_DEVICES`` names them
    (indices when it is unset)."""
    import torch

    n = torch.cuda.device_count()
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [x.strip() for x in env.split(",") if x.strip()][:n]
    return [str(i) for i in range(n)]


def _check_fraction(f: Any) -> float:
    if isinstance(f, bool) or not isinstance(f, (int, float)) or not f >= 0:
        raise _config_error(f"--gpus-per-chain: {f!r} must be a number >= 0 (e.g. 1, 0.25)")
    if f > 1 and not float(f).is_integer():
        raise _config_error(f"--gpus-per-chain: {f:g} cannot be split over GPUs; use a fraction <= 1 "
                            "(chains share a GPU) or a whole number")
    return float(f)


def resolve_gpus(gpus_per_chain: Optional[float], n_gpus: int, chains: list, where: str = "here") -> float:
    """GPUs per chain: the request, or by default 1 when there are GPUs (``n_gpus``) and
    some chain's device is not ``cpu``, else 0.  A request that no machine with ``n_gpus``
    GPUs can meet is a ``ConfigError`` (one line)."""
    if gpus_per_chain is None:
        wants = any(ch.config.device != "cpu" for ch in chains)
        return 1.0 if n_gpus and wants else 0.0
    f = _check_fraction(gpus_per_chain)
    if f > 0 and n_gpus == 0:
        raise _config_error(f"--gpus-per-chain {f:g}: no CUDA device is visible {where} "
                            "(use --gpus-per-chain 0, or run where torch.cuda.device_count() > 0)")
    if f > n_gpus:
        raise _config_error(f"--gpus-per-chain {f:g}: a chain asks for {f:g} GPUs but only {n_gpus} exist {where}")
    return f


def gpu_slots(n_workers: int, gpus_per_chain: float, devices: list[str]) -> list[Optional[str]]:
    """``CUDA_VISIBLE_DEVICES`` of each local worker: disjoint devices, packed by
    ``gpus_per_chain`` (0.25: four workers per GPU; 2: two GPUs per worker); None for
    each worker when no GPU is asked for.  More workers than the GPUs hold: ``ConfigError``."""
    if not gpus_per_chain:
        return [None] * n_workers
    if gpus_per_chain >= 1:
        k = int(gpus_per_chain)
        capacity = len(devices) // k
        slots = [",".join(devices[i * k:(i + 1) * k]) for i in range(min(n_workers, capacity))]
    else:
        per = int(1 / gpus_per_chain + 1e-9)
        capacity = per * len(devices)
        slots = [devices[i // per] for i in range(min(n_workers, capacity))]
    if n_workers > capacity:
        raise _config_error(f"--workers {n_workers} with --gpus-per-chain {gpus_per_chain:g} needs more GPUs than the "
                            f"{len(devices)} here (at most {capacity} workers); use --workers {capacity} or a smaller "
                            "--gpus-per-chain")
    return slots


# --------------------------------------------------------------------------- backends


@dataclass
class _Job:
    chain_id: str
    attempt: int
    handle: Any = None
    extra: dict = field(default_factory=dict)


class _Slot:
    """One worker process of the local pool and the job it runs (None: idle)."""

    def __init__(self, env: dict) -> None:
        self.env = env
        self.proc: Any = None
        self.conn: Any = None
        self.job: Optional[_Job] = None


class _LocalBackend:
    """A pool of ``spawn``-ed worker processes, each running chain after chain (the
    import of torch and the set-up of the data and metrics are paid once per worker, not
    once per chain).  A worker that dies is a failed attempt of its chain; the next chain
    given to its slot starts a fresh process.  Worker i gets the environment
    ``envs[i]`` (its ``CUDA_VISIBLE_DEVICES``) from its start."""

    name = "local"

    def __init__(self, envs: list[dict], target: Optional[Callable] = None) -> None:
        import multiprocessing as mp

        self.ctx = mp.get_context("spawn")
        self.slots = [_Slot(env) for env in envs]
        self.target = target or run_one_chain
        self.running: dict[str, _Job] = {}

    def _start(self, slot: _Slot) -> None:
        recv, send = self.ctx.Pipe(duplex=True)
        p = self.ctx.Process(target=_local_worker, args=(send, slot.env), name="genloop~idle", daemon=True)
        saved = {k: os.environ.get(k) for k in slot.env}
        os.environ.update(slot.env)  # the spawned interpreter starts with it
        try:
            p.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        send.close()
        slot.proc, slot.conn = p, recv

    def submit(self, job: _Job, *args: Any) -> None:
        slot = next(s for s in self.slots if s.job is None)
        if slot.proc is None or not slot.proc.is_alive():
            self._close(slot)
            self._start(slot)
        slot.conn.send((self.target, args))
        slot.proc.name = f"genloop-{job.chain_id}"
        slot.job = job
        job.handle = slot
        self.running[job.chain_id] = job

    @staticmethod
    def _close(slot: _Slot) -> None:
        if slot.proc is not None:
            slot.proc.join(5)
        if slot.conn is not None:
            slot.conn.close()
        slot.proc = slot.conn = None

    def wait(self, timeout: float) -> list[tuple[_Job, str, str]]:
        from multiprocessing.connection import wait

        busy = [s for s in self.slots if s.job is not None]
        if not busy:
            return []
        wait([s.conn for s in busy] + [s.proc.sentinel for s in busy], timeout)
        out = []
        for slot in busy:
            result = None
            try:
                if slot.conn.poll():
                    result = slot.conn.recv()
            except (EOFError, OSError):
                result = None
            if result is None and slot.proc.is_alive():
                continue
            job, slot.job = slot.job, None
            del self.running[job.chain_id]
            if result is None:
                slot.proc.join(5)
                result = ("died", f"worker exited with code {slot.proc.exitcode}")
                self._close(slot)
            else:
                slot.proc.name = "genloop~idle"
            out.append((job, *result))
        return out

    def shutdown(self) -> None:
        for slot in self.slots:
            if slot.proc is None:
                continue
            if slot.job is None and slot.proc.is_alive():
                try:
                    slot.conn.send(None)
                except (BrokenPipeError, OSError):
                    slot.proc.terminate()
            elif slot.proc.is_alive():
                slot.proc.terminate()
        for slot in self.slots:
            if slot.proc is None:
                continue
            slot.proc.join(10)
            if slot.proc.is_alive():
                slot.proc.kill()
                slot.proc.join(5)
            slot.conn.close()
            slot.proc = slot.conn = None
            slot.job = None
        self.running.clear()


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise _config_error("--backend ray needs the optional ray package: pip install 'genloop[ray]' "
                            "(or pip install 'ray[default]')") from None
    return ray


def ray_gpus_per_node(ray: Any) -> int:
    """The most GPUs any live node of the Ray cluster has (what one task can be given)."""
    return int(max([n.get("Resources", {}).get("GPU", 0) for n in ray.nodes() if n.get("Alive")] or [0]))


class _RayBackend:
    """Each chain attempt is a Ray task (``num_cpus=threads``, ``num_gpus`` = GPUs per
    chain, so Ray gives the task its own ``CUDA_VISIBLE_DEVICES``; no Ray-level retries:
    the sweep retries, resuming from the run folder).  Ray reuses its worker processes,
    so many small chains do not each pay a process start."""

    name = "ray"

    def __init__(self, address: Optional[str]) -> None:
        ray = self.ray = import_ray()
        self.started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "configure_logging": True}
            if address:
                ray.init(address=address, **kwargs)
            else:  # a private local Ray for this run; small object store (chains pass no big objects)
                ray.init(include_dashboard=False, object_store_memory=200 * 1024 * 1024, **kwargs)
            self.started = True
        self.running: dict[str, _Job] = {}
        self.task: Any = None

    def configure(self, threads: int, gpus: float, target: Optional[Callable] = None) -> None:
        options: dict[str, Any] = {"num_cpus": threads, "max_retries": 0}
        if gpus:
            options["num_gpus"] = gpus
        self.task = self.ray.remote(**options)(target or run_one_chain)

    def submit(self, job: _Job, *args: Any) -> None:
        job.handle = self.task.remote(*args)
        self.running[job.chain_id] = job

    def wait(self, timeout: float) -> list[tuple[_Job, str, str]]:
        if not self.running:
            return []
        ray = self.ray
        refs = {j.handle: cid for cid, j in self.running.items()}
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
        out = []
        for ref in ready:
            job = self.running.pop(refs[ref])
            try:
                status, msg = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - worker crashed, node lost, ...
                status, msg = "died", f"{type(exc).__name__}: {exc}"[-6000:]
            out.append((job, status, msg))
        return out

    def shutdown(self) -> None:
        for job in self.running.values():
            try:
                self.ray.cancel(job.handle, force=True)
            except Exception:  # noqa: BLE001
                pass
        self.running.clear()
        if self.started:
            self.ray.shutdown()


# --------------------------------------------------------------------------- the sweep


def run_sweep(exp: Any, workers: Union[int, str, None] = 1, backend: str = "local", address: Optional[str] = None,
              retries: int = DEFAULT_RETRIES, threads: Optional[int] = None,
              poll_seconds: float = POLL_SECONDS, gpus_per_chain: Optional[float] = None,
              return_rows: bool = True) -> Optional[list[dict]]:
    """Run every unfinished chain of ``exp`` (an ``Experiment``); returns the metric rows
    (None with ``return_rows=False``: a big sweep's driver then holds no rows).

    ``gpus_per_chain`` (None: ``sweep.gpus_per_chain`` of the config, else the default:
    1 when CUDA devices exist and the device is not cpu, else 0).  See the module
    docstring for the modes, retries and reproducibility."""
    from .generators import TrainingDiverged

    if backend not in BACKENDS:
        raise _config_error(f"--backend: {backend!r} is not a backend (choose one of: {', '.join(BACKENDS)})")
    if retries is None or int(retries) < 0:
        raise _config_error(f"--retries: {retries!r} must be 0 or more")
    if address and backend != "ray":
        raise _config_error("--address is only used with --backend ray")
    if gpus_per_chain is None:
        gpus_per_chain = exp.chains[0].config.sweep.gpus_per_chain if exp.chains else None
    n_workers, n_threads = resolve_workers(workers, backend, len(exp.chains), threads)
    if backend == "ray":
        import_ray()  # a clear error before any work when ray is missing
    ray_pool = None
    gpus, devices, slots = 0.0, [], []
    if backend == "ray":
        ray_pool = _RayBackend(address)
    try:
        # GPUs first: a request the machine cannot meet stops before the run folder is touched
        if ray_pool is not None:
            gpus = resolve_gpus(gpus_per_chain, ray_gpus_per_node(ray_pool.ray), exp.chains,
                                where="on any node of the Ray cluster")
            ray_pool.configure(n_threads, gpus)
        else:
            devices = cuda_devices() if gpus_per_chain != 0 else []
            gpus = resolve_gpus(gpus_per_chain, len(devices), exp.chains)
            if gpus and isinstance(workers, str) and workers.strip().lower() == "auto":
                fit = len(devices) // int(gpus) if gpus >= 1 else int(1 / gpus + 1e-9) * len(devices)
                n_workers = max(1, min(int(n_workers), fit))  # as many as the GPUs hold
            slots = gpu_slots(min(int(n_workers), max(1, len(exp.chains))), gpus, devices) if n_workers != 1 else []
        if gpus:
            log.info("%g GPU(s) per chain (%s)", gpus, backend)
        exp.check_data()  # settings checked against the real data (sizes), before the folder is touched
        with exp.store.lock():  # one writer per run folder; stops here, naming the holder, if another run has it
            _sweep_locked(exp, backend, ray_pool, slots, n_workers, n_threads, int(retries), poll_seconds,
                          TrainingDiverged)
    finally:
        if ray_pool is not None:
            ray_pool.shutdown()
    return exp.store.metric_rows() if return_rows else None


def _sweep_locked(exp: Any, backend: str, ray_pool: Any, slots: list, n_workers: Optional[int], n_threads: int,
                  retries: int, poll_seconds: float, TrainingDiverged: type) -> None:
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
    progress = _Progress(exp)
    diverged: list[str] = []
    failed: list[str] = []
    try:
        if not pending:
            pass
        elif backend == "local" and n_workers == 1:  # in this process, with its devices
            _run_inline(exp, pending, n_threads, retries, progress, diverged, failed, TrainingDiverged)
        else:
            if ray_pool is not None:
                pool: Any = ray_pool
            else:
                slots = slots[:len(pending)]
                pool = _LocalBackend([{"CUDA_VISIBLE_DEVICES": d} if d is not None else {} for d in slots])
                n_workers = len(slots)
            _run_pool(exp, pending, pool, n_workers, n_threads, retries, progress,
                      diverged, failed, poll_seconds)
    finally:
        progress.close()
        exp.write_tables()
        exp.prune_shared()
    if failed:
        raise SweepError("; ".join(failed) + (f"; {'; '.join(diverged)}" if diverged else "")
                         + " (finished generations are kept in the run folder; rerun to resume)")
    if diverged:
        raise TrainingDiverged("; ".join(diverged) + " (finished generations are kept in the run folder)")


class _CallbackError(Exception):
    """An exception raised by the user's on_generation callback (never retried)."""


def _run_inline(exp: Any, pending: list, threads: int, retries: int, progress: _Progress,
                diverged: list, failed: list, TrainingDiverged: type) -> None:
    """One chain after the other in this process, with ``threads`` torch threads."""
    from .config import ConfigError
    from .data import DataError

    saved_callback = exp.on_generation

    def on_generation(row: dict) -> None:
        try:
            progress.report(row)
        except BaseException as exc:
            raise _CallbackError() from exc

    exp.on_generation = on_generation
    try:
        with limit_threads(threads):
            _inline_chains(exp, pending, retries, diverged, failed, TrainingDiverged, ConfigError, DataError)
    finally:
        exp.on_generation = saved_callback


def _inline_chains(exp: Any, pending: list, retries: int, diverged: list, failed: list,
                   TrainingDiverged: type, ConfigError: type, DataError: type) -> None:
    """The chains side by side, generation by generation: always the chain with the lowest
    next generation (ties in chain order), so generation 0 of every chain comes first and
    the tables and the report fill evenly; a resumed or extended run catches its chains up
    the same way.  Every number of a generation derives from (chain seed, generation), so
    the order changes none.  Exceptions other than the user's callback's, config or data
    errors and divergence are retried (resuming), up to ``retries`` times."""
    import heapq

    chains = {ch.id: ch for ch in pending}
    attempts = {ch.id: 0 for ch in pending}
    running: dict = {}  # chain id -> its iter_chain
    # (next generation, chain order, chain id): the chain to advance is the first
    queue = [(exp.store.finished_generations(ch.id), i, ch.id) for i, ch in enumerate(pending)]
    heapq.heapify(queue)
    floor = queue[0][0] if queue else 0
    try:
        while queue:
            _, i, cid = heapq.heappop(queue)
            ch = chains[cid]
            nxt: Optional[int] = None  # None: the chain is done (finished, diverged or failed for good)
            try:
                if cid not in running:
                    attempts[cid] += 1
                    running[cid] = exp.iter_chain(ch)
                nxt = next(running[cid]) + 1
            except StopIteration:
                exp.store.clear_failure(cid)
            except _CallbackError as exc:
                raise exc.__cause__ from None
            except (ConfigError, DataError) as exc:
                exp.store.write_failure(cid, "invalid", f"{type(exc).__name__}: {exc}", attempts[cid])
                raise
            except SystemExit as exc:  # a component (a plugin's) exited: a plugin error, never retried
                msg = plugin_exit_message(cid, exc)
                exp.store.write_failure(cid, "invalid", msg, attempts[cid])
                raise ConfigError(msg) from None
            except TrainingDiverged as exc:
                log.error("chain %s stopped: %s", cid, exc)
                exp.store.write_failure(cid, "diverged", str(exc), attempts[cid])
                diverged.append(f"{cid}: {exc}")
            except Exception as exc:  # noqa: BLE001 - retried, then reported
                running.pop(cid, None)
                if attempts[cid] > retries:
                    log.error("chain %s failed after %d attempt(s): %s", cid, attempts[cid], exc)
                    exp.store.write_failure(cid, "failed", traceback.format_exc()[-6000:], attempts[cid])
                    failed.append(f"{cid}: {type(exc).__name__}: {exc}")
                else:
                    log.warning("chain %s failed (%s: %s); retry %d of %d from its last finished generation",
                                cid, type(exc).__name__, exc, attempts[cid], retries)
                    nxt = exp.store.finished_generations(cid)
            if nxt is None:
                running.pop(cid, None)
                exp.write_tables(force=False)
            else:
                heapq.heappush(queue, (nxt, i, cid))
            low = queue[0][0] if queue else None
            if low is None or low > floor:  # every chain is past the shared models below ``low``
                exp.prune_shared()
                floor = low if low is not None else floor
    finally:
        for it in running.values():
            it.close()


def _run_pool(exp: Any, pending: list, pool: Any, n_workers: Optional[int],
              threads: int, retries: int, progress: _Progress, diverged: list, failed: list,
              poll_seconds: float) -> None:
    """Chains in worker processes (local) or Ray tasks; the parent polls the run folder."""
    raw, out_dir = exp.raw, str(Path(exp.store.root).resolve())
    log_level = logging.getLogger("genloop").getEffectiveLevel()
    queue = list(pending)
    attempts = {ch.id: 0 for ch in pending}
    try:
        while queue or pool.running:
            while queue and (n_workers is None or len(pool.running) < n_workers):
                ch = queue.pop(0)
                attempts[ch.id] += 1
                pool.submit(_Job(ch.id, attempts[ch.id]), raw, out_dir, ch.id, threads, log_level, exp.share_models)
                log.debug("chain %s: attempt %d started on %s", ch.id, attempts[ch.id], pool.name)
            finished = pool.wait(poll_seconds)
            progress.poll()
            for job, status, msg in finished:
                if status == "ok":
                    exp.store.clear_failure(job.chain_id)
                    continue
                if status == "diverged":
                    log.error("chain %s stopped: %s", job.chain_id, msg)
                    exp.store.write_failure(job.chain_id, "diverged", msg, job.attempt)
                    diverged.append(f"{job.chain_id}: {msg}")
                    continue
                if status == "invalid":  # a config or data error: retrying cannot help
                    log.error("chain %s failed: %s", job.chain_id, msg)
                    exp.store.write_failure(job.chain_id, "invalid", msg, job.attempt)
                    failed.append(f"{job.chain_id}: {msg}")
                    continue
                ch = next(c for c in pending if c.id == job.chain_id)
                if job.attempt <= retries:
                    log.warning("chain %s: worker failed (%s); retry %d of %d from its last finished generation",
                                job.chain_id, msg.strip().splitlines()[-1] if msg.strip() else status,
                                job.attempt, retries)
                    queue.insert(0, ch)
                else:
                    log.error("chain %s failed after %d attempt(s): %s", job.chain_id, job.attempt, msg)
                    exp.store.write_failure(job.chain_id, "failed", msg or status, job.attempt)
                    last = msg.strip().splitlines()[-1] if msg.strip() else status
                    failed.append(f"{job.chain_id}: {last} (after {job.attempt} attempt(s))")
        progress.poll()
    finally:
        pool.shutdown()
