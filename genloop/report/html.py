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

The report reads the run folder through ``genloop.runfolder`` only; it can be
redrawn at any time, also while a run is going on (``genloop report RUN``).
This module puts the page together; its sections are drawn by ``sections`` (the
metrics) and ``generated`` (samples, passages), from the blocks of ``html_parts``.
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Optional, Union

from ..runfolder import RunStore, read_csv, write_text
from .generated import PASSAGES_SHOWN, is_text_run, passages_section, samples_section  # noqa: F401 - PASSAGES_SHOWN: read by callers
from .html_parts import CSS, esc
from .plots import FORMATS
from .sections import (composition_section, curves_section, per_class_section, phase_section, planned_generations,
                       reference_section, settings_section, timing_section)


def render(run_dir: Union[str, Path], classes: Optional[list[int]] = None, formats: tuple[str, ...] = FORMATS) -> str:
    """The report's HTML text (draws the figures into ``RUN/plots`` as a side effect, in
    ``formats``); ``classes``: the per-class accuracy panels (default: ``plots.panel_classes``)."""
    import yaml

    store = RunStore(Path(run_dir))
    root = store.root
    config_text = store.config_path.read_text() if store.config_path.exists() else ""
    raw = (yaml.safe_load(config_text) or {}) if config_text else {}
    chains = store.chains()
    rows = read_csv(store.metrics_csv) if store.metrics_csv.exists() else []
    summary = read_csv(store.summary_csv) if store.summary_csv.exists() else []
    name = raw.get("name") or root.name
    total = sum(planned_generations(c, raw) or 0 for c in chains)
    done = sum(store.finished_generations(c["id"]) for c in chains)
    seeds = sorted({c.get("seed") for c in chains}, key=str)
    n_settings = len({tuple(sorted((k, str(v)) for k, v in c.get("varied", {}).items() if k != "seed")) for c in chains})

    sections: list[tuple[str, str, str]] = [
        ("config", "Config", f"<pre>{esc(config_text)}</pre>"),
        ("settings", "Settings", settings_section(store, chains, raw, rows)),
        ("curves", "Metric curves", curves_section(store, summary, raw, classes, formats)),
    ]
    if is_text_run(store, chains):  # passages instead of sample grids; no classes to score
        passages = passages_section(store, chains)
        sections.append(("passages", "Generated text",
                         passages or '<p class="muted">No finished generation yet.</p>'))
    else:
        sections += [("samples", "Samples per generation", samples_section(store, chains)),
                     ("per-class", "Accuracy per class", per_class_section(store, summary, formats))]
    phase = phase_section(store, summary, formats)
    if phase is not None:
        sections.insert(3, ("phase", "Phase diagram and collapse onset", phase))
    comp = composition_section(store, formats)
    if comp is not None:
        sections.append(("composition", "Training pool composition", comp))
    sections.append(("timing", "Time per generation", timing_section(store, rows, formats)))
    ref = reference_section(store)
    if ref:
        sections.append(("reference", "Reference (real test set)", ref))

    nav = "".join(f'<a href="#{sid}">{esc(title)}</a>' for sid, title, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{esc(title)}</h2>{content}</section>' for sid, title, content in sections)
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    head = (f"<h1>genloop report: {esc(name)}</h1>"
            f'<p class="muted">Run folder <code>{esc(root.resolve())}</code> · {len(chains)} chain(s), '
            f"{n_settings} setting(s) x {len(seeds)} seed(s) · {done} of {total} generations finished · "
            f"drawn {when}</p><nav>{nav}</nav>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>genloop: {esc(name)}</title>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{CSS}</style></head><body>{head}{body}</body></html>\n")


def write_report(run_dir: Union[str, Path], classes: Optional[list[int]] = None,
                 formats: tuple[str, ...] = FORMATS) -> Path:
    """Write ``RUN/report.html`` (and its figures under ``RUN/plots``, in ``formats``: the
    redraws while a run goes write only the PNGs the page shows); returns its path."""
    store = RunStore(Path(run_dir))
    path = store.report_path
    write_text(path, render(store.root, classes, formats))
    return path
