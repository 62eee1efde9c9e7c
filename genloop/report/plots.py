"""Metric curves against generation, one line per chain (the paper's Figures 2 and 3)."""
from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Optional

from ..store import RunStore, read_csv

log = logging.getLogger(__name__)

# Panels drawn when their columns exist: (file stem, title, [columns], y label).
PANELS = [
    ("accuracy", "Classifier accuracy", ["accuracy"], "accuracy"),
    ("cross_entropy", "Cross-entropy", ["cross_entropy"], "nats"),
    ("acc_class_1", "Accuracy on class 1", ["acc_class_1"], "accuracy"),
    ("acc_class_3", "Accuracy on class 3", ["acc_class_3"], "accuracy"),
    ("acc_class_9", "Accuracy on class 9", ["acc_class_9"], "accuracy"),
    ("entropy", "Predictive entropy", ["entropy"], "nats"),
]


def _chain_label(row: dict, varied: list[str]) -> str:
    if not varied:
        return str(row["chain"])
    return ", ".join(f"{k.split('.')[-1]}={row[k]:g}" if isinstance(row.get(k), float) else f"{k.split('.')[-1]}={row.get(k)}"
                     for k in varied)


def metric_panels(columns: list[str]) -> list[tuple[str, str, list[str], str]]:
    """The standard panels plus one per other numeric metric column present."""
    known = {c for _, _, cols, _ in PANELS for c in cols}
    skip = ("chain", "seed", "generation", "train_loss", "pool_", "acc_class_", "pred_frac_", "kept")
    panels = [p for p in PANELS if all(c in columns for c in p[2][:1])]
    for c in columns:
        if c in known or c.startswith(skip) or c.endswith("_seconds") or "." in c:
            continue
        panels.append((c, c.replace("_", " "), [c], c))
    return panels


def plot_run(run_dir: Path, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Draw one figure per metric panel into ``RUN/plots``; returns the written PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    store = RunStore(Path(run_dir))
    path = store.root / "metrics.csv"
    if not path.exists():
        log.warning("%s: no metrics.csv yet, nothing to plot", store.root)
        return []
    rows = read_csv(path)
    refs = read_csv(store.root / "reference.csv") if (store.root / "reference.csv").exists() else []
    chains = store.chains()
    varied = sorted({k for ch in chains for k in ch.get("varied", {}) if k != "seed"})
    by_chain: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_chain[r["chain"]].append(r)
    columns = list(rows[0].keys()) if rows else []
    out = []
    store.plots_dir.mkdir(parents=True, exist_ok=True)
    for stem, title, cols, ylabel in metric_panels(columns):
        fig, ax = plt.subplots(figsize=(5.0, 3.4), dpi=120)
        styles = ["-", "--", ":", "-."]
        for ci, (chain, rs) in enumerate(by_chain.items()):
            rs = sorted(rs, key=lambda r: r["generation"])
            for si, col in enumerate(cols):
                ys = [r.get(col) for r in rs]
                if all(y is None or (isinstance(y, float) and math.isnan(y)) for y in ys):
                    continue
                label = _chain_label(rs[0], varied) + (f" [{col.split('_')[-1]}]" if len(cols) > 1 else "")
                ax.plot([r["generation"] for r in rs], ys, styles[si % len(styles)], marker="o", ms=3,
                        color=f"C{ci % 10}", label=label)
        for col in cols[:1]:
            for ref in refs:
                if isinstance(ref.get(col), (int, float)):
                    ax.axhline(ref[col], color="grey", lw=0.8, ls="--", label="real test set" if col == cols[0] else None)
                    break
        ax.set_title(title)
        ax.set_xlabel("generation")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        for fmt in formats:
            p = store.plots_dir / f"{stem}.{fmt}"
            tmp = p.with_name(f".{p.name}.tmp.{fmt}")
            fig.savefig(tmp)
            tmp.replace(p)
            if fmt == "png":
                out.append(p)
        plt.close(fig)
    return out
