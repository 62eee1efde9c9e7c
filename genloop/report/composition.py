"""What each generation trained on: the training pool's composition per
generation as stacked bars, from the ``pool_*`` columns of ``metrics.csv``.

- Runs with several lineages (``ecosystem``): one bar segment for the real images
  and one per lineage (``pool_real``, ``pool_lineage_<k>``).
- Otherwise: real images and one segment per generation that made the images
  (``pool_real``, ``pool_gen_<g>``), coloured by that generation (a colour bar, so
  that hundreds of generations stay readable) - e.g. ``accumulate``'s pool of
  every earlier generation, ``mix``'s or ``fresh``'s real share.

A chain is drawn when some generation's pool mixes sources (so ``replace``,
whose pool is always entirely the previous generation's, is skipped), once per
setting (the first seed of chains that differ only in their seed).  When the
pool size changes (``accumulate``, ``detect``, ``curate``) it is drawn as a line
on a second axis.
"""
from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Optional

from ..runfolder import RunStore, read_csv
from .plots import FORMATS, save_figure

log = logging.getLogger(__name__)

MAX_BARS = 60  # from this many generations on, each source is one filled band (stairs), not a bar per generation


def _num(v) -> float:
    return float(v) if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)) else 0.0


def _segments(rows: list[dict], columns: list[str]) -> tuple[str, list[str]]:
    """('lineage' | 'origin', the columns to stack, in order)."""
    lineages = sorted((c for c in columns if re.fullmatch(r"pool_lineage_\d+", c)), key=lambda c: int(c.rsplit("_", 1)[1]))
    if lineages:
        return "lineage", ["pool_real"] + lineages
    gens = sorted((c for c in columns if re.fullmatch(r"pool_gen_\d+", c)), key=lambda c: int(c.rsplit("_", 1)[1]))
    return "origin", ["pool_real"] + gens


def _mixes_sources(rows: list[dict], cols: list[str]) -> bool:
    return any(sum(_num(r.get(c)) > 0 for c in cols) > 1 for r in rows)


def plot_composition(run_dir: Path, formats: tuple[str, ...] = FORMATS,
                     chains: Optional[list[str]] = None) -> list[Path]:
    """Draw ``RUN/plots/composition_<chain>.<fmt>`` for every chain whose pool mixes
    sources (or for ``chains``); returns every written path (PNG and PDF)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    store = RunStore(Path(run_dir))
    path = store.metrics_csv
    if not path.exists():
        log.warning("%s: no metrics.csv yet, no composition to draw", store.root)
        return []
    rows = read_csv(path)
    if not rows:
        return []
    columns = list(rows[0].keys())
    by_chain: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_chain[str(r["chain"])].append(r)
    info = {c["id"]: c for c in store.chains()}
    interaction = _interaction(store)
    seen_settings = set()
    out: list[Path] = []
    for chain, rs in by_chain.items():
        if chains is not None and chain not in chains:
            continue
        varied = {k: v for k, v in info.get(chain, {}).get("varied", {}).items() if k != "seed"}
        setting = repr(sorted(varied.items()))
        if chains is None and setting in seen_settings:
            continue
        rs = sorted(rs, key=lambda r: r["generation"])
        mode, cols = _segments(rs, columns)
        if chains is None and not _mixes_sources(rs, cols):
            continue
        seen_settings.add(setting)
        fig = _chain_figure(plt, chain, rs, mode, cols, interaction)
        stem = "composition_" + re.sub(r"[^A-Za-z0-9_.=+-]", "", chain)
        out += save_figure(fig, store.plots_dir / stem, formats)
        plt.close(fig)
    return out


def _interaction(store: RunStore) -> str:
    """The run's ``loop.interaction`` when it is one name, else ""."""
    if not store.config_path.exists():
        return ""
    import yaml

    value = (yaml.safe_load(store.config_path.read_text()) or {}).get("loop", {}).get("interaction")
    return value if isinstance(value, str) else ""


def _chain_figure(plt, chain: str, rs: list[dict], mode: str, cols: list[str], interaction: str):
    """One chain's figure: the stacked sources per generation, a colour bar of the
    generations (``origin``) and the pool size on a second axis when it changes."""
    from matplotlib import cm
    from matplotlib.colors import Normalize

    gens = [int(r["generation"]) for r in rs]
    last = max(gens) if gens else 0
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=120)
    cmap, norm = cm.viridis, Normalize(vmin=0, vmax=max(last, 1))
    _stack(ax, rs, gens, mode, cols, cmap, norm)
    ax.set_ylim(0, 1.0)
    ax.set_xlabel("generation (trained on the pool)")
    ax.set_ylabel("fraction of the training pool")
    title = f"Training pool: {chain}" + (f" ({interaction})" if interaction else "")
    ax.set_title(title if len(title) < 70 else title[:67] + "...", fontsize=9)
    if mode == "origin":
        sm = cm.ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(sm, ax=ax, pad=0.12 if _size_varies(rs) else 0.02).set_label("sampled by generation")
    if _size_varies(rs):
        ax2 = ax.twinx()
        ax2.plot(gens, [_num(r.get("pool_size")) for r in rs], color="crimson", lw=1.2, label="pool size")
        ax2.set_ylabel("pool size (images)", color="crimson")
        ax2.set_ylim(bottom=0)
        ax2.tick_params(axis="y", colors="crimson")
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def _stack(ax, rs: list[dict], gens: list[int], mode: str, cols: list[str], cmap, norm) -> None:
    """The sources ``cols`` stacked per generation: bars, or one filled band each from
    ``MAX_BARS`` generations on."""
    bottom = [0.0] * len(rs)
    width = 0.9 if len(rs) < 60 else 1.0
    for col in cols:
        vals = [_num(r.get(col)) for r in rs]
        if not any(vals):
            continue
        if col == "pool_real":
            color, label = "0.35", "real"
        elif mode == "lineage":
            k = int(col.rsplit("_", 1)[1])
            color, label = f"C{k % 10}", f"lineage {k}"
        else:
            color, label = cmap(norm(int(col.rsplit("_", 1)[1]))), None
        top = [b + v for b, v in zip(bottom, vals)]
        if len(rs) < MAX_BARS:  # the bars of height 0 are invisible: not drawn (a source is mostly absent)
            nz = [i for i, v in enumerate(vals) if v]
            ax.bar([gens[i] for i in nz], [vals[i] for i in nz], bottom=[bottom[i] for i in nz], width=width,
                   color=color, label=label, linewidth=0)
        else:  # one filled band per source instead of a rectangle per generation (200 x 200 bars take minutes)
            ax.fill_between(gens, bottom, top, step="mid", color=color, label=label, linewidth=0)
        bottom = top


def _size_varies(rows: list[dict]) -> bool:
    sizes = {_num(r.get("pool_size")) for r in rows}
    return len(sizes) > 1
