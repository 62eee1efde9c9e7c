"""Phase diagrams: a heat map of the final generation's value of each metric over two
numeric grid axes (e.g. ``loop.synthetic_fraction`` x ``loop.verify_false_accept``), one
cell per setting (the mean over its seeds, with the half-width of its 95 % interval),
and the same for the collapse onset (``onset_<metric>_mean``, the first generation that
left the reference band, over the seeds that left it; a cell whose seeds never left is
blank).  Drawn when a run varies at least two numeric keys besides the seed (the first
two, in config order, are the axes; other varied keys give one figure each of their
combinations; ``loop.synthetic_fraction`` or ``loop.real_fraction`` is the x axis when it
varies).  Reads ``summary.csv`` and ``chains.json``."""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Optional

from ..runfolder import RunStore, read_csv
from .plots import FORMATS, _save

log = logging.getLogger(__name__)


X_FIRST = ("loop.synthetic_fraction", "loop.real_fraction")


def _num(v) -> Optional[float]:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def axes(chains: list[dict]) -> tuple[list[str], list[str]]:
    """(numeric axes, other varied keys) of a run's grid, in config order (seed left out)."""
    values: dict[str, set] = {}
    for ch in chains:
        for k, v in ch.get("varied", {}).items():
            if k != "seed":
                values.setdefault(k, set()).add(v if not isinstance(v, list) else tuple(v))
    numeric = [k for k, vs in values.items() if len(vs) >= 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vs)]
    numeric.sort(key=lambda k: k not in X_FIRST)  # the synthetic share on the x axis when it varies
    return numeric, [k for k in values if k not in numeric]


def metric_columns(store: RunStore, summary: list[dict]) -> list[str]:
    """The metrics of the reference row (the measured quantities) present in the summary."""
    path = store.reference_csv
    refs = read_csv(path) if path.exists() else []
    have = set(summary[0]) if summary else set()
    out = []
    for k in (refs[0] if refs else {}):
        if k in ("reference", "data") or k.startswith(("n_", "eval_n")) or "." in k:
            continue
        if f"{k}_mean" in have:
            out.append(k)
    return out


def final_rows(summary: list[dict]) -> dict[str, dict]:
    """Each setting's row of its last generation."""
    last: dict[str, dict] = {}
    for r in summary:
        cur = last.get(r["setting"])
        if cur is None or int(r["generation"]) > int(cur["generation"]):
            last[r["setting"]] = r
    return last


def cells(rows: dict[str, dict], x: str, y: str, column: str, fixed: dict) -> tuple[list, list, dict]:
    """Grid values of x and y and {(x, y): (mean, half-width)} of ``column`` among the rows
    whose other varied keys equal ``fixed``."""
    out = {}
    for r in rows.values():
        if any(str(r.get(k)) != str(v) for k, v in fixed.items()):
            continue
        xv, yv = _num(r.get(x)), _num(r.get(y))
        if xv is None or yv is None:
            continue
        mean = _num(r.get(f"{column}_mean"))
        lo, hi = _num(r.get(f"{column}_ci95_low")), _num(r.get(f"{column}_ci95_high"))
        out[(xv, yv)] = (mean, (hi - lo) / 2 if lo is not None and hi is not None else None)
    return sorted({k[0] for k in out}), sorted({k[1] for k in out}), out


def plot_phase(run_dir: Path, formats: tuple[str, ...] = FORMATS) -> list[tuple[Path, str]]:
    """Draw the phase diagrams into ``RUN/plots/phase_*``; returns (PNG path, caption) pairs."""
    store = RunStore(Path(run_dir))
    path = store.summary_csv
    if not path.exists():
        return []
    numeric, others = axes(store.chains())
    if len(numeric) < 2:
        return []
    summary = read_csv(path)
    rows = final_rows(summary)
    x, y = numeric[0], numeric[1]
    others = others + numeric[2:]
    combos = sorted({tuple((k, str(r.get(k))) for k in others) for r in rows.values()})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    metrics = metric_columns(store, summary)
    columns = [(m, m, "final generation") for m in metrics]
    columns += [(f"onset_{m}", m, "collapse onset (generation)") for m in metrics if f"onset_{m}_mean" in summary[0]]
    for combo in combos:
        fixed = dict(combo)
        tag = "_".join(f"{k.split('.')[-1]}={v}" for k, v in combo)
        for column, metric, what in columns:
            xs, ys, vals = cells(rows, x, y, column, fixed)
            if not vals or all(v[0] is None for v in vals.values()):
                continue
            import numpy as np

            grid = np.full((len(ys), len(xs)), np.nan)
            for (xv, yv), (mean, _) in vals.items():
                if mean is not None:
                    grid[ys.index(yv), xs.index(xv)] = mean
            fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(xs), 1.0 + 0.8 * len(ys)), constrained_layout=True)
            im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
            for (xv, yv), (mean, half) in vals.items():
                if mean is None:
                    continue
                text = f"{mean:.3g}" + (f"\n±{half:.2g}" if half is not None else "")
                ax.text(xs.index(xv), ys.index(yv), text, ha="center", va="center", fontsize=7, color="white",
                        path_effects=None)
            ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs])
            ax.set_yticks(range(len(ys)), [f"{v:g}" for v in ys])
            ax.set_xlabel(x)
            ax.set_ylabel(y)
            title = f"{metric}: {what}" + (f" ({tag})" if tag else "")
            ax.set_title(title, fontsize=9)
            fig.colorbar(im, ax=ax, shrink=0.8)
            stem = f"phase_{column}" + (f"_{tag}" if tag else "")
            safe = "".join(c if c.isalnum() or c in "_=-." else "-" for c in stem)
            png = _save(fig, store.plots_dir / safe, formats)
            plt.close(fig)
            if png is not None:
                out.append((png, title + "; cells: mean over seeds, ± half-width of the 95 % interval"))
    return out


def first_movers(summary_rows: list[dict]) -> list[dict]:
    """Per setting (final generation's row): metrics ordered by mean onset, for the report."""
    last: dict[str, dict] = {}
    for r in summary_rows:
        if r.get("setting") is not None:
            cur = last.get(r["setting"])
            if cur is None or int(r["generation"]) > int(cur["generation"]):
                last[r["setting"]] = r
    out = []
    for setting, r in last.items():
        means = []
        for k, v in r.items():
            if k.startswith("onset_") and k.endswith("_mean"):
                x = _num(v)
                if x is not None:
                    means.append((x, k[len("onset_"):-len("_mean")], _num(r.get(k[:-5] + "_left"))))
        means.sort()
        out.append({"setting": setting, "order": means})
    return out

