"""Small shared helpers: image scaling, devices, hashing, seeding, progress bars."""
from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from typing import Any, Iterable

import numpy as np
import torch


def to_model(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, C, H, W) in 0..255 -> float32 tensor in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float tensor in [-1, 1] -> uint8 (N, C, H, W), rounded and clipped."""
    return ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).cpu().numpy()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' was asked for but no CUDA device is available (use device=auto or cpu)")
    return torch.device(name)


def digest(*parts: Any) -> str:
    """A short stable hash of arrays, bytes and JSON-able values."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(str((p.dtype.str, p.shape)).encode())
            h.update(np.ascontiguousarray(p).tobytes())
        elif isinstance(p, bytes):
            h.update(p)
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"|")
    return h.hexdigest()[:16]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def chunks(n: int, size: int) -> Iterable[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


# --------------------------------------------------------------------------- progress

# Without progress bars (a log file, a batch job), long training or sampling logs a line
# on the ``genloop.heartbeat`` logger at most this often (seconds) in a process.
HEARTBEAT_SECONDS = 60.0

heartbeat_log = logging.getLogger("genloop.heartbeat")
_last_beat = [time.monotonic()]


def mark_activity() -> None:
    """Something was just reported (e.g. a finished generation's line): the next heartbeat
    is due ``HEARTBEAT_SECONDS`` from now."""
    _last_beat[0] = time.monotonic()


def heartbeat_due() -> bool:
    return time.monotonic() - _last_beat[0] >= HEARTBEAT_SECONDS


def beat(msg: str, *args: Any) -> None:
    """Log a heartbeat line now (``genloop.heartbeat``, INFO) and restart the clock."""
    mark_activity()
    heartbeat_log.info(msg, *args)


class Heartbeat:
    """Stands in for a disabled progress bar (``update``, ``set_postfix``, ``close``): no
    redraws, only a heartbeat line (``desc: done/total unit, loss ..., N s in``) when
    ``HEARTBEAT_SECONDS`` have passed since the last line of this process."""

    def __init__(self, total: Any = None, desc: str = "", initial: int = 0, unit: str = "it", quiet: bool = False,
                 **_: Any) -> None:
        self.total, self.desc, self.n, self.unit, self.quiet = total, desc, initial, unit, quiet
        self.postfix: dict = {}
        self.t0 = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        if not self.quiet and heartbeat_due():
            extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
            of = f"/{self.total}" if self.total is not None else ""
            beat("%s: %d%s %s%s, %.0f s in", self.desc, self.n, of, self.unit, extra, time.monotonic() - self.t0)

    def set_postfix(self, **kwargs: Any) -> None:
        self.postfix = {k: v for k, v in kwargs.items()}

    def close(self) -> None:
        pass


def progress_bar(total: Any, desc: str, enabled: bool, initial: int = 0, unit: str = "it", heartbeat: bool = True,
                 **kwargs: Any) -> Any:
    """A tqdm bar when ``enabled`` (a terminal, ``--progress``), else a ``Heartbeat``
    (silent with ``heartbeat=False``)."""
    if not enabled:
        return Heartbeat(total, desc, initial, unit, quiet=not heartbeat)
    from tqdm.auto import tqdm

    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, **kwargs)
