"""Metric curves against generation, one line per chain (the paper's Figures 2 and 3)."""
from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Optional

from ..runfolder import RunStore, read_csv

log = logging.getLogger(__name__)

# Each figure is saved in these formats (the report embeds the PNG and links the PDF); the
# report's redraws while a run goes save only the PNG (``write_report(formats=...)``).
FORMATS = ("png", "pdf")

# Panels drawn when their columns exist: (file stem, title, [columns], y label); the
# per-class accuracy panels (``class_panels``) come after cross-entropy.
PANELS = [
    ("accuracy", "Classifier accuracy", ["accuracy"], "accuracy"),
    ("cross_entropy", "Cross-entropy", ["cross_entropy"], "nats"),
    ("entropy", "Predictive entropy", ["entropy"], "nats"),
]

# Per-class accuracy panels by default: the paper's classes 1, 3 and 9 (Martinez et al.'s
# digit panels) when the data has them all, else every class the classifier scored, up
# to MAX_CLASS_PANELS; ``classes`` (``genloop report --classes``) chooses others.
PAPER_CLASSES = (1, 3, 9)
MAX_CLASS_PANELS = 10


def scored_classes(columns: list[str], suffix: str = "") -> list[int]:
    """The classes with a per-class accuracy column (``class_accuracy_column(k)`` + ``suffix``)."""
    from ..metrics.classifier import class_accuracy_column

    prefix = class_accuracy_column(0)[:-1]
    found = []
    for c in columns:
        k = c[len(prefix):len(c) - len(suffix)] if c.startswith(prefix) and c.endswith(suffix) else ""
        if k.isdigit() and c == class_accuracy_column(int(k)) + suffix:
            found.append(int(k))
    return sorted(found)


def panel_classes(columns: list[str], classes: Optional[list[int]] = None) -> list[int]:
    """The classes that get an accuracy panel (see ``PAPER_CLASSES``); asked-for classes the
    data does not have are left out (logged)."""
    have = scored_classes(columns)
    if classes is not None:
        missing = [k for k in classes if k not in have]
        if missing and have:
            log.warning("report: no accuracy column for class(es) %s (the data has %s)", missing, have)
        return [k for k in classes if k in have]
    if all(k in have for k in PAPER_CLASSES):
        return list(PAPER_CLASSES)
    return have[:MAX_CLASS_PANELS]


def class_panels(columns: list[str], classes: Optional[list[int]] = None) -> list[tuple[str, str, list[str], str]]:
    from ..metrics.classifier import class_accuracy_column

    return [(class_accuracy_column(k), f"Accuracy on class {k}", [class_accuracy_column(k)], "accuracy")
            for k in panel_classes(columns, classes)]


def _chain_label(row: dict, varied: list[str]) -> str:
    if not varied:
        return str(row["chain"])
    return ", ".join(f"{k.split('.')[-1]}={row[k]:g}" if isinstance(row.get(k), float) else f"{k.split('.')[-1]}={row.get(k)}"
                     for k in varied)


def chain_styles(by_chain: dict, varied: list[str]) -> dict:
    """chain -> (colour index, legend label or None) for the per-chain panels.  One seed per
    setting: a colour and a label per chain.  Several seeds: one colour per setting (the
    seeds' lines share it) and one legend entry per setting, "SETTING (N seeds)", so the
    legend does not repeat a setting once per seed."""
    settings: dict = {}
    for chain, rs in by_chain.items():
        settings.setdefault(_chain_label(rs[0], varied), []).append(chain)
    if all(len(chs) == 1 for chs in settings.values()):
        return {ch: (i, label) for i, (label, (ch,)) in enumerate(settings.items())}
    styles = {}
    for i, (label, chs) in enumerate(settings.items()):
        for j, ch in enumerate(chs):
            styles[ch] = (i, f"{label} ({len(chs)} seed{'s' if len(chs) > 1 else ''})" if j == 0 else None)
    return styles


def metric_panels(columns: list[str], classes: Optional[list[int]] = None) -> list[tuple[str, str, list[str], str]]:
    """The standard panels, the per-class accuracy panels (``panel_classes``), then one per
    other numeric metric column present."""
    known = {c for _, _, cols, _ in PANELS for c in cols}
    skip = ("chain", "seed", "generation", "train_loss", "pool_", "acc_class_", "pred_frac_", "kept", "eval_n")
    panels = [p for p in PANELS if all(c in columns for c in p[2][:1])]
    panels[2:2] = class_panels(columns, classes)  # after accuracy and cross-entropy, as the paper's figures
    for c in columns:
        if c in known or c.startswith(skip) or c.endswith("_seconds") or "." in c:
            continue
        panels.append((c, c.replace("_", " "), [c], c))
    return panels


def plot_run(run_dir: Path, formats: tuple[str, ...] = FORMATS, classes: Optional[list[int]] = None) -> list[Path]:
    """Draw one figure per metric panel into ``RUN/plots``; returns the written PNG paths.
    ``classes``: the per-class accuracy panels (default: ``panel_classes``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    store = RunStore(Path(run_dir))
    path = store.metrics_csv
    if not path.exists():
        log.warning("%s: no metrics.csv yet, nothing to plot", store.root)
        return []
    rows = read_csv(path)
    refs = read_csv(store.reference_csv) if store.reference_csv.exists() else []
    chains = store.chains()
    varied = sorted({k for ch in chains for k in ch.get("varied", {}) if k != "seed"})
    by_chain: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_chain[r["chain"]].append(r)
    columns = list(rows[0].keys()) if rows else []
    out = []
    store.plots_dir.mkdir(parents=True, exist_ok=True)
    colour = chain_styles(by_chain, varied)
    thin = len(by_chain) > 20  # thin lines for many chains
    many = sum(name is not None for _, name in colour.values()) > 20  # then no legend (drawing it would cost more than the plot)
    marker = "o" if max((len(rs) for rs in by_chain.values()), default=0) <= 50 else None
    for stem, title, cols, ylabel in metric_panels(columns, classes):
        fig, ax = plt.subplots(figsize=(5.0, 3.4), dpi=120)
        styles = ["-", "--", ":", "-."]
        for chain, rs in by_chain.items():
            rs = sorted(rs, key=lambda r: r["generation"])
            ci, name = colour[chain]
            for si, col in enumerate(cols):
                ys = [r.get(col) for r in rs]
                if all(y is None or (isinstance(y, float) and math.isnan(y)) for y in ys):
                    continue
                label = None if many or name is None else name + (f" [{col.split('_')[-1]}]" if len(cols) > 1 else "")
                ax.plot([r["generation"] for r in rs], ys, styles[si % len(styles)], marker=marker, ms=3,
                        color=f"C{ci % 10}", label=label, lw=0.6 if thin else 1.5)
        for col in cols[:1]:
            for ref in refs:
                if isinstance(ref.get(col), (int, float)):
                    reference_line(ax, ref[col])
                    break
        style_axes(ax, title, ylabel)
        fig.tight_layout()
        png = _save(fig, store.plots_dir / stem, formats)
        if png:
            out.append(png)
        plt.close(fig)
    return out


# --------------------------------------------------------------------------- over seeds (summary.csv)


def save_figure(fig, base: Path, formats: tuple[str, ...]) -> list[Path]:
    """Save ``fig`` as ``base.<fmt>`` for each format (atomically: temp file, then rename);
    returns the written paths in the order of ``formats``.  A file of the figure in another
    of ``FORMATS`` is removed: it shows an older state of the run."""
    base.parent.mkdir(parents=True, exist_ok=True)
    for fmt in FORMATS:
        if fmt not in formats:
            base.with_name(f"{base.name}.{fmt}").unlink(missing_ok=True)
    out = []
    for fmt in formats:
        p = base.with_name(f"{base.name}.{fmt}")
        tmp = p.with_name(f".{p.name}.tmp.{fmt}")
        fig.savefig(tmp)
        tmp.replace(p)
        out.append(p)
    return out


def _save(fig, base: Path, formats: tuple[str, ...]) -> Optional[Path]:
    """``save_figure``, returning the PNG path (None when no PNG was asked for)."""
    return next((p for p in save_figure(fig, base, formats) if p.suffix == ".png"), None)


def style_axes(ax, title: str, ylabel: str, title_size: Optional[float] = None) -> None:
    """The look shared by every metric-per-generation panel: title, axis labels,
    integer generation ticks, a light grid and a small legend."""
    from matplotlib.ticker import MaxNLocator

    ax.set_title(title, **({"fontsize": title_size} if title_size else {}))
    ax.set_xlabel("generation")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v))


def _theory_chains(store: RunStore) -> set[str]:
    """Ids of the chains whose variance ratio has the closed form of ``report.theory``."""
    return {ch["id"] for ch in store.chains() if "variance_ratio" in ch.get("theory", [])}


def _draw_theory(ax, xs: list, n, label_done: list) -> None:
    """The dashed theory curve ((n-1)/n)^(g+1) of the variance ratio, once per n."""
    from .theory import variance_ratio_curve

    ys = variance_ratio_curve(n, xs)
    if ys is None or n in label_done:
        return
    label_done.append(n)
    ax.plot(xs, ys, "--", color="black", lw=1.2, label=f"theory, replace: ((n-1)/n)^(g+1), n={n:g}")


def _summary(store: RunStore) -> list[dict]:
    path = store.summary_csv
    return read_csv(path) if path.exists() else []


def plot_bands(run_dir: Path, formats: tuple[str, ...] = FORMATS, classes: Optional[list[int]] = None) -> list[Path]:
    """One figure per metric from ``summary.csv``: one line per setting (the mean over
    seeds) with its 95% confidence band where a setting has two or more seeds.
    Written to ``RUN/plots/bands/<metric>.<fmt>``; returns the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    store = RunStore(Path(run_dir))
    rows = _summary(store)
    if not rows:
        return []
    refs = read_csv(store.reference_csv) if store.reference_csv.exists() else []
    metrics = [c[:-len("_mean")] for c in rows[0] if c.endswith("_mean")]
    by_setting: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_setting[str(r["setting"])].append(r)
    seeds = max(int(r["n"]) for r in rows)
    theory = _theory_chains(store) if "variance_ratio" in metrics else set()
    chains = store.chains()
    theory_settings = {ch.get("setting") for ch in chains if ch["id"] in theory}
    theory_settings -= {ch.get("setting") for ch in chains if ch["id"] not in theory}
    out = []
    for stem, title, cols, ylabel in metric_panels(metrics, classes):
        col = cols[0]
        fig, ax = plt.subplots(figsize=(5.0, 3.4), dpi=120)
        drawn = False
        theory_drawn: list = []
        for si, (setting, rs) in enumerate(by_setting.items()):
            rs = sorted(rs, key=lambda r: r["generation"])
            xs = [r["generation"] for r in rs]
            ys = [r.get(f"{col}_mean") for r in rs]
            if not any(_finite(y) for y in ys):
                continue
            ys = [y if _finite(y) else float("nan") for y in ys]
            color = f"C{si % 10}"
            ax.plot(xs, ys, "-", marker="o", ms=3, color=color, label=setting)
            lo = [r.get(f"{col}_ci95_low") for r in rs]
            hi = [r.get(f"{col}_ci95_high") for r in rs]
            if any(_finite(a) and _finite(b) for a, b in zip(lo, hi)):
                ax.fill_between(xs, [a if _finite(a) else y for a, y in zip(lo, ys)],
                                [b if _finite(b) else y for b, y in zip(hi, ys)], color=color, alpha=0.2, lw=0)
            drawn = True
            if col == "variance_ratio" and setting in theory_settings:
                _draw_theory(ax, xs, rs[0].get("pool_size_mean"), theory_drawn)
        if not drawn:
            plt.close(fig)
            continue
        for ref in refs:
            if _finite(ref.get(col)):
                reference_line(ax, ref[col])
                break
        style_axes(ax, title + (f" (mean, 95% CI over {seeds} seeds)" if seeds > 1 else ""), ylabel, title_size=9)
        fig.tight_layout()
        png = _save(fig, store.plots_dir / "bands" / stem, formats)
        plt.close(fig)
        if png:
            out.append(png)
    return out


OFF_AXIS = 3.0  # a reference further than this many data ranges from the curves is named, not drawn


def reference_line(ax, value: float) -> None:
    """The real test set's value as a dashed line; when it lies far outside the curves' range
    (e.g. a text run's ``ppl_test`` reference, the n-gram judge's perplexity, beside a
    pretrained model's) it is named in the legend instead, so the curves keep the axis."""
    lo, hi = ax.dataLim.intervaly if ax.has_data() else (value, value)
    span = max(hi - lo, abs(hi) * 0.05, 1e-12)
    if lo - OFF_AXIS * span <= value <= hi + OFF_AXIS * span:
        ax.axhline(value, color="grey", lw=0.8, ls="--", label="real test set")
    else:
        ax.plot([], [], color="grey", lw=0.8, ls="--", label=f"real test set: {value:.4g} (off the axis)")


def plot_per_class(run_dir: Path, formats: tuple[str, ...] = FORMATS) -> Optional[Path]:
    """Heat maps of the classifier's accuracy per class (rows) and generation
    (columns), one panel per setting, mean over seeds: ``RUN/plots/per_class_accuracy``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ..metrics.classifier import class_accuracy_column

    store = RunStore(Path(run_dir))
    rows = _summary(store)
    if not rows:
        return None
    classes = scored_classes(list(rows[0]), "_mean")
    if not classes:
        return None
    by_setting: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_setting[str(r["setting"])].append(r)
    n = len(by_setting)
    gens = max(int(r["generation"]) for r in rows) + 1
    fig, axes = plt.subplots(1, n, figsize=(max(2.8, 0.32 * gens + 1.6) * n, 0.3 * len(classes) + 1.4),
                             dpi=120, squeeze=False)
    im = None
    for ax, (setting, rs) in zip(axes[0], by_setting.items()):
        grid = np.full((len(classes), gens), np.nan)
        for r in rs:
            for i, k in enumerate(classes):
                v = r.get(class_accuracy_column(k) + "_mean")
                if _finite(v):
                    grid[i, int(r["generation"])] = v
        im = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto", interpolation="nearest")
        ax.set_title(setting, fontsize=8)
        ax.set_xlabel("generation", fontsize=8)
        ax.set_yticks(range(len(classes)), [str(k) for k in classes], fontsize=7)
        ax.set_xticks(range(gens), [str(g) for g in range(gens)], fontsize=7)
    axes[0][0].set_ylabel("class", fontsize=8)
    if im is not None:
        fig.colorbar(im, ax=list(axes[0]), fraction=0.03, pad=0.02, label="accuracy")
    fig.suptitle("Classifier accuracy per class (mean over seeds)", fontsize=9)
    png = _save(fig, store.plots_dir / "per_class_accuracy", formats)
    plt.close(fig)
    return png


TIME_PARTS = (("train_seconds", "train"), ("sample_seconds", "sample"), ("score_seconds", "score"))


def plot_timing(run_dir: Path, formats: tuple[str, ...] = FORMATS) -> Optional[Path]:
    """Stacked bars of the seconds each generation took (train, sample, score),
    mean over the chains that finished it: ``RUN/plots/timing``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    store = RunStore(Path(run_dir))
    path = store.metrics_csv
    if not path.exists():
        return None
    rows = read_csv(path)
    if not rows or not any(c in rows[0] for c, _ in TIME_PARTS):
        return None
    gens = sorted({int(r["generation"]) for r in rows})
    fig, ax = plt.subplots(figsize=(5.0, 3.0), dpi=120)
    bottom = [0.0] * len(gens)
    for i, (col, label) in enumerate(TIME_PARTS):
        means = []
        for g in gens:
            xs = [r[col] for r in rows if int(r["generation"]) == g and _finite(r.get(col))]
            means.append(sum(xs) / len(xs) if xs else 0.0)
        ax.bar(gens, means, bottom=bottom, color=f"C{i}", label=label)
        bottom = [b + m for b, m in zip(bottom, means)]
    ax.set_title(f"Seconds per generation (mean over {len({r['chain'] for r in rows})} chains)", fontsize=9)
    ax.set_xlabel("generation")
    ax.set_ylabel("seconds")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    fig.tight_layout()
    png = _save(fig, store.plots_dir / "timing", formats)
    plt.close(fig)
    return png
