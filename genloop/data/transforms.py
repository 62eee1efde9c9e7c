"""Image conversion and resizing with Pillow (no torchvision).

Arrays follow the data layer's convention: uint8, channel-first (N, C, H, W)
for batches; a single decoded image is uint8 (H, W, C) (Pillow's order) until
it is stacked.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
from PIL import Image

#: Pillow modes whose pixels are one grey value (kept grey by ``to_grey_or_rgb``).
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def resize_square(images: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 (N, C, H, W) images to (N, C, size, size) with bicubic filtering.

    The aspect ratio is not kept (use ``resize_batch`` to centre-crop
    non-square images instead).  Returns ``images`` itself when it already has
    that size."""
    n, c, h, w = images.shape
    if (h, w) == (size, size):
        return images
    out = np.empty((n, c, size, size), dtype=np.uint8)
    if c == 3:
        for i in range(n):
            img = Image.fromarray(np.ascontiguousarray(images[i].transpose(1, 2, 0)), mode="RGB")
            out[i] = np.asarray(img.resize((size, size), Image.BICUBIC)).transpose(2, 0, 1)
        return out
    for i in range(n):
        for ch in range(c):
            img = Image.fromarray(images[i, ch], mode="L")
            out[i, ch] = np.asarray(img.resize((size, size), Image.BICUBIC))
    return out


def _wide_to_8bit(img: Image.Image) -> Image.Image:
    """16/32-bit integer or float grey images -> mode ``L`` (Pillow's own
    ``convert`` clips them at 255 instead of scaling)."""
    a = np.asarray(img)
    if img.mode == "F":
        a = np.clip(a, 0, 255)
    elif a.size and a.max() > 255:  # 16-bit data (I;16 or I holding 16-bit values)
        a = a.astype(np.float64) / 257.0
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), mode="L")


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (img.mode in ("P", "L", "RGB") and "transparency" in img.info)


def to_rgb(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Any Pillow image -> mode ``RGB``.

    Grey (1, L, I;16, I, F) is replicated to three channels (16-bit data is
    scaled, not clipped); palette images are expanded; CMYK and YCbCr are
    converted; images with transparency (RGBA, LA, P/L/RGB with a
    transparency key) are composited onto ``background`` (white by default),
    so transparent pixels do not turn into whatever colour they happen to
    store."""
    if img.mode == "RGB" and "transparency" not in img.info:
        return img
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        img = _wide_to_8bit(img)
    if _has_alpha(img):
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, background + (255,))
        return Image.alpha_composite(base, rgba).convert("RGB")
    return img.convert("RGB")


def to_grey_or_rgb(img: Image.Image, grey: bool) -> Image.Image:
    """Mode ``L`` when ``grey`` (alpha composited onto white), else ``to_rgb``."""
    if not grey:
        return to_rgb(img)
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _wide_to_8bit(img)
    if _has_alpha(img) or img.mode not in ("L",):
        return to_rgb(img).convert("L")
    return img


def centre_box(w: int, h: int) -> tuple[float, float, float, float]:
    """The largest centred square (left, top, right, bottom) of a w x h image."""
    s = min(w, h)
    left, top = (w - s) / 2.0, (h - s) / 2.0
    return (left, top, left + s, top + s)


def resize_centre_crop(img: Image.Image, size: int) -> Image.Image:
    """Resize so that the short side is ``size``, then crop the centre square.

    Done as a single Pillow resize of the centred square box (bicubic, with
    Pillow's antialiasing when shrinking), which is equivalent and faster."""
    w, h = img.size
    if (w, h) == (size, size):
        return img
    return img.resize((size, size), Image.BICUBIC, box=centre_box(w, h))


def padded_box(bbox: tuple[float, float, float, float], w: int, h: int,
               padding: float) -> tuple[float, float, float, float]:
    """The square crop (left, top, right, bottom) around an object's bounding box.

    ``bbox`` is (x, y, width, height) in pixels of a ``w`` x ``h`` image (the
    CUB-200-2011 ``bounding_boxes.txt`` convention).  The square is centred on
    the box, its side ``(1 + padding) * max(width, height)`` (the paper's birds:
    25 % padding), capped at the image's short side; when it would stick out of
    the image it is shifted inside (not shrunk around the centre and then
    stretched, as the Keras code the paper derives from does), so the bird stays
    whole and nothing is distorted."""
    x, y, bw, bh = (float(v) for v in bbox)
    side = min((1.0 + padding) * max(bw, bh, 1.0), float(w), float(h))
    cx, cy = x + bw / 2.0, y + bh / 2.0
    left = min(max(cx - side / 2.0, 0.0), w - side)
    top = min(max(cy - side / 2.0, 0.0), h - side)
    return (left, top, left + side, top + side)


def decode_square(path, size: int, grey: bool = False, draft: bool = True,
                  bbox: Optional[tuple[float, float, float, float]] = None, bbox_padding: float = 0.25) -> np.ndarray:
    """Decode one image file into uint8 (size, size, 3) RGB, or (size, size)
    grey when ``grey``: short side resized to ``size``, centre-cropped; or,
    when ``bbox`` (x, y, width, height in the file's pixels) is given, the
    square ``padded_box(bbox, ..., bbox_padding)`` resized to ``size``.

    For JPEGs ``draft`` lets libjpeg decode directly at a reduced scale
    (1/2, 1/4, 1/8) that still leaves at least twice ``size`` pixels on the
    short side of the crop, which is several times faster on large photos
    and, thanks to the 2x margin, visually the same after the final bicubic
    resize.  Raises whatever Pillow raises on a corrupt or truncated file."""
    with Image.open(path) as img:
        w0, h0 = img.size
        box = padded_box(bbox, w0, h0, bbox_padding) if bbox is not None else centre_box(w0, h0)
        if draft and img.format == "JPEG":
            scale = max((box[2] - box[0]) / (2.0 * size), 1.0)  # crop side / wanted side: affordable shrink
            img.draft("L" if grey else "RGB", (max(1, math.ceil(w0 / scale - 1e-6)), max(1, math.ceil(h0 / scale - 1e-6))))
        img.load()
        img = to_grey_or_rgb(img, grey)
        sx, sy = img.size[0] / w0, img.size[1] / h0  # the draft's reduction, if any
        box = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
        if img.size == (size, size) and box == (0.0, 0.0, float(size), float(size)):
            return np.asarray(img, dtype=np.uint8)
        return np.asarray(img.resize((size, size), Image.BICUBIC, box=box), dtype=np.uint8)


def resize_batch(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, C, H, W) -> (N, C, size, size).

    Square images are resized (bicubic); non-square ones are resized on the
    short side and centre-cropped, so nothing is stretched.  Returns
    ``images`` itself when it already has that size."""
    n, c, h, w = images.shape
    if (h, w) == (size, size):
        return images
    if h == w:
        return resize_square(images, size)
    out = np.empty((n, c, size, size), dtype=np.uint8)
    box = centre_box(w, h)
    for i in range(n):
        for ch in range(c):
            img = Image.fromarray(np.ascontiguousarray(images[i, ch]), mode="L")
            out[i, ch] = np.asarray(img.resize((size, size), Image.BICUBIC, box=box))
    return out


def most_common_size(sizes: list[tuple[int, int]]) -> Optional[tuple[int, int]]:
    """The most frequent (W, H) in ``sizes`` (the first one seen on a tie); None if empty."""
    if not sizes:
        return None
    counts: dict[tuple[int, int], int] = {}
    for s in sizes:
        counts[s] = counts.get(s, 0) + 1
    return max(counts, key=lambda s: counts[s])
