"""The sections of ``RUN/report.html`` that show what the generations made: sample grids in
the paper's layout (image runs) or passages beside the real text's (text runs)."""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Optional

from ..runfolder import RunStore, read_json
from .html_parts import data_uri, esc

# A sample of the report's grids is drawn at least this many screen pixels wide (nearest-neighbour
# upscaling by an integer factor; CSS keeps it at its natural size, without smoothing).
SAMPLE_MIN_PX = 32


def _png_uri(grid) -> str:
    """An (H, W, C) uint8 array as a PNG ``data:`` URI."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(grid[..., 0] if grid.shape[2] == 1 else grid).save(buf, format="PNG")
    return f"data:image/png;base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def _sample_row(images, labels, num_classes: int) -> Optional[tuple[str, int, int]]:
    """One generation's row of the paper's layout: one sample per class (two when there
    are at most 5 classes) in class order, or the first 10 samples when unlabelled.
    Returns (PNG data URI, samples in the row, pixel size of one sample in the PNG)."""
    import numpy as np

    if images is None or len(images) == 0 or images.dtype != np.uint8 or images.ndim != 4:
        return None
    if labels is not None and num_classes > 0:
        per = 2 if num_classes <= 5 else 1
        idx = np.concatenate([np.flatnonzero(labels == k)[:per] for k in range(num_classes)]).astype(int)
    else:
        idx = np.arange(min(len(images), 10))
    if not len(idx):
        return None
    h = images.shape[2]
    scale = max(1, -(-SAMPLE_MIN_PX // h))
    tiles = images[idx].transpose(0, 2, 3, 1).repeat(scale, 1).repeat(scale, 2)  # (n, H, W, C), nearest
    n, th, tw, c = tiles.shape
    row = np.full((th + 2, n * (tw + 1) + 1, c), 255, np.uint8)  # 1-pixel white gaps
    for j in range(n):
        row[1:1 + th, 1 + j * (tw + 1):1 + j * (tw + 1) + tw] = tiles[j]
    return _png_uri(row), len(idx), h * scale


def samples_section(store: RunStore, chains: list[dict]) -> str:
    """The paper's Figure 2 layout: one block per chain (setting and seed), one row per
    finished generation (all of them), one column per class; blocks wrap across the page."""
    blocks = []
    for ch in chains:
        n = store.finished_generations(ch["id"])
        samples = {g: store.load_samples(ch["id"], g) for g in range(n)
                   if store.samples_path(ch["id"], g).exists()}
        k = max((int(lab.max()) + 1 for _, lab in samples.values() if lab is not None and len(lab)), default=0)
        rows = []
        for g in range(n):
            d = store.gen_dir(ch["id"], g)
            row = _sample_row(*samples[g], k) if g in samples else None
            if row is not None:
                uri, cells, cell = row
                img = (f'<img src="{uri}" class="samples" data-cells="{cells}" data-cell="{cell}" '
                       f'alt="{esc(ch["id"])} generation {g}" title="{esc(ch["id"])} generation {g}">')
            else:
                grids = sorted(d.glob(store.GRID_GLOB))  # samples.npz absent: the saved grid, unscaled
                if not grids:
                    continue
                img = "".join(f'<img src="{data_uri(p)}" class="samples" alt="{esc(ch["id"])} generation {g}">'
                              for p in grids)
            rows.append(f'<tr><th class="l">gen {g}</th><td>{img}</td></tr>')
        if not rows:
            continue
        varied = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in ch.get("varied", {}).items())
        title = f"{varied} ({ch['id']})" if varied else ch["id"]
        blocks.append(f'<div class="block"><h3>{esc(title)}</h3><table>{"".join(rows)}</table></div>')
    if not blocks:
        return '<p class="muted">No sample grids (no finished generation, or samples that are not images).</p>'
    return ('<p class="muted">As the paper\'s Figure 2: one block per chain, one row per generation '
            "(generation 0 is trained on real data), one sample per class in class order (two for at most "
            f"5 classes; the first 10 when unlabelled); every sample is at least {SAMPLE_MIN_PX} pixels wide "
            "(nearest-neighbour upscaling). The full grids are <code>chains/*/gen_*/grid.png</code>.</p>"
            f'<div class="blocks">{"".join(blocks)}</div>')


PASSAGES_SHOWN = 3  # generated passages shown per generation


def _passage_files(store: RunStore, chain: str, generation: int) -> list[Path]:
    return sorted(store.gen_dir(chain, generation).glob(store.PASSAGES_GLOB))


def is_text_run(store: RunStore, chains: list[dict]) -> bool:
    """A run on text: its generations keep passages (``passages*.json``) instead of grids, or
    (before any generation finished) the run wrote the real passages or a tokenizer."""
    if store.real_passages_path.exists() or any(store.data_cache_dir.glob("tokenizer-*.json")):
        return True
    for ch in chains:
        n = store.finished_generations(ch["id"])
        if n and _passage_files(store, ch["id"], n - 1):
            return True
    return False


def _passage_cells(texts: list[str]) -> str:
    cells = "".join(f'<td><div class="passage">{esc(t)}</div></td>' for t in texts[:PASSAGES_SHOWN])
    return cells + "<td></td>" * (PASSAGES_SHOWN - min(len(texts), PASSAGES_SHOWN))


def passages_section(store: RunStore, chains: list[dict]) -> Optional[str]:
    """Text runs: per chain, the real training text's first passages, then the first generated
    passages of every finished generation below them, column by column (HTML-escaped, left-aligned,
    line breaks kept).  The first chain is open, the others fold."""
    path = store.real_passages_path
    real = read_json(path) if path.exists() else {}
    out = []
    for ch in chains:
        rows = []
        if real.get(ch["id"]):
            rows.append(f'<tr class="real"><th>real text</th>{_passage_cells(real[ch["id"]])}</tr>')
        for g in range(store.finished_generations(ch["id"])):
            for p in _passage_files(store, ch["id"], g):
                lineage = store.passages_lineage(p)
                cap = f"gen {g}" + (f" ({lineage})" if lineage else "")
                rows.append(f"<tr><th>{esc(cap)}</th>{_passage_cells(read_json(p))}</tr>")
        if not rows:
            continue
        varied = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in ch.get("varied", {}).items())
        title = f"{varied} ({ch['id']})" if varied else ch["id"]
        out.append(f'<details{" open" if not out else ""}><summary>{esc(title)}</summary>'
                   f'<table class="passages">{"".join(rows)}</table></details>')
    if not out:
        return None
    return ('<p class="muted">One block per chain (click a title to open or fold it): the first '
            f"{PASSAGES_SHOWN} passages (blocks of tokens, decoded) of every finished generation, below the "
            "real training text's first passages (shaded). Generation 0 is trained on real text.</p>"
            + "".join(out))
