"""Embedded procedural colour dataset ``shapes``: geometric shapes on textured backgrounds.

``data.count`` RGB images, uint8 (N, 3, S, S) with S = ``data.image_size``
(32 when None), labels int64 (N,) in 0..K-1 with K = ``data.shapes.num_classes``
(the first K of ``KINDS``; classes balanced to within one image).  Each
image has one shape of a random colour, size (radius 20-38 % of the side),
position and rotation, antialiased (coverage from a signed distance), with
a soft light-to-dark shading, on a background of one of four textures:
linear gradient, smooth value noise, sine stripes or a rotated checkerboard,
in two related colours far from the shape's colour; plus a little pixel
grain.

Numpy only and vectorised (chunks of images, one signed-distance function
per kind over all images of that kind): 8,000 images of 64x64 take about
1.7 s, 32x32 about 0.3 s, on one busy core (``benchmarks/bench_data.py``).  The same ``data.split_seed`` gives the
same images (every random draw comes from it, in a fixed order), so the
dataset runs offline and in tests, and like a real dataset it does not
change with the run seed.  Train/test: ``split_holdout``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..config import DataConfig, opt
from . import DATASETS, DataError, ImageSet, RealData, split_holdout

log = logging.getLogger(__name__)

DEFAULT_SIZE = 32
CHUNK = 512  # images computed at once (fixed: the pixel noise is drawn per chunk)
TEXTURES = ("gradient", "noise", "stripes", "checker")


def _halfplanes(u: np.ndarray, v: np.ndarray, angles_deg: np.ndarray, offset: float) -> np.ndarray:
    """max_k (n_k . p) - offset: a convex regular polygon with outward normals at ``angles_deg``."""
    a = np.deg2rad(angles_deg).astype(np.float32)
    d = u * np.cos(a[0]) + v * np.sin(a[0])
    for ak in a[1:]:
        np.maximum(d, u * np.cos(ak) + v * np.sin(ak), out=d)
    return d - offset


def _circle(u, v):
    return np.sqrt(u * u + v * v) - 1.0


def _square(u, v):
    return np.maximum(np.abs(u), np.abs(v)) - 0.78


def _triangle(u, v):  # equilateral, circumradius 1, centroid at the origin
    return _halfplanes(u, v, np.array([-90.0, 30.0, 150.0]), 0.5)


def _cross(u, v):
    au, av = np.abs(u), np.abs(v)
    return np.minimum(np.maximum(au - 1.0, av - 0.3), np.maximum(au - 0.3, av - 1.0))


def _ring(u, v):
    return np.abs(np.sqrt(u * u + v * v) - 0.72) - 0.26


_STAR_POINTS, _STAR_INNER = 5, 0.45


def _star(u, v):
    """Five-pointed star (tips at radius 1, inner corners at 0.45): distance to the
    edge of the folded wedge."""
    sector = 2 * np.pi / _STAR_POINTS
    rho = np.sqrt(u * u + v * v)
    phi = np.mod(np.arctan2(v, u), sector) - sector / 2
    px, py = rho * np.cos(phi), np.abs(rho * np.sin(phi))
    # edge from the inner corner (at angle 0 after folding) to the tip (at angle sector/2)
    ix, iy = _STAR_INNER, 0.0
    tx, ty = np.cos(sector / 2), np.sin(sector / 2)
    ex, ey = tx - ix, ty - iy
    norm = np.hypot(ex, ey)
    nx, ny = ey / norm, -ex / norm  # outward normal (the origin lies on the negative side)
    return ((px - ix) * nx + (py - iy) * ny).astype(np.float32)


def _hexagon(u, v):
    return _halfplanes(u, v, np.arange(0.0, 360.0, 60.0), 0.86)


def _half_disc(u, v):  # half of a unit disc, centroid at the origin
    w = v + 0.42
    return np.maximum(np.sqrt(u * u + w * w) - 1.0, -w)


#: Shape kinds in class order; ``data.shapes.num_classes = K`` uses the first K.
KINDS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "circle": _circle, "square": _square, "triangle": _triangle, "cross": _cross,
    "ring": _ring, "star": _star, "hexagon": _hexagon, "half_disc": _half_disc,
}


def _value_noise(grid: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling of (n, g+1, g+1) grids to (n, size, size)."""
    g = grid.shape[1] - 1
    pos = (np.arange(size, dtype=np.float32) + 0.5) / size * g
    i0 = np.minimum(pos.astype(np.int64), g - 1)
    f = pos - i0
    f = f * f * (3 - 2 * f)  # smoothstep: no visible grid lines
    a = grid[:, i0[:, None], i0[None, :]]
    b = grid[:, i0[:, None], i0[None, :] + 1]
    c = grid[:, i0[:, None] + 1, i0[None, :]]
    d = grid[:, i0[:, None] + 1, i0[None, :] + 1]
    fx, fy = f[None, None, :], f[None, :, None]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def _draw_params(rng: np.random.Generator, count: int, num_classes: int) -> dict[str, np.ndarray]:
    """Every random choice of every image, drawn in one fixed order."""
    p = {}
    p["label"] = rng.permutation(np.arange(count) % num_classes).astype(np.int64)
    p["radius"] = rng.uniform(0.2, 0.38, count)
    p["cx"] = rng.uniform(0.0, 1.0, count)
    p["cy"] = rng.uniform(0.0, 1.0, count)
    p["angle"] = rng.uniform(0.0, 2 * np.pi, count)
    p["base"] = rng.uniform(0.0, 1.0, (count, 3))           # background hue
    p["spread"] = rng.uniform(-0.25, 0.25, (count, 3))      # second background colour = base + spread
    p["shift"] = rng.uniform(0.35, 0.65, (count, 3))        # shape colour = base + shift (mod 1)
    p["texture"] = rng.integers(0, len(TEXTURES), count)
    p["tex_angle"] = rng.uniform(0.0, 2 * np.pi, count)
    p["tex_freq"] = rng.uniform(1.5, 5.0, count)
    p["tex_phase"] = rng.uniform(0.0, 2 * np.pi, count)
    p["noise_grid"] = rng.uniform(0.0, 1.0, (count, 5, 5)).astype(np.float32)
    # keep the shape (mostly) inside the image
    margin = p["radius"] * 0.85
    p["cx"] = margin + p["cx"] * (1 - 2 * margin)
    p["cy"] = margin + p["cy"] * (1 - 2 * margin)
    return p


def _texture(p: dict, idx: np.ndarray, x: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    """Background mixing weight t in [0, 1], float32 (len(idx), S, S)."""
    t = np.empty((len(idx), size, size), dtype=np.float32)
    kind = p["texture"][idx]
    for k, name in enumerate(TEXTURES):
        sel = np.flatnonzero(kind == k)
        if not len(sel):
            continue
        j = idx[sel]
        ca = np.cos(p["tex_angle"][j]).astype(np.float32)[:, None, None]
        sa = np.sin(p["tex_angle"][j]).astype(np.float32)[:, None, None]
        s = (x - 0.5) * ca + (y - 0.5) * sa  # (m, S, S) coordinate along the texture direction
        if name == "gradient":
            t[sel] = np.clip(s * 1.2 + 0.5, 0.0, 1.0)
        elif name == "noise":
            t[sel] = _value_noise(p["noise_grid"][j], size)
        elif name == "stripes":
            f = p["tex_freq"][j].astype(np.float32)[:, None, None]
            ph = p["tex_phase"][j].astype(np.float32)[:, None, None]
            t[sel] = 0.5 + 0.5 * np.sin(2 * np.pi * f * s + ph)
        else:  # checker, rotated
            f = p["tex_freq"][j].astype(np.float32)[:, None, None]
            r = (x - 0.5) * -sa + (y - 0.5) * ca
            t[sel] = ((np.floor(s * f) + np.floor(r * f)) % 2).astype(np.float32) * 0.8 + 0.1
    return t


def _render_chunk(p: dict, idx: np.ndarray, size: int, noise_rng: np.random.Generator) -> np.ndarray:
    """Float32 (len(idx), 3, S, S) in [0, 1] for the images ``idx``."""
    n = len(idx)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    x, y = coords[None, None, :], coords[None, :, None]
    # background: two related colours mixed by a texture
    c1 = p["base"][idx].astype(np.float32)
    c2 = np.clip(c1 + p["spread"][idx], 0.0, 1.0).astype(np.float32)
    t = _texture(p, idx, x, y, size)[:, None]
    img = c1[:, :, None, None] + (c2 - c1)[:, :, None, None] * t
    # shape: coverage from a signed distance in pixels (antialiased edge)
    alpha = np.empty((n, size, size), dtype=np.float32)
    shade = np.empty((n, size, size), dtype=np.float32)
    labels = p["label"][idx]
    kinds = list(KINDS.values())
    for k in np.unique(labels):
        sel = np.flatnonzero(labels == k)
        j = idx[sel]
        r = p["radius"][j].astype(np.float32)[:, None, None]
        ca = np.cos(p["angle"][j]).astype(np.float32)[:, None, None]
        sa = np.sin(p["angle"][j]).astype(np.float32)[:, None, None]
        dx = x - p["cx"][j].astype(np.float32)[:, None, None]
        dy = y - p["cy"][j].astype(np.float32)[:, None, None]
        u = (dx * ca + dy * sa) / r
        v = (-dx * sa + dy * ca) / r
        d = kinds[int(k)](u, v)
        alpha[sel] = np.clip(0.5 - d * r * size, 0.0, 1.0)
        shade[sel] = 0.8 + 0.2 * np.clip(0.5 - 0.5 * (u + v) * 0.7071, 0.0, 1.0)
    colour = np.mod(p["base"][idx] + p["shift"][idx], 1.0).astype(np.float32)
    fg = colour[:, :, None, None] * shade[:, None]
    np.subtract(fg, img, out=fg)
    fg *= alpha[:, None]
    img += fg  # img * (1 - alpha) + colour * shade * alpha
    grain = noise_rng.standard_normal((n, 1, size, size), dtype=np.float32)  # luminance grain
    grain *= np.float32(0.015)
    img += grain
    return img


def make_shapes(count: int, size: int = DEFAULT_SIZE, num_classes: int = 5, seed: int = 0) -> ImageSet:
    """``count`` shape images: uint8 (count, 3, size, size), int64 labels in
    0..num_classes-1 (kind ``list(KINDS)[label]``); deterministic in ``seed``."""
    if not 1 <= num_classes <= len(KINDS):
        raise DataError(f"data.shapes.num_classes: shapes has {len(KINDS)} kinds ({', '.join(KINDS)}), got {num_classes}")
    if count < 1:
        raise DataError(f"data.count: shapes needs at least one image, got {count}")
    rng = np.random.default_rng([seed, 0x5A9E5])
    p = _draw_params(rng, count, num_classes)
    out = np.empty((count, 3, size, size), dtype=np.uint8)
    for c, lo in enumerate(range(0, count, CHUNK)):
        idx = np.arange(lo, min(lo + CHUNK, count))
        img = _render_chunk(p, idx, size, np.random.default_rng([seed, 0x5A9E5, c]))
        np.clip(img * 255.0 + 0.5, 0, 255, out=img)
        out[idx] = img.astype(np.uint8)
    return ImageSet(out, p["label"], num_classes)


@dataclass
class ShapesOptions:
    """Options of the ``shapes`` source (``data.shapes.<key>``)."""

    num_classes: int = opt(5, "number of shape kinds, one class each (circle, square, triangle, cross, ring, star, hexagon, half-disc); data.count images", ge=1, le=8)

    def item_bytes(self, data: DataConfig) -> int:
        """Memory of one image as drawn (float32), for the check of data.count."""
        return 3 * (data.image_size or DEFAULT_SIZE) ** 2 * 4


@DATASETS.register("shapes", options=ShapesOptions)
def load_shapes(cfg: DataConfig, cache_dir: Optional[Path] = None) -> RealData:
    """``data.count`` shapes of ``data.shapes.num_classes`` kinds at ``data.image_size`` (32), split by ``split_holdout``."""
    size = cfg.image_size or DEFAULT_SIZE
    o: ShapesOptions = cfg.options()
    full = make_shapes(cfg.count, size, o.num_classes, cfg.split_seed)
    log.info("shapes: %d images %dx%d, %d classes (%s)", len(full), size, size, o.num_classes,
             ", ".join(list(KINDS)[: o.num_classes]))
    return split_holdout(full, cfg.test_fraction, cfg.split_seed)
