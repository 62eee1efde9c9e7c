"""How many chains run at once and with how many threads each (``resolve_workers``), and
the thread limit every chain runs under, in every mode (``limit_threads``)."""
from __future__ import annotations

import contextlib
from typing import Any, Optional, Union

import torch

from ..config import ConfigError


def cores() -> int:
    """CPU threads available to this process for torch: torch's intra-op thread
    count (the physical cores unless OMP_NUM_THREADS or torch.set_num_threads say otherwise)."""
    return max(1, torch.get_num_threads())


def _parse_workers(workers: Union[int, str, None]) -> Union[int, str, None]:
    """``workers`` as None, "auto" or a positive number; a ``ConfigError`` otherwise."""
    if isinstance(workers, str):
        if workers.strip().lower() != "auto":
            try:
                workers = int(workers)
            except ValueError:
                raise ConfigError(f"--workers: {workers!r} is not a number or 'auto'") from None
        else:
            workers = "auto"
    if workers != "auto" and workers is not None and (isinstance(workers, bool) or int(workers) < 1):
        raise ConfigError(f"--workers: {workers!r} must be a positive integer or 'auto'")
    return workers


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
        raise ConfigError(f"--threads: {threads!r} must be a positive integer")
    workers = _parse_workers(workers)
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


def limit_threads(threads: int) -> Any:
    """Context: ``threads`` threads for torch and for the BLAS / OpenMP pools numpy and
    scipy use (threadpoolctl, which scikit-learn brings), restored on exit; the same in
    every mode, so that no library splits its sums differently in one mode than in another."""
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
