"""Run-folder I/O.  Every write is atomic (temp file in the same folder + rename),
so a killed run never leaves a half-written file that looks finished.

Layout of a run folder::

    RUN/
      config.yaml                 resolved raw config (grid axes kept)
      chains.json                 chain ids and their varied settings
      metrics.csv, metrics.jsonl  one row per (chain, generation)
      reference.csv               metrics of the real test set (reference rows)
      cache/                      real-data features, the domain classifier
      plots/                      metric curves (PNG, PDF)
      report.html
      run.lock                    held by the one process writing the folder (PID, host)
      chains/<chain>/
        gen_000/ samples.npz  model.safetensors  grid.png  metrics.json  provenance.npz  DONE
        train_state/            checkpoint of an unfinished generation's training
        rows.jsonl              metric rows of generations that keep no file (see below)
        resume_samples.npz      store.samples=last: the latest kept samples, for a resume
        FAILED.json             the chain's last failure (removed when it finishes)

What a generation writes follows ``store.samples`` and ``store.checkpoints``
(``every`` | ``last`` | ``none``).  A generation that keeps a file gets its
``gen_NNN/`` folder as above (``metrics.json`` and ``DONE`` last).  A generation
that keeps none (``none``, or ``last`` before the final generation) gets no
folder: its metric row is appended to ``chains/<chain>/rows.jsonl``, in batches
(one fsync per batch), and a generation counts as finished when its row is
there.  A torn last line (a killed writer) is ignored and cut off before the
next append.  ``store.samples=last`` also keeps ``resume_samples.npz``: the kept
samples of the newest generation whose row is logged, written with each batch,
so that a resume can go on from there; if the generation a resume needs is
not available, the chain is recomputed in memory from generation 0 (same seeds,
same numbers; logged), never continued from other data.

``DONE`` is written last, atomically, and records the size and SHA-256 of every
file of the generation it vouches for (``verify_done`` checks them on resume).
A generation logged in ``rows.jsonl`` has no files to vouch for: its complete
JSON line is its record.

One writer per folder: ``RunStore.lock()`` holds an exclusive ``flock`` on
``run.lock`` (which names the holder's PID and host) for as long as a run writes
the folder; a second writer stops at once naming the holder.  The kernel drops a
dead process's lock, so a lock file left by a crashed run is taken over (logged).
Readers (``genloop report``, ``genloop status``) never take it.

With several lineages (interaction ``ecosystem``) ``samples.npz`` holds every
lineage's kept samples and a ``lineage`` array saying whose each is; lineage
k > 0 writes ``model_l<k>.safetensors`` and ``grid_l<k>.png`` (lineage 0 the
plain names) and trains from ``train_state/state_l<k>.safetensors``.
``provenance.npz`` holds, per training image, ``origin`` (-1 real, else the
generation that sampled it), ``lineage`` and ``index`` (its position in the
real training set or in that generation's samples of that lineage).
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import math
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import numpy as np

from .config import ConfigError

log = logging.getLogger(__name__)

LOCK_NAME = "run.lock"
FAILED_NAME = "FAILED.json"
# Written first into every run folder genloop makes: ``--force`` starts over only in a
# folder that has it, or that has a run folder's layout (config.yaml and chains.json).
MARKER_NAME = ".genloop-run"
# The top-level entries genloop writes in a run folder: starting over removes these, never others.
RUN_FOLDER_ENTRIES = frozenset({MARKER_NAME, "config.yaml", "chains.json", "metrics.csv", "metrics.jsonl",
                                "summary.csv", "reference.csv", "report.html", "cache", "plots", "chains", LOCK_NAME})
# The temp files of ``atomic_write`` (``.NAME.XXXXXXXX.tmp``); a killed writer leaves them behind.
TEMP_FILE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp\Z")
# A chain id (``c<N>_<settings>``, see ``genloop.loading.expand``): one path component.
CHAIN_ID = re.compile(r"c\d+[A-Za-z0-9_.=+-]*")
MAX_CHAIN_ID = 255  # a file name; new ids are cut to 100 characters (genloop.loading.CHAIN_ID_LENGTH)


class RunLocked(RuntimeError):
    """Another live process holds the run folder's lock."""


class DamagedFile(ConfigError):
    """A file of a run folder that genloop reads back is damaged or was edited (the message
    names the file and how to recover)."""


class NotARunFolder(ConfigError):
    """The output folder holds files genloop did not write."""


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


def check_chain_id(cid: Any, where: str = "chains.json") -> str:
    """``cid`` when it is a chain id genloop writes (one path component: ``c<N>`` then letters,
    digits and ``_.=+-``, at most ``MAX_CHAIN_ID`` characters); else ``DamagedFile``."""
    if not isinstance(cid, str) or not CHAIN_ID.fullmatch(cid) or len(cid) > MAX_CHAIN_ID:
        raise DamagedFile(f"{where}: chain id {cid!r} is not one genloop writes (c<N> then letters, digits, "
                          f"'_.=+-', at most {MAX_CHAIN_ID} characters); the file was edited or damaged: restore "
                          "it from a copy, or run into another output folder")
    return cid


def folder_kind(root: Path) -> tuple[str, list[str]]:
    """What ``root`` is to genloop: ``absent``, ``empty`` (nothing but a lock or temp files),
    ``genloop`` (has the marker, or config.yaml and chains.json) or ``foreign``; and the
    entries genloop did not write (for ``foreign``)."""
    root = Path(root)
    try:
        entries = sorted(os.listdir(root))
    except FileNotFoundError:
        return "absent", []
    except NotADirectoryError:
        what = "is a file" if root.is_file() else "has a file where a folder should be in its path"
        raise NotARunFolder(f"{root}: {what}, not a folder; choose another output folder (-o)") from None
    own = [e for e in entries if e != LOCK_NAME and not TEMP_FILE.match(e)]
    if not own:
        return "empty", []
    if MARKER_NAME in own or ("config.yaml" in own and "chains.json" in own):
        return "genloop", [e for e in own if e not in RUN_FOLDER_ENTRIES]
    return "foreign", [e for e in own if e not in RUN_FOLDER_ENTRIES] or own


def clean_temp_files(root: Path) -> int:
    """Remove the temp files a killed writer left anywhere in the run folder ``root``
    (``TEMP_FILE`` names only; call it holding the lock).  Returns how many went."""
    removed = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if TEMP_FILE.match(name):
                try:
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
                except FileNotFoundError:
                    pass
    if removed:
        log.info("%s: removed %d temp file(s) left by an interrupted run", root, removed)
    return removed


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


_WRITERS = None  # thread pool of write_files, made on first use


def write_files(files: dict) -> None:
    """Write several files (path -> bytes), each atomically and durably, with their
    fsyncs running in parallel threads: the file system commits concurrent fsyncs
    together (one journal commit), which on this kind of disk is about ten times
    faster than fsyncing them one after the other.  Returns when all are durable."""
    global _WRITERS
    items = list(files.items())
    if len(items) <= 1:
        for path, data in items:
            write_bytes(path, data)
        return
    if _WRITERS is None:
        from concurrent.futures import ThreadPoolExecutor

        _WRITERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="genloop-write")
    for fut in [_WRITERS.submit(write_bytes, path, data) for path, data in items]:
        fut.result()


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n").encode("utf-8")


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


def _jsonable(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o)}")


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


WEIGHTS_HASH = "genloop.sha256"  # safetensors metadata key: SHA-256 of the tensors' layout and bytes


def _split_safetensors(data: bytes) -> tuple[dict, memoryview]:
    """(header, data section) of safetensors bytes; ValueError when they cannot be read."""
    if len(data) < 8:
        raise ValueError(f"{len(data)} bytes, too short for a safetensors file")
    n = int.from_bytes(data[:8], "little")
    if 8 + n > len(data):
        raise ValueError("cut short (its header runs past the end)")
    try:
        header = json.loads(bytes(data[8:8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError("its header is not readable") from None
    if not isinstance(header, dict):
        raise ValueError("its header is not readable")
    return header, memoryview(data)[8 + n:]


def _weights_digest(header: dict, data: memoryview) -> str:
    h = hashlib.sha256(json.dumps({k: v for k, v in header.items() if k != "__metadata__"},
                                  sort_keys=True).encode("utf-8"))
    h.update(data)
    return h.hexdigest()


def weights_bytes(tensors: dict, metadata: Optional[dict] = None) -> bytes:
    """A dict of tensors as safetensors bytes (never pickle), with the SHA-256 of the tensors'
    names, dtypes, shapes and bytes in the metadata (``WEIGHTS_HASH``; ``read_weights`` checks it)."""
    from safetensors.torch import save

    clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    header, data = _split_safetensors(save(clean, metadata=meta or None))
    meta[WEIGHTS_HASH] = _weights_digest(header, data)
    return save(clean, metadata=meta)  # the metadata changes the header only: same layout and bytes


def save_weights(path: Path, tensors: dict, metadata: Optional[dict] = None) -> None:
    """Save a dict of tensors as safetensors (never pickle), with its checksum (``weights_bytes``)."""
    write_bytes(path, weights_bytes(tensors, metadata))


def load_weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def read_weights(path: Path, legacy: bool = False) -> tuple[dict, dict]:
    """(tensors, metadata) of a safetensors file written by ``weights_bytes``, after checking its
    checksum; ``DamagedFile`` (naming the file and what is wrong) when it is cut short,
    unreadable, its content differs from its checksum, or it carries none (unless
    ``legacy``: then a file written before checksums is read unchecked, logged)."""
    from safetensors.torch import load

    path = Path(path)
    data = path.read_bytes()
    try:
        header, body = _split_safetensors(data)
    except ValueError as exc:
        raise DamagedFile(f"{path}: {exc}") from None
    meta = header.get("__metadata__") or {}
    want = meta.get(WEIGHTS_HASH) if isinstance(meta, dict) else None
    if want is None and not legacy:
        raise DamagedFile(f"{path}: carries no checksum (written by an older genloop), so it cannot be trusted")
    if want is None:
        log.info("%s: written before checksums: read unchecked", path)
    elif _weights_digest(header, body) != want:
        raise DamagedFile(f"{path}: its content differs from its checksum (damaged or edited)")
    try:
        tensors = load(data)
    except Exception as exc:  # noqa: BLE001 - safetensors' own error types
        raise DamagedFile(f"{path}: not readable as safetensors ({exc})") from None
    return tensors, dict(meta)


def write_csv(path: Path, rows: list[dict], columns: Optional[list[str]] = None) -> None:
    """Atomically write ``rows`` as CSV; columns are the union of keys in first-seen order."""
    if columns is None:
        columns = []
        for r in rows:
            for k in r:
                if k not in columns:
                    columns.append(k)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _csv_value(r.get(k)) for k in columns})
    write_text(path, buf.getvalue())


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if math.isnan(v) else repr(v)
    if isinstance(v, (list, tuple)):
        return json.dumps(v)
    return v


_CSV_CACHE: dict = {}  # path -> ((inode, mtime_ns, size), rows): the last few tables read, reused while unchanged


def read_csv(path: Path) -> list[dict]:
    """Rows of a CSV written by ``write_csv``; numbers are converted back.  A table read
    again while unchanged (same mtime and size) is not parsed again (the report reads
    ``metrics.csv`` in several places); the rows returned are fresh dicts."""
    key = str(Path(path).resolve())
    st = os.stat(key)
    stamp = (st.st_ino, st.st_mtime_ns, st.st_size)  # an atomic rewrite is a new inode
    hit = _CSV_CACHE.get(key)
    if hit is None or hit[0] != stamp:
        with open(path, newline="") as f:
            rows = [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(f)]
        while len(_CSV_CACHE) >= 4:
            _CSV_CACHE.pop(next(iter(_CSV_CACHE)))
        hit = _CSV_CACHE[key] = (stamp, rows)
    return [dict(r) for r in hit[1]]


def _parse(v: str) -> Any:
    if v == "":
        return None
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    write_text(path, "".join(json.dumps(r, default=_jsonable) + "\n" for r in rows))


ROW_HASH = "row_sha256"  # a rows.jsonl line's checksum: SHA-256 of the line's JSON without it
_ROW_TAIL = b'"row_sha256": "'  # then 64 hex digits and '"}' end the line
_ROW_HEAD = re.compile(rb'^\{"chain": "[^"\\]*", "seed": -?\d+, "generation": (\d+)[,}]')
_ROW_SECONDS = b'"total_seconds": '


def _row_json(row: dict) -> str:
    return json.dumps(row, default=_jsonable)


def _row_line(row: dict) -> str:
    """A rows.jsonl line: the row's JSON with its checksum as the last key (the SHA-256 of
    the JSON without it, so that a reader checks a line without parsing it)."""
    text = _row_json({k: v for k, v in row.items() if k != ROW_HASH})
    digest_ = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return f'{text[:-1]}{", " if text != "{}" else ""}"{ROW_HASH}": "{digest_}"}}\n'


def _row_body(line: bytes) -> Any:
    """(the line's JSON without its checksum, True) when the checksum holds, (line, False) when
    it carries none (older lines), or what is wrong (a str)."""
    n = len(_ROW_TAIL) + 66
    line = line.rstrip(b"\r")
    if line[-n:-66] != _ROW_TAIL or not line.endswith(b'"}'):
        return line, False
    want, body = line[-66:-2], line[:-n]
    body = (body[:-2] if body.endswith(b", ") else body) + b"}"
    if hashlib.sha256(body).hexdigest().encode() != want:
        return "its content differs from its checksum (damaged or edited)"
    return body, True


def _row_problem(line: bytes) -> Any:
    """The row (a dict) of a rows.jsonl line, or what is wrong with it (a str)."""
    body = _row_body(line)
    if isinstance(body, str):
        return body
    try:
        row = json.loads(body[0].decode("utf-8"))
    except UnicodeDecodeError:
        return "not UTF-8 text"
    except ValueError:
        return "not valid JSON"
    if not isinstance(row, dict) or isinstance(row.get("generation"), bool) or not isinstance(row.get("generation"), int):
        return "not a metric row with a generation number"
    row.pop(ROW_HASH, None)
    return row


def _row_brief(line: bytes) -> Any:
    """(generation, total_seconds or None) of a good rows.jsonl line without parsing all of it
    when its checksum holds; the row dict when it must be parsed; a str when it is bad."""
    body = _row_body(line)
    if isinstance(body, str):
        return body
    if body[1] or line.isascii():  # checked, or an older line without a checksum (trusted, as before)
        head = _ROW_HEAD.match(body[0])
        if head is not None:
            at = body[0].find(_ROW_SECONDS)
            try:
                if at < 0:
                    return int(head.group(1)), None
                start = at + len(_ROW_SECONDS)
                end = min(i for i in (body[0].find(b",", start), body[0].find(b"}", start)) if i >= 0)
                return int(head.group(1)), float(body[0][start:end])
            except ValueError:
                pass
    return _row_problem(line)


# --------------------------------------------------------------------------- one writer per folder

_HELD: dict[str, list] = {}  # resolved lock path -> [fd, depth] of the locks this process holds


def lock_holder(root: Path) -> Optional[dict]:
    """What ``run.lock`` says about its holder (pid, host, started, ...), without taking
    the lock; None when there is no lock file.  A lock file may be stale (its process gone):
    ``holder_alive`` tells for this host."""
    path = Path(root) / LOCK_NAME
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
    data = (json.dumps(info, default=_jsonable) + "\n").encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def acquire_lock(root: Path) -> None:
    """Take the run folder's lock (re-entrant within a process); raise ``RunLocked`` naming
    the holder when another process has it.  A lock file whose process is gone is taken
    over with a warning."""
    import fcntl

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_NAME
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
        old = os.read(fd, 65536).decode("utf-8", "replace").strip()
        if old:
            try:
                prev = json.loads(old)
            except ValueError:
                prev = {}
            log.warning("%s: took over a stale lock (%s): that process is gone", path,
                        describe_holder(prev if isinstance(prev, dict) else {}))
        _write_lock_info(fd, _lock_info())
        _HELD[key] = [fd, 1]
        return
    raise RunLocked(f"{root}: could not take {LOCK_NAME} (it keeps being replaced); is another run starting?")


def update_lock(root: Path, **fields: Any) -> None:
    """Add details (workers, backend, ...) to the lock this process holds on ``root``."""
    key = str((Path(root) / LOCK_NAME).resolve())
    held = _HELD.get(key)
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
    path = Path(root) / LOCK_NAME
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
    return str((Path(root) / LOCK_NAME).resolve()) in _HELD


# --------------------------------------------------------------------------- verified generations


def sha256_file(path: Union[str, Path]) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (the package's one file hash:
    DONE records, downloads, weight files)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class RunStore:
    """Paths and typed reads/writes of one run folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._row_cache: dict = {}  # (chain, generation) -> ((mtime_ns, size) of metrics.json, row)
        self._chain_dirs: dict[str, Path] = {}  # chain id -> its folder (the id checked once)

    # --- paths
    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def plots_dir(self) -> Path:
        return self.root / "plots"

    def chain_dir(self, chain: str) -> Path:
        """The folder of a chain; ``chain`` must be a chain id (one path component,
        ``check_chain_id``), so that nothing is ever written outside the run folder."""
        d = self._chain_dirs.get(chain)
        if d is None:
            d = self._chain_dirs[chain] = self.root / "chains" / check_chain_id(chain, f"{self.root / 'chains.json'}")
        return d

    @property
    def marker_path(self) -> Path:
        return self.root / MARKER_NAME

    def read_config(self) -> dict:
        """The raw config the folder was made with (``config.yaml``); ``DamagedFile`` when it is
        not readable, empty or not a mapping."""
        import yaml

        path = self.config_path
        why = None
        try:
            data = yaml.safe_load(path.read_bytes().decode("utf-8"))
        except UnicodeDecodeError:
            why, data = "not UTF-8 text", None
        except yaml.YAMLError as exc:
            why, data = f"not valid YAML ({type(exc).__name__})", None
        if why is None and not data:
            why = "empty"
        elif why is None and not isinstance(data, dict):
            why = "not a mapping of keys"
        if why:
            raise DamagedFile(f"{path}: damaged ({why}); it records the config this run folder was made with: "
                              "restore it from a copy, or run into another output folder (--force starts this "
                              "folder over, removing its results)")
        return data

    def gen_dir(self, chain: str, generation: int) -> Path:
        return self.chain_dir(chain) / f"gen_{generation:03d}"

    def rows_log_path(self, chain: str) -> Path:
        return self.chain_dir(chain) / "rows.jsonl"

    def resume_samples_path(self, chain: str) -> Path:
        return self.chain_dir(chain) / "resume_samples.npz"

    def train_state_path(self, chain: str, lineage: int = 0) -> Path:
        name = "state.safetensors" if lineage == 0 else f"state_l{lineage}.safetensors"
        return self.chain_dir(chain) / "train_state" / name

    # --- the row log of generations without a folder
    def _parse_log(self, chain: str, offset: int = 0) -> tuple[list[dict], int, Optional[tuple[int, str]]]:
        """Rows of ``rows.jsonl`` from byte ``offset``, the offset after the last good line, and
        (line number, problem) of the first damaged line (None when all are good).  A line
        is good when it is UTF-8 JSON of a row with an integer ``generation`` whose
        ``ROW_HASH`` (when present: older lines carry none) matches; reading stops at the
        first bad line.  A torn last line (no newline yet) is left for later."""
        path = self.rows_log_path(chain)
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return [], offset, None
        end = data.rfind(b"\n") + 1
        rows: list[dict] = []
        pos = 0
        for number, line in enumerate(data[:end].split(b"\n")[:-1], 1):
            problem = None if not line.strip() else _row_problem(line)
            if isinstance(problem, str):
                return rows, offset + pos, (number, problem)
            if problem is not None:
                rows.append(problem)
            pos += len(line) + 1
        return rows, offset + end, None

    def log_brief(self, chain: str) -> tuple[dict[int, Optional[float]], Optional[dict]]:
        """What ``genloop status`` needs of the chain's ``rows.jsonl``, read fast (each line's
        checksum is checked, only the last good line is parsed): generation -> total_seconds
        of the good lines before the first damaged one, and the last good row."""
        path = self.rows_log_path(chain)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return {}, None
        seconds: dict[int, Optional[float]] = {}
        last_line = None
        for line in data[:data.rfind(b"\n") + 1].split(b"\n")[:-1]:
            if not line.strip():
                continue
            brief = _row_brief(line)
            if isinstance(brief, str):
                break
            if isinstance(brief, dict):
                t = brief.get("total_seconds")
                seconds[int(brief["generation"])] = float(t) if isinstance(t, (int, float)) else None
            else:
                seconds[brief[0]] = brief[1]
            last_line = line
        last = _row_problem(last_line) if last_line is not None else None
        return seconds, last if isinstance(last, dict) else None

    def read_log(self, chain: str, offset: int = 0) -> tuple[list[dict], int]:
        """Rows logged in ``rows.jsonl`` from byte ``offset`` on, and the offset after the
        last good complete line (reading stops at a damaged line: ``log_damage``)."""
        rows, end, _ = self._parse_log(chain, offset)
        return rows, end

    def log_damage(self, chain: str) -> Optional[tuple[int, int, str]]:
        """(byte offset, line number, problem) of the first damaged line of the chain's
        ``rows.jsonl``; None when every complete line is good."""
        rows, end, bad = self._parse_log(chain)
        return None if bad is None else (end, bad[0], bad[1])

    def cut_log(self, chain: str, offset: int) -> None:
        """Keep the first ``offset`` bytes of the chain's ``rows.jsonl`` (atomically)."""
        path = self.rows_log_path(chain)
        with open(path, "rb") as f:
            head = f.read(offset)
        write_bytes(path, head)

    def logged_generations(self, chain: str) -> set[int]:
        rows, _ = self.read_log(chain)
        return {int(r["generation"]) for r in rows}

    def append_rows(self, chain: str, rows: list[dict]) -> None:
        """Append ``rows`` to the chain's ``rows.jsonl`` (each line with its checksum,
        ``ROW_HASH``) and make them durable (one fsync); a torn last line left by a killed
        writer is cut off first."""
        if not rows:
            return
        path = self.rows_log_path(chain)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(_row_line(r) for r in rows).encode("utf-8")
        with open(path, "ab+") as f:  # a new file gets the umask's mode, as with atomic_write
            size = f.seek(0, os.SEEK_END)
            if size:
                f.seek(max(0, size - 1))
                if f.read(1) != b"\n":  # torn tail: cut back to the last complete line
                    f.seek(0)
                    whole = f.read()
                    f.truncate(whole.rfind(b"\n") + 1)
                    f.seek(0, os.SEEK_END)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    # --- generations
    def is_done(self, chain: str, generation: int) -> bool:
        """Generation finished: its folder's ``DONE`` marker, or its row in ``rows.jsonl``."""
        return (self.gen_dir(chain, generation) / "DONE").exists() or generation in self.logged_generations(chain)

    def has_folder(self, chain: str, generation: int) -> bool:
        """The generation finished with a folder of files (``DONE``)."""
        return (self.gen_dir(chain, generation) / "DONE").exists()

    def mark_done(self, chain: str, generation: int, files: Optional[dict] = None,
                  paths: Iterable[Path] = ()) -> None:
        """Write the generation's DONE marker, recording the size and SHA-256 of the files it
        vouches for: ``files`` (path -> the bytes written there) and ``paths`` (read back)."""
        record: dict[str, dict] = {}
        for p, data in (files or {}).items():
            record[Path(p).name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for p in paths:
            p = Path(p)
            record[p.name] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
        write_json(self.gen_dir(chain, generation) / "DONE", {"files": dict(sorted(record.items()))})

    def done_record(self, chain: str, generation: int) -> Optional[dict]:
        """name -> {size, sha256} from a DONE marker; None for an unfinished generation or
        an empty marker (written before records existed)."""
        path = self.gen_dir(chain, generation) / "DONE"
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        if not text.strip():
            return None
        try:
            files = json.loads(text).get("files")
        except (ValueError, AttributeError):
            return {}
        return files if isinstance(files, dict) else {}

    def verify_done(self, chain: str, generation: int) -> Optional[str]:
        """None when every file a finished generation's DONE vouches for is there with its
        recorded size and SHA-256 (or the marker records nothing); else what is wrong,
        naming the file."""
        d = self.gen_dir(chain, generation)
        record = self.done_record(chain, generation)
        if record is None:
            return None
        if not record and (d / "DONE").read_text().strip():
            return "DONE: unreadable record"
        for name, want in record.items():
            p = d / name
            try:
                size = p.stat().st_size
            except FileNotFoundError:
                return f"{name} is missing"
            if size != want.get("size"):
                return f"{name} has {size} bytes, {want.get('size')} recorded"
            if sha256_file(p) != want.get("sha256"):
                return f"{name}: SHA-256 differs from the one recorded"
        return None

    def undo(self, chain: str, generation: int) -> None:
        """Mark a finished generation unfinished (its DONE marker goes; files are rewritten)."""
        try:
            (self.gen_dir(chain, generation) / "DONE").unlink()
        except FileNotFoundError:
            pass

    # --- failures
    def write_failure(self, chain: str, status: str, message: str, attempts: int = 1) -> None:
        lines = [line for line in str(message).strip().splitlines() if line.strip()]
        write_json(self.chain_dir(chain) / FAILED_NAME,
                   {"status": status, "error": lines[-1].strip() if lines else status, "attempts": attempts,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "message": str(message)[-6000:]})

    def clear_failure(self, chain: str) -> None:
        try:
            (self.chain_dir(chain) / FAILED_NAME).unlink()
        except FileNotFoundError:
            pass

    def failure(self, chain: str) -> Optional[dict]:
        p = self.chain_dir(chain) / FAILED_NAME
        try:
            return read_json(p)
        except (FileNotFoundError, ValueError):
            return None

    # --- the writer's lock
    def lock(self) -> contextlib.AbstractContextManager:
        """Context: hold the folder's lock (see ``acquire_lock``)."""

        @contextlib.contextmanager
        def held():
            acquire_lock(self.root)
            try:
                yield self
            finally:
                release_lock(self.root)

        return held()

    def finished_generations(self, chain: str) -> int:
        """Number of consecutive finished generations from 0."""
        logged = self.logged_generations(chain)
        g = 0
        while g in logged or self.has_folder(chain, g):
            g += 1
        return g

    def chain_rows(self, chain: str, start: int = 0, varied: Optional[dict] = None) -> list[dict]:
        """Metric rows of the chain's consecutive finished generations from ``start`` on
        (from ``rows.jsonl`` or the generation folders' ``metrics.json``); with ``varied``
        (the chain's settings from chains.json) rows written before a grid key was added
        get its column (see ``_with_varied``)."""
        logged = {int(r["generation"]): r for r in self.read_log(chain)[0]}
        rows, g = [], start
        while True:
            if g in logged:
                rows.append(logged[g])
            elif self.has_folder(chain, g):
                rows.append(self._cached_gen_metrics(chain, g))
            else:
                return [self._with_varied(r, varied) for r in rows] if varied else rows
            g += 1

    @staticmethod
    def samples_arrays(images: np.ndarray, labels: Optional[np.ndarray],
                       lineage: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
        """The arrays of a samples.npz; ``lineage`` (int per sample) when several lineages share it."""
        arrays = {"images": images}
        if labels is not None:
            arrays["labels"] = labels
        if lineage is not None:
            arrays["lineage"] = np.asarray(lineage, dtype=np.int64)
        return arrays

    def load_sample_arrays(self, chain: str, generation: int) -> dict[str, np.ndarray]:
        """Every array of a generation's samples.npz (images, labels, lineage when present)."""
        return load_npz(self.gen_dir(chain, generation) / "samples.npz")

    @staticmethod
    def lineage_arrays(arrays: dict[str, np.ndarray], lineage: int) -> dict[str, np.ndarray]:
        """One lineage's part of a samples file's ``arrays`` (without the ``lineage`` array): the
        samples tagged ``lineage``; a file without tags holds lineage 0's samples only."""
        z = dict(arrays)
        tags = z.pop("lineage", None)
        if tags is None:
            return z if lineage == 0 else {k: v[:0] for k, v in z.items()}
        return {k: v[tags == lineage] for k, v in z.items()}

    def load_samples(self, chain: str, generation: int,
                     lineage: Optional[int] = None) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """(images, labels) of a generation's kept samples: all, or one lineage's; (None, None)
        for samples that are not images (text: ``tokens``)."""
        z = self.load_sample_arrays(chain, generation)
        if z.get("images") is None:
            return None, None
        if lineage is not None:
            z = self.lineage_arrays(z, lineage)
        return z["images"], z.get("labels")

    def save_resume_samples(self, chain: str, generation: int, arrays: dict[str, np.ndarray]) -> None:
        """The newest kept samples of a chain whose generations keep no folder (``store.samples=last``),
        so that a resume can go on from them: ``resume_samples.npz`` with ``generation``."""
        write_bytes(self.resume_samples_path(chain), npz_bytes(generation=np.array(generation), **arrays))

    def kept_sample_arrays(self, chain: str, generation: int) -> Optional[dict[str, np.ndarray]]:
        """The arrays of a finished generation's kept samples: its folder's ``samples.npz``, else
        ``resume_samples.npz`` when that holds this generation; None when neither has them."""
        if (self.gen_dir(chain, generation) / "samples.npz").exists() and self.has_folder(chain, generation):
            return self.load_sample_arrays(chain, generation)
        path = self.resume_samples_path(chain)
        if not path.exists():
            return None
        arrays = load_npz(path)
        if int(arrays.pop("generation", -1)) != generation:
            return None
        return arrays

    def save_gen_metrics(self, chain: str, generation: int, row: dict) -> None:
        write_json(self.gen_dir(chain, generation) / "metrics.json", row)

    def load_gen_metrics(self, chain: str, generation: int) -> dict:
        path = self.gen_dir(chain, generation) / "metrics.json"
        if not path.exists():
            for r in self.read_log(chain)[0]:
                if int(r["generation"]) == generation:
                    return r
        return read_json(path)

    def _cached_gen_metrics(self, chain: str, g: int) -> dict:
        """A generation folder's ``metrics.json``, reused while unchanged (same mtime and size)."""
        path = self.gen_dir(chain, g) / "metrics.json"
        st = path.stat()
        key, stamp = (chain, g), (st.st_mtime_ns, st.st_size)
        hit = self._row_cache.get(key)
        if hit is None or hit[0] != stamp:
            hit = self._row_cache[key] = (stamp, read_json(path))
        return dict(hit[1])

    def chains(self) -> list[dict]:
        """The chains of the folder (``chains.json``), their ids checked (``check_chain_id``);
        ``DamagedFile`` when the file is damaged."""
        p = self.root / "chains.json"
        if not p.exists():
            return []
        recover = ("restore it from a copy, or run into another output folder (--force starts this folder over, "
                   "removing its results)")
        chains = read_json_checked(p, "the run folder's chain ids", recover)
        if not isinstance(chains, list) or not all(isinstance(c, dict) and "id" in c for c in chains):
            raise DamagedFile(f"{p}: damaged (not a list of chains); it holds the run folder's chain ids: {recover}")
        for c in chains:
            check_chain_id(c["id"], str(p))
        if len({c["id"] for c in chains}) != len(chains):
            raise DamagedFile(f"{p}: damaged (a chain id appears twice); {recover}")
        return chains

    @staticmethod
    def _with_varied(row: dict, varied: dict) -> dict:
        """``row`` with the chain's varied settings it lacks (a run extended with a new grid
        key or seeds adds columns that its earlier rows were written without)."""
        missing = {k: v for k, v in varied.items() if k not in row}
        if not missing:
            return dict(row)
        ids = ("chain", "seed", "generation")
        out = {k: row[k] for k in ids if k in row}
        out.update({k: row[k] if k in row else varied[k] for k in varied})
        out.update({k: v for k, v in row.items() if k not in out})
        return out

    def metric_rows(self) -> list[dict]:
        """Rows of every finished generation of every chain, in order.  Rows already
        read from a metrics.json are reused while it is unchanged (same mtime and size).
        For many chains, iterate ``chain_rows`` per chain instead (bounded memory)."""
        rows = []
        for ch in self.chains():
            rows += self.chain_rows(ch["id"], varied=ch.get("varied"))
        return rows
