"""``gpt``: a small decoder-only transformer trained from scratch on the generation's
text blocks (``genloop.models.gpt``: ``generator.width``, ``generator.depth``,
``generator.heads``, ``generator.dropout``).

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
import math
import time
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..config import ConfigError, opt
from ..data import TokenSet
from ..data.text import BOS
from ..models.gpt import GPT, KVCache
from ..store import load_weights, save_weights
from . import GENERATORS, GenContext, TrainingDiverged
from .decoding import context_length, generate_blocks
from .diffusion import _read_meta, lr_at, total_steps

log = logging.getLogger(__name__)

_LOSS_WINDOW = 50


def inputs(tokens: torch.Tensor) -> torch.Tensor:
    """Blocks (B, L) -> model inputs ``<bos> x_1 .. x_{L-1}``."""
    return torch.cat([torch.full((tokens.shape[0], 1), BOS, dtype=tokens.dtype), tokens[:, :-1]], 1)


@dataclass
class GPTOptions:
    """Options of the ``gpt`` generator (``generator.<key>``; its size: the shared ``generator.width`` and ``generator.depth``)."""

    heads: int = opt(4, "gpt: attention heads (generator.width must be a multiple)", ge=1)
    dropout: float = opt(0.0, "gpt: dropout of the attention and MLP outputs in training", ge=0.0, lt=1.0)


@GENERATORS.register("gpt", options=GPTOptions)
class GPTGenerator:
    def __init__(self, ctx: GenContext) -> None:
        self.ctx = ctx
        self.cfg = ctx.config.generator
        self.net: Optional[GPT] = None
        self.train: Optional[TokenSet] = None

    def _build(self, vocab: int) -> None:
        g = self.cfg
        torch.manual_seed(self.ctx.seed)  # initialisation
        self.net = GPT(vocab, self.ctx.shape[0], g.width, g.depth, g.heads, g.dropout).to(self.ctx.device)

    # ------------------------------------------------------------------ training state
    def _state(self, opt: torch.optim.Optimizer, step: int, gen: torch.Generator, losses: list) -> dict:
        tensors = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        for i, p in enumerate(self.net.parameters()):
            for key, val in opt.state.get(p, {}).items():
                tensors[f"opt.{i}.{key}"] = val if torch.is_tensor(val) else torch.tensor(val)
        tensors["rng"] = gen.get_state()
        tensors["step"] = torch.tensor(step, dtype=torch.int64)
        tensors["recent_losses"] = torch.tensor(losses[-_LOSS_WINDOW:], dtype=torch.float64)
        return tensors

    def _load_state(self, tensors: dict, opt: torch.optim.Optimizer, gen: torch.Generator, losses: list) -> int:
        self.net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        params = list(self.net.parameters())
        for k, v in tensors.items():
            if k.startswith("opt."):
                _, i, key = k.split(".", 2)
                opt.state[params[int(i)]][key] = v.to(self.ctx.device) if key != "step" else v
        gen.set_state(tensors["rng"])
        losses.extend(tensors["recent_losses"].tolist())
        return int(tensors["step"])

    def _fingerprint(self, train: TokenSet) -> str:
        from ..utils import digest

        return digest(train.tokens[:: max(len(train) // 64, 1)], len(train), self.ctx.seed,
                      self.cfg.__dict__, self.ctx.config.train.__dict__)

    def fit(self, train: TokenSet) -> dict:
        if not isinstance(train, TokenSet):
            raise ValueError("generator.name: gpt models text; data.name must be a text source (shakespeare, text, zipf-markov)")
        dec = self.ctx.config.decode
        if context_length(dec, self.ctx.shape[0]) > self.ctx.shape[0]:
            raise ConfigError(f"decode.keep_prompt: false with decode.prompt_tokens={dec.prompt_tokens} needs "
                              f"{context_length(dec, self.ctx.shape[0])} positions; gpt models only data.block_size "
                              f"({self.ctx.shape[0]}): set decode.keep_prompt=true")
        ctx, tcfg = self.ctx, self.ctx.config.train
        dev = ctx.device
        self.train = train
        self._build(train.vocab_size)
        gen = torch.Generator().manual_seed(ctx.seed)
        x_all = torch.from_numpy(train.tokens.astype(np.int64))
        opt = torch.optim.AdamW(self.net.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
        start, losses = 0, []
        sp = ctx.state_path
        if sp is not None and sp.exists():
            if _read_meta(sp).get("fingerprint") == self._fingerprint(train):
                start = self._load_state(load_weights(sp), opt, gen, losses)
                log.info("%s: resumed training at step %d from %s", ctx.desc, start, sp)
            else:
                log.warning("%s: ignoring training state %s made for other data or settings", ctx.desc, sp)
        n = len(x_all)
        bs = min(tcfg.batch_size, n)
        steps = total_steps(tcfg, n)
        self.net.train()
        t0 = time.perf_counter()
        bar = tqdm(total=steps, initial=start, desc=f"{ctx.desc} train", disable=not ctx.progress, leave=False,
                   dynamic_ncols=True)
        loss_val = float("nan")
        for step in range(start, steps):
            idx = torch.randint(0, n, (bs,), generator=gen)
            y = x_all[idx]
            logits = self.net(inputs(y).to(dev))
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.to(dev).reshape(-1))
            loss_val = float(loss.detach())
            if not math.isfinite(loss_val):
                raise TrainingDiverged(f"{ctx.desc}: training loss became {loss_val} at step {step} "
                                       f"(try a lower train.lr than {tcfg.lr} or train.grad_clip > 0)")
            for group in opt.param_groups:
                group["lr"] = lr_at(step, tcfg, steps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tcfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), tcfg.grad_clip)
            opt.step()
            losses.append(loss_val)
            bar.update(1)
            done = step + 1
            if sp is not None and tcfg.checkpoint_every and done % tcfg.checkpoint_every == 0 and done < steps:
                save_weights(sp, self._state(opt, done, gen, losses), metadata={"fingerprint": self._fingerprint(train)})
        bar.close()
        self.net.eval()
        tail = losses[-_LOSS_WINDOW:] if losses else [loss_val]
        return {"train_loss": float(np.mean(tail)), "train_steps": steps - start,
                "train_seconds_this_run": time.perf_counter() - t0}

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
                                 self.ctx.config.decode, self.ctx.real_train, self.ctx.seed)
        return self.train.like(tokens)

    def state_dict(self) -> dict:
        return dict(self.net.state_dict()) if self.net is not None else {}
