"""Chains in worker processes on this machine (``--workers N``): a pool of ``spawn``-ed
processes, each with its own ``CUDA_VISIBLE_DEVICES`` (``--gpus-per-chain``) and each
running chain after chain (``run_one_chain``)."""
from __future__ import annotations

import multiprocessing as mp
import os
from multiprocessing.connection import wait as wait_for
from typing import Any, Callable, Optional

from .base import Job
from .pool import POLL_SECONDS, PoolBackend
from .worker import run_one_chain


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
    os.environ.update(env)  # already set at spawn
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        target, args = msg
        conn.send(target(*args))


class _Slot:
    """One worker process of the local pool and the job it runs (None: idle)."""

    def __init__(self, env: dict) -> None:
        self.env = env
        self.proc: Any = None
        self.conn: Any = None
        self.job: Optional[Job] = None


class LocalBackend(PoolBackend):
    """A pool of ``spawn``-ed worker processes, each running chain after chain (the
    import of torch and the set-up of the data and metrics are paid once per worker, not
    once per chain).  A worker that dies is a failed attempt of its chain; the next chain
    given to its slot starts a fresh process.  Worker i gets the environment
    ``envs[i]`` (its ``CUDA_VISIBLE_DEVICES``) from its start."""

    name = "local"

    def __init__(self, envs: list[dict], target: Optional[Callable] = None,
                 poll_seconds: float = POLL_SECONDS) -> None:
        self.ctx = mp.get_context("spawn")
        self.slots = [_Slot(env) for env in envs]
        self.target = target or run_one_chain
        self.poll_seconds = poll_seconds
        self.running: dict[str, Job] = {}

    def capacity(self) -> Optional[int]:
        return len(self.slots)

    def _spawn(self, slot: _Slot) -> None:
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

    def submit(self, job: Job, *args: Any) -> None:
        slot = next(s for s in self.slots if s.job is None)
        if slot.proc is None or not slot.proc.is_alive():
            self._close(slot)
            self._spawn(slot)
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

    def wait(self, timeout: float) -> list[tuple[Job, str, str]]:
        busy = [s for s in self.slots if s.job is not None]
        if not busy:
            return []
        wait_for([s.conn for s in busy] + [s.proc.sentinel for s in busy], timeout)
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
