"""Decoding shared by the text generators (``ngram``, ``gpt``, ``hf-causal-lm``).

A language model is driven through one function ``step(seq, state) ->
(logits, state)``: ``seq`` (B, T) int64 is every sequence so far (``<bos>``
first), ``logits`` (B, V) the scores of the next token, and ``state`` whatever
the model carries between calls (e.g. the key/value cache of the tokens it has
already seen, so that each call only processes the new ones).  ``reorder(state,
index)`` selects rows of the state (beam search).

``decode.*`` options, applied in this order to the next-token scores:
repetition penalty (CTRL, Keskar et al. 2019: a score s of a token already in
the sequence becomes s / r if s > 0 else s r), temperature, top-k, top-p
(nucleus: the smallest set of most probable tokens whose probability reaches
p).  With ``decode.beams`` > 1, beam search keeps the ``beams`` best
sequences by summed log-probability (of the adjusted scores) and returns the
best one; otherwise each token is sampled.  ``decode.prompt_tokens`` = P: a
sample starts with the first P tokens of a random real training block and the
model writes the remaining ``block_size`` - P tokens; with ``decode.keep_prompt``
false the P tokens are only context: the model writes ``block_size`` new tokens
after them and the sample is those (Shumailov et al.: a 64-token real block as
the prompt, 64 new tokens; the model then sees up to P + ``block_size`` tokens).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
import torch

from ..config import DecodeConfig
from ..data.text import BOS

Step = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]


def is_plain(dec: DecodeConfig) -> bool:
    """True when the options leave the model's own distribution unchanged (plain sampling)."""
    return dec.temperature == 1.0 and dec.top_k == 0 and dec.top_p >= 1.0 and dec.repetition_penalty == 1.0 and dec.beams == 1


def adjust_logits(logits: torch.Tensor, seq: Optional[torch.Tensor], dec: DecodeConfig) -> torch.Tensor:
    """The next-token scores after repetition penalty, temperature, top-k and top-p (-inf = excluded)."""
    x = logits.float().clone()
    x[:, BOS] = -float("inf")  # <bos> only starts a sequence
    if dec.repetition_penalty != 1.0 and seq is not None and seq.shape[1] > 1:
        prev = seq[:, 1:]
        s = x.gather(1, prev)
        x.scatter_(1, prev, torch.where(s > 0, s / dec.repetition_penalty, s * dec.repetition_penalty))
    if dec.temperature != 1.0:
        x = x / dec.temperature
    if 0 < dec.top_k < x.shape[1]:
        kth = torch.topk(x, dec.top_k, dim=1).values[:, -1:]
        x = x.masked_fill(x < kth, -float("inf"))
    if dec.top_p < 1.0:
        sorted_x, order = torch.sort(x, dim=1, descending=True)
        probs = torch.softmax(sorted_x, 1)
        before = torch.cumsum(probs, 1) - probs  # mass of the tokens ranked above
        drop = before >= dec.top_p
        drop[:, 0] = False
        x = x.masked_fill(torch.zeros_like(drop).scatter(1, order, drop), -float("inf"))
    return x


def generate(step: Step, reorder: Callable[[Any, torch.Tensor], Any], prompts: torch.Tensor, length: int,
             dec: DecodeConfig, generator: torch.Generator) -> torch.Tensor:
    """Continue ``prompts`` (B, P) (without <bos>) to ``length`` tokens; returns (B, length) int64."""
    b = prompts.shape[0]
    seq = torch.cat([torch.full((b, 1), BOS, dtype=torch.long), prompts.long()], 1)
    todo = length - prompts.shape[1]
    if dec.beams > 1:
        return beam_search(step, reorder, seq, todo, dec)[:, 1:]
    state = None
    for _ in range(todo):
        logits, state = step(seq, state)
        x = adjust_logits(logits, seq, dec)
        nxt = torch.multinomial(torch.softmax(x, 1), 1, generator=generator)
        seq = torch.cat([seq, nxt], 1)
    return seq[:, 1:]


def beam_search(step: Step, reorder: Callable[[Any, torch.Tensor], Any], seq: torch.Tensor, todo: int,
                dec: DecodeConfig) -> torch.Tensor:
    """Fixed-length beam search: ``dec.beams`` beams per sequence, summed log-probabilities of
    the adjusted scores; returns the best beam of each sequence (B, T + todo)."""
    b, k = seq.shape[0], dec.beams
    seq = seq.repeat_interleave(k, 0)
    score = torch.full((b, k), -float("inf"))
    score[:, 0] = 0.0  # all beams start equal: expand only the first
    state = None
    for _ in range(todo):
        logits, state = step(seq, state)
        logp = torch.log_softmax(adjust_logits(logits, seq, dec), 1)
        v = logp.shape[1]
        cand = (score.reshape(-1, 1) + logp).reshape(b, k * v)
        score, idx = torch.topk(cand, k, dim=1)
        rows = (torch.arange(b).unsqueeze(1) * k + idx // v).reshape(-1)
        seq = torch.cat([seq[rows], (idx % v).reshape(-1, 1)], 1)
        state = reorder(state, rows) if state is not None else None
    best = score.argmax(1)
    return seq.reshape(b, k, -1)[torch.arange(b), best]


def pick_prompts(real_train: Any, n: int, tokens: int, rng: np.random.Generator) -> np.ndarray:
    """The first ``tokens`` tokens of ``n`` random real training blocks (with replacement), (n, tokens)."""
    if tokens == 0:
        return np.zeros((n, 0), dtype=np.int64)
    if real_train is None or not len(real_train):
        raise ValueError("decode.prompt_tokens: prompted generation needs the real training blocks")
    if tokens > real_train.shape[0]:
        raise ValueError(f"decode.prompt_tokens: {tokens} is more than data.block_size ({real_train.shape[0]})")
    idx = rng.integers(0, len(real_train), n)
    return real_train.tokens[idx, :tokens].astype(np.int64)


def context_length(dec: DecodeConfig, length: int) -> int:
    """The longest sequence (without <bos>) a model sees when it writes blocks of ``length`` tokens."""
    return length if dec.keep_prompt else length + dec.prompt_tokens


def generate_blocks(step: Step, reorder: Callable[[Any, torch.Tensor], Any], n: int, length: int, dec: DecodeConfig,
                    real_train: Any, seed: int) -> np.ndarray:
    """``n`` blocks of ``length`` tokens, ``dec.batch_size`` sequences at a time (int32)."""
    rng = np.random.default_rng([seed, 0xDEC0])
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    prompts = pick_prompts(real_train, n, dec.prompt_tokens, rng)
    drop = 0 if dec.keep_prompt else prompts.shape[1]  # context-only prompt: keep the new tokens
    out = np.empty((n, length), dtype=np.int32)
    for i in range(0, n, dec.batch_size):
        p = torch.from_numpy(prompts[i:i + dec.batch_size])
        out[i:i + len(p)] = generate(step, reorder, p, length + drop, dec, gen)[:, drop:].numpy()
    return out
