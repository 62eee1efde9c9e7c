"""One writer per run folder: an exclusive ``flock`` on ``run.lock``, which names the holder's
PID and host, held for as long as a run writes the folder; a second writer stops at once
naming the holder.  The kernel drops a dead process's lock, so a lock file left by a crashed
run is taken over (logged).  Readers (``genloop report``, ``genloop status``) never take it."""
from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any, Optional

from .errors import RunLocked
from .files import jsonable
from .layout import LOCK_NAME, Layout

log = logging.getLogger(__name__)

_HELD: dict[str, list] = {}  # resolved lock path -> [fd, depth] of the locks this process holds


def lock_holder(root: Path) -> Optional[dict]:
    """What ``run.lock`` says about its holder (pid, host, started, ...), without taking
    the lock; None when there is no lock file.  A lock file may be stale (its process gone):
    ``holder_alive`` tells for this host."""
    path = Layout(root).lock_path
    for _ in range(20):  # a new holder writes its details just after taking the lock
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError:
            return {}
        if text.strip():
            try:
                info = json.loads(text)
                return info if isinstance(info, dict) else {}
            except ValueError:
                pass
        time.sleep(0.05)
    return {}


def holder_alive(info: Optional[dict]) -> Optional[bool]:
    """True / False when the holder named by ``info`` runs / does not run on this host;
    None when that cannot be told (another host, or no details)."""
    if not info or info.get("host") != socket.gethostname() or not isinstance(info.get("pid"), int):
        return None
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe_holder(info: Optional[dict]) -> str:
    if not info:
        return "holder unknown"
    text = f"pid {info.get('pid', '?')} on host {info.get('host', '?')}"
    if info.get("started"):
        text += f", started {info['started']}"
    return text


def _lock_info(**extra: Any) -> dict:
    import sys

    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "started_unix": time.time(),
            "command": " ".join(sys.argv)[:500]}
    info.update(extra)
    return info


def _write_lock_info(fd: int, info: dict) -> None:
    data = (json.dumps(info, default=jsonable) + "\n").encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _held_key(root: Path) -> str:
    return str(Layout(root).lock_path.resolve())


def _take_over(path: Path, fd: int) -> None:
    """Log the details a stale lock file still holds (its process is gone), then write ours."""
    old = os.read(fd, 65536).decode("utf-8", "replace").strip()
    if old:
        try:
            prev = json.loads(old)
        except ValueError:
            prev = {}
        log.warning("%s: took over a stale lock (%s): that process is gone", path,
                    describe_holder(prev if isinstance(prev, dict) else {}))
    _write_lock_info(fd, _lock_info())


def acquire_lock(root: Path) -> None:
    """Take the run folder's lock (re-entrant within a process); raise ``RunLocked`` naming
    the holder when another process has it.  A lock file whose process is gone is taken
    over with a warning."""
    import fcntl

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = Layout(root).lock_path
    key = str(path.resolve())
    if key in _HELD:
        _HELD[key][1] += 1
        return
    for _ in range(50):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            info = lock_holder(root)
            raise RunLocked(f"{root}: another genloop run is writing to this folder ({describe_holder(info)}); "
                            "wait for it to finish or stop it (genloop status and genloop report need no lock)") from None
        try:  # the file may have been unlinked by its last holder between our open and flock
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        _take_over(path, fd)
        _HELD[key] = [fd, 1]
        return
    raise RunLocked(f"{root}: could not take {LOCK_NAME} (it keeps being replaced); is another run starting?")


def update_lock(root: Path, **fields: Any) -> None:
    """Add details (workers, backend, ...) to the lock this process holds on ``root``."""
    held = _HELD.get(_held_key(root))
    if held is None:
        return
    fd = held[0]
    try:
        info = json.loads(os.pread(fd, 65536, 0).decode("utf-8"))
    except ValueError:
        info = _lock_info()
    info.update(fields)
    _write_lock_info(fd, info)


def release_lock(root: Path) -> None:
    """Release this process's lock on ``root`` (the outermost release removes the file)."""
    path = Layout(root).lock_path
    key = str(path.resolve())
    held = _HELD.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] > 0:
        return
    del _HELD[key]
    try:
        os.unlink(path)  # while still holding it: a waiting opener then sees another inode and retries
    except FileNotFoundError:
        pass
    os.close(held[0])


def holds_lock(root: Path) -> bool:
    return _held_key(root) in _HELD
