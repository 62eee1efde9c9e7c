"""Which image files a folder of the ``folder`` source holds, and their labels: the layouts
of ``data.root`` (Oxford-102 flowers, CUB-200-2011, one sub-folder per class, unlabelled;
see ``genloop.data.folder``), and CUB-200-2011's bounding boxes."""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from . import DataError

log = logging.getLogger("genloop.data.folder")  # what the folder source says while scanning

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff",
                              ".webp", ".ppm", ".pgm", ".pbm", ".pnm"})


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
        raise DataError(f"data.folder.bbox_crop: no {' and '.join(names)} in {' or '.join(str(c) for c in candidates)} "
                        "(CUB-200-2011 ships them next to images/); set data.folder.bbox_crop=false to centre-crop instead")

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
                            "(set data.folder.bbox_crop=false, or remove the file)")
        if i not in boxes:
            raise DataError(f"{f}: image id {i} has no line in {base / 'bounding_boxes.txt'}")
        out[k] = boxes[i]
    return out
