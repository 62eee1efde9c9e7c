"""The run folder's tables: CSV written and read back with numbers as numbers, and JSON lines."""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Optional

from .files import jsonable, write_text


def write_csv(path: Path, rows: list[dict], columns: Optional[list[str]] = None) -> None:
    """Atomically write ``rows`` as CSV; columns are the union of keys in first-seen order."""
    if columns is None:
        columns = []
        for r in rows:
            for k in r:
                if k not in columns:
                    columns.append(k)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: csv_value(r.get(k)) for k in columns})
    write_text(path, buf.getvalue())


def csv_value(v: Any) -> Any:
    """How ``write_csv`` writes a value: None empty, floats exactly (``repr``, ``nan``), lists as JSON."""
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if math.isnan(v) else repr(v)
    if isinstance(v, (list, tuple)):
        return json.dumps(v)
    return v


_CSV_CACHE: dict = {}  # path -> ((inode, mtime_ns, size), rows): the last few tables read, reused while unchanged


def read_csv(path: Path) -> list[dict]:
    """Rows of a CSV written by ``write_csv``; numbers are converted back.  A table read
    again while unchanged (same mtime and size) is not parsed again (the report reads
    ``metrics.csv`` in several places); the rows returned are fresh dicts."""
    key = str(Path(path).resolve())
    st = os.stat(key)
    stamp = (st.st_ino, st.st_mtime_ns, st.st_size)  # an atomic rewrite is a new inode
    hit = _CSV_CACHE.get(key)
    if hit is None or hit[0] != stamp:
        with open(path, newline="") as f:
            rows = [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(f)]
        while len(_CSV_CACHE) >= 4:
            _CSV_CACHE.pop(next(iter(_CSV_CACHE)))
        hit = _CSV_CACHE[key] = (stamp, rows)
    return [dict(r) for r in hit[1]]


def _parse(v: str) -> Any:
    if v == "":
        return None
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    write_text(path, "".join(json.dumps(r, default=jsonable) + "\n" for r in rows))
