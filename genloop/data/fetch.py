"""Download MNIST on explicit request (``genloop data fetch mnist --root DIR``).

Nothing in the library downloads by itself: the ``mnist`` source only reads
files that are already there.  ``fetch_mnist`` downloads the four ``.gz``
files from a mirror (default: PyTorch's S3 mirror, the one torchvision uses)
and checks each against its published SHA-256 (``MNIST_SHA256``; the same
values are pinned by TensorFlow Datasets and others, with the sizes below).
A file whose name is not in the hash table is kept and its computed hash is
logged instead, so a mirror of other files can still be fetched knowingly.

Each file is streamed into a temporary file next to its destination and
moved into place only after its hash matched: an interrupted or corrupted
download never leaves a file that looks complete.
"""
from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Mapping, Optional, Union

from . import DataError
from ..store import atomic_write, sha256_file
from .mnist import FILES

log = logging.getLogger(__name__)

DEFAULT_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"

#: SHA-256 of the original gzipped MNIST files (sizes: 9,912,422; 28,881; 1,648,877; 4,542 bytes).
MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

_CHUNK = 1 << 16


def _download(url: str, dest: Path, expected: Optional[str], opener: Callable, timeout: float) -> str:
    """Stream ``url`` into ``dest`` (atomically, ``store.atomic_write``); return its SHA-256;
    raise on a failed download or a mismatch, leaving ``dest`` as it was."""
    h = hashlib.sha256()

    def write(out) -> None:
        try:
            with opener(url, timeout=timeout) as resp:
                for block in iter(lambda: resp.read(_CHUNK), b""):
                    h.update(block)
                    out.write(block)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DataError(f"{url}: download failed ({reason}); check the URL "
                            "(data fetch --url) or copy the files into the folder by hand") from None
        if expected is not None and h.hexdigest() != expected:
            raise DataError(f"{url}: SHA-256 mismatch (got {h.hexdigest()}, expected {expected}); "
                            "the mirror serves a different or damaged file, nothing was saved")

    atomic_write(dest, write)
    return h.hexdigest()


def fetch_mnist(root: Union[str, Path], base_url: str = DEFAULT_MNIST_URL, *,
                hashes: Mapping[str, str] = MNIST_SHA256, force: bool = False,
                opener: Optional[Callable] = None, timeout: float = 60.0) -> list[Path]:
    """Download the four MNIST ``.gz`` files into ``root``; return their paths.

    ``base_url`` is the mirror folder (``file://`` URLs work too); each file
    is checked against ``hashes`` (file name -> hex SHA-256) and a mismatch
    is a ``DataError`` with nothing saved.  Files already in ``root`` with
    the right hash are kept (``force`` downloads them again); one with a
    wrong hash is downloaded again.  ``opener`` (default
    ``urllib.request.urlopen``) is called as ``opener(url, timeout=...)`` and
    must return a context manager with ``read(n)``."""
    root = Path(root).expanduser()
    opener = opener or urllib.request.urlopen
    if not base_url.endswith("/"):
        base_url += "/"
    paths = []
    for base in FILES.values():
        name = base + ".gz"
        dest = root / name
        expected = hashes.get(name)
        if dest.is_file() and not force:
            got = sha256_file(dest)
            if expected is None or got == expected:
                log.info("%s is already there (sha256 %s)", dest, got)
                paths.append(dest)
                continue
            log.warning("%s has the wrong SHA-256 (%s); downloading it again", dest, got)
        url = base_url + name
        log.info("downloading %s -> %s", url, dest)
        got = _download(url, dest, expected, opener, timeout)
        if expected is None:
            log.warning("%s: no known SHA-256 for %s; computed %s (compare it with a trusted source)", url, name, got)
        else:
            log.info("%s: sha256 ok", dest)
        paths.append(dest)
    return paths
