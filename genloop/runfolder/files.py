"""Atomic, durable writes and plain reads of files (JSON, .npz, bytes).  Every write is a temp
file in the same folder, fsynced and renamed over the target, so a killed writer never
leaves a half-written file that looks finished."""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Union

import numpy as np

from .errors import DamagedFile


def file_mode() -> int:
    """The mode new files get under the process's umask (0o666 & ~umask), as ``open`` would give."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc: read it by setting it back at once
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: Path, write) -> None:
    """Call ``write(f)`` on a temp file beside ``path``, fsync it and rename it over ``path``;
    on any error the temp file is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())  # mkstemp makes 0600; results on shared storage follow the umask
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


_WRITERS = None  # thread pool of write_files and in_parallel, made on first use


def in_parallel(calls: list) -> None:
    """Run ``calls`` (functions of no argument that write and fsync files; no two the same
    file) in parallel threads: the file system commits concurrent fsyncs together (one
    journal commit), which on this kind of disk is about ten times faster than fsyncing
    them one after the other.  Returns when all are done; raises the first error."""
    global _WRITERS
    if len(calls) <= 1:
        for call in calls:
            call()
        return
    if _WRITERS is None:
        from concurrent.futures import ThreadPoolExecutor

        _WRITERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="genloop-write")
    for fut in [_WRITERS.submit(call) for call in calls]:
        fut.result()


def write_files(files: dict) -> None:
    """Write several files (path -> bytes), each atomically and durably, their fsyncs in
    parallel (``in_parallel``).  Returns when all are durable."""
    in_parallel([lambda path=path, data=data: write_bytes(path, data) for path, data in files.items()])


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def jsonable(o: Any) -> Any:
    """``json.dumps``' ``default``: numpy numbers and arrays, and paths, as plain JSON values."""
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o)}")


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=False, default=jsonable) + "\n").encode("utf-8")


def write_json(path: Path, obj: Any) -> None:
    write_bytes(path, json_bytes(obj))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def read_json_checked(path: Path, what: str, recover: str) -> Any:
    """``read_json``, with ``DamagedFile`` (naming the file, ``what`` it holds and how to
    ``recover``) when it is not valid UTF-8 JSON."""
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DamagedFile(f"{path}: damaged ({type(exc).__name__}: {str(exc)[:80]}); it holds {what}: {recover}") from None


def sha256_file(path: Union[str, Path]) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (the package's one file hash:
    DONE records, downloads, weight files)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _savez(f: Any, arrays: dict, compress: bool = False, where: str = "npz") -> None:
    """The package's one .npz writer: ``arrays`` into the binary file ``f``.  No pickled
    objects are written: an array of Python objects is refused (``where`` names the file)."""
    for name, a in arrays.items():
        if np.asarray(a).dtype == object:
            raise ValueError(f"{where}: array {name!r} holds Python objects, which .npz files here never store")
    (np.savez_compressed if compress else np.savez)(f, **arrays)


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """The bytes of an .npz holding ``arrays`` (for ``write_files``, which writes a generation's files together)."""
    buf = io.BytesIO()
    _savez(buf, arrays)
    return buf.getvalue()


def save_npz(path: Union[str, Path], compress: bool = False, **arrays: np.ndarray) -> Path:
    """Atomically write ``arrays`` to ``path`` (``np.savez_compressed`` when ``compress``);
    on any error ``path`` is left as it was.  Returns ``path``."""
    path = Path(path)
    atomic_write(path, lambda f: _savez(f, arrays, compress, str(path)))
    return path


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(Path(path), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
