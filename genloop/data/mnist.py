"""Data source ``mnist``: the four IDX files of MNIST in ``data.root``.

Expected files (each raw or gzipped, ``.gz``; Kaggle's ``train-images.idx3-ubyte``
spelling and torchvision's ``MNIST/raw/`` sub-folder are found too)::

    train-images-idx3-ubyte   60,000 x 28 x 28 uint8   magic 2051
    train-labels-idx1-ubyte   60,000 uint8 (0..9)      magic 2049
    t10k-images-idx3-ubyte    10,000 x 28 x 28 uint8   magic 2051
    t10k-labels-idx1-ubyte    10,000 uint8 (0..9)      magic 2049

The official split is kept: ``train`` -> the training set, ``t10k`` -> the
test set (``data.test_fraction`` is not used).  Images come out as uint8
(N, 1, 28, 28), or (N, 1, S, S) with ``data.image_size = S`` (bicubic);
labels int64 in 0..9.  Nothing is downloaded here: ``genloop data fetch
mnist --root DIR`` (``genloop.data.fetch.fetch_mnist``) does that, on request.
"""
from __future__ import annotations

import gzip
import logging
import zlib
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import DataConfig
from . import DATASETS, DataError, ImageSet, RealData
from .transforms import resize_square

log = logging.getLogger(__name__)

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
NUM_CLASSES = 10
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FETCH_HINT = "download them with `genloop data fetch mnist --root DIR`"

# IDX element type code (third byte of the magic number) -> big-endian numpy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    """The (decompressed) bytes of ``path``; a damaged gzip stream is a ``DataError``."""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found ({FETCH_HINT})") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: damaged or truncated gzip file ({exc}); delete it and {FETCH_HINT}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None


def parse_idx(data: bytes, name: str = "<bytes>", expect_magic: Optional[int] = None) -> np.ndarray:
    """Parse IDX bytes into a numpy array of the file's dtype and shape.

    Layout: a 4-byte big-endian magic number ``0x0000TTNN`` (``TT`` the
    element type, ``NN`` the number of dimensions), ``NN`` big-endian uint32
    dimension sizes, then the elements, row-major, big-endian.  MNIST images
    are 2051 (uint8, 3 dims), labels 2049 (uint8, 1 dim).  A wrong magic
    number, a short header, a truncated body or trailing bytes raise
    ``DataError`` naming ``name``."""
    if len(data) < 4:
        raise DataError(f"{name}: truncated: {len(data)} bytes, not even an IDX magic number ({FETCH_HINT})")
    magic = int.from_bytes(data[:4], "big")
    if expect_magic is not None and magic != expect_magic:
        what = "images" if expect_magic == IMAGES_MAGIC else "labels"
        raise DataError(f"{name}: wrong magic number {magic} (expected {expect_magic} for IDX {what}); "
                        f"not an MNIST {what} file, or a damaged one ({FETCH_HINT})")
    code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    if magic >> 16 != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise DataError(f"{name}: wrong magic number {magic}: not an IDX file")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: truncated header: {len(data)} bytes, the {ndim} dimension sizes need {header}")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[code])
    need = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    have = len(data) - header
    shape = " x ".join(map(str, dims))
    if have < need:
        raise DataError(f"{name}: truncated body: the header promises {shape} ({need} bytes) but only {have} "
                        f"bytes follow; delete it and {FETCH_HINT}")
    if have > need:
        raise DataError(f"{name}: {have - need} unexpected bytes after the {shape} data (a damaged file?)")
    arr = np.frombuffer(data, dtype=dtype, count=int(np.prod(dims, dtype=np.int64)), offset=header)
    return arr.reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path: Path, expect_magic: Optional[int] = None) -> np.ndarray:
    """Read an IDX file (raw or ``.gz``) with ``parse_idx``."""
    return parse_idx(_read_bytes(Path(path)), str(path), expect_magic)


def read_images(path: Path) -> np.ndarray:
    """An IDX image file (magic 2051) -> uint8 (N, 1, H, W)."""
    arr = read_idx(path, IMAGES_MAGIC)
    return np.ascontiguousarray(arr.astype(np.uint8, copy=False)[:, None])


def read_labels(path: Path) -> np.ndarray:
    """An IDX label file (magic 2049) -> int64 (N,)."""
    return read_idx(path, LABELS_MAGIC).astype(np.int64)


def _candidates(folder: Path, base: str) -> list[Path]:
    alt = base.replace("-idx", ".idx")  # Kaggle's spelling
    return [folder / n for b in (base, alt) for n in (b, b + ".gz")]


def find_files(root: Path) -> dict[str, Path]:
    """Map ``train_images`` etc. to the files found under ``root``.

    Looks in ``root``, ``root/raw`` and ``root/MNIST/raw``; a missing folder,
    no MNIST file at all, or one missing file is a ``DataError``."""
    if not root.exists():
        raise DataError(f"data.root: folder {root} does not exist ({FETCH_HINT})")
    if not root.is_dir():
        raise DataError(f"data.root: {root} is a file; mnist needs the folder holding the four IDX files")
    for folder in (root, root / "raw", root / "MNIST" / "raw"):
        found = {}
        for key, base in FILES.items():
            hit = next((p for p in _candidates(folder, base) if p.is_file()), None)
            if hit is not None:
                found[key] = hit
        if found:
            missing = [FILES[k] for k in FILES if k not in found]
            if missing:
                raise DataError(f"data.root: {folder / missing[0]}[.gz] is missing "
                                f"(found {', '.join(p.name for p in found.values())}; {FETCH_HINT})")
            return found
    raise DataError(f"data.root: no MNIST files in {root} (expected {FILES['train_images']}[.gz]; {FETCH_HINT})")


def _split(images_path: Path, labels_path: Path) -> ImageSet:
    images = read_images(images_path)
    labels = read_labels(labels_path)
    if len(images) != len(labels):
        raise DataError(f"{labels_path}: {len(labels)} labels but {images_path.name} has {len(images)} images")
    bad = (labels < 0) | (labels >= NUM_CLASSES)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{labels_path}: label {labels[i]} at index {i} is outside the class range 0..{NUM_CLASSES - 1}")
    return ImageSet(images, labels, NUM_CLASSES)


def load_mnist_folder(root: Path, image_size: Optional[int] = None) -> RealData:
    """The MNIST train and test sets from the IDX files under ``root``:
    uint8 (N, 1, 28, 28) (or ``image_size`` squared), int64 labels 0..9."""
    files = find_files(Path(root))
    train = _split(files["train_images"], files["train_labels"])
    test = _split(files["test_images"], files["test_labels"])
    if train.shape[1:] != test.shape[1:]:
        raise DataError(f"{files['test_images']}: images are {test.shape[1:]} but the training images are {train.shape[1:]}")
    if image_size is not None:
        train = ImageSet(resize_square(train.images, image_size), train.labels, NUM_CLASSES)
        test = ImageSet(resize_square(test.images, image_size), test.labels, NUM_CLASSES)
    return RealData(train, test)


@DATASETS.register("mnist")
def load_mnist(cfg: DataConfig, cache_dir: Optional[Path] = None) -> RealData:
    """``data.root`` holds the four MNIST IDX files; official train/test split."""
    if not cfg.root:
        raise DataError(f"data.root: mnist needs data.root, the folder holding the four IDX files ({FETCH_HINT})")
    real = load_mnist_folder(Path(cfg.root).expanduser(), cfg.image_size)
    log.info("mnist %s: %d train, %d test images %s", cfg.root, len(real.train), len(real.test), real.train.shape)
    return real
