"""A chain's row log (``rows.jsonl``): the metric rows of generations that keep no folder, one
JSON line each with its checksum as the last key (``ROW_HASH``).  Lines are appended in
batches (one fsync per batch); a torn last line (a killed writer) is ignored and cut off
before the next append; reading stops at the first damaged line."""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Optional

from .files import jsonable, write_bytes

ROW_HASH = "row_sha256"  # a rows.jsonl line's checksum: SHA-256 of the line's JSON without it
_ROW_TAIL = b'"row_sha256": "'  # then 64 hex digits and '"}' end the line
_ROW_HEAD = re.compile(rb'^\{"chain": "[^"\\]*", "seed": -?\d+, "generation": (\d+)[,}]')
_ROW_SECONDS = b'"total_seconds": '


def _row_json(row: dict) -> str:
    return json.dumps(row, default=jsonable)


def row_line(row: dict) -> str:
    """A rows.jsonl line: the row's JSON with its checksum as the last key (the SHA-256 of
    the JSON without it, so that a reader checks a line without parsing it)."""
    text = _row_json({k: v for k, v in row.items() if k != ROW_HASH})
    digest_ = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return f'{text[:-1]}{", " if text != "{}" else ""}"{ROW_HASH}": "{digest_}"}}\n'


def _row_body(line: bytes) -> Any:
    """(the line's JSON without its checksum, True) when the checksum holds, (line, False) when
    it carries none (older lines), or what is wrong (a str)."""
    n = len(_ROW_TAIL) + 66
    line = line.rstrip(b"\r")
    if line[-n:-66] != _ROW_TAIL or not line.endswith(b'"}'):
        return line, False
    want, body = line[-66:-2], line[:-n]
    body = (body[:-2] if body.endswith(b", ") else body) + b"}"
    if hashlib.sha256(body).hexdigest().encode() != want:
        return "its content differs from its checksum (damaged or edited)"
    return body, True


def row_problem(line: bytes) -> Any:
    """The row (a dict) of a rows.jsonl line, or what is wrong with it (a str)."""
    body = _row_body(line)
    if isinstance(body, str):
        return body
    try:
        row = json.loads(body[0].decode("utf-8"))
    except UnicodeDecodeError:
        return "not UTF-8 text"
    except ValueError:
        return "not valid JSON"
    if not isinstance(row, dict) or isinstance(row.get("generation"), bool) or not isinstance(row.get("generation"), int):
        return "not a metric row with a generation number"
    row.pop(ROW_HASH, None)
    return row


def _row_brief(line: bytes) -> Any:
    """(generation, total_seconds or None) of a good rows.jsonl line without parsing all of it
    when its checksum holds; the row dict when it must be parsed; a str when it is bad."""
    body = _row_body(line)
    if isinstance(body, str):
        return body
    if body[1] or line.isascii():  # checked, or an older line without a checksum (trusted, as before)
        head = _ROW_HEAD.match(body[0])
        if head is not None:
            at = body[0].find(_ROW_SECONDS)
            try:
                if at < 0:
                    return int(head.group(1)), None
                start = at + len(_ROW_SECONDS)
                end = min(i for i in (body[0].find(b",", start), body[0].find(b"}", start)) if i >= 0)
                return int(head.group(1)), float(body[0][start:end])
            except ValueError:
                pass
    return row_problem(line)


def parse_log(path: Path, offset: int = 0) -> tuple[list[dict], int, Optional[tuple[int, str]]]:
    """Rows of the log at ``path`` from byte ``offset``, the offset after the last good line, and
    (line number, problem) of the first damaged line (None when all are good).  A line
    is good when it is UTF-8 JSON of a row with an integer ``generation`` whose
    ``ROW_HASH`` (when present: older lines carry none) matches; reading stops at the
    first bad line.  A torn last line (no newline yet) is left for later."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset, None
    end = data.rfind(b"\n") + 1
    rows: list[dict] = []
    pos = 0
    for number, line in enumerate(data[:end].split(b"\n")[:-1], 1):
        problem = None if not line.strip() else row_problem(line)
        if isinstance(problem, str):
            return rows, offset + pos, (number, problem)
        if problem is not None:
            rows.append(problem)
        pos += len(line) + 1
    return rows, offset + end, None


def log_brief(path: Path) -> tuple[dict[int, Optional[float]], Optional[dict]]:
    """What ``genloop status`` needs of a row log, read fast (each line's checksum is
    checked, only the last good line is parsed): generation -> total_seconds of the good
    lines before the first damaged one, and the last good row."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return {}, None
    seconds: dict[int, Optional[float]] = {}
    last_line = None
    for line in data[:data.rfind(b"\n") + 1].split(b"\n")[:-1]:
        if not line.strip():
            continue
        brief = _row_brief(line)
        if isinstance(brief, str):
            break
        if isinstance(brief, dict):
            t = brief.get("total_seconds")
            seconds[int(brief["generation"])] = float(t) if isinstance(t, (int, float)) else None
        else:
            seconds[brief[0]] = brief[1]
        last_line = line
    last = row_problem(last_line) if last_line is not None else None
    return seconds, last if isinstance(last, dict) else None


def cut_log(path: Path, offset: int) -> None:
    """Keep the first ``offset`` bytes of the log at ``path`` (atomically)."""
    with open(path, "rb") as f:
        head = f.read(offset)
    write_bytes(path, head)


def append_rows(path: Path, rows: list[dict]) -> None:
    """Append ``rows`` to the log at ``path`` (each line with its checksum, ``ROW_HASH``) and
    make them durable (one fsync); a torn last line left by a killed writer is cut off first."""
    if not rows:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(row_line(r) for r in rows).encode("utf-8")
    with open(path, "ab+") as f:  # a new file gets the umask's mode, as with atomic_write
        size = f.seek(0, os.SEEK_END)
        if size:
            f.seek(max(0, size - 1))
            if f.read(1) != b"\n":  # torn tail: cut back to the last complete line
                f.seek(0)
                whole = f.read()
                f.truncate(whole.rfind(b"\n") + 1)
                f.seek(0, os.SEEK_END)
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
