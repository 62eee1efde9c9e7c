"""Residual MLP denoiser on the flattened image, for small images (8x8 digits).

Measured on 2 CPU cores: far cheaper than a conv net of similar quality at 8x8.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..config import opt
from . import NETWORKS
from .embeddings import Conditioning


class _Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.emb = nn.Linear(width, width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.act = nn.SiLU()

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        z = self.act(self.fc1(self.norm(h)) + self.emb(emb))
        return h + self.fc2(z)


@dataclass
class MLPOptions:
    """Options of the ``mlp`` network (``generator.mlp.<key>``)."""

    width: int = opt(256, "mlp: hidden width", ge=1)
    depth: int = opt(4, "mlp: residual blocks", ge=1)


@NETWORKS.register("mlp", options=MLPOptions)
class MLPDenoiser(nn.Module):
    def __init__(self, shape: tuple[int, int, int], num_classes: int, cfg) -> None:
        super().__init__()
        self.shape = tuple(shape)
        d = shape[0] * shape[1] * shape[2]
        w = cfg.width
        self.cond = Conditioning(w, num_classes)
        self.inp = nn.Linear(d, w)
        self.blocks = nn.ModuleList(_Block(w) for _ in range(cfg.depth))
        self.out_norm = nn.LayerNorm(w)
        self.out = nn.Linear(w, d)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: Optional[torch.Tensor]) -> torch.Tensor:
        emb = self.act(self.cond(t, y))
        h = self.inp(x.flatten(1))
        for blk in self.blocks:
            h = blk(h, emb)
        return self.out(self.act(self.out_norm(h))).view(x.shape)
