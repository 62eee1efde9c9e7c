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

The package, one job per module: ``driver`` (``run_sweep``: checks, the lock, the choice
of backend), ``base`` (the ``Backend`` interface every way of running chains implements),
``inline`` (the chains in this process, generation by generation), ``pool`` (chains as
jobs elsewhere: scheduling and polling), ``local`` (worker processes), ``ray_backend``
(Ray tasks), ``worker`` (one chain attempt in a worker; where every worker starts),
``policy`` (retries and failures, the same in every mode), ``gpus`` (devices per chain),
``threads`` (workers and threads per chain), ``progress`` (the bar, the callback, the
heartbeat).
"""
from __future__ import annotations

from .base import Backend, Job
from .driver import BACKENDS, run_sweep
from .gpus import cuda_devices, gpu_slots, resolve_gpus
from .inline import InlineBackend
from .local import LocalBackend
from .policy import DEFAULT_RETRIES, Failure, FailurePolicy, SweepError, outcome, plugin_exit_message
from .pool import POLL_SECONDS, PoolBackend
from .progress import Progress
from .ray_backend import RayBackend, import_ray, ray_gpus_per_node
from .threads import cores, limit_threads, resolve_workers
from .worker import run_one_chain, start_worker

# earlier spellings of three names, still importable
_Job, _LocalBackend, _RayBackend = Job, LocalBackend, RayBackend

__all__ = ["BACKENDS", "DEFAULT_RETRIES", "POLL_SECONDS", "Backend", "Failure", "FailurePolicy", "InlineBackend",
           "Job", "LocalBackend", "PoolBackend", "Progress", "RayBackend", "SweepError", "cores", "cuda_devices",
           "gpu_slots", "import_ray", "limit_threads", "outcome", "plugin_exit_message", "ray_gpus_per_node",
           "resolve_gpus", "resolve_workers", "run_one_chain", "run_sweep", "start_worker"]
