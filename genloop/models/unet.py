"""A compact conv U-Net denoiser (DDPM-style residual blocks, GroupNorm, SiLU),
for 28x28 and 64x64 images.  ``generator.unet.width`` is the base channel count,
``generator.unet.channel_mult`` the multiplier per resolution and
``generator.unet.depth`` the residual blocks per resolution."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
import torch.nn.functional as F

from ..config import opt
from . import NETWORKS
from .embeddings import Conditioning


def _norm(c: int) -> nn.GroupNorm:
    groups = 8 if c % 8 == 0 else 1
    return nn.GroupNorm(groups, c)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int) -> None:
        super().__init__()
        self.n1 = _norm(cin)
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.n2 = _norm(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.c2.weight)
        nn.init.zeros_(self.c2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.c2(F.silu(self.n2(h)))
        return self.skip(x) + h


@dataclass
class UNetOptions:
    """Options of the ``unet`` and ``unet_lite`` networks (``generator.unet.<key>``, ``generator.unet_lite.<key>``)."""

    width: int = opt(256, "base channels (channels at the first resolution)", ge=1)
    depth: int = opt(4, "residual blocks per resolution (down and up path each)", ge=1)
    channel_mult: list[int] = opt([1, 2, 2], "channel multipliers per resolution")


@NETWORKS.register("unet", options=UNetOptions)
class UNetDenoiser(nn.Module):
    def __init__(self, shape: tuple[int, int, int], num_classes: int, cfg) -> None:
        super().__init__()
        c_in = shape[0]
        base = cfg.width
        chans = [base * m for m in cfg.channel_mult]
        emb_dim = base * 4
        self.cond = Conditioning(emb_dim, num_classes)
        self.inp = nn.Conv2d(c_in, chans[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips = []
        c = chans[0]
        for i, ch in enumerate(chans):
            blocks = nn.ModuleList()
            for _ in range(cfg.depth):
                blocks.append(ResBlock(c, ch, emb_dim))
                c = ch
                skips.append(c)
            self.down.append(blocks)
            last = i == len(chans) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = nn.ModuleList([ResBlock(c, c, emb_dim), ResBlock(c, c, emb_dim)])
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, ch in reversed(list(enumerate(chans))):
            blocks = nn.ModuleList()
            for _ in range(cfg.depth):
                blocks.append(ResBlock(c + skips.pop(), ch, emb_dim))
                c = ch
            self.up.append(blocks)
            self.upsample.append(nn.Identity() if i == 0 else nn.Conv2d(c, c, 3, padding=1))
        self.out_norm = _norm(c)
        self.out = nn.Conv2d(c, c_in, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: Optional[torch.Tensor]) -> torch.Tensor:
        emb = F.silu(self.cond(t, y))
        h = self.inp(x)
        hs = []
        sizes = []
        for blocks, down in zip(self.down, self.downsample):
            for blk in blocks:
                h = blk(h, emb)
                hs.append(h)
            if not isinstance(down, nn.Identity):
                sizes.append(h.shape[-2:])
                h = down(h)
        for blk in self.mid:
            h = blk(h, emb)
        for blocks, up in zip(self.up, self.upsample):
            for blk in blocks:
                h = blk(torch.cat([h, hs.pop()], 1), emb)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, size=sizes.pop(), mode="nearest"))
        return self.out(F.silu(self.out_norm(h)))
