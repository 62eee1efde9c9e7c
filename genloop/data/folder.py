"""Data source ``folder``: a folder of image files (JPEG, PNG, BMP, GIF, TIFF, WebP, PNM).

Layouts of ``data.root`` that are recognised, in this order:

* **Oxford-102 flowers** (official): ``jpg/image_00001.jpg ...`` next to
  ``imagelabels.mat`` (read with ``scipy.io.loadmat``; labels 1..102 become
  0..101).  ``data.root`` may be that folder or its ``jpg/`` sub-folder.
* **CUB-200-2011**: ``images/001.Black_footed_Albatross/...``; ``data.root``
  may be the ``images/`` folder or the folder that contains it.  With
  ``data.bbox_crop=true`` each bird is cropped to the square around its
  bounding box, padded by ``data.bbox_padding`` (the paper: 25 %), read from
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
and mtimes, the labels and the settings), built with ``data.workers``
decoding threads and a progress bar.  About 90 % of the time per image is
in Pillow's decoder and resampler, which release the GIL, so threads can use
the cores without the pickling of a process pool (which measured no faster);
``benchmarks/bench_data.py`` has the figures (about 870 images/s on one busy
core for 500x375 JPEGs to 64x64; loading the cache: over 15,000 images/s).

An image that cannot be decoded (corrupt, truncated, not an image) is a
``DataError`` naming it; with ``data.skip_bad=true`` such images are skipped
instead and their count and names are logged as a warning.  The train/test
split is ``split_holdout(full, data.test_fraction, data.split_seed)``.
"""
from __future__ import annotations

import logging
import os
import re
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..config import DataConfig, opt
from ..utils import digest
from . import DATASETS, DataError, ImageSet, RealData, split_holdout
from ..runfolder import save_npz
from .cache import cache_key, cache_root, fingerprint, load_cached
from .transforms import GREY_MODES, decode_square, most_common_size, to_grey_or_rgb

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff",
                              ".webp", ".ppm", ".pgm", ".pbm", ".pnm"})
DEFAULT_SIZE = 64
SKIP_HINT = "set data.skip_bad=true to skip images that cannot be decoded"


@dataclass
class FolderLayout:
    """What ``scan_folder`` found: the image files (sorted), their labels
    (int64, or None when unlabelled) and the class names."""

    root: Path
    kind: str  # "classes", "oxford102" or "unlabelled"
    files: list[Path]
    labels: Optional[np.ndarray] = None
    class_names: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _visible(entries) -> list:
    return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)


def image_files(folder: Path, recursive: bool) -> list[Path]:
    """Image files in ``folder`` (recursively when asked), sorted, hidden ones skipped."""
    out: list[Path] = []
    if not recursive:
        return [Path(e.path) for e in _visible(os.scandir(folder)) if e.is_file() and is_image_file(Path(e.name))]
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(Path(dirpath) / f for f in sorted(filenames) if is_image_file(Path(f)))
    return sorted(out)


def _check_root(root: Path) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"data.root: folder {root} does not exist")
    if not root.is_dir():
        raise DataError(f"data.root: {root} is a file, not a folder of images (for a .npz file use data.name=npz)")
    return root


def _scan_oxford(root: Path) -> FolderLayout:
    import scipy.io

    mat = root / "imagelabels.mat"
    try:
        labels = scipy.io.loadmat(str(mat))["labels"]
    except KeyError:
        raise DataError(f"{mat}: no 'labels' array (expected the official Oxford-102 imagelabels.mat)") from None
    except Exception as exc:
        raise DataError(f"{mat}: cannot read it ({exc.__class__.__name__}: {exc})") from None
    labels = np.asarray(labels).ravel()
    if labels.size == 0 or not np.all(np.isfinite(labels.astype(np.float64))) or np.any(labels != np.round(labels)):
        raise DataError(f"{mat}: 'labels' must be whole numbers 1..K, one per image")
    labels = labels.astype(np.int64)
    k = int(labels.max())
    if labels.min() < 1:
        i = int(np.argmin(labels))
        raise DataError(f"{mat}: label {labels[i]} of image {i + 1} is outside the class range 1..{k}")
    files = image_files(root / "jpg", recursive=False)
    if not files:
        raise DataError(f"data.root: no image files in {root / 'jpg'} (Oxford-102 layout: jpg/image_00001.jpg ...)")
    pattern = re.compile(r"image_(\d+)$")
    index = []
    for f in files:
        m = pattern.match(f.stem)
        if not m:
            raise DataError(f"{f}: not named image_NNNNN.jpg, so imagelabels.mat cannot label it")
        i = int(m.group(1))
        if not 1 <= i <= len(labels):
            raise DataError(f"{f}: image number {i} has no label ({mat} labels images 1..{len(labels)})")
        index.append(i - 1)
    if len(files) != len(labels):
        log.warning("%s: %d images for %d labels; the %d missing ones are left out",
                    root / "jpg", len(files), len(labels), len(labels) - len(files))
    return FolderLayout(root, "oxford102", files, labels[np.asarray(index)] - 1, [str(c) for c in range(1, k + 1)])


def scan_folder(root: Path) -> FolderLayout:
    """Find the layout of ``root`` (see the module docstring) and its files.

    Raises ``DataError`` for a missing folder, a folder without images, an
    empty class folder, or images mixed with class folders."""
    root = _check_root(root)
    if root.name == "jpg" and (root.parent / "imagelabels.mat").is_file():
        root = root.parent
    if (root / "imagelabels.mat").is_file() and (root / "jpg").is_dir():
        return _scan_oxford(root)
    loose = image_files(root, recursive=False)
    subdirs = [Path(e.path) for e in _visible(os.scandir(root)) if e.is_dir()]
    if not loose and (root / "images").is_dir():
        others = [d for d in subdirs if d.name != "images" and image_files(d, recursive=True)]
        if not others or (root / "images.txt").is_file():  # CUB-200-2011: root/images/<class>/...
            # (images.txt marks CUB even when e.g. its segmentations/ PNGs sit beside images/)
            root = root / "images"
            subdirs = [Path(e.path) for e in _visible(os.scandir(root)) if e.is_dir()]
            loose = image_files(root, recursive=False)
    if loose:
        with_images = [d for d in subdirs if image_files(d, recursive=True)]
        if with_images:
            raise DataError(f"data.root: {root} has both loose image files (e.g. {loose[0].name}) and class "
                            f"folders (e.g. {with_images[0].name}/); put every image in a class folder, "
                            "or only loose images for an unlabelled set")
        return FolderLayout(root, "unlabelled", loose)
    if not subdirs:
        raise DataError(f"data.root: no image files in {root} (expected one sub-folder per class of "
                        ".jpg/.png/... files, or the images directly in it)")
    files: list[Path] = []
    labels: list[np.ndarray] = []
    for c, d in enumerate(subdirs):
        found = image_files(d, recursive=True)
        if not found:
            raise DataError(f"data.root: class folder {d} has no image files "
                            f"(add images or remove the folder; extensions read: {', '.join(sorted(IMAGE_EXTENSIONS))})")
        files += found
        labels.append(np.full(len(found), c, dtype=np.int64))
    return FolderLayout(root, "classes", files, np.concatenate(labels), [d.name for d in subdirs])


def read_cub_boxes(layout: FolderLayout) -> np.ndarray:
    """Bounding boxes (x, y, width, height; float64 (N, 4)) of ``layout.files`` from
    CUB-200-2011's ``images.txt`` (``<id> <path under images/>``) and
    ``bounding_boxes.txt`` (``<id> <x> <y> <width> <height>``), found in the folder
    that holds ``images/`` or in ``layout.root`` itself."""
    names = ("images.txt", "bounding_boxes.txt")
    candidates = [layout.root.parent, layout.root] if layout.root.name == "images" else [layout.root]
    base = next((c for c in candidates if all((c / n).is_file() for n in names)), None)
    if base is None:
        raise DataError(f"data.bbox_crop: no {' and '.join(names)} in {' or '.join(str(c) for c in candidates)} "
                        "(CUB-200-2011 ships them next to images/); set data.bbox_crop=false to centre-crop instead")

    def rows(name: str, width: int) -> list[list[str]]:
        out = []
        for ln, line in enumerate((base / name).read_text(encoding="utf-8").splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != width:
                raise DataError(f"{base / name}:{ln}: expected {width} fields, got {len(parts)}: {line.strip()!r}")
            out.append(parts)
        return out

    id_of = {path: i for i, path in rows("images.txt", 2)}
    boxes: dict[str, tuple[float, ...]] = {}
    for ln, (i, *vals) in enumerate(rows("bounding_boxes.txt", 5), 1):
        try:
            box = tuple(float(v) for v in vals)
        except ValueError:
            raise DataError(f"{base / 'bounding_boxes.txt'}:{ln}: {' '.join(vals)!r} is not four numbers") from None
        if not all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
            raise DataError(f"{base / 'bounding_boxes.txt'}:{ln}: box {box} needs a positive width and height")
        boxes[i] = box
    out = np.empty((len(layout.files), 4), dtype=np.float64)
    for k, f in enumerate(layout.files):
        rel = f.relative_to(layout.root).as_posix()  # images.txt paths are under images/
        i = id_of.get(rel)
        if i is None:
            raise DataError(f"{f}: not listed in {base / 'images.txt'}, so it has no bounding box "
                            "(set data.bbox_crop=false, or remove the file)")
        if i not in boxes:
            raise DataError(f"{f}: image id {i} has no line in {base / 'bounding_boxes.txt'}")
        out[k] = boxes[i]
    return out


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def _decode_native(path: Path, grey: bool) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        return np.asarray(to_grey_or_rgb(img, grey), dtype=np.uint8)


def decode_files(files: Sequence[Path], size: Optional[int], *, grey: bool = False, workers: int = 0,
                 skip_bad: bool = False, native_shape: Optional[tuple[int, int]] = None,
                 desc: str = "decoding", root: Optional[Path] = None, boxes: Optional[np.ndarray] = None,
                 bbox_padding: float = 0.25, hint: str = SKIP_HINT) -> tuple[np.ndarray, np.ndarray, list[tuple[Path, str]]]:
    """Decode ``files`` with a pool of ``workers`` threads (0: one per core).

    ``size``: short side resized to it and centre-cropped (or, with ``boxes``
    (N, 4) of (x, y, width, height), the square around each box padded by
    ``bbox_padding``); None keeps the native size, which must then be
    ``native_shape`` (H, W) for every file.
    Returns ``images`` uint8 (n_ok, C, S, S) (C = 1 when ``grey``, else 3),
    ``ok`` bool (N,) marking the files kept, and ``bad`` [(path, reason)].
    Without ``skip_bad`` the first undecodable file raises ``DataError`` (ending with ``hint``)."""
    from tqdm.auto import tqdm

    n = len(files)
    h, w = (size, size) if size is not None else native_shape  # type: ignore[misc]
    out = np.empty((n, 1 if grey else 3, h, w), dtype=np.uint8)  # filled image by image, channel-first
    ok = np.ones(n, dtype=bool)
    bad: list[tuple[Path, str]] = []
    workers = workers or default_workers()

    def show(p: Path) -> str:
        try:
            return str(p.relative_to(root)) if root is not None else str(p)
        except ValueError:
            return str(p)

    def run(lo: int, hi: int) -> list[tuple[int, str]]:
        fails = []
        for i in range(lo, hi):
            try:
                if size is None:
                    a = _decode_native(files[i], grey)
                else:
                    a = decode_square(files[i], size, grey, bbox=None if boxes is None else tuple(boxes[i]),
                                      bbox_padding=bbox_padding)
                if a.shape[:2] != (h, w):
                    raise ValueError(f"is {a.shape[1]}x{a.shape[0]}, the others {w}x{h}")
                out[i] = a[None] if grey else a.transpose(2, 0, 1)
            except Exception as exc:  # every decoding failure is reported with its file
                fails.append((i, _reason(exc)))
                if not skip_bad:
                    break
        return fails

    chunk = max(1, min(64, n // (8 * workers) or 1))
    bounds = [(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]
    bar = tqdm(total=n, desc=desc, unit="img", disable=None, leave=False)
    try:
        if workers == 1 or n <= chunk:
            results = []
            for lo, hi in bounds:
                results.append(run(lo, hi))
                bar.update(hi - lo)
                if results[-1] and not skip_bad:
                    break
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="genloop-decode") as pool:
                pending = {pool.submit(run, lo, hi): hi - lo for lo, hi in bounds}
                results = []
                try:
                    while pending:
                        done, _ = wait(pending, return_when=FIRST_COMPLETED, timeout=0.2)
                        for fut in done:
                            bar.update(pending.pop(fut))
                            results.append(fut.result())
                            if results[-1] and not skip_bad:
                                raise StopIteration  # the first failure ends the build
                except StopIteration:
                    pass
                finally:  # on a failure or Ctrl-C, do not decode the rest
                    for f in pending:
                        f.cancel()
    finally:
        bar.close()
    for fails in results:
        for i, reason in fails:
            ok[i] = False
            bad.append((files[i], reason))
    bad.sort(key=lambda b: str(b[0]))
    if bad and not skip_bad:
        path, reason = bad[0]
        raise DataError(f"{path}: cannot decode this image ({reason}); {hint}")
    if bad:
        log.warning("skipped %d of %d images that cannot be decoded: %s", len(bad), n,
                    "; ".join(f"{show(p)} ({r})" for p, r in bad))
    return (out[ok] if bad else out), ok, bad


def _probe(files: list[Path], skip_bad: bool, hint: str = SKIP_HINT) -> tuple[np.ndarray, list[tuple[int, int]], list[str]]:
    """Open every file's header: (indices of the readable files, their (W, H), their Pillow modes)."""
    from PIL import Image

    keep, sizes, modes, bad = [], [], [], []
    for i, f in enumerate(files):
        try:
            with Image.open(f) as img:
                sizes.append(img.size)
                modes.append(img.mode)
                keep.append(i)
        except Exception as exc:  # not an image at all, or an unreadable header
            if not skip_bad:
                raise DataError(f"{f}: cannot decode this image ({_reason(exc)}); {hint}") from None
            bad.append(f"{f} ({_reason(exc)})")
    if bad:
        log.warning("skipped %d of %d files that are not readable images: %s", len(bad), len(files), "; ".join(bad))
    return np.asarray(keep, dtype=np.int64), sizes, modes


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
    keep, sizes, modes = _probe(layout.files, skip_bad, hint)
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
    """Options of the ``folder`` source (``data.<key>``)."""

    workers: int = opt(0, "folder: threads decoding images when the cache is built (0: one per CPU core)", ge=0)
    bbox_crop: bool = opt(False, "folder, CUB-200-2011: crop each image to the square around its bounding box (bounding_boxes.txt and images.txt next to images/) instead of the centre square")
    bbox_padding: float = opt(0.25, "folder with data.bbox_crop: the square's side is (1 + padding) x the box's longer side (the paper's birds: 0.25)", ge=0.0)


@DATASETS.register("folder", options=FolderOptions)
def load_folder(cfg: DataConfig, cache_dir: Optional[Path] = None) -> RealData:
    """``data.root``: a folder of images (see the module docstring for the layouts)."""
    if not cfg.root:
        raise DataError("data.root: folder needs data.root, a folder with one sub-folder of images per class "
                        "(or images directly in it for an unlabelled set)")
    full = load_folder_set(Path(cfg.root), cfg.image_size, skip_bad=cfg.skip_bad, workers=cfg.workers, cache_dir=cache_dir,
                           bbox_crop=cfg.bbox_crop, bbox_padding=cfg.bbox_padding)
    return split_holdout(full, cfg.test_fraction, cfg.split_seed)
