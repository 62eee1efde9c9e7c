"""The interface every way of running a sweep's chains implements (``Backend``), and the
record of one chain attempt given to a worker (``Job``)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .policy import FailurePolicy
    from .progress import Progress


@dataclass
class Job:
    """One attempt (1, 2, ...) of one chain given to a worker; ``handle`` is the
    backend's own (a worker slot, a Ray object reference)."""

    chain_id: str
    attempt: int
    handle: Any = None


class Backend(ABC):
    """A way of running a sweep's unfinished chains: in this process (``InlineBackend``),
    in local worker processes (``LocalBackend``) or as Ray tasks (``RayBackend``).

    ``in_workers``: whether chains run outside this process (the failure policy then lets
    the other chains finish after a config or data error, and names the worker in its
    messages)."""

    name: str = ""
    in_workers: bool = True

    @abstractmethod
    def run(self, exp: Any, pending: list, threads: int, policy: FailurePolicy, progress: Progress) -> None:
        """Run (or resume) every chain of ``pending`` (chains of the ``Experiment`` ``exp``)
        with ``threads`` torch threads each: ``progress`` hears of every finished generation,
        ``policy`` of the end of every attempt (finished, retried or failed for good).
        Returns when every chain is finished or failed for good; raises only what stops
        the whole sweep at once."""
