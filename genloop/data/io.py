"""Image sets from and to paths, and a text summary of a dataset.

* ``load_path(path)``: a ``.npz`` (``images`` + optional ``labels``, see
  ``genloop.data.npz``) or a folder of images (class sub-folders -> labels,
  else unlabelled; see ``genloop.data.folder``) as an ``ImageSet``; used by
  ``genloop eval --real PATH --fake PATH``.
* ``save_npz(path, images)``: the inverse, written atomically.
* ``info(real)``: the text ``genloop data info SPEC`` prints.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..runfolder import save_npz as store_npz
from . import DataError, ImageSet, RealData
from .folder import read_folder
from .npz import arrays_to_sets, read_npz
from .transforms import resize_batch

log = logging.getLogger(__name__)

# What an undecodable image's error tells a caller of load_path (a keyword, not a config key).
PATH_SKIP_HINT = "set skip_bad=True to skip images that cannot be decoded"


def load_path(path: Union[str, Path], image_size: Optional[int] = None, *, skip_bad: bool = False,
              workers: int = 0) -> ImageSet:
    """A ``.npz`` file or a folder of images as an ``ImageSet``: uint8
    (N, C, H, W), labels int64 (N,) or None.

    For a ``.npz`` the ``images``/``labels`` arrays are read (``test_*``
    arrays are ignored, with a log line) and resized to ``image_size`` when
    given and different.  For a folder see ``genloop.data.folder.read_folder``."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder (expected a .npz with an 'images' array or a folder of images)")
    if path.is_dir():
        return read_folder(path, image_size, skip_bad=skip_bad, workers=workers, hint=PATH_SKIP_HINT)
    arrays = read_npz(path)
    data, test = arrays_to_sets(arrays, str(path))
    if test is not None:
        log.info("%s: using 'images' (%d); the %d test_images are ignored here", path, len(data), len(test))
    if image_size is not None and data.images.shape[2:] != (image_size, image_size):
        data = ImageSet(resize_batch(data.images, image_size), data.labels, data.num_classes)
    return data


def save_npz(path: Union[str, Path], data: ImageSet, compress: bool = False) -> Path:
    """Write ``images`` (uint8 (N, C, H, W)), ``labels`` (int64, when labelled)
    and ``num_classes`` to ``path`` atomically; ``load_path`` reads it back."""
    arrays = {"images": data.images, "num_classes": np.int64(data.num_classes)}
    if data.labels is not None:
        arrays["labels"] = np.asarray(data.labels, dtype=np.int64)
    return store_npz(path, compress=compress, **arrays)


def _describe(name: str, s: ImageSet) -> str:
    c, h, w = s.shape
    return f"{name:<6}{len(s):>9,} images  {s.images.dtype}  C x H x W = {c} x {h} x {w}"


def _text_info(sets: list) -> str:
    """Blocks, tokens and vocabulary of text sets, and the start of the first block."""
    first = sets[0][1]
    tok = first.tokenizer
    lines = [f"{n:<6}{len(s):>9,} blocks x {s.shape[0]} tokens = {len(s) * s.shape[0]:,} tokens" for n, s in sets]
    lines.append(f"vocabulary: {first.vocab_size:,} tokens ({getattr(tok, 'name', '') or 'no'} tokenizer; ids 0 <bos>, 1 <unk>)")
    if len(first):
        lines.append("first block: " + repr(first.texts(1)[0][:200]))
    return "\n".join(lines)


def info(real: Union[RealData, ImageSet]) -> str:
    """Count, shape, classes and per-class counts of a dataset, as text
    (``genloop data info`` prints it; library code never prints)."""
    sets = [("train", real.train), ("test", real.test)] if isinstance(real, RealData) else [("images", real)]
    if sets[0][1].kind == "tokens":
        return _text_info(sets)
    lines = [_describe(n, s) for n, s in sets]
    first = sets[0][1]
    if len(first):
        x = first.images.astype(np.float64) if first.images.dtype != np.uint8 else first.images
        lines.append(f"values {sets[0][0]}: min {x.min():g}, max {x.max():g}, mean {x.mean():.4g}, std {x.std():.4g}")
    k = max(s.num_classes for _, s in sets)
    if not all(s.labelled for _, s in sets):
        lines.append("classes: none (unlabelled)")
        return "\n".join(lines)
    lines.append(f"classes: {k}")
    counts = [np.bincount(s.labels, minlength=k) for _, s in sets]
    header = "class" + "".join(f"{n:>10}" for n, _ in sets)
    lines.append(header)
    for c in range(k):
        lines.append(f"{c:<5}" + "".join(f"{int(cnt[c]):>10,}" for cnt in counts))
    lines.append("total" + "".join(f"{int(cnt.sum()):>10,}" for cnt in counts))
    return "\n".join(lines)
