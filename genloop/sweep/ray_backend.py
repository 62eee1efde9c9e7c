"""Chains as Ray tasks (``--backend ray``), on the cluster at ``address`` or on a local Ray
started for the run.  Ray is imported only here, only when asked for
(``pip install genloop[ray]``)."""
from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from ..config import ConfigError
from .base import Job
from .pool import POLL_SECONDS, PoolBackend
from .worker import run_one_chain


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs the optional ray package: pip install 'genloop[ray]' "
                          "(or pip install 'ray[default]')") from None
    return ray


def ray_gpus_per_node(ray: Any) -> int:
    """The most GPUs any live node of the Ray cluster has (what one task can be given)."""
    return int(max([n.get("Resources", {}).get("GPU", 0) for n in ray.nodes() if n.get("Alive")] or [0]))


class RayBackend(PoolBackend):
    """Each chain attempt is a Ray task (``num_cpus=threads``, ``num_gpus`` = GPUs per
    chain, so Ray gives the task its own ``CUDA_VISIBLE_DEVICES``; no Ray-level retries:
    the sweep retries, resuming from the run folder).  Ray reuses its worker processes,
    so many small chains do not each pay a process start.  ``cap``: tasks at once at
    most (None: as many as Ray schedules)."""

    name = "ray"

    def __init__(self, address: Optional[str], cap: Optional[int] = None,
                 poll_seconds: float = POLL_SECONDS) -> None:
        ray = self.ray = import_ray()
        self.started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "configure_logging": True}
            if address:
                ray.init(address=address, **kwargs)
            else:  # a private local Ray for this run; small object store (chains pass no big objects)
                ray.init(include_dashboard=False, object_store_memory=200 * 1024 * 1024, **kwargs)
            self.started = True
        self.cap = cap
        self.poll_seconds = poll_seconds
        self.running: dict[str, Job] = {}
        self.task: Any = None

    def capacity(self) -> Optional[int]:
        return self.cap

    def configure(self, threads: int, gpus: float, target: Optional[Callable] = None) -> None:
        options: dict[str, Any] = {"num_cpus": threads, "max_retries": 0}
        if gpus:
            options["num_gpus"] = gpus
        self.task = self.ray.remote(**options)(target or run_one_chain)

    def submit(self, job: Job, *args: Any) -> None:
        job.handle = self.task.remote(*args)
        self.running[job.chain_id] = job

    def wait(self, timeout: float) -> list[tuple[Job, str, str]]:
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
