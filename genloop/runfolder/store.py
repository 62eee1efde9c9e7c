"""``RunStore``: typed reads and writes of one run folder (its paths: ``Layout``).

What a generation writes follows ``store.samples`` and ``store.checkpoints``
(``every`` | ``last`` | ``none``).  A generation that keeps a file gets its
``gen_NNN/`` folder (``metrics.json`` and ``DONE`` last, ``genloop.runfolder.done``).  A
generation that keeps none (``none``, or ``last`` before the final generation) gets no
folder: its metric row is appended to ``chains/<chain>/rows.jsonl``
(``genloop.runfolder.rows``), and a generation counts as finished when its row is there.
``store.samples=last`` also keeps ``resume_samples.npz``: the kept samples of the newest
generation whose row is logged, written with each batch, so that a resume can go on from
there; if the generation a resume needs is not available, the chain is recomputed in
memory from generation 0 (same seeds, same numbers; logged), never continued from other data.

With several lineages (interaction ``ecosystem``) ``samples.npz`` holds every lineage's kept
samples and a ``lineage`` array saying whose each is.  ``provenance.npz`` holds, per training
image, ``origin`` (-1 real, else the generation that sampled it), ``lineage`` and ``index``
(its position in the real training set or in that generation's samples of that lineage).
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

import genloop.runfolder.rows as row_log  # the module, not the package: no import circle
from .done import check_done, read_done, write_done
from .errors import DamagedFile
from .files import load_npz, npz_bytes, read_json, read_json_checked, write_bytes, write_json
from .layout import Layout, check_chain_id
from .lock import acquire_lock, release_lock

_RECOVER = "restore it from a copy, or run into another output folder (--force starts this folder over, removing its results)"


class RunStore(Layout):
    """Typed reads and writes of one run folder (its paths and names: ``Layout``)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._row_cache: dict = {}  # (chain, generation) -> ((mtime_ns, size) of metrics.json, row)

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
                              f"{_RECOVER}")
        return data

    def chains(self) -> list[dict]:
        """The chains of the folder (``chains.json``), their ids checked (``check_chain_id``);
        ``DamagedFile`` when the file is damaged."""
        p = self.chains_path
        if not p.exists():
            return []
        chains = read_json_checked(p, "the run folder's chain ids", _RECOVER)
        if not isinstance(chains, list) or not all(isinstance(c, dict) and "id" in c for c in chains):
            raise DamagedFile(f"{p}: damaged (not a list of chains); it holds the run folder's chain ids: {_RECOVER}")
        for c in chains:
            check_chain_id(c["id"], str(p))
        if len({c["id"] for c in chains}) != len(chains):
            raise DamagedFile(f"{p}: damaged (a chain id appears twice); {_RECOVER}")
        return chains

    # --- the row log of generations without a folder (``genloop.runfolder.rows``)
    def log_brief(self, chain: str) -> tuple[dict[int, Optional[float]], Optional[dict]]:
        """What ``genloop status`` needs of the chain's ``rows.jsonl`` (``rows.log_brief``)."""
        return row_log.log_brief(self.rows_log_path(chain))

    def read_log(self, chain: str, offset: int = 0) -> tuple[list[dict], int]:
        """Rows logged in ``rows.jsonl`` from byte ``offset`` on, and the offset after the
        last good complete line (reading stops at a damaged line: ``log_damage``)."""
        rows, end, _ = row_log.parse_log(self.rows_log_path(chain), offset)
        return rows, end

    def log_damage(self, chain: str) -> Optional[tuple[int, int, str]]:
        """(byte offset, line number, problem) of the first damaged line of the chain's
        ``rows.jsonl``; None when every complete line is good."""
        rows, end, bad = row_log.parse_log(self.rows_log_path(chain))
        return None if bad is None else (end, bad[0], bad[1])

    def cut_log(self, chain: str, offset: int) -> None:
        """Keep the first ``offset`` bytes of the chain's ``rows.jsonl`` (atomically)."""
        row_log.cut_log(self.rows_log_path(chain), offset)

    def logged_generations(self, chain: str) -> set[int]:
        rows, _ = self.read_log(chain)
        return {int(r["generation"]) for r in rows}

    def append_rows(self, chain: str, rows: list[dict]) -> None:
        """Append ``rows`` to the chain's ``rows.jsonl``, durably (``rows.append_rows``)."""
        row_log.append_rows(self.rows_log_path(chain), rows)

    # --- generations
    def is_done(self, chain: str, generation: int) -> bool:
        """Generation finished: its folder's ``DONE`` marker, or its row in ``rows.jsonl``."""
        return self.done_path(chain, generation).exists() or generation in self.logged_generations(chain)

    def has_folder(self, chain: str, generation: int) -> bool:
        """The generation finished with a folder of files (``DONE``)."""
        return self.done_path(chain, generation).exists()

    def mark_done(self, chain: str, generation: int, files: Optional[dict] = None,
                  paths: Iterable[Path] = ()) -> None:
        """Write the generation's DONE marker, recording the size and SHA-256 of the files it
        vouches for: ``files`` (path -> the bytes written there) and ``paths`` (read back)."""
        write_done(self.gen_dir(chain, generation), files, paths)

    def done_record(self, chain: str, generation: int) -> Optional[dict]:
        """name -> {size, sha256} from a DONE marker; None for an unfinished generation or
        an empty marker (written before records existed)."""
        return read_done(self.gen_dir(chain, generation))

    def verify_done(self, chain: str, generation: int) -> Optional[str]:
        """None when every file a finished generation's DONE vouches for is there with its
        recorded size and SHA-256 (or the marker records nothing); else what is wrong,
        naming the file."""
        return check_done(self.gen_dir(chain, generation))

    def undo(self, chain: str, generation: int) -> None:
        """Mark a finished generation unfinished (its DONE marker goes; files are rewritten)."""
        try:
            self.done_path(chain, generation).unlink()
        except FileNotFoundError:
            pass

    def finished_generations(self, chain: str) -> int:
        """Number of consecutive finished generations from 0."""
        logged = self.logged_generations(chain)
        g = 0
        while g in logged or self.has_folder(chain, g):
            g += 1
        return g

    # --- failures
    def write_failure(self, chain: str, status: str, message: str, attempts: int = 1) -> None:
        lines = [line for line in str(message).strip().splitlines() if line.strip()]
        write_json(self.failure_path(chain),
                   {"status": status, "error": lines[-1].strip() if lines else status, "attempts": attempts,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "message": str(message)[-6000:]})

    def clear_failure(self, chain: str) -> None:
        try:
            self.failure_path(chain).unlink()
        except FileNotFoundError:
            pass

    def failure(self, chain: str) -> Optional[dict]:
        try:
            return read_json(self.failure_path(chain))
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

    # --- kept samples
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
        return load_npz(self.samples_path(chain, generation))

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
        if self.samples_path(chain, generation).exists() and self.has_folder(chain, generation):
            return self.load_sample_arrays(chain, generation)
        path = self.resume_samples_path(chain)
        if not path.exists():
            return None
        arrays = load_npz(path)
        if int(arrays.pop("generation", -1)) != generation:
            return None
        return arrays

    # --- metric rows
    def save_gen_metrics(self, chain: str, generation: int, row: dict) -> None:
        write_json(self.gen_metrics_path(chain, generation), row)

    def load_gen_metrics(self, chain: str, generation: int) -> dict:
        path = self.gen_metrics_path(chain, generation)
        if not path.exists():
            for r in self.read_log(chain)[0]:
                if int(r["generation"]) == generation:
                    return r
        return read_json(path)

    def _cached_gen_metrics(self, chain: str, g: int) -> dict:
        """A generation folder's ``metrics.json``, reused while unchanged (same mtime and size)."""
        path = self.gen_metrics_path(chain, g)
        st = path.stat()
        key, stamp = (chain, g), (st.st_mtime_ns, st.st_size)
        hit = self._row_cache.get(key)
        if hit is None or hit[0] != stamp:
            hit = self._row_cache[key] = (stamp, read_json(path))
        return dict(hit[1])

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
