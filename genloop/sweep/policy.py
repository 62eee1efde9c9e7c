"""The one retry and failure policy of a sweep, the same for every backend.

* A chain whose training diverged (``TrainingDiverged``) is not retried: it would
  diverge again.  Nor is a config or data error, or a component that calls
  ``sys.exit`` (the same again on a retry).
* Any other failure (an exception, a worker that died) is retried up to ``retries``
  times; each retry resumes from the chain's last finished generation.
* A chain that fails for good leaves ``chains/<chain>/FAILED.json`` (its last error, for
  ``genloop status``), removed when the chain later finishes.  The failures are raised
  at the end (``raise_failures``), after every other chain has finished.
"""
from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from typing import Any

from ..config import ConfigError
from ..data import DataError
from ..generators import TrainingDiverged

log = logging.getLogger(__package__)  # one logger for the whole sweep: "genloop.sweep"

DEFAULT_RETRIES = 2


class SweepError(RuntimeError):
    """Chains failed after every retry (finished generations are kept in the run folder)."""


def plugin_exit_message(chain_id: str, exc: SystemExit) -> str:
    return (f"chain {chain_id}: a component called sys.exit({exc.code!r}) (a plugin must raise an exception "
            "instead); finished generations are kept, fix the plugin and rerun to resume")


def outcome(exc: BaseException, chain_id: str) -> tuple[str, str]:
    """("diverged" | "invalid" | "error", message) of an exception that one attempt of
    chain ``chain_id`` raised: "diverged" and "invalid" are never retried."""
    if isinstance(exc, TrainingDiverged):
        return "diverged", str(exc)
    if isinstance(exc, (ConfigError, DataError)):
        return "invalid", f"{type(exc).__name__}: {exc}"
    if isinstance(exc, SystemExit):  # a component (a plugin's) exited: a plugin error
        return "invalid", plugin_exit_message(chain_id, exc)
    return "error", "".join(traceback.format_exception(exc))[-6000:]


@dataclass(frozen=True)
class Failure:
    """Why one attempt of a chain failed.  ``status``: "diverged", "invalid", "error" or
    "died"; ``message``: the error as the log and the chain's failure record give it;
    ``detail``: what ``FAILED.json`` keeps of an error (its traceback); ``line``: the
    error in one line (retry warnings, the sweep's final error)."""

    status: str
    message: str
    detail: str
    line: str

    @classmethod
    def in_process(cls, exc: BaseException, chain_id: str) -> Failure:
        """An exception raised by a chain run in this process."""
        status, msg = outcome(exc, chain_id)
        if status != "error":
            return cls(status, msg, msg, msg)
        return cls("error", str(exc), msg, f"{type(exc).__name__}: {exc}")

    @classmethod
    def from_worker(cls, status: str, msg: str) -> Failure:
        """The result ``(status, msg)`` of a worker (``run_one_chain``), or of a worker
        that died."""
        return cls(status, msg, msg or status, msg.strip().splitlines()[-1] if msg.strip() else status)


class FailurePolicy:
    """Decides what follows the end of each chain attempt, and keeps the sweep's
    failures: ``ok`` (finished), ``settle`` (failed: retried or recorded), ``invalid``
    (a config or data error), ``raise_failures`` (at the end).  ``in_workers``: chains
    run outside this process (see ``Backend.in_workers``)."""

    def __init__(self, store: Any, retries: int, in_workers: bool) -> None:
        self.store = store
        self.retries = int(retries)
        self.in_workers = in_workers
        self.diverged: list[str] = []
        self.failed: list[str] = []

    def ok(self, chain_id: str) -> None:
        """The chain finished: its failure record, if any, goes."""
        self.store.clear_failure(chain_id)

    def invalid(self, chain_id: str, attempt: int, msg: str) -> None:
        """A config or data error, or a component's ``sys.exit``: never retried.  With
        workers the other chains go on and the sweep fails at the end; in this process
        the caller raises the error at once."""
        if self.in_workers:
            log.error("chain %s failed: %s", chain_id, msg)
        self.store.write_failure(chain_id, "invalid", msg, attempt)
        if self.in_workers:
            self.failed.append(f"{chain_id}: {msg}")

    def settle(self, chain_id: str, attempt: int, failure: Failure) -> bool:
        """Attempt ``attempt`` of the chain failed: True when it is to run again (from its
        last finished generation), else the failure is recorded."""
        if failure.status == "diverged":
            log.error("chain %s stopped: %s", chain_id, failure.message)
            self.store.write_failure(chain_id, "diverged", failure.message, attempt)
            self.diverged.append(f"{chain_id}: {failure.message}")
            return False
        if failure.status == "invalid":
            self.invalid(chain_id, attempt, failure.message)
            return False
        if attempt <= self.retries:
            log.warning("chain %s%s failed (%s); retry %d of %d from its last finished generation",
                        chain_id, ": worker" if self.in_workers else "", failure.line, attempt, self.retries)
            return True
        log.error("chain %s failed after %d attempt(s): %s", chain_id, attempt, failure.message)
        self.store.write_failure(chain_id, "failed", failure.detail, attempt)
        after = f" (after {attempt} attempt(s))" if self.in_workers else ""
        self.failed.append(f"{chain_id}: {failure.line}{after}")
        return False

    def raise_failures(self) -> None:
        """At the end of the sweep: ``SweepError`` when chains failed, else
        ``TrainingDiverged`` when chains diverged."""
        if self.failed:
            diverged = f"; {'; '.join(self.diverged)}" if self.diverged else ""
            raise SweepError("; ".join(self.failed) + diverged
                             + " (finished generations are kept in the run folder; rerun to resume)")
        if self.diverged:
            raise TrainingDiverged("; ".join(self.diverged) + " (finished generations are kept in the run folder)")
