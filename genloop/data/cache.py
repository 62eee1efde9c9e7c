"""On-disk cache of decoded image sets (uint8 ``.npz``), written atomically.

Where the cache lives (``cache_root``):

1. the ``cache_dir`` passed to the data source (``genloop data info --cache``,
   the run's cache folder), else
2. ``$GENLOOP_DATA_CACHE`` when set, else
3. ``<data.root>/.genloop_cache`` when ``data.root`` is writable (a hidden
   folder, which the folder scanner never reads as a class), else
4. ``~/.cache/genloop/data`` (``$XDG_CACHE_HOME/genloop/data``).

A cache file is named ``<kind>-<key>.npz`` where ``key`` hashes the source's
file list (relative paths, sizes, modification times) and every setting that
changes the decoded pixels, so editing, adding or removing a file, or
changing ``data.image_size``, builds a new cache instead of reading a stale
one.  Writes go to a temporary file in the same folder and are moved into
place with ``os.replace``: a crash or an error while building never leaves a
partial cache behind.
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from ..utils import digest

log = logging.getLogger(__name__)

#: Bump when the decoding changes in a way that makes old caches wrong.
CACHE_VERSION = 1


def _writable_dir(path: Path) -> bool:
    """True when ``path`` exists (or can be made) and a file can be created in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".probe.", dir=path)
        os.close(fd)
        os.unlink(tmp)
        return True
    except OSError:
        return False


def cache_root(cache_dir: Optional[Path], data_root: Optional[Path]) -> Path:
    """The folder that holds cache files (see the module docstring for the order)."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("GENLOOP_DATA_CACHE")
    if env:
        return Path(env)
    if data_root is not None:
        base = Path(data_root)
        base = base if base.is_dir() else base.parent
        if _writable_dir(base / ".genloop_cache"):
            return base / ".genloop_cache"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "genloop" / "data"


def fingerprint(root: Path, files: Iterable[Path]) -> list[tuple[str, int, int]]:
    """(path relative to ``root``, size in bytes, mtime in ns) of each file, in order."""
    out = []
    for f in files:
        st = os.stat(f)
        out.append((Path(f).relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    return out


def cache_key(files: list[tuple[str, int, int]], settings: dict) -> str:
    """A 16-hex-digit key of a file list (``fingerprint``) and the decode settings."""
    return digest(CACHE_VERSION, settings, files)


def load_cached(path: Path) -> Optional[dict[str, np.ndarray]]:
    """The arrays of a cache file, or None when it is missing or unreadable
    (an unreadable one is logged and rebuilt by the caller)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # a damaged cache is rebuilt, never trusted
        log.warning("cache %s is unreadable (%s: %s); rebuilding it", path, exc.__class__.__name__, exc)
        return None
