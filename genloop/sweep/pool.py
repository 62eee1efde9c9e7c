"""Backends that run each chain attempt as a job elsewhere (local worker processes, Ray
tasks): at most ``capacity()`` jobs at once, a failed attempt queued again first when
the policy retries it, and the parent polling the run folder for finished generations
(``DONE`` markers, written last by each generation) while the jobs run."""
from __future__ import annotations

import logging
from abc import abstractmethod
from pathlib import Path
from typing import Any, Callable, Optional

from .base import Backend, Job
from .policy import Failure, FailurePolicy
from .progress import Progress

log = logging.getLogger(__package__)  # one logger for the whole sweep: "genloop.sweep"

POLL_SECONDS = 0.5


class PoolBackend(Backend):
    """Chains as jobs (``run_one_chain`` in a worker), ``submit``-ted, ``wait``-ed for
    and ``shutdown`` by the subclass; ``running`` maps chain ids to their running jobs."""

    in_workers = True
    poll_seconds: float = POLL_SECONDS
    running: dict[str, Job]

    def capacity(self) -> Optional[int]:
        """Jobs run at once at most (None: no limit)."""
        return None

    @abstractmethod
    def submit(self, job: Job, *args: Any) -> None:
        """Start ``job``: the worker calls its target with ``args``."""

    @abstractmethod
    def wait(self, timeout: float) -> list[tuple[Job, str, str]]:
        """Up to ``timeout`` seconds for jobs to end: (job, status, message) of each that did."""

    @abstractmethod
    def shutdown(self) -> None:
        """Stop every worker (a running job is abandoned)."""

    def run(self, exp: Any, pending: list, threads: int, policy: FailurePolicy, progress: Progress) -> None:
        raw, out_dir = exp.raw, str(Path(exp.store.root).resolve())
        log_level = logging.getLogger("genloop").getEffectiveLevel()
        chains = {ch.id: ch for ch in pending}
        queue = list(pending)
        attempts = {ch.id: 0 for ch in pending}

        def args_of(chain_id: str) -> tuple:
            return raw, out_dir, chain_id, threads, log_level, exp.share_models

        try:
            while queue or self.running:
                self._submit_queued(queue, attempts, args_of)
                finished = self.wait(self.poll_seconds)
                progress.poll()
                for job, status, msg in finished:
                    if status == "ok":
                        policy.ok(job.chain_id)
                    elif policy.settle(job.chain_id, job.attempt, Failure.from_worker(status, msg)):
                        queue.insert(0, chains[job.chain_id])
            progress.poll()
        finally:
            self.shutdown()

    def _submit_queued(self, queue: list, attempts: dict, args_of: Callable[[str], tuple]) -> None:
        """Submit queued chains while there is room."""
        cap = self.capacity()
        while queue and (cap is None or len(self.running) < cap):
            ch = queue.pop(0)
            attempts[ch.id] += 1
            self.submit(Job(ch.id, attempts[ch.id]), *args_of(ch.id))
            log.debug("chain %s: attempt %d started on %s", ch.id, attempts[ch.id], self.name)
