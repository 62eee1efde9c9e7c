"""GPUs of a sweep: the CUDA devices here (``cuda_devices``), GPUs per chain
(``resolve_gpus``) and the devices of each local worker (``gpu_slots``, ``local_gpu_plan``).
Ray's GPUs are Ray's to assign (``ray_backend``)."""
from __future__ import annotations

import os
from typing import Any, Optional, Union

import torch

from ..config import ConfigError


def cuda_devices() -> list[str]:
    """The CUDA devices this process may use, as ``CUDA_VISIBLE_DEVICES`` names them
    (indices when it is unset)."""
    n = torch.cuda.device_count()
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [x.strip() for x in env.split(",") if x.strip()][:n]
    return [str(i) for i in range(n)]


def _check_fraction(f: Any) -> float:
    if isinstance(f, bool) or not isinstance(f, (int, float)) or not f >= 0:
        raise ConfigError(f"--gpus-per-chain: {f!r} must be a number >= 0 (e.g. 1, 0.25)")
    if f > 1 and not float(f).is_integer():
        raise ConfigError(f"--gpus-per-chain: {f:g} cannot be split over GPUs; use a fraction <= 1 "
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
        raise ConfigError(f"--gpus-per-chain {f:g}: no CUDA device is visible {where} "
                          "(use --gpus-per-chain 0, or run where torch.cuda.device_count() > 0)")
    if f > n_gpus:
        raise ConfigError(f"--gpus-per-chain {f:g}: a chain asks for {f:g} GPUs but only {n_gpus} exist {where}")
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
        raise ConfigError(f"--workers {n_workers} with --gpus-per-chain {gpus_per_chain:g} needs more GPUs than the "
                          f"{len(devices)} here (at most {capacity} workers); use --workers {capacity} or a smaller "
                          "--gpus-per-chain")
    return slots


def local_gpu_plan(gpus_per_chain: Optional[float], workers: Union[int, str, None], n_workers: int,
                   chains: list) -> tuple[float, int, list[Optional[str]]]:
    """(GPUs per chain, workers, each worker's ``CUDA_VISIBLE_DEVICES``) of a sweep on this
    machine: ``--workers auto`` runs as many workers as the GPUs hold; one worker (the
    chains in this process) needs no slots.  A request the machine cannot meet is a
    ``ConfigError``, before the run folder is touched."""
    devices = cuda_devices() if gpus_per_chain != 0 else []
    gpus = resolve_gpus(gpus_per_chain, len(devices), chains)
    if gpus and isinstance(workers, str) and workers.strip().lower() == "auto":
        fit = len(devices) // int(gpus) if gpus >= 1 else int(1 / gpus + 1e-9) * len(devices)
        n_workers = max(1, min(int(n_workers), fit))  # as many as the GPUs hold
    slots = gpu_slots(min(int(n_workers), max(1, len(chains))), gpus, devices) if n_workers != 1 else []
    return gpus, n_workers, slots
