"""Decoding shared by the text generators (``ngram``, ``gpt``, ``hf-causal-lm``), step for step
the algorithms of Hugging Face ``transformers.generate``.

A language model is driven through one function ``step(seq, state) ->
(logits, state)``: ``seq`` (B, T) int64 is every sequence so far (its start token
first), ``logits`` (B, W) the scores of the next token, and ``state`` whatever the
model carries between calls (e.g. the key/value cache of the tokens it has already
seen, so that each call only processes the new ones).  ``reorder(state, index)``
selects rows of the state (beam search).  Column j of the scores is token id
``j + tokens.offset`` (``Tokens``: the start token, the suppressed ids, the
end-of-sequence ids and the padding id of a generator; by default the sequence
starts with ``<bos>``, which is never generated, and nothing ends it).

Three modes, as ``generate`` with the same options:

- **Beam search** (``decode.beams`` > 1; ``generate(num_beams=..., do_sample=False)``):
  the scores are turned into log-probabilities first (log-softmax over every column),
  then the repetition penalty acts on the log-probabilities (a token already in the
  sequence, prompt and start token included, has its log-prob l < 0 become l r: no
  renormalisation), then suppressed ids get -inf.  The beams keep the ``beams`` best
  summed log-probabilities; a candidate that ends with an end-of-sequence id (or
  reaches the length) joins the finished hypotheses with its score divided by its
  number of new tokens (``length_penalty`` 1), the best ``beams`` finished
  hypotheses are kept, and decoding stops early when no running beam can beat them
  (``early_stopping=False``).  Temperature, top-k and top-p do not apply (plain beam
  search applies none); setting them with beams is an error.
- **Greedy** (``decode.top_k`` = 1; ``generate(do_sample=False, num_beams=1)``): the
  most probable token after the repetition penalty on the scores (s / r if s > 0
  else s r) and the suppressed ids.
- **Sampling** (otherwise; ``generate(do_sample=True)`` with ``torch.manual_seed``
  equal to the generator's seed): repetition penalty on the scores, suppressed ids,
  temperature, top-k, top-p (transformers' ``TopPLogitsWarper``: the most probable
  tokens whose probability reaches p, at least one), then one ``torch.multinomial``
  draw per sequence.

A sequence that emits an end-of-sequence id is finished: it is filled with the
padding id up to the block length (``generate`` pads its batch the same way).

``decode.prompt_tokens`` = P: a sample starts with the first P tokens of a real
training block and the model writes the remaining ``block_size`` - P tokens; with
``decode.keep_prompt`` false the P tokens are only context: the model writes
``block_size`` new tokens after them and the sample is those (Shumailov et al.: a
64-token real block as the prompt, 64 new tokens).  The prompts are the real
training blocks in a seeded random order, each once (without replacement); when
more samples than blocks are asked, every block is used ⌊n/N⌋ or ⌈n/N⌉ times.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch

from ..config import Config, ConfigError, DecodeConfig
from ..data.text import BOS
from ..loading import register_validator
from ..utils import progress_bar

Step = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]
NEG = -1.0e9  # transformers' "very large negative value" of beam search


@dataclass(frozen=True)
class Tokens:
    """The ids a generator's decoding treats specially (all in the generator's ids)."""

    offset: int = 0  #: column j of the step's scores is id j + offset
    start: int = BOS  #: the id every sequence starts with (it counts for the repetition penalty)
    suppress: tuple[int, ...] = (BOS,)  #: ids never generated (transformers' ``suppress_tokens``)
    eos: tuple[int, ...] = ()  #: ids that finish a sequence
    pad: Optional[int] = None  #: fills a finished sequence (default: the first eos id)

    @property
    def fill(self) -> int:
        if self.pad is not None:
            return self.pad
        return self.eos[0] if self.eos else self.start


@register_validator
def _check_decode(cfg: Config) -> None:
    """Plain beam search applies no temperature, top-k or top-p (as ``generate(do_sample=False)``)."""
    d = cfg.decode
    if d.beams > 1:
        for key, value, default in (("temperature", d.temperature, 1.0), ("top_k", d.top_k, 0), ("top_p", d.top_p, 1.0)):
            if value != default:
                raise ConfigError(f"decode.{key}: {value} does not apply to beam search (decode.beams={d.beams}), which "
                                  f"takes the most probable beams as generate(do_sample=False) does; set decode.{key}="
                                  f"{default:g} or decode.beams=1 to sample")


def is_plain(dec: DecodeConfig) -> bool:
    """True when the options leave the model's own distribution unchanged (plain sampling)."""
    return dec.temperature == 1.0 and dec.top_k == 0 and dec.top_p >= 1.0 and dec.repetition_penalty == 1.0 and dec.beams == 1


def _columns(seq: torch.Tensor, tokens: Tokens, width: int) -> torch.Tensor:
    """Ids of ``seq`` as score columns; ids outside the columns -> ``width`` (a dropped extra column)."""
    col = seq - tokens.offset
    return col.masked_fill((col < 0) | (col >= width), width)


def repetition_penalty(x: torch.Tensor, seq: Optional[torch.Tensor], penalty: float, tokens: Tokens) -> torch.Tensor:
    """transformers' ``RepetitionPenaltyLogitsProcessor``: a score s of a token in ``seq``
    becomes s * r if s < 0 else s / r (CTRL, Keskar et al. 2019)."""
    if penalty == 1.0 or seq is None or seq.shape[1] == 0:
        return x
    width = x.shape[1]
    padded = torch.nn.functional.pad(x, (0, 1))
    cols = _columns(seq, tokens, width)
    s = torch.gather(padded, 1, cols)
    s = torch.where(s < 0, s * penalty, s / penalty)
    return padded.scatter(1, cols, s)[:, :width]


def suppress(x: torch.Tensor, tokens: Tokens) -> torch.Tensor:
    """Suppressed ids get -inf (transformers' ``SuppressTokensLogitsProcessor``)."""
    cols = [i - tokens.offset for i in tokens.suppress if 0 <= i - tokens.offset < x.shape[1]]
    if cols:
        x = x.clone()
        x[:, cols] = -float("inf")
    return x


def adjust_logits(logits: torch.Tensor, seq: Optional[torch.Tensor], dec: DecodeConfig,
                  tokens: Tokens = Tokens()) -> torch.Tensor:
    """The next-token scores of sampling / greedy decoding, as ``generate``'s processors and
    warpers: repetition penalty, suppressed ids, temperature, top-k, top-p (-inf = excluded)."""
    x = logits.float()
    x = repetition_penalty(x, seq, dec.repetition_penalty, tokens)
    x = suppress(x, tokens)
    if dec.temperature != 1.0:
        x = x / dec.temperature
    if dec.top_k != 0:
        k = min(dec.top_k, x.shape[1])
        x = x.masked_fill(x < torch.topk(x, k)[0][..., -1, None], -float("inf"))
    if dec.top_p < 1.0:
        sorted_x, order = torch.sort(x, descending=False)
        cum = sorted_x.softmax(dim=-1).cumsum(dim=-1)
        drop = cum <= (1 - dec.top_p)
        drop[..., -1:] = 0
        x = x.masked_fill(drop.scatter(1, order, drop), -float("inf"))
    return x


def beam_log_probs(logits: torch.Tensor, seq: torch.Tensor, dec: DecodeConfig, tokens: Tokens = Tokens()) -> torch.Tensor:
    """The scores of beam search: log-softmax, then the repetition penalty on the log-probabilities
    and the suppressed ids (the order of ``generate`` with ``num_beams`` > 1)."""
    x = torch.nn.functional.log_softmax(logits.float(), dim=-1)
    x = repetition_penalty(x, seq, dec.repetition_penalty, tokens)
    return suppress(x, tokens)


def generate(step: Step, reorder: Callable[[Any, torch.Tensor], Any], prompts: torch.Tensor, length: int,
             dec: DecodeConfig, generator: torch.Generator, tokens: Tokens = Tokens()) -> torch.Tensor:
    """Continue ``prompts`` (B, P) (without the start token) to ``length`` tokens; returns (B, length)
    int64 (a sequence finished by an end-of-sequence id is filled with ``tokens.fill``)."""
    b = prompts.shape[0]
    seq = torch.cat([torch.full((b, 1), tokens.start, dtype=torch.long), prompts.long()], 1)
    todo = length - prompts.shape[1]
    if todo <= 0:
        return seq[:, 1:length + 1]
    if dec.beams > 1:
        return beam_search(step, reorder, seq, todo, dec, tokens)[:, 1:]
    eos = torch.tensor(tokens.eos, dtype=torch.long)
    unfinished = torch.ones(b, dtype=torch.bool)
    state = None
    for _ in range(todo):
        logits, state = step(seq, state)
        x = adjust_logits(logits, seq, dec, tokens)
        if dec.top_k == 1:  # greedy
            nxt = torch.argmax(x, dim=-1)
        else:
            nxt = torch.multinomial(torch.softmax(x, -1), num_samples=1, generator=generator).squeeze(1)
        nxt = nxt + tokens.offset
        if len(eos):
            nxt = torch.where(unfinished, nxt, torch.full_like(nxt, tokens.fill))
        seq = torch.cat([seq, nxt[:, None]], 1)
        if len(eos):
            unfinished &= ~torch.isin(nxt, eos)
            if not unfinished.any():
                break
    return _fill(seq, length + 1, tokens)[:, 1:]


def _fill(seq: torch.Tensor, total: int, tokens: Tokens) -> torch.Tensor:
    if seq.shape[1] >= total:
        return seq[:, :total]
    return torch.cat([seq, torch.full((seq.shape[0], total - seq.shape[1]), tokens.fill, dtype=seq.dtype)], 1)


def _gather(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows ``index`` (B, K') of the beams of ``t`` (B, K, ...) (transformers' ``_gather_beams``)."""
    while index.dim() < t.dim():
        index = index.unsqueeze(-1)
    return torch.take_along_dim(t, index, dim=1)


def beam_search(step: Step, reorder: Callable[[Any, torch.Tensor], Any], seq: torch.Tensor, todo: int,
                dec: DecodeConfig, tokens: Tokens = Tokens()) -> torch.Tensor:
    """Beam search as ``transformers`` (``_beam_search``, ``length_penalty`` 1, ``early_stopping``
    False): ``dec.beams`` beams per sequence of ``seq`` (B, T); returns the best finished
    hypothesis of each, (B, T + todo), filled with ``tokens.fill`` after an end-of-sequence id."""
    b, k = seq.shape[0], dec.beams
    prompt_len = cur = seq.shape[1]
    max_len = prompt_len + todo
    eos = torch.tensor(tokens.eos, dtype=torch.long)
    keep = max(2, 1 + len(tokens.eos)) * k
    top_mask = torch.cat([torch.ones(k, dtype=torch.bool), torch.zeros(keep - k, dtype=torch.bool)])
    running = torch.full((b, k, max_len), tokens.fill, dtype=torch.long)
    running[:, :, :cur] = seq.unsqueeze(1)
    done_seq = running.clone()
    running_score = torch.zeros((b, k))
    running_score[:, 1:] = NEG
    done_score = torch.full((b, k), NEG)
    done = torch.zeros((b, k), dtype=torch.bool)
    improvable = torch.ones((b, 1), dtype=torch.bool)
    offset = torch.arange(b).view(-1, 1) * k
    state = None
    while True:
        flat = running[:, :, :cur].reshape(b * k, cur)
        logits, state = step(flat, state)
        logp = beam_log_probs(logits, flat, dec, tokens)
        v = logp.shape[1]
        cand = (logp.view(b, k, v) + running_score[:, :, None]).reshape(b, k * v)
        top_lp, top_idx = torch.topk(cand, k=keep)
        src = top_idx // v
        top_seq = _gather(running, src)
        top_seq[:, :, cur] = top_idx % v + tokens.offset
        hits = torch.isin(top_seq[:, :, cur], eos) if len(eos) else torch.zeros_like(top_lp, dtype=torch.bool)
        if cur + 1 >= max_len:
            hits = torch.ones_like(hits)
        # the best unfinished candidates run on
        run_lp = top_lp + hits.to(torch.float32) * NEG
        nxt = torch.topk(run_lp, k=k)[1]
        running = _gather(top_seq, nxt)
        running_score = _gather(run_lp, nxt)
        rows = (_gather(src, nxt) + offset).reshape(-1)
        # finished candidates among the top k join the finished hypotheses (score / new tokens)
        just = hits & top_mask[None, :]
        fin_lp = top_lp / ((cur + 1 - prompt_len) ** 1.0)
        fin_lp = fin_lp + (~improvable).to(torch.float32) * NEG
        fin_lp = fin_lp + (~just) * NEG
        merged = torch.topk(torch.cat((done_score, fin_lp), 1), k=k)[1]
        done_seq = _gather(torch.cat((done_seq, top_seq), 1), merged)
        done_score = _gather(torch.cat((done_score, fin_lp), 1), merged)
        done = _gather(torch.cat((done, just), 1), merged)
        if state is not None:
            state = reorder(state, rows)
        cur += 1
        best_running = running_score[:, :1] / ((cur - prompt_len) ** 1.0)
        worst_done = torch.where(done, torch.min(done_score, dim=1, keepdim=True)[0], NEG)
        improvable = improvable & torch.any(best_running > worst_done, dim=-1, keepdim=True)
        if not (bool(improvable.any()) and not bool(hits.all())):
            break
    return done_seq[:, 0]


def pick_prompts(real_train: Any, n: int, tokens: int, rng: np.random.Generator) -> np.ndarray:
    """The first ``tokens`` tokens of ``n`` real training blocks, (n, tokens): the blocks in a
    seeded random order, each once; with more samples than blocks, each ⌊n/N⌋ or ⌈n/N⌉ times."""
    if tokens == 0:
        return np.zeros((n, 0), dtype=np.int64)
    if real_train is None or not len(real_train):
        raise ValueError("decode.prompt_tokens: prompted generation needs the real training blocks")
    if tokens > real_train.shape[0]:
        raise ValueError(f"decode.prompt_tokens: {tokens} is more than data.block_size ({real_train.shape[0]})")
    m = len(real_train)
    idx = np.concatenate([rng.permutation(m) for _ in range(-(-n // m))])[:n]
    return real_train.tokens[idx, :tokens].astype(np.int64)


def context_length(dec: DecodeConfig, length: int) -> int:
    """The longest sequence (without the start token) a model sees when it writes blocks of ``length`` tokens."""
    return length if dec.keep_prompt else length + dec.prompt_tokens


def generate_blocks(step: Step, reorder: Callable[[Any, torch.Tensor], Any], n: int, length: int, dec: DecodeConfig,
                    real_train: Any, seed: int, tokens: Tokens = Tokens(), desc: str = "",
                    progress: bool = False) -> np.ndarray:
    """``n`` blocks of ``length`` tokens, ``dec.batch_size`` sequences at a time (int32); with
    ``desc``, a progress bar (``progress``) or heartbeat lines ``<desc> sample: done/n block``."""
    rng = np.random.default_rng([seed, 0xDEC0])
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    prompts = pick_prompts(real_train, n, dec.prompt_tokens, rng)
    drop = 0 if dec.keep_prompt else prompts.shape[1]  # context-only prompt: keep the new tokens
    out = np.empty((n, length), dtype=np.int32)
    bar = progress_bar(n, f"{desc} sample", progress, unit="block", heartbeat=bool(desc))
    for i in range(0, n, dec.batch_size):
        p = torch.from_numpy(prompts[i:i + dec.batch_size])
        out[i:i + len(p)] = generate(step, reorder, p, length + drop, dec, gen, tokens)[:, drop:].numpy()
        bar.update(len(p))
    bar.close()
    return out
