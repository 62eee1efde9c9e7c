"""What a finished generation leaves in the run folder: its files (``generation_files``:
kept samples, provenance, models, a preview of the samples, its metrics row), or, for a
generation that keeps no folder (``store.samples`` / ``store.checkpoints``), its row in
the chain's ``rows.jsonl`` (``RowLog``)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..data import ImageSet
from ..grid import make_grid
from ..runfolder import Layout, RunStore, in_parallel, json_bytes, npz_bytes, weights_bytes
from .generation import GenerationResult, lineage_file_suffix

# Rows of generations without a folder (store.samples / store.checkpoints not every) are
# appended to their chains' rows.jsonl at most this often (seconds; always at a chain's end),
# all chains' together (``RowLogs``), or ten times as long as the last flush took.
LOG_INTERVAL = 2.0

PASSAGES = 8  # generated passages kept as text per generation (text data)


def _image_preview(samples: ImageSet, d: Path, suffix: str) -> dict:
    if samples.images.dtype != np.uint8:
        return {}
    import io

    from PIL import Image

    grid = make_grid(samples.images, samples.labels, samples.num_classes)
    buf = io.BytesIO()
    Image.fromarray(grid[..., 0] if grid.shape[2] == 1 else grid).save(buf, format="PNG")
    return {d / Layout.grid_name(suffix): buf.getvalue()}


def _text_preview(samples: Any, d: Path, suffix: str) -> dict:
    return {d / Layout.passages_name(suffix): json_bytes(samples.texts(PASSAGES))}


# What a generation folder shows of its samples, by data kind: a grid (images), passages (text).
PREVIEWS: dict[str, Callable[[Any, Path, str], dict]] = {"images": _image_preview, "tokens": _text_preview}


def preview_files(samples: Any, d: Path, suffix: str) -> dict:
    """Preview files (path -> bytes) of a generation's samples (written with the others, recorded in DONE)."""
    return PREVIEWS[samples.kind](samples, d, suffix)


class RowLog:
    """Rows of a chain's generations that keep no folder, appended to its ``rows.jsonl`` in
    batches (``flush_if_due``: when its ``group`` is due, and at the chain's last
    generation); with ``store.samples=last`` the newest kept samples are written to
    ``resume_samples.npz`` with the rows that need them."""

    def __init__(self, store: RunStore, chain: str, group: Optional["RowLogs"] = None) -> None:
        self.store, self.chain = store, chain
        self.pending: list[dict] = []
        self.newest: Optional[tuple[int, dict]] = None  # (generation, arrays) of the newest kept samples
        self.group = RowLogs() if group is None else group
        self.group.logs.add(self)

    def add(self, row: dict, kept_arrays: Optional[dict] = None) -> None:
        self.pending.append(row)
        if kept_arrays is not None:
            self.newest = (row["generation"], kept_arrays)

    def flush(self) -> None:
        if not self.pending:
            return
        if self.newest is not None and self.newest[0] == self.pending[-1]["generation"]:
            self.store.save_resume_samples(self.chain, *self.newest)
        self.store.append_rows(self.chain, self.pending)
        self.pending.clear()

    def flush_if_due(self, final: bool) -> None:
        if final:
            self.flush()
        else:
            self.group.flush_if_due()

    def close(self) -> None:
        """Flush what is pending and leave the group (the chain stops)."""
        try:
            self.flush()
        finally:
            self.group.logs.discard(self)


class RowLogs:
    """The row logs of the chains that run side by side (an experiment's), flushed together
    (their fsyncs in parallel: ``in_parallel``) at most every ``LOG_INTERVAL`` seconds, or ten
    times as long as the last flush took: chains that each finish a generation every few
    milliseconds would otherwise spend their time waiting on the disk."""

    def __init__(self) -> None:
        self.logs: set[RowLog] = set()
        self.due = time.perf_counter() + LOG_INTERVAL

    def flush(self) -> None:
        in_parallel([log.flush for log in self.logs if log.pending])

    def flush_if_due(self) -> None:
        now = time.perf_counter()
        if now < self.due:
            return
        self.flush()
        self.due = time.perf_counter() + max(LOG_INTERVAL, 10 * (time.perf_counter() - now))


def kept_arrays(res: GenerationResult, nl: int) -> dict:
    """The arrays of a generation's kept samples (several lineages: tagged by a ``lineage`` array)."""
    if nl == 1:
        return res.kept[0].arrays()
    parts = [k.arrays() for k in res.kept]
    arrays = {name: np.concatenate([p[name] for p in parts]) for name in parts[0] if all(name in p for p in parts)}
    arrays["lineage"] = np.concatenate([np.full(len(k), lin, dtype=np.int64) for lin, k in enumerate(res.kept)])
    return arrays


def generation_files(store: RunStore, chain: str, g: int, res: GenerationResult, row: dict, nl: int,
                     with_samples: bool, with_model: bool) -> dict:
    """The files of generation ``g``'s folder (path -> bytes); empty when it keeps none."""
    d = store.gen_dir(chain, g)
    files: dict = {}
    if with_samples:
        pool = res.pool
        files[d / Layout.SAMPLES] = npz_bytes(**kept_arrays(res, nl))
        files[d / Layout.PROVENANCE] = npz_bytes(origin=pool.origin, lineage=pool.lineage, index=pool.index)
    for lin, (gen, samples) in enumerate(zip(res.generators, res.samples)):
        suffix = lineage_file_suffix(lin)
        if with_model:
            state = gen.state_dict()
            if state:
                meta = {"generation": g, "chain": chain, **({"lineage": lin} if nl > 1 else {})}
                files[d / Layout.model_name(suffix)] = weights_bytes(state, meta)
        if with_samples and len(samples):  # a grid (images) or passages (text)
            files.update(preview_files(samples, d, suffix))
    if files:
        files[d / Layout.METRICS_JSON] = json_bytes(row)
    return files
