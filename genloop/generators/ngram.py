"""``ngram``: the interpolated Kneser-Ney n-gram language model (``genloop.models.ngram``)
as a generator, the fast text baseline: fitting and sampling are vectorised numpy,
seconds per generation.

Sampling with the plain decoding options uses the model's exact mixture sampler
(``KneserNey.sample_next``); other decoding options build the full next-token
distribution (``KneserNey.dist``) and go through ``generators.decoding``.
``state_dict`` is the model's: every order's sorted n-gram keys and counts (int64).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from ..config import opt
from ..data import TokenSet
from ..data.text import BOS
from ..models.ngram import KneserNey
from . import GENERATORS, GenContext
from .decoding import generate_blocks, is_plain, pick_prompts


@dataclass
class NgramOptions:
    """Options of the ``ngram`` generator (``generator.ngram.<key>``)."""

    order: int = opt(3, "ngram: n of the interpolated Kneser-Ney model (context of n-1 tokens)", ge=1, le=8)


@GENERATORS.register("ngram", options=NgramOptions)
class NGramGenerator:
    """Fit an interpolated Kneser-Ney model on the training blocks; sample blocks from it."""

    def __init__(self, ctx: GenContext) -> None:
        self.ctx = ctx
        self.options = getattr(ctx, "options", None) or ctx.config.generator.group("ngram")  # NgramOptions
        self.model: Optional[KneserNey] = None
        self.train: Optional[TokenSet] = None

    def fit(self, train: TokenSet) -> dict:
        if not isinstance(train, TokenSet):
            raise ValueError("generator.name: ngram models text; data.name must be a text source (shakespeare, text, zipf-markov)")
        self.train = train
        self.model = KneserNey(self.options.order, train.vocab_size).fit(train.tokens)
        lp = self.model.log_probs(train.tokens[:2000])
        return {"train_loss": float(-lp.mean())}

    def log_probs(self, blocks: TokenSet) -> np.ndarray:
        return self.model.log_probs(blocks.tokens)

    def sample(self, labels: Optional[np.ndarray], n: int) -> TokenSet:
        cfg = self.ctx.config
        dec, length, m = cfg.decode, self.ctx.shape[0], self.model
        if is_plain(dec):
            rng = np.random.default_rng([self.ctx.seed, 0xDEC0])
            prompts = pick_prompts(self.ctx.real_train, n, dec.prompt_tokens, rng)
            start = m.n - 1 + (0 if dec.keep_prompt else prompts.shape[1])  # first kept position
            seq = np.concatenate([np.full((n, m.n - 1), BOS, dtype=np.int64), prompts], 1)
            while seq.shape[1] < start + length:
                seq = np.concatenate([seq, m.sample_next(seq[:, seq.shape[1] - (m.n - 1):], rng)[:, None]], 1)
            tokens = seq[:, start:]
        else:
            def step(s: torch.Tensor, state: Any):
                h = s.numpy()
                if h.shape[1] < m.n - 1:
                    h = np.concatenate([np.full((len(h), m.n - 1 - h.shape[1]), BOS, dtype=np.int64), h], 1)
                with np.errstate(divide="ignore"):
                    logp = np.log(m.dist(h[:, h.shape[1] - (m.n - 1):]))
                return torch.from_numpy(logp), None

            tokens = generate_blocks(step, lambda s, i: s, n, length, dec, self.ctx.real_train, self.ctx.seed)
        return self.train.like(tokens.astype(np.int32))

    def state_dict(self) -> dict:
        return self.model.state_dict() if self.model is not None else {}
