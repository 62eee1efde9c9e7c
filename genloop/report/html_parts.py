"""The building blocks of ``RUN/report.html``: its style sheet, escaping, pictures
embedded as ``data:`` URIs (nothing is fetched), figures, number formats and tables."""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any, Iterable

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


def esc(x: Any) -> str:
    """``x`` as HTML text (quotes escaped too)."""
    return html.escape(str(x), quote=True)


def data_uri(path: Path) -> str:
    """A file as a ``data:`` URI (PNG, JPEG, SVG by suffix)."""
    mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}.get(
        Path(path).suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(Path(path).read_bytes()).decode('ascii')}"


def img_tag(path: Path, alt: str, cls: str = "") -> str:
    """An ``<img>`` of the file at ``path``, embedded."""
    return f'<img src="{data_uri(path)}" alt="{esc(alt)}" title="{esc(alt)}"{f" class={cls!r}" if cls else ""}>'


def figure_html(path: Path, caption: str, root: Path) -> str:
    """A ``<figure>`` of the picture at ``path`` with its caption and a link to its PDF (when there is one)."""
    links = []
    pdf = path.with_suffix(".pdf")
    if pdf.exists():
        links.append(f'<a href="{esc(pdf.relative_to(root).as_posix())}">PDF</a>')
    extra = f" ({', '.join(links)})" if links else ""
    return f"<figure>{img_tag(path, caption)}<figcaption>{esc(caption)}{extra}</figcaption></figure>"


def fmt(v: Any, digits: int = 4) -> str:
    """A table cell's value as text: ``digits`` significant digits, an en dash for NaN."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:.{digits}g}"
    if isinstance(v, list):
        return ", ".join(fmt(x, digits) for x in v)
    return str(v)


def table_html(header: list[str], rows: Iterable[list[Any]], left: int = 1) -> str:
    """A ``<table>``: its ``left`` first columns left-aligned, the cells escaped (but ``Raw`` ones)."""
    th = "".join(f'<th{" class=l" if i < left else ""}>{esc(h)}</th>' for i, h in enumerate(header))
    body = []
    for r in rows:
        body.append("<tr>" + "".join(f'<td{" class=l" if i < left else ""}>{c if isinstance(c, Raw) else esc(fmt(c))}</td>'
                                     for i, c in enumerate(r)) + "</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class Raw(str):
    """Table cell HTML that is not escaped."""
