"""Chains in this process (``--workers 1``), side by side, generation by generation:
generation 0 of every chain first, then generation 1, ..., so that tables and report
fill evenly; a resumed or extended run catches its chains up the same way.  Chains
that train on identical data share the trained model (``genloop.loop.sharing``); the
shared models every chain is past are removed as the sweep goes."""
from __future__ import annotations

import heapq
from typing import Any, Optional

from ..config import ConfigError
from ..data import DataError
from .base import Backend
from .policy import Failure, FailurePolicy, outcome
from .progress import Progress
from .threads import limit_threads


class _CallbackError(Exception):
    """An exception raised by the user's on_generation callback (never retried)."""


class InlineBackend(Backend):
    """The chains in this process, with its devices and ``threads`` torch threads."""

    name = "inline"
    in_workers = False

    def run(self, exp: Any, pending: list, threads: int, policy: FailurePolicy, progress: Progress) -> None:
        saved_callback = exp.on_generation

        def on_generation(row: dict) -> None:
            try:
                progress.report(row)
            except BaseException as exc:
                raise _CallbackError() from exc

        exp.on_generation = on_generation
        try:
            with limit_threads(threads):
                _GenerationMajor(exp, pending, policy).run()
        finally:
            exp.on_generation = saved_callback


class _GenerationMajor:
    """Always advances the chain with the lowest next generation (ties in chain order).
    Every number of a generation derives from (chain seed, generation), so the order
    changes none.  The user's callback's exceptions stop the sweep, and so do config and
    data errors; other failures go to the policy (divergence is recorded, anything else
    retried from the chain's last finished generation, up to the policy's retries)."""

    def __init__(self, exp: Any, pending: list, policy: FailurePolicy) -> None:
        self.exp = exp
        self.policy = policy
        self.chains = {ch.id: ch for ch in pending}
        self.attempts = {ch.id: 0 for ch in pending}
        self.running: dict = {}  # chain id -> its iter_chain
        # (next generation, chain order, chain id): the chain to advance is the first
        self.queue = [(exp.store.finished_generations(ch.id), i, ch.id) for i, ch in enumerate(pending)]
        heapq.heapify(self.queue)

    def run(self) -> None:
        floor = self.queue[0][0] if self.queue else 0
        try:
            while self.queue:
                _, i, cid = heapq.heappop(self.queue)
                nxt = self._advance(cid)
                if nxt is None:
                    self.running.pop(cid, None)
                    self.exp.write_tables(force=False)
                else:
                    heapq.heappush(self.queue, (nxt, i, cid))
                floor = self._prune(floor)
        finally:
            for it in self.running.values():
                it.close()

    def _prune(self, floor: int) -> int:
        """Remove the shared models every chain is past (those below the lowest next
        generation, once it rises); the new floor."""
        low = self.queue[0][0] if self.queue else None
        if low is None or low > floor:
            self.exp.prune_shared()
            return low if low is not None else floor
        return floor

    def _advance(self, cid: str) -> Optional[int]:
        """Run the next generation of chain ``cid``: its next generation then, or None when
        the chain is done (finished, diverged or failed for good)."""
        try:
            if cid not in self.running:
                self.attempts[cid] += 1
                self.running[cid] = self.exp.iter_chain(self.chains[cid])
            return next(self.running[cid]) + 1
        except StopIteration:
            self.policy.ok(cid)
        except _CallbackError as exc:
            raise exc.__cause__ from None
        except (ConfigError, DataError, SystemExit) as exc:
            _, msg = outcome(exc, cid)
            self.policy.invalid(cid, self.attempts[cid], msg)
            if isinstance(exc, SystemExit):  # a component (a plugin's) exited: a plugin error
                raise ConfigError(msg) from None
            raise
        except Exception as exc:  # noqa: BLE001 - divergence recorded; the rest retried, then reported
            self.running.pop(cid, None)
            if self.policy.settle(cid, self.attempts[cid], Failure.in_process(exc, cid)):
                return self.exp.store.finished_generations(cid)
        return None
