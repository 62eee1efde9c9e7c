"""Timestep and class embeddings shared by the denoisers."""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps (Vaswani et al. 2017; DDPM Sec. 4), (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=1)
    return emb


class Conditioning(nn.Module):
    """emb = MLP(sinusoidal(t)) + E[y]; label ``num_classes`` is the null label.
    With ``num_classes = 0`` the model is unconditional and ``y`` is ignored."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.dim = dim
        self.time = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.num_classes = num_classes
        self.label = nn.Embedding(num_classes + 1, dim) if num_classes > 0 else None

    def forward(self, t: torch.Tensor, y: Optional[torch.Tensor]) -> torch.Tensor:
        emb = self.time(timestep_embedding(t, self.dim))
        if self.label is not None:
            if y is None:
                y = torch.full_like(t, self.num_classes)
            emb = emb + self.label(y)
        return emb
