"""``gpt``: a small decoder-only transformer trained from scratch on the generation's
text blocks (``genloop.models.gpt``; its options ``GPTOptions``: ``generator.gpt.width``,
``generator.gpt.depth``, ``generator.gpt.heads``, ``generator.gpt.dropout``).

Training: every block x is read as ``<bos> x_1 .. x_{L-1}`` and predicts
``x_1 .. x_L`` (cross-entropy), AdamW with ``train.lr``, warm-up and decay as the
diffusion generator (``train.steps`` or ``train.epochs``, ``train.batch_size``,
``train.grad_clip``, ``train.weight_decay``).  The full training state (weights,
AdamW moments, step, random generator, recent losses) is checkpointed every
``train.checkpoint_every`` steps to ``ctx.state_path``; a run killed inside a
generation resumes there with identical numbers.  No EMA: the last weights are kept.

Sampling: ``generators.decoding`` with the ``decode.*`` options, reusing a key/value
cache (each step feeds only the newest token).  ``log_probs(blocks)`` gives the
log-probability of every token given its block prefix (the text metrics' perplexity).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..config import ConfigError, opt
from ..data import TokenSet
from ..data.text import BOS
from ..models.gpt import GPT, KVCache
from . import GENERATORS, GenContext
from .decoding import context_length, generate_blocks
from .training import train_loop

log = logging.getLogger(__name__)


def inputs(tokens: torch.Tensor) -> torch.Tensor:
    """Blocks (B, L) -> model inputs ``<bos> x_1 .. x_{L-1}``."""
    return torch.cat([torch.full((tokens.shape[0], 1), BOS, dtype=tokens.dtype), tokens[:, :-1]], 1)


@dataclass
class GPTOptions:
    """Options of the ``gpt`` generator (``generator.gpt.<key>``)."""

    width: int = opt(256, "gpt: embedding width (a multiple of generator.gpt.heads)", ge=1)
    depth: int = opt(4, "gpt: transformer blocks", ge=1)
    heads: int = opt(4, "gpt: attention heads (generator.gpt.width must be a multiple)", ge=1)
    dropout: float = opt(0.0, "gpt: dropout of the attention and MLP outputs in training", ge=0.0, lt=1.0)

    def check(self) -> None:
        if self.width % self.heads:
            raise ConfigError(f"generator.gpt.width: {self.width} is not a multiple of generator.gpt.heads "
                              f"({self.heads}); change one of them")


@GENERATORS.register("gpt", options=GPTOptions)
class GPTGenerator:
    def __init__(self, ctx: GenContext) -> None:
        self.ctx = ctx
        self.cfg = getattr(ctx, "options", None) or ctx.config.generator.group("gpt")
        self.net: Optional[GPT] = None
        self.train: Optional[TokenSet] = None

    def _build(self, vocab: int) -> None:
        g = self.cfg
        torch.manual_seed(self.ctx.seed)  # initialisation
        self.net = GPT(vocab, self.ctx.shape[0], g.width, g.depth, g.heads, g.dropout).to(self.ctx.device)

    # ------------------------------------------------------------------ training
    def _fingerprint(self, train: TokenSet) -> str:
        from ..utils import digest

        return digest(train.tokens[:: max(len(train) // 64, 1)], len(train), self.ctx.seed,
                      self.ctx.config.generator.__dict__, self.ctx.config.train.__dict__)

    def fit(self, train: TokenSet) -> dict:
        if not isinstance(train, TokenSet):
            raise ValueError("generator.name: gpt models text; data.name must be a text source (shakespeare, text, zipf-markov)")
        dec = self.ctx.config.decode
        if context_length(dec, self.ctx.shape[0]) > self.ctx.shape[0]:
            raise ConfigError(f"decode.keep_prompt: false with decode.prompt_tokens={dec.prompt_tokens} needs "
                              f"{context_length(dec, self.ctx.shape[0])} positions; gpt models only data.block_size "
                              f"({self.ctx.shape[0]}): set decode.keep_prompt=true")
        ctx = self.ctx
        self.train = train
        self._build(train.vocab_size)
        gen = torch.Generator().manual_seed(ctx.seed)
        x_all = torch.from_numpy(train.tokens.astype(np.int64))

        def loss(step: int, bs: int) -> torch.Tensor:
            y = x_all[torch.randint(0, len(x_all), (bs,), generator=gen)]
            logits = self.net(inputs(y).to(ctx.device))
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.to(ctx.device).reshape(-1))

        return train_loop(loss, self.net, ctx, len(x_all), lambda: self._fingerprint(train), rng=gen)

    # ------------------------------------------------------------------ scoring and sampling
    @torch.no_grad()
    def log_probs(self, blocks: TokenSet, batch: int = 256) -> np.ndarray:
        x = torch.from_numpy(blocks.tokens.astype(np.int64))
        out = []
        for i in range(0, len(x), batch):
            y = x[i:i + batch]
            lp = torch.log_softmax(self.net(inputs(y).to(self.ctx.device)).float(), -1)
            out.append(lp.gather(-1, y.to(self.ctx.device).unsqueeze(-1)).squeeze(-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, blocks.shape[0]))

    def step(self, seq: torch.Tensor, cache: Optional[KVCache]) -> tuple[torch.Tensor, KVCache]:
        """Next-token logits of ``seq`` (B, T); feeds only the tokens not yet in ``cache``."""
        cache = cache if cache is not None else KVCache()
        new = seq[:, cache.length:].to(self.ctx.device)
        logits = self.net(new, cache)
        return logits[:, -1].float().cpu(), cache

    @torch.no_grad()
    def sample(self, labels: Optional[np.ndarray], n: int) -> TokenSet:
        self.net.eval()
        tokens = generate_blocks(self.step, lambda c, rows: c.select(rows.to(self.ctx.device)), n, self.ctx.shape[0],
                                 self.ctx.config.decode, self.ctx.real_train, self.ctx.seed, desc=self.ctx.desc,
                                 progress=self.ctx.progress)
        return self.train.like(tokens)

    def state_dict(self) -> dict:
        return dict(self.net.state_dict()) if self.net is not None else {}
