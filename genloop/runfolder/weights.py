"""Checksummed safetensors files (model weights, training states): never pickle."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Optional

from .errors import DamagedFile
from .files import write_bytes

log = logging.getLogger(__name__)

WEIGHTS_HASH = "genloop.sha256"  # safetensors metadata key: SHA-256 of the tensors' layout and bytes


def _split_safetensors(data: bytes) -> tuple[dict, memoryview]:
    """(header, data section) of safetensors bytes; ValueError when they cannot be read."""
    if len(data) < 8:
        raise ValueError(f"{len(data)} bytes, too short for a safetensors file")
    n = int.from_bytes(data[:8], "little")
    if 8 + n > len(data):
        raise ValueError("cut short (its header runs past the end)")
    try:
        header = json.loads(bytes(data[8:8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError("its header is not readable") from None
    if not isinstance(header, dict):
        raise ValueError("its header is not readable")
    return header, memoryview(data)[8 + n:]


def _weights_digest(header: dict, data: memoryview) -> str:
    h = hashlib.sha256(json.dumps({k: v for k, v in header.items() if k != "__metadata__"},
                                  sort_keys=True).encode("utf-8"))
    h.update(data)
    return h.hexdigest()


def weights_bytes(tensors: dict, metadata: Optional[dict] = None) -> bytes:
    """A dict of tensors as safetensors bytes (never pickle), with the SHA-256 of the tensors'
    names, dtypes, shapes and bytes in the metadata (``WEIGHTS_HASH``; ``read_weights`` checks it)."""
    from safetensors.torch import save

    clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    header, data = _split_safetensors(save(clean, metadata=meta or None))
    meta[WEIGHTS_HASH] = _weights_digest(header, data)
    return save(clean, metadata=meta)  # the metadata changes the header only: same layout and bytes


def save_weights(path: Path, tensors: dict, metadata: Optional[dict] = None) -> None:
    """Save a dict of tensors as safetensors (never pickle), with its checksum (``weights_bytes``)."""
    write_bytes(path, weights_bytes(tensors, metadata))


def load_weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def read_weights(path: Path, legacy: bool = False) -> tuple[dict, dict]:
    """(tensors, metadata) of a safetensors file written by ``weights_bytes``, after checking its
    checksum; ``DamagedFile`` (naming the file and what is wrong) when it is cut short,
    unreadable, its content differs from its checksum, or it carries none (unless
    ``legacy``: then a file written before checksums is read unchecked, logged)."""
    from safetensors.torch import load

    path = Path(path)
    data = path.read_bytes()
    try:
        header, body = _split_safetensors(data)
    except ValueError as exc:
        raise DamagedFile(f"{path}: {exc}") from None
    meta = header.get("__metadata__") or {}
    want = meta.get(WEIGHTS_HASH) if isinstance(meta, dict) else None
    if want is None and not legacy:
        raise DamagedFile(f"{path}: carries no checksum (written by an older genloop), so it cannot be trusted")
    if want is None:
        log.info("%s: written before checksums: read unchecked", path)
    elif _weights_digest(header, body) != want:
        raise DamagedFile(f"{path}: its content differs from its checksum (damaged or edited)")
    try:
        tensors = load(data)
    except Exception as exc:  # noqa: BLE001 - safetensors' own error types
        raise DamagedFile(f"{path}: not readable as safetensors ({exc})") from None
    return tensors, dict(meta)
