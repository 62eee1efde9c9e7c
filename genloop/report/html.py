"""``RUN/report.html``: one self-contained page about a run folder.

Every picture is embedded as a base64 ``data:`` URI and the styles are inline,
so the file can be mailed or opened offline; nothing is fetched.  Sections: the
config (YAML), the settings (chains, their varied values, generations
finished), metric curves (mean and 95% confidence band over seeds, one line per
setting), samples of every generation in the paper's layout (one block per
chain, one row per generation, one column per class) and accuracy per class, or,
for a text run, a few passages of every generation below the real text's, the training-pool composition (accumulating interaction models, when
``genloop.report.composition`` is present) and the seconds each generation
took.  The figures are also saved under ``RUN/plots`` as PNG and PDF.

The report reads the run folder through ``genloop.store`` only; it can be
redrawn at any time, also while a run is going on (``genloop report RUN``).
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import logging
import math
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from ..store import RunStore, read_csv, read_json, write_text
import genloop.report.plots as plots  # the module, not the package: no import circle

log = logging.getLogger(__name__)

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1280px;
       padding: 0 1.5em 3em; color: #1d1d1f; line-height: 1.4; }
h1 { font-size: 1.6em; margin: 1em 0 0.2em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1em; margin: 1.2em 0 0.4em; }
nav a { margin-right: 1em; } .muted { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; white-space: nowrap; }
th { background: #f5f5f7; } td.l, th.l { text-align: left; }
pre { background: #f5f5f7; padding: 0.8em; overflow: auto; font-size: 0.8em; max-height: 32em; }
.figs { display: flex; flex-wrap: wrap; gap: 0.8em; } .figs figure { margin: 0; }
.figs img { max-width: 600px; width: 100%; height: auto; border: 1px solid #eee; }
.blocks { display: flex; flex-wrap: wrap; gap: 1.2em 2em; align-items: flex-start; }
.block h3 { margin: 0.4em 0; font-size: 0.9em; } .block table { margin: 0; font-size: 0.75em; }
.block th, .block td { border: 0; padding: 0 0.4em 1px 0; vertical-align: middle; }
img.samples { display: block; max-width: none; image-rendering: pixelated; image-rendering: crisp-edges; }
pre.passage { white-space: pre-wrap; max-width: 60em; font-size: 0.8em; background: #f7f7f7; padding: 0.4em; margin: 0.2em 0; }
table.passages { table-layout: fixed; width: 100%; font-size: 0.9em; }
table.passages td { text-align: left; vertical-align: top; white-space: normal; width: 31%; }
table.passages th { text-align: left; vertical-align: top; width: 5em; }
.passage { white-space: pre-wrap; overflow-wrap: anywhere; line-height: 1.35; }
tr.real td { background: #eef3fa; } details { margin: 0.6em 0; } summary { cursor: pointer; font-weight: 600; }
figcaption { font-size: 0.8em; color: #555; } .done { color: #207520; } .part { color: #a06000; }
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def data_uri(path: Path) -> str:
    """A file as a ``data:`` URI (PNG, JPEG, SVG by suffix)."""
    mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}.get(
        Path(path).suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(Path(path).read_bytes()).decode('ascii')}"


def _img(path: Path, alt: str, cls: str = "") -> str:
    return f'<img src="{data_uri(path)}" alt="{_e(alt)}" title="{_e(alt)}"{f" class={cls!r}" if cls else ""}>'


def _figure(path: Path, caption: str, root: Path) -> str:
    links = []
    pdf = path.with_suffix(".pdf")
    if pdf.exists():
        links.append(f'<a href="{_e(pdf.relative_to(root).as_posix())}">PDF</a>')
    extra = f" ({', '.join(links)})" if links else ""
    return f"<figure>{_img(path, caption)}<figcaption>{_e(caption)}{extra}</figcaption></figure>"


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:.{digits}g}"
    if isinstance(v, list):
        return ", ".join(_fmt(x, digits) for x in v)
    return str(v)


def _table(header: list[str], rows: Iterable[list[Any]], left: int = 1) -> str:
    th = "".join(f'<th{" class=l" if i < left else ""}>{_e(h)}</th>' for i, h in enumerate(header))
    body = []
    for r in rows:
        body.append("<tr>" + "".join(f'<td{" class=l" if i < left else ""}>{c if isinstance(c, _Raw) else _e(_fmt(c))}</td>'
                                     for i, c in enumerate(r)) + "</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class _Raw(str):
    """Table cell HTML that is not escaped."""


# --------------------------------------------------------------------------- sections


def _generations(chain: dict, raw: dict) -> Optional[int]:
    g = chain.get("varied", {}).get("loop.generations", (raw.get("loop") or {}).get("generations"))
    if isinstance(g, list):
        g = max(g) if g else None
    return int(g) if isinstance(g, (int, float)) else None


def _settings_section(store: RunStore, chains: list[dict], raw: dict, rows: list[dict]) -> str:
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
        total = _generations(ch, raw)
        done = store.finished_generations(ch["id"])
        cls = "done" if total is not None and done >= total else "part"
        status = _Raw(f'<span class="{cls}">{done} / {total if total is not None else "?"}</span>')
        acc = last.get(ch["id"], {}).get("accuracy")
        out.append([ch["id"], *[ch.get("varied", {}).get(k) for k in keys], ch.get("seed"), status, acc])
    header = ["chain", *[k for k in keys], "seed", "generations finished", "last accuracy"]
    return _table(header, out, left=1)


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


def _final_table(summary: list[dict], raw: Optional[dict] = None) -> str:
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
            txt = _fmt(mean)
            if isinstance(lo, float) and isinstance(hi, float) and not (math.isnan(lo) or math.isnan(hi)):
                txt += f" [{_fmt(lo, 3)}, {_fmt(hi, 3)}]"
            cells.append(txt)
        body.append(cells)
    return ("<h3>Last finished generation (mean [95% CI] over seeds)</h3>"
            + _table(["setting", "generation", "seeds", *main], body, left=1))


def _curves_section(store: RunStore, summary: list[dict], raw: dict, classes: Optional[list[int]] = None) -> str:
    root = store.root
    pngs = plots.plot_bands(root, classes=classes) if summary else []
    note = ""
    if not pngs:  # no summary.csv (an older run folder): the per-chain curves
        pngs = plots.plot_run(root, classes=classes)
        note = '<p class="muted">One line per chain (no summary.csv in this run folder).</p>'
    seeds = max((int(r["n"]) for r in summary), default=1)
    if summary and seeds > 1:
        note = (f'<p class="muted">One line per setting: the mean over {seeds} seeds; the shaded band is the '
                "95% confidence interval (Student's t over seeds). Numbers: summary.csv.</p>")
    if not pngs:
        return '<p class="muted">No finished generation yet.</p>'
    figs = "".join(_figure(p, p.stem.replace("_", " "), root) for p in pngs)
    return note + f'<div class="figs">{figs}</div>' + _final_table(summary, raw)


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


def _samples_section(store: RunStore, chains: list[dict]) -> str:
    """The paper's Figure 2 layout: one block per chain (setting and seed), one row per
    finished generation (all of them), one column per class; blocks wrap across the page."""
    blocks = []
    for ch in chains:
        n = store.finished_generations(ch["id"])
        samples = {g: store.load_samples(ch["id"], g) for g in range(n)
                   if (store.gen_dir(ch["id"], g) / "samples.npz").exists()}
        k = max((int(lab.max()) + 1 for _, lab in samples.values() if lab is not None and len(lab)), default=0)
        rows = []
        for g in range(n):
            d = store.gen_dir(ch["id"], g)
            row = _sample_row(*samples[g], k) if g in samples else None
            if row is not None:
                uri, cells, cell = row
                img = (f'<img src="{uri}" class="samples" data-cells="{cells}" data-cell="{cell}" '
                       f'alt="{_e(ch["id"])} generation {g}" title="{_e(ch["id"])} generation {g}">')
            else:
                grids = sorted(d.glob("grid*.png"))  # samples.npz absent: the saved grid, unscaled
                if not grids:
                    continue
                img = "".join(f'<img src="{data_uri(p)}" class="samples" alt="{_e(ch["id"])} generation {g}">'
                              for p in grids)
            rows.append(f'<tr><th class="l">gen {g}</th><td>{img}</td></tr>')
        if not rows:
            continue
        varied = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in ch.get("varied", {}).items())
        title = f"{varied} ({ch['id']})" if varied else ch["id"]
        blocks.append(f'<div class="block"><h3>{_e(title)}</h3><table>{"".join(rows)}</table></div>')
    if not blocks:
        return '<p class="muted">No sample grids (no finished generation, or samples that are not images).</p>'
    return ('<p class="muted">As the paper\'s Figure 2: one block per chain, one row per generation '
            "(generation 0 is trained on real data), one sample per class in class order (two for at most "
            f"5 classes; the first 10 when unlabelled); every sample is at least {SAMPLE_MIN_PX} pixels wide "
            "(nearest-neighbour upscaling). The full grids are <code>chains/*/gen_*/grid.png</code>.</p>"
            f'<div class="blocks">{"".join(blocks)}</div>')


PASSAGES_SHOWN = 3  # generated passages shown per generation


def _passage_files(store: RunStore, chain: str, generation: int) -> list[Path]:
    return sorted(store.gen_dir(chain, generation).glob("passages*.json"))


def is_text_run(store: RunStore, chains: list[dict]) -> bool:
    """A run on text: its generations keep passages (``passages*.json``) instead of grids, or
    (before any generation finished) the run wrote the real passages or a tokenizer."""
    if (store.root / "real_passages.json").exists() or any((store.cache_dir / "data").glob("tokenizer-*.json")):
        return True
    for ch in chains:
        n = store.finished_generations(ch["id"])
        if n and _passage_files(store, ch["id"], n - 1):
            return True
    return False


def _passage_cells(texts: list[str]) -> str:
    cells = "".join(f'<td><div class="passage">{_e(t)}</div></td>' for t in texts[:PASSAGES_SHOWN])
    return cells + "<td></td>" * (PASSAGES_SHOWN - min(len(texts), PASSAGES_SHOWN))


def _passages_section(store: RunStore, chains: list[dict]) -> Optional[str]:
    """Text runs: per chain, the real training text's first passages, then the first generated
    passages of every finished generation below them, column by column (HTML-escaped, left-aligned,
    line breaks kept).  The first chain is open, the others fold."""
    path = store.root / "real_passages.json"
    real = read_json(path) if path.exists() else {}
    out = []
    for ch in chains:
        rows = []
        if real.get(ch["id"]):
            rows.append(f'<tr class="real"><th>real text</th>{_passage_cells(real[ch["id"]])}</tr>')
        for g in range(store.finished_generations(ch["id"])):
            for p in _passage_files(store, ch["id"], g):
                lineage = p.stem[len("passages"):].lstrip("_")
                cap = f"gen {g}" + (f" ({lineage})" if lineage else "")
                rows.append(f"<tr><th>{_e(cap)}</th>{_passage_cells(read_json(p))}</tr>")
        if not rows:
            continue
        varied = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in ch.get("varied", {}).items())
        title = f"{varied} ({ch['id']})" if varied else ch["id"]
        out.append(f'<details{" open" if not out else ""}><summary>{_e(title)}</summary>'
                   f'<table class="passages">{"".join(rows)}</table></details>')
    if not out:
        return None
    return ('<p class="muted">One block per chain (click a title to open or fold it): the first '
            f"{PASSAGES_SHOWN} passages (blocks of tokens, decoded) of every finished generation, below the "
            "real training text's first passages (shaded). Generation 0 is trained on real text.</p>"
            + "".join(out))


def _per_class_section(store: RunStore, summary: list[dict]) -> str:
    from ..metrics.classifier import class_accuracy_column

    png = plots.plot_per_class(store.root) if summary else None
    if png is None:
        return '<p class="muted">No per-class accuracy in this run (it comes with the classifier metric).</p>'
    classes = plots.scored_classes(list(summary[0]), "_mean")
    last: dict[str, dict] = {}
    for r in summary:
        if r["setting"] not in last or r["generation"] >= last[r["setting"]]["generation"]:
            last[r["setting"]] = r
    body = [[s, r["generation"], *[r.get(class_accuracy_column(k) + "_mean") for k in classes]] for s, r in last.items()]
    table = _table(["setting", "generation", *[f"class {k}" for k in classes]], body, left=1)
    return (f'<div class="figs">{_figure(png, "accuracy per class and generation", store.root)}</div>'
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


def _composition_section(store: RunStore) -> Optional[str]:
    """Pool composition figures of ``genloop.report.composition`` (when it exists)."""
    try:
        from .composition import plot_composition
    except ImportError:
        return None
    try:
        paths = [p for p in _as_paths(plot_composition(store.root)) if p.suffix.lower() == ".png" and p.exists()]
    except Exception as exc:  # noqa: BLE001 - the rest of the report is still worth writing
        log.warning("report: pool composition figure failed: %s", exc)
        return f'<p class="muted">The pool composition figure could not be drawn: {_e(exc)}</p>'
    if not paths:
        return None
    figs = "".join(_figure(p, p.stem.replace("_", " "), store.root) for p in paths)
    return ('<p class="muted">Where each generation\'s training images came from (real data or earlier '
            f'generations).</p><div class="figs">{figs}</div>')


def _phase_section(store: RunStore, summary: list[dict]) -> Optional[str]:
    """Phase diagrams (``genloop.report.phase``) and, per setting, the metrics in the order
    they left the reference band (``genloop.loop.onset``)."""
    from .phase import first_movers, plot_phase

    try:
        figs = plot_phase(store.root)
    except Exception as exc:  # noqa: BLE001 - the rest of the report is still worth writing
        log.warning("report: phase diagram failed: %s", exc)
        figs = []
    movers = [m for m in first_movers(summary) if m["order"]]
    if not figs and not movers:
        return None
    parts = []
    if figs:
        parts.append('<div class="figs">' + "".join(_figure(p, c, store.root) for p, c in figs) + "</div>")
    if movers:
        rows = [[m["setting"], ", ".join(f"{name} {g:.3g}" + (f" ({left:.0%})" if left is not None else "")
                                        for g, name, left in m["order"])]
                for m in movers]
        parts.append('<p class="muted">Collapse onset: per setting, the metrics in the order they left the real '
                     "reference's band (metrics.onset_tolerance): mean onset generation over the seeds that left it "
                     "(share of seeds that did).</p>" + _table(["setting", "metrics by onset"], rows))
    return "".join(parts)


def _timing_section(store: RunStore, rows: list[dict]) -> str:
    png = plots.plot_timing(store.root)
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
    table = _table(["chain", "generations", "train s", "sample s", "score s", "total s", "s / generation"], body)
    return f'<div class="figs">{_figure(png, "seconds per generation", store.root)}</div>' + table


def _reference_section(store: RunStore) -> str:
    path = store.root / "reference.csv"
    if not path.exists():
        return ""
    refs = read_csv(path)
    if not refs:
        return ""
    cols = [c for c in refs[0] if not c.startswith(("acc_class_", "pred_frac_"))]
    return _table(cols, [[r.get(c) for c in cols] for r in refs], left=2)


# --------------------------------------------------------------------------- the page


def render(run_dir: Union[str, Path], classes: Optional[list[int]] = None) -> str:
    """The report's HTML text (draws the figures into ``RUN/plots`` as a side effect);
    ``classes``: the per-class accuracy panels (default: ``plots.panel_classes``)."""
    import yaml

    store = RunStore(Path(run_dir))
    root = store.root
    config_text = store.config_path.read_text() if store.config_path.exists() else ""
    raw = (yaml.safe_load(config_text) or {}) if config_text else {}
    chains = store.chains()
    rows = read_csv(root / "metrics.csv") if (root / "metrics.csv").exists() else []
    summary = read_csv(root / "summary.csv") if (root / "summary.csv").exists() else []
    name = raw.get("name") or root.name
    total = sum(_generations(c, raw) or 0 for c in chains)
    done = sum(store.finished_generations(c["id"]) for c in chains)
    seeds = sorted({c.get("seed") for c in chains}, key=str)
    n_settings = len({tuple(sorted((k, str(v)) for k, v in c.get("varied", {}).items() if k != "seed")) for c in chains})

    sections: list[tuple[str, str, str]] = [
        ("config", "Config", f"<pre>{_e(config_text)}</pre>"),
        ("settings", "Settings", _settings_section(store, chains, raw, rows)),
        ("curves", "Metric curves", _curves_section(store, summary, raw, classes)),
    ]
    if is_text_run(store, chains):  # passages instead of sample grids; no classes to score
        passages = _passages_section(store, chains)
        sections.append(("passages", "Generated text",
                         passages or '<p class="muted">No finished generation yet.</p>'))
    else:
        sections += [("samples", "Samples per generation", _samples_section(store, chains)),
                     ("per-class", "Accuracy per class", _per_class_section(store, summary))]
    phase = _phase_section(store, summary)
    if phase is not None:
        sections.insert(3, ("phase", "Phase diagram and collapse onset", phase))
    comp = _composition_section(store)
    if comp is not None:
        sections.append(("composition", "Training pool composition", comp))
    sections.append(("timing", "Time per generation", _timing_section(store, rows)))
    ref = _reference_section(store)
    if ref:
        sections.append(("reference", "Reference (real test set)", ref))

    nav = "".join(f'<a href="#{sid}">{_e(title)}</a>' for sid, title, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{_e(title)}</h2>{content}</section>' for sid, title, content in sections)
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    head = (f"<h1>genloop report: {_e(name)}</h1>"
            f'<p class="muted">Run folder <code>{_e(root.resolve())}</code> · {len(chains)} chain(s), '
            f"{n_settings} setting(s) x {len(seeds)} seed(s) · {done} of {total} generations finished · "
            f"drawn {when}</p><nav>{nav}</nav>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>genloop: {_e(name)}</title>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{CSS}</style></head><body>{head}{body}</body></html>\n")


def write_report(run_dir: Union[str, Path], classes: Optional[list[int]] = None) -> Path:
    """Write ``RUN/report.html`` (and its figures under ``RUN/plots``); returns its path."""
    store = RunStore(Path(run_dir))
    path = store.root / "report.html"
    write_text(path, render(store.root, classes))
    return path
