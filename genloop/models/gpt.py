"""A small decoder-only transformer (GPT-2 shape: pre-LayerNorm blocks, GELU MLP of
4x width, learned positions, output projection tied to the token embedding), with
causal self-attention through ``torch.nn.functional.scaled_dot_product_attention``
and a key/value cache for generation.

``forward(tokens, cache=None)`` returns the logits of every position; with a
``cache`` (a ``KVCache``) the tokens continue the cached ones: only their keys and
values are computed and appended, and they attend to everything before them.  The
result equals recomputing the whole sequence (``tests/test_gpt.py``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class KVCache:
    """Per layer, keys and values (B, heads, T, head_dim) of the tokens seen so far."""

    keys: list = field(default_factory=list)
    values: list = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.keys[0].shape[2] if self.keys else 0

    def select(self, rows: torch.Tensor) -> "KVCache":
        """The cache of rows ``rows`` (beam search)."""
        return KVCache([k[rows] for k in self.keys], [v[rows] for v in self.values])


class Attention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"generator.gpt.width: {width} is not a multiple of generator.gpt.heads ({heads})")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, cache: Optional[KVCache], layer: int) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        past = 0
        if cache is not None:
            if len(cache.keys) > layer:
                past = cache.keys[layer].shape[2]
                k = torch.cat([cache.keys[layer], k], 2)
                v = torch.cat([cache.values[layer], v], 2)
                cache.keys[layer], cache.values[layer] = k, v
            else:
                cache.keys.append(k)
                cache.values.append(v)
        p = self.dropout if self.training else 0.0
        if past == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        elif t == 1:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # the new token sees everything
        else:  # several new tokens after cached ones: causal among themselves
            mask = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return F.dropout(self.proj(y.transpose(1, 2).reshape(b, t, d)), p, self.training)


class Block(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads, dropout)
        self.ln2 = nn.LayerNorm(width)
        self.fc = nn.Linear(width, 4 * width)
        self.out = nn.Linear(4 * width, width)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, cache: Optional[KVCache], layer: int) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, layer)
        h = self.out(F.gelu(self.fc(self.ln2(x))))
        return x + F.dropout(h, self.dropout, self.training)


class GPT(nn.Module):
    def __init__(self, vocab: int, length: int, width: int, depth: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.length = length
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(length, width)
        self.blocks = nn.ModuleList(Block(width, heads, dropout) for _ in range(depth))
        self.ln = nn.LayerNorm(width)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: scaled init of the residual projections
            if name.endswith(("attn.proj.weight", "out.weight")):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * depth))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, tokens: torch.Tensor, cache: Optional[KVCache] = None) -> torch.Tensor:
        start = cache.length if cache is not None else 0
        t = tokens.shape[1]
        if start + t > self.length:
            raise ValueError(f"gpt: sequence of {start + t} tokens is longer than its {self.length} positions")
        pos = torch.arange(start, start + t, device=tokens.device)
        x = self.tok(tokens) + self.pos(pos)
        for i, blk in enumerate(self.blocks):
            x = blk(x, cache, i)
        return self.ln(x) @ self.tok.weight.t()

    def flops_per_token(self, context: int) -> float:
        """Training FLOPs per token (forward + backward = 3 x forward): 6 x the matrix-product
        parameters (every Linear and the tied output projection) + 12 x depth x context x width
        for the attention scores and weighted sums (Kaplan et al. 2020; PaLM appendix B)."""
        width = self.tok.weight.shape[1]
        matmul = sum(m.weight.numel() for m in self.modules() if isinstance(m, nn.Linear)) + self.tok.weight.numel()
        return 6.0 * matmul + 12.0 * len(self.blocks) * context * width
