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
      chains/<chain>/
        gen_000/ samples.npz  model.safetensors  grid.png  metrics.json  provenance.npz  DONE
        train_state/            checkpoint of an unfinished generation's training
        rows.jsonl              metric rows of generations that keep no file (see below)
        resume_samples.npz      store.samples=last: the latest kept samples, for a resume

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

With several lineages (interaction ``ecosystem``) ``samples.npz`` holds every
lineage's kept samples and a ``lineage`` array saying whose each is; lineage
k > 0 writes ``model_l<k>.safetensors`` and ``grid_l<k>.png`` (lineage 0 the
plain names) and trains from ``train_state/state_l<k>.safetensors``.
``provenance.npz`` holds, per training image, ``origin`` (-1 real, else the
generation that sampled it), ``lineage`` and ``index`` (its position in the
real training set or in that generation's samples of that lineage).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np


def atomic_write(path: Path, write) -> None:
    """Call ``write(f)`` on a temp file beside ``path``, fsync it and rename it over ``path``;
    on any error the temp file is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
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


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """The bytes of an .npz holding ``arrays`` (no pickled objects)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Atomically write arrays to ``path`` (no pickled objects)."""
    def write(f):
        np.savez(f, **arrays)
    atomic_write(path, write)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(Path(path), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def weights_bytes(tensors: dict, metadata: Optional[dict] = None) -> bytes:
    """A dict of tensors as safetensors bytes (never pickle)."""
    from safetensors.torch import save

    clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    return save(clean, metadata={k: str(v) for k, v in (metadata or {}).items()})


def save_weights(path: Path, tensors: dict, metadata: Optional[dict] = None) -> None:
    """Save a dict of tensors as safetensors (never pickle)."""
    write_bytes(path, weights_bytes(tensors, metadata))


def load_weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


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


class RunStore:
    """Paths and typed reads/writes of one run folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._row_cache: dict = {}  # (chain, generation) -> ((mtime_ns, size) of metrics.json, row)

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
        return self.root / "chains" / chain

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
    def read_log(self, chain: str, offset: int = 0) -> tuple[list[dict], int]:
        """Rows logged in ``rows.jsonl`` from byte ``offset`` on, and the offset after the
        last complete line (a torn last line is left for later)."""
        path = self.rows_log_path(chain)
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return [], offset
        end = data.rfind(b"\n") + 1
        rows = [json.loads(line) for line in data[:end].splitlines() if line.strip()]
        return rows, offset + end

    def logged_generations(self, chain: str) -> set[int]:
        rows, _ = self.read_log(chain)
        return {int(r["generation"]) for r in rows}

    def append_rows(self, chain: str, rows: list[dict]) -> None:
        """Append ``rows`` to the chain's ``rows.jsonl`` and make them durable (one fsync);
        a torn last line left by a killed writer is cut off first."""
        if not rows:
            return
        path = self.rows_log_path(chain)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(r, default=_jsonable) + "\n" for r in rows).encode("utf-8")
        with open(path, "ab+") as f:
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

    def mark_done(self, chain: str, generation: int) -> None:
        write_text(self.gen_dir(chain, generation) / "DONE", "")

    def finished_generations(self, chain: str) -> int:
        """Number of consecutive finished generations from 0."""
        logged = self.logged_generations(chain)
        g = 0
        while g in logged or self.has_folder(chain, g):
            g += 1
        return g

    def chain_rows(self, chain: str, start: int = 0) -> list[dict]:
        """Metric rows of the chain's consecutive finished generations from ``start`` on
        (from ``rows.jsonl`` or the generation folders' ``metrics.json``)."""
        logged = {int(r["generation"]): r for r in self.read_log(chain)[0]}
        rows, g = [], start
        while True:
            if g in logged:
                rows.append(logged[g])
            elif self.has_folder(chain, g):
                rows.append(self._cached_gen_metrics(chain, g))
            else:
                return rows
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

    def save_samples(self, chain: str, generation: int, images: np.ndarray, labels: Optional[np.ndarray],
                     lineage: Optional[np.ndarray] = None) -> None:
        """Kept samples; ``lineage`` (int per sample) when several lineages share the file."""
        save_npz(self.gen_dir(chain, generation) / "samples.npz", **self.samples_arrays(images, labels, lineage))

    def load_sample_arrays(self, chain: str, generation: int) -> dict[str, np.ndarray]:
        """Every array of a generation's samples.npz (images, labels, lineage when present)."""
        return load_npz(self.gen_dir(chain, generation) / "samples.npz")

    def load_samples(self, chain: str, generation: int,
                     lineage: Optional[int] = None) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """(images, labels) of a generation's kept samples: all, or one lineage's."""
        z = self.load_sample_arrays(chain, generation)
        images, labels = z["images"], z.get("labels")
        if lineage is not None:
            sel = z["lineage"] == lineage if "lineage" in z else np.full(len(images), lineage == 0)
            images, labels = images[sel], None if labels is None else labels[sel]
        return images, labels

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
        p = self.root / "chains.json"
        return read_json(p) if p.exists() else []

    def metric_rows(self) -> list[dict]:
        """Rows of every finished generation of every chain, in order.  Rows already
        read from a metrics.json are reused while it is unchanged (same mtime and size).
        For many chains, iterate ``chain_rows`` per chain instead (bounded memory)."""
        rows = []
        for ch in self.chains():
            rows += self.chain_rows(ch["id"])
        return rows
