"""The sections of ``RUN/report.html`` about the metrics: the settings and how far each
chain got, the metric curves with the last generation's table, accuracy per class, phase
diagrams and collapse onset, the training pool's composition, the time per generation and
the reference rows of the real test set."""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Iterable, Optional

from ..runfolder import RunStore, read_csv
import genloop.report.plots as plots  # the module, not the package: no import circle
from .html_parts import Raw, esc, figure_html, fmt, table_html

log = logging.getLogger("genloop.report.html")  # the report's warnings, as the page's


def planned_generations(chain: dict, raw: dict) -> Optional[int]:
    """The generations ``chain`` plans (its varied ``loop.generations``, else the config's); None if unknown."""
    g = chain.get("varied", {}).get("loop.generations", (raw.get("loop") or {}).get("generations"))
    if isinstance(g, list):
        g = max(g) if g else None
    return int(g) if isinstance(g, (int, float)) else None


def settings_section(store: RunStore, chains: list[dict], raw: dict, rows: list[dict]) -> str:
    keys: list[str] = []
    for ch in chains:
        for k in ch.get("varied", {}):
            if k != "seed" and k not in keys:
                keys.append(k)
    last: dict[str, dict] = {}
    for r in rows:
        last[r["chain"]] = r
    out = []
    for ch in chains:
        total = planned_generations(ch, raw)
        done = store.finished_generations(ch["id"])
        cls = "done" if total is not None and done >= total else "part"
        status = Raw(f'<span class="{cls}">{done} / {total if total is not None else "?"}</span>')
        acc = last.get(ch["id"], {}).get("accuracy")
        out.append([ch["id"], *[ch.get("varied", {}).get(k) for k in keys], ch.get("seed"), status, acc])
    header = ["chain", *[k for k in keys], "seed", "generations finished", "last accuracy"]
    return table_html(header, out, left=1)


# The final table's metrics: the classifier's columns, then the feature metrics' (fd, kid,
# prdc) as ``metric_name`` names them for the run's feature extractor(s) (``fid``,
# ``fd_classifier``, ``kid_mean_pixels``, ...).
HEADLINE = ("accuracy", "cross_entropy", "entropy")
FEATURE_HEADLINE = ("fd", "kid_mean", "precision", "recall", "density", "coverage")


def headline_columns(columns: Iterable[str], raw: dict) -> list[str]:
    """The main metric columns of a run (config ``raw``) present in ``columns``, in table order."""
    from ..metrics.image_metrics import metric_name

    feats = (raw.get("metrics") or {}).get("features", "classifier")
    feats = feats if isinstance(feats, list) else [feats]
    names = list(HEADLINE) + [metric_name(base, f) for base in FEATURE_HEADLINE for f in feats]
    have = set(columns)
    return [c for c in dict.fromkeys(names) if c in have]


def final_table(summary: list[dict], raw: Optional[dict] = None) -> str:
    """Per setting: the last generation's mean [95% CI] of the main metrics (``headline_columns``)."""
    if not summary:
        return ""
    cols = [c[:-5] for c in summary[0] if c.endswith("_mean")]
    main = headline_columns(cols, raw or {})
    if not main:
        return ""
    last: dict[str, dict] = {}
    for r in summary:
        if r["setting"] not in last or r["generation"] >= last[r["setting"]]["generation"]:
            last[r["setting"]] = r
    body = []
    for setting, r in last.items():
        cells: list[Any] = [setting, r["generation"], r["n"]]
        for m in main:
            mean, lo, hi = r.get(f"{m}_mean"), r.get(f"{m}_ci95_low"), r.get(f"{m}_ci95_high")
            txt = fmt(mean)
            if isinstance(lo, float) and isinstance(hi, float) and not (math.isnan(lo) or math.isnan(hi)):
                txt += f" [{fmt(lo, 3)}, {fmt(hi, 3)}]"
            cells.append(txt)
        body.append(cells)
    return ("<h3>Last finished generation (mean [95% CI] over seeds)</h3>"
            + table_html(["setting", "generation", "seeds", *main], body, left=1))


def curves_section(store: RunStore, summary: list[dict], raw: dict, classes: Optional[list[int]] = None,
                   formats: tuple[str, ...] = plots.FORMATS) -> str:
    root = store.root
    pngs = plots.plot_bands(root, formats, classes) if summary else []
    note = ""
    if not pngs:  # no summary.csv (an older run folder): the per-chain curves
        pngs = plots.plot_run(root, formats, classes)
        note = '<p class="muted">One line per chain (no summary.csv in this run folder).</p>'
    seeds = max((int(r["n"]) for r in summary), default=1)
    if summary and seeds > 1:
        note = (f'<p class="muted">One line per setting: the mean over {seeds} seeds; the shaded band is the '
                "95% confidence interval (Student's t over seeds). Numbers: summary.csv.</p>")
    if not pngs:
        return '<p class="muted">No finished generation yet.</p>'
    figs = "".join(figure_html(p, p.stem.replace("_", " "), root) for p in pngs)
    return note + f'<div class="figs">{figs}</div>' + final_table(summary, raw)


def per_class_section(store: RunStore, summary: list[dict], formats: tuple[str, ...] = plots.FORMATS) -> str:
    from ..metrics.classifier import class_accuracy_column

    png = plots.plot_per_class(store.root, formats) if summary else None
    if png is None:
        return '<p class="muted">No per-class accuracy in this run (it comes with the classifier metric).</p>'
    classes = plots.scored_classes(list(summary[0]), "_mean")
    last: dict[str, dict] = {}
    for r in summary:
        if r["setting"] not in last or r["generation"] >= last[r["setting"]]["generation"]:
            last[r["setting"]] = r
    body = [[s, r["generation"], *[r.get(class_accuracy_column(k) + "_mean") for k in classes]] for s, r in last.items()]
    table = table_html(["setting", "generation", *[f"class {k}" for k in classes]], body, left=1)
    return (f'<div class="figs">{figure_html(png, "accuracy per class and generation", store.root)}</div>'
            "<h3>Last finished generation, mean over seeds</h3>" + table)


def _as_paths(result: Any) -> list[Path]:
    if result is None:
        return []
    if isinstance(result, (str, Path)):
        return [Path(result)]
    if isinstance(result, dict):
        result = list(result.values())
    out: list[Path] = []
    for x in result:
        out += _as_paths(x)
    return out


def composition_section(store: RunStore, formats: tuple[str, ...] = plots.FORMATS) -> Optional[str]:
    """Pool composition figures of ``genloop.report.composition`` (when it exists), in ``formats``."""
    try:
        from .composition import plot_composition
    except ImportError:
        return None
    try:
        drawn = plot_composition(store.root) if formats == plots.FORMATS else plot_composition(store.root, formats)
        paths = [p for p in _as_paths(drawn) if p.suffix.lower() == ".png" and p.exists()]
    except Exception as exc:  # noqa: BLE001 - the rest of the report is still worth writing
        log.warning("report: pool composition figure failed: %s", exc)
        return f'<p class="muted">The pool composition figure could not be drawn: {esc(exc)}</p>'
    if not paths:
        return None
    figs = "".join(figure_html(p, p.stem.replace("_", " "), store.root) for p in paths)
    return ('<p class="muted">Where each generation\'s training images came from (real data or earlier '
            f'generations).</p><div class="figs">{figs}</div>')


def phase_section(store: RunStore, summary: list[dict], formats: tuple[str, ...] = plots.FORMATS) -> Optional[str]:
    """Phase diagrams (``genloop.report.phase``) and, per setting, the metrics in the order
    they left the reference band (``genloop.loop.onset``)."""
    from .phase import first_movers, plot_phase

    try:
        figs = plot_phase(store.root, formats)
    except Exception as exc:  # noqa: BLE001 - the rest of the report is still worth writing
        log.warning("report: phase diagram failed: %s", exc)
        figs = []
    movers = [m for m in first_movers(summary) if m["order"]]
    if not figs and not movers:
        return None
    parts = []
    if figs:
        parts.append('<div class="figs">' + "".join(figure_html(p, c, store.root) for p, c in figs) + "</div>")
    if movers:
        rows = [[m["setting"], ", ".join(f"{name} {g:.3g}" + (f" ({left:.0%})" if left is not None else "")
                                        for g, name, left in m["order"])]
                for m in movers]
        parts.append('<p class="muted">Collapse onset: per setting, the metrics in the order they left the real '
                     "reference's band (metrics.onset.tolerance): mean onset generation over the seeds that left it "
                     "(share of seeds that did).</p>" + table_html(["setting", "metrics by onset"], rows))
    return "".join(parts)


def timing_section(store: RunStore, rows: list[dict], formats: tuple[str, ...] = plots.FORMATS) -> str:
    png = plots.plot_timing(store.root, formats)
    if png is None:
        return '<p class="muted">No timings yet.</p>'
    per_chain: dict[str, dict[str, float]] = {}
    for r in rows:
        t = per_chain.setdefault(r["chain"], {"n": 0, "train": 0.0, "sample": 0.0, "score": 0.0, "total": 0.0})
        t["n"] += 1
        for col, name in (("train_seconds", "train"), ("sample_seconds", "sample"), ("score_seconds", "score"),
                          ("total_seconds", "total")):
            v = r.get(col)
            if isinstance(v, (int, float)) and not math.isnan(v):
                t[name] += v
    body = [[c, t["n"], t["train"], t["sample"], t["score"], t["total"], t["total"] / max(t["n"], 1)]
            for c, t in per_chain.items()]
    body = [[b[0], b[1], *[float(f"{x:.1f}") for x in b[2:]]] for b in body]
    table = table_html(["chain", "generations", "train s", "sample s", "score s", "total s", "s / generation"], body)
    return f'<div class="figs">{figure_html(png, "seconds per generation", store.root)}</div>' + table


def reference_section(store: RunStore) -> str:
    path = store.reference_csv
    if not path.exists():
        return ""
    refs = read_csv(path)
    if not refs:
        return ""
    cols = [c for c in refs[0] if not c.startswith(("acc_class_", "pred_frac_"))]
    return table_html(cols, [[r.get(c) for c in cols] for r in refs], left=2)
