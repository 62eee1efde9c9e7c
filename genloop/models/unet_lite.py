"""A lighter conv U-Net for small images on a CPU (14x14 and 28x28 digits).

Differences from ``unet`` (same building blocks): one skip connection per resolution
instead of one per block, upsampling by nearest neighbour followed by a 1x1 projection
to the finer level's width (no 3x3 conv at the fine resolution on the coarse width),
a single middle block, and the time/class embedding as a per-channel scale and shift
(``h * (1 + s) + b`` after the second norm).  Channels-last memory format is used on
the CPU, where oneDNN's convolutions run faster with it.  ``generator.unet_lite.width`` is the
base channel count, ``generator.unet_lite.channel_mult`` the multiplier per resolution and
``generator.unet_lite.depth`` the residual blocks per resolution (down and up path each).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn
import torch.nn.functional as F

from . import NETWORKS
from .unet import UNetOptions
from .embeddings import Conditioning


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(8 if c % 8 == 0 else 1, c)


class _Block(nn.Module):
    """Residual block: GN-SiLU-conv3, GN, scale/shift by the embedding, SiLU-conv3, + skip."""

    def __init__(self, cin: int, cout: int, emb_dim: int) -> None:
        super().__init__()
        self.n1 = _norm(cin)
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.n2 = _norm(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.c2.weight)
        nn.init.zeros_(self.c2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, 1)
        h = self.n2(h) * (1.0 + scale) + shift
        h = self.c2(F.silu(h))
        return self.skip(x) + h


@NETWORKS.register("unet_lite", options=UNetOptions)
class UNetLite(nn.Module):
    def __init__(self, shape: tuple[int, int, int], num_classes: int, cfg) -> None:
        super().__init__()
        c_in = shape[0]
        chans = [cfg.width * m for m in cfg.channel_mult]
        emb_dim = max(4 * cfg.width, 64)
        self.cond = Conditioning(emb_dim, num_classes)
        self.inp = nn.Conv2d(c_in, chans[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c = chans[0]
        for i, ch in enumerate(chans):
            blocks = nn.ModuleList()
            for _ in range(cfg.depth):
                blocks.append(_Block(c, ch, emb_dim))
                c = ch
            self.down.append(blocks)
            if i < len(chans) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = _Block(c, c, emb_dim)
        self.up = nn.ModuleList()
        self.proj = nn.ModuleList()
        for i in reversed(range(len(chans))):
            ch = chans[i]
            if i < len(chans) - 1:
                self.proj.append(nn.Conv2d(c, ch, 1))  # after nearest upsampling, coarse width -> fine width
                c = ch
            blocks = nn.ModuleList()
            for j in range(cfg.depth):
                blocks.append(_Block(c + (ch if j == 0 else 0), ch, emb_dim))
                c = ch
            self.up.append(blocks)
        self.out_norm = _norm(c)
        self.out = nn.Conv2d(c, c_in, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self._channels_last = True

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: Optional[torch.Tensor]) -> torch.Tensor:
        emb = F.silu(self.cond(t, y))
        fmt = torch.channels_last if (self._channels_last and x.device.type == "cpu") else torch.contiguous_format
        h = self.inp(x.contiguous(memory_format=fmt))
        skips, sizes = [], []
        for i, blocks in enumerate(self.down):
            for blk in blocks:
                h = blk(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                sizes.append(h.shape[-2:])
                h = self.downsample[i](h)
        h = self.mid(h, emb)
        for i, blocks in enumerate(self.up):
            if i > 0:
                h = self.proj[i - 1](F.interpolate(h, size=sizes.pop(), mode="nearest"))
            h = torch.cat([h, skips.pop()], 1)
            for blk in blocks:
                h = blk(h, emb)
        return self.out(F.silu(self.out_norm(h))).contiguous()
