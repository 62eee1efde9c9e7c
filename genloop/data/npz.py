"""Data source ``npz``: images (and labels) in one ``.npz`` file at ``data.root``.

Arrays read (``np.load(..., allow_pickle=False)``, so no pickled objects):

* ``images``: uint8 (N, H, W) grey, or (N, C, H, W) / (N, H, W, C) with C in
  {1, 3}.  The channel axis is the one of size 1 or 3; when both axis 1 and
  axis 3 could be it (e.g. (N, 3, 8, 3)) genloop's own channel-first order
  wins.  Integer arrays of another dtype are accepted when all values lie in
  0..255; anything else is a ``DataError``.
* ``labels`` (optional): integers (N,) in 0..K-1, K = ``num_classes`` when
  the file has that scalar, else max(labels) + 1.
* ``test_images`` / ``test_labels`` (optional): the held-out test set; without
  them the set is split by ``split_holdout(data.test_fraction, data.split_seed)``.

Output: ``ImageSet`` uint8 (N, C, H, W), labels int64 (N,) or None.  With
``data.image_size`` = S images are resized to S x S (non-square ones on the
short side, then centre-cropped).  This is also the format of a run's
``samples.npz`` and of ``genloop.data.io.save_npz``.
"""
from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import DataConfig
from . import DATASETS, DataError, ImageSet, RealData, split_holdout
from .transforms import resize_batch

log = logging.getLogger(__name__)

CHANNELS = (1, 3)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of a ``.npz`` file (no pickles); unreadable files are a ``DataError``."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"data.root: file {path} does not exist")
    if path.is_dir():
        raise DataError(f"data.root: {path} is a folder, not a .npz file (for a folder of images use data.name=folder)")
    with open(path, "rb") as f:
        head = f.read(6)
    if head == b"\x93NUMPY":
        raise DataError(f"{path}: a single .npy array, not a .npz archive with an 'images' array "
                        "(save with np.savez(path, images=..., labels=...))")
    if not head.startswith(b"PK"):
        raise DataError(f"{path}: not a .npz file (no zip header; save with np.savez(path, images=..., labels=...))")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except DataError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DataError(f"{path}: holds pickled Python objects, which are never loaded; "
                            "save plain numeric arrays (np.savez(path, images=uint8_array, labels=int_array))") from None
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc.__class__.__name__}: {exc})") from None


def to_nchw(images: np.ndarray, name: str = "images") -> np.ndarray:
    """uint8 (N, H, W), (N, C, H, W) or (N, H, W, C) with C in {1, 3} -> uint8 (N, C, H, W)."""
    a = np.asarray(images)
    if a.dtype != np.uint8:
        if a.dtype.kind in "iub" and (a.size == 0 or (a.min() >= 0 and a.max() <= 255)):
            a = a.astype(np.uint8)
        else:
            raise DataError(f"{name}: must be uint8 pixels 0..255, got {a.dtype}"
                            + (" (scale floats with np.clip(np.rint(x * 255), 0, 255).astype(np.uint8))" if a.dtype.kind == "f" else ""))
    if a.ndim == 3:
        return np.ascontiguousarray(a[:, None])
    if a.ndim != 4:
        raise DataError(f"{name}: shape {a.shape} is not (N, H, W), (N, C, H, W) or (N, H, W, C)")
    first, last = a.shape[1] in CHANNELS, a.shape[3] in CHANNELS
    if first:
        return np.ascontiguousarray(a)
    if last:
        return np.ascontiguousarray(a.transpose(0, 3, 1, 2))
    raise DataError(f"{name}: shape {a.shape}: no channel axis of size 1 or 3 in position 1 (N, C, H, W) "
                    "or 3 (N, H, W, C)")


def _labels(arrays: dict, key: str, n: int, name: str) -> Optional[np.ndarray]:
    if key not in arrays:
        return None
    y = np.asarray(arrays[key])
    if y.ndim == 2 and 1 in y.shape:
        y = y.ravel()
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{name}: {key} has shape {y.shape}, expected ({n},) to match the images")
    if y.dtype.kind not in "iub":
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise DataError(f"{name}: {key} must be whole numbers (class indices 0..K-1), got {y.dtype}")
    return y.astype(np.int64)


def arrays_to_sets(arrays: dict[str, np.ndarray], name: str) -> tuple[ImageSet, Optional[ImageSet]]:
    """``images``/``labels`` (and ``test_images``/``test_labels``) -> (set, test set or None).

    ``name`` (usually the file path) starts every error message."""
    if "images" not in arrays:
        raise DataError(f"{name}: no 'images' array (found: {', '.join(sorted(arrays)) or 'nothing'})")
    images = to_nchw(arrays["images"], f"{name}: images")
    labels = _labels(arrays, "labels", len(images), name)
    test_images = to_nchw(arrays["test_images"], f"{name}: test_images") if "test_images" in arrays else None
    test_labels = _labels(arrays, "test_labels", len(test_images), name) if test_images is not None else None
    if "test_labels" in arrays and test_images is None:
        raise DataError(f"{name}: test_labels without test_images")
    if test_images is not None:
        if (labels is None) != (test_labels is None):
            raise DataError(f"{name}: {'labels' if labels is not None else 'test_labels'} given but "
                            f"{'test_labels' if labels is not None else 'labels'} missing; label both sets or neither")
        if test_images.shape[1:] != images.shape[1:]:
            raise DataError(f"{name}: test_images are {test_images.shape[1:]} but images are {images.shape[1:]}")
    num_classes = 0
    if labels is not None:
        all_labels = labels if test_labels is None else np.concatenate([labels, test_labels])
        if "num_classes" in arrays:
            num_classes = int(np.asarray(arrays["num_classes"]).reshape(-1)[0])
        elif len(all_labels):
            num_classes = int(all_labels.max()) + 1
        for key, y in (("labels", labels), ("test_labels", test_labels)):
            if y is not None and len(y) and (y.min() < 0 or y.max() >= num_classes):
                i = int(np.flatnonzero((y < 0) | (y >= num_classes))[0])
                raise DataError(f"{name}: {key}[{i}] = {y[i]} is outside the class range 0..{num_classes - 1}")
    train = ImageSet(images, labels, num_classes)
    test = None if test_images is None else ImageSet(test_images, test_labels, num_classes)
    return train, test


def load_npz_file(path: Path, image_size: Optional[int] = None, test_fraction: float = 0.2,
                  split_seed: int = 0) -> RealData:
    """A ``.npz`` dataset as train/test sets of uint8 (N, C, H, W) images."""
    arrays = read_npz(path)
    full, test = arrays_to_sets(arrays, str(path))
    if image_size is not None:
        full = ImageSet(resize_batch(full.images, image_size), full.labels, full.num_classes)
        if test is not None:
            test = ImageSet(resize_batch(test.images, image_size), test.labels, test.num_classes)
    if test is not None:
        return RealData(full, test)
    return split_holdout(full, test_fraction, split_seed)


@DATASETS.register("npz")
def load_npz(cfg: DataConfig, cache_dir: Optional[Path] = None) -> RealData:
    """``data.root``: a ``.npz`` with ``images`` (+ ``labels``, ``test_images``, ``test_labels``)."""
    if not cfg.root:
        raise DataError("data.root: npz needs data.root, the path of a .npz file with an 'images' array "
                        "(uint8 (N, C, H, W) or (N, H, W, C)) and optional 'labels'")
    return load_npz_file(Path(cfg.root), cfg.image_size, cfg.test_fraction, cfg.split_seed)
