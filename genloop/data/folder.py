"""Data source ``folder``: a folder of image files (JPEG, PNG, BMP, GIF, TIFF, WebP, PNM).

Layouts of ``data.root`` that are recognised, in this order:

* **Oxford-102 flowers** (official): ``jpg/image_00001.jpg ...`` next to
  ``imagelabels.mat`` (read with ``scipy.io.loadmat``; labels 1..102 become
  0..101).  ``data.root`` may be that folder or its ``jpg/`` sub-folder.
* **CUB-200-2011**: ``images/001.Black_footed_Albatross/...``; ``data.root``
  may be the ``images/`` folder or the folder that contains it.  With
  ``data.folder.bbox_crop=true`` each bird is cropped to the square around its
  bounding box, padded by ``data.folder.bbox_padding`` (the paper: 25 %), read from
  ``images.txt`` and ``bounding_boxes.txt`` next to ``images/`` (see
  ``transforms.padded_box``).
* **One sub-folder per class** (ImageFolder style): classes are the
  sub-folders sorted by name, numbered from 0; their images are found
  recursively.  A class folder without any image is an error.
* **Unlabelled**: image files directly in ``data.root`` and no class folder:
  labels None, ``num_classes`` 0.

Hidden files and folders (names starting with ``.``) are never read, and
files with other extensions (``.txt``, ``.mat``) are ignored.

Every image is converted to RGB (grey, grey+alpha, palette, RGBA, CMYK, 16-bit
all converted; transparency is composited onto white), its short side resized
to ``data.image_size`` (64 when None) and the centre square cropped (bicubic,
antialiased).  Result: uint8 (N, 3, S, S), labels int64 (N,).  JPEGs are
decoded at a reduced DCT scale that keeps at least 2 S pixels on the short
side, which makes large photos several times faster to decode.

The decoded set is cached once as an uncompressed uint8 ``.npz`` (see
``genloop.data.cache`` for where, and for the key: the file list with sizes
and mtimes, the labels and the settings), built with ``data.folder.workers``
decoding threads and a progress bar.  About 90 % of the time per image is
in Pillow's decoder and resampler, which release the GIL, so threads can use
the cores without the pickling of a process pool (which measured no faster);
``benchmarks/bench_data.py`` has the figures (about 870 images/s on one busy
core for 500x375 JPEGs to 64x64; loading the cache: over 15,000 images/s).

An image that cannot be decoded (corrupt, truncated, not an image) is a
``DataError`` naming it; with ``data.skip_bad=true`` such images are skipped
instead and their count and names are logged as a warning.  The train/test
split is ``split_holdout(full, data.test_fraction, data.split_seed)``.

The layouts are found by ``genloop.data.folder_scan`` and the images decoded by
``genloop.data.decode``; this module reads, caches and registers the source.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import DataConfig, opt
from ..utils import digest
from . import DATASETS, DataError, ImageSet, RealData, split_holdout
from ..runfolder import save_npz
from .cache import cache_key, cache_root, fingerprint, load_cached
from .decode import SKIP_HINT, decode_files, probe_files
from .folder_scan import FolderLayout, read_cub_boxes, scan_folder
from .transforms import GREY_MODES, most_common_size

log = logging.getLogger(__name__)

DEFAULT_SIZE = 64


def read_folder(path: Path, image_size: Optional[int] = None, *, skip_bad: bool = False, workers: int = 0,
                hint: str = SKIP_HINT) -> ImageSet:
    """A folder of images as uint8 (N, C, H, W), not cached, as it is (``genloop eval``'s
    ``load_path``; the ``folder`` dataset is ``load_folder_set``: fixed size, RGB, cached).
    ``hint``: what an undecodable image's error says to do about it.

    C is 1 when every image is grey (L, LA, 1, I;16 ...), else 3 (RGB).
    Images are resized (short side, centre crop) only when needed: to
    ``image_size`` when given, else, when their sizes differ, to the short
    side of the most common size (logged); equal-sized images are kept as
    they are, even when not square."""
    layout = scan_folder(path)
    keep, sizes, modes = probe_files(layout.files, skip_bad, hint)
    if not len(keep):
        raise DataError(f"{path}: none of the {len(layout.files)} image files can be read")
    files = [layout.files[i] for i in keep]
    labels = None if layout.labels is None else layout.labels[keep]
    grey = all(m in GREY_MODES for m in modes)
    size: Optional[int] = image_size
    native = None
    if size is None:
        if len(set(sizes)) == 1:
            native = (sizes[0][1], sizes[0][0])
        else:
            common = most_common_size(sizes)
            size = min(common)  # type: ignore[arg-type]
            log.warning("%s: images have %d different sizes; resizing them to %dx%d (short side, centre crop); "
                        "pass image_size to choose", path, len(set(sizes)), size, size)
    images, ok, _ = decode_files(files, size, grey=grey, workers=workers, skip_bad=skip_bad, native_shape=native,
                                 desc=f"reading {Path(path).name}", root=layout.root, hint=hint)
    if labels is not None:
        labels = labels[ok]
    return ImageSet(images, labels, layout.num_classes if labels is not None else 0)


def _settings(layout: FolderLayout, size: int, boxes: Optional[np.ndarray] = None, bbox_padding: float = 0.25) -> dict:
    out = {"source": "folder", "kind": layout.kind, "size": size, "mode": "RGB", "draft": 2,
           "labels": None if layout.labels is None else digest(layout.labels), "classes": layout.class_names}
    if boxes is not None:  # centre-cropped caches keep their key
        out["bbox"] = {"boxes": digest(boxes), "padding": float(bbox_padding)}
    return out


def cache_path_for(layout: FolderLayout, size: int, cache_dir: Optional[Path], boxes: Optional[np.ndarray] = None,
                   bbox_padding: float = 0.25) -> Path:
    """Where the cache of ``layout`` decoded at ``size`` (cropped to ``boxes`` when given) lives."""
    key = cache_key(fingerprint(layout.root, layout.files), _settings(layout, size, boxes, bbox_padding))
    return cache_root(cache_dir, layout.root) / f"folder-{key}.npz"


def _check_skipped(files: np.ndarray, reasons: np.ndarray, root: Path, n: int, skip_bad: bool) -> None:
    """Replay, for a cache hit, what the build did with undecodable images."""
    if not len(files):
        return
    if not skip_bad:
        raise DataError(f"{root / str(files[0])}: cannot decode this image ({reasons[0]}); {SKIP_HINT}")
    log.warning("skipped %d of %d images that cannot be decoded: %s", len(files), n,
                "; ".join(f"{f} ({r})" for f, r in zip(files, reasons)))


def load_folder_set(root: Path, image_size: Optional[int] = None, *, skip_bad: bool = False, workers: int = 0,
                    cache_dir: Optional[Path] = None, use_cache: bool = True, bbox_crop: bool = False,
                    bbox_padding: float = 0.25) -> ImageSet:
    """The whole folder at ``root`` as an ImageSet: uint8 (N, 3, S, S) RGB
    (S = ``image_size`` or 64), labels int64 (N,) or None, decoded once and
    then read from the ``.npz`` cache.  ``bbox_crop``: crop CUB-200-2011 birds
    to their padded bounding boxes (``read_cub_boxes``)."""
    layout = scan_folder(root)
    size = image_size or DEFAULT_SIZE
    boxes = read_cub_boxes(layout) if bbox_crop else None
    path = cache_path_for(layout, size, cache_dir, boxes, bbox_padding) if use_cache else None
    cached = load_cached(path) if path is not None else None
    if cached is not None and {"images", "skipped_files", "skipped_reasons"} <= set(cached):
        _check_skipped(cached["skipped_files"], cached["skipped_reasons"], layout.root, len(layout.files), skip_bad)
        log.info("folder %s: %d images read from cache %s", layout.root, len(cached["images"]), path)
        labels = cached.get("labels")
        return ImageSet(cached["images"], labels, layout.num_classes if labels is not None else 0)
    log.info("folder %s (%s): decoding %d images to %dx%d%s%s", layout.root, layout.kind, len(layout.files), size, size,
             f" (bounding-box crops, padding {bbox_padding:g})" if boxes is not None else "", f", cache {path}" if path else "")
    images, ok, bad = decode_files(layout.files, size, workers=workers, skip_bad=skip_bad,
                                   desc=f"decoding {layout.root.name}", root=layout.root, boxes=boxes,
                                   bbox_padding=bbox_padding)
    labels = None if layout.labels is None else layout.labels[ok]
    if len(images) == 0:
        raise DataError(f"data.root: none of the {len(layout.files)} images in {layout.root} can be decoded")
    if labels is not None and bad:
        counts = np.bincount(labels, minlength=layout.num_classes)
        empty = np.flatnonzero(counts == 0)
        if len(empty):
            raise DataError(f"data.root: class {layout.class_names[empty[0]]!r} in {layout.root} has no decodable image left")
    if path is not None:
        arrays = {"images": images, "num_classes": np.int64(layout.num_classes),
                  "skipped_files": np.array([p.relative_to(layout.root).as_posix() for p, _ in bad], dtype=str),
                  "skipped_reasons": np.array([r for _, r in bad], dtype=str)}
        if labels is not None:
            arrays["labels"] = labels
        try:
            save_npz(path, **arrays)
            log.info("folder cache written: %s (%.1f MB)", path, path.stat().st_size / 1e6)
        except OSError as exc:
            log.warning("could not write the folder cache %s (%s); it will be decoded again next time", path, exc)
    return ImageSet(images, labels, layout.num_classes if labels is not None else 0)


@dataclass
class FolderOptions:
    """Options of the ``folder`` source (``data.folder.<key>``)."""

    workers: int = opt(0, "threads decoding images when the cache is built (0: one per CPU core)", ge=0)
    bbox_crop: bool = opt(False, "CUB-200-2011: crop each image to the square around its bounding box (bounding_boxes.txt and images.txt next to images/) instead of the centre square")
    bbox_padding: float = opt(0.25, "with data.folder.bbox_crop: the square's side is (1 + padding) x the box's longer side (the paper's birds: 0.25)", ge=0.0)


@DATASETS.register("folder", options=FolderOptions)
def load_folder(cfg: DataConfig, cache_dir: Optional[Path] = None) -> RealData:
    """``data.root``: a folder of images (see the module docstring for the layouts)."""
    if not cfg.root:
        raise DataError("data.root: folder needs data.root, a folder with one sub-folder of images per class "
                        "(or images directly in it for an unlabelled set)")
    o: FolderOptions = cfg.options()
    full = load_folder_set(Path(cfg.root), cfg.image_size, skip_bad=cfg.skip_bad, workers=o.workers, cache_dir=cache_dir,
                           bbox_crop=o.bbox_crop, bbox_padding=o.bbox_padding)
    return split_holdout(full, cfg.test_fraction, cfg.split_seed)
