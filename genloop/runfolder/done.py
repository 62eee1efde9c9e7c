"""Verified generations: a finished generation's ``DONE`` marker, written last and atomically,
records the size and SHA-256 of every file of the generation it vouches for; a resume
checks them (``verify_done``).  A generation logged in ``rows.jsonl`` has no files to vouch
for: its complete JSON line is its record."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable, Optional

from .files import sha256_file, write_json
from .layout import Layout


def write_done(gen_dir: Path, files: Optional[dict] = None, paths: Iterable[Path] = ()) -> None:
    """Write the ``DONE`` marker of the generation folder ``gen_dir``, recording the size and
    SHA-256 of the files it vouches for: ``files`` (path -> the bytes written there) and
    ``paths`` (read back)."""
    record: dict[str, dict] = {}
    for p, data in (files or {}).items():
        record[Path(p).name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    for p in paths:
        p = Path(p)
        record[p.name] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    write_json(Path(gen_dir) / Layout.DONE, {"files": dict(sorted(record.items()))})


def read_done(gen_dir: Path) -> Optional[dict]:
    """name -> {size, sha256} from the ``DONE`` marker of ``gen_dir``; None for an unfinished
    generation or an empty marker (written before records existed)."""
    try:
        text = (Path(gen_dir) / Layout.DONE).read_text()
    except FileNotFoundError:
        return None
    if not text.strip():
        return None
    try:
        files = json.loads(text).get("files")
    except (ValueError, AttributeError):
        return {}
    return files if isinstance(files, dict) else {}


def check_done(gen_dir: Path) -> Optional[str]:
    """None when every file the ``DONE`` marker of ``gen_dir`` vouches for is there with its
    recorded size and SHA-256 (or the marker records nothing, or there is none); else what
    is wrong, naming the file."""
    d = Path(gen_dir)
    record = read_done(d)
    if record is None:
        return None
    if not record and (d / Layout.DONE).read_text().strip():
        return "DONE: unreadable record"
    for name, want in record.items():
        p = d / name
        try:
            size = p.stat().st_size
        except FileNotFoundError:
            return f"{name} is missing"
        if size != want.get("size"):
            return f"{name} has {size} bytes, {want.get('size')} recorded"
        if sha256_file(p) != want.get("sha256"):
            return f"{name}: SHA-256 differs from the one recorded"
    return None
