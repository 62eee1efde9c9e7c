"""Sample grids as PNG (Pillow only)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from .runfolder import write_bytes


def make_grid(images: np.ndarray, labels: Optional[np.ndarray], num_classes: int, per_row: int = 10,
              pad: int = 1, min_cell: int = 24) -> np.ndarray:
    """Tile uint8 (N, C, H, W) images into an (H', W', C) uint8 image: one row per class
    when labelled (the first ``per_row`` samples of each class), else rows of ``per_row``.
    Small images are upscaled (nearest) to at least ``min_cell`` pixels."""
    if images.dtype != np.uint8:
        raise ValueError("make_grid needs uint8 images")
    n, c, h, w = images.shape
    if labels is not None and num_classes > 0:
        rows = [np.flatnonzero(labels == k)[:per_row] for k in range(num_classes)]
    else:
        idx = np.arange(min(n, per_row * per_row))
        rows = [idx[i:i + per_row] for i in range(0, len(idx), per_row)] or [idx]
    scale = max(1, -(-min_cell // h))
    ch, cw = h * scale, w * scale
    grid = np.full((len(rows) * (ch + pad) + pad, per_row * (cw + pad) + pad, c), 255, np.uint8)
    for r, row in enumerate(rows):
        for j, i in enumerate(row):
            tile = images[i].transpose(1, 2, 0).repeat(scale, 0).repeat(scale, 1)
            y, x = pad + r * (ch + pad), pad + j * (cw + pad)
            grid[y:y + ch, x:x + cw] = tile
    return grid


def save_grid(path: Path, images: np.ndarray, labels: Optional[np.ndarray], num_classes: int, per_row: int = 10) -> None:
    import io

    grid = make_grid(images, labels, num_classes, per_row)
    img = Image.fromarray(grid[..., 0] if grid.shape[2] == 1 else grid)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    write_bytes(path, buf.getvalue())
