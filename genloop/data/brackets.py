"""``brackets``: a formal language with an exact membership test, the balanced brackets
(Dyck-1), drawn from a known grammar.

Grammar: S -> ( S ) S with probability ``data.brackets.p``, S -> (empty) otherwise, a string
kept when it has at least ``data.brackets.min_pairs`` bracket pairs and at most
``data.block_size`` - 1 characters (the grammar conditioned on that length).  Read left to right the grammar is a Markov chain on the depth d (open
brackets): at depth d the next character is ``(`` with probability p, else ``)`` (d > 0) or
the end (d = 0), so P(w) = p^(#open) (1 - p)^(#close + 1) / Z with Z = P(kmin <= pairs <= (L - 1) / 2),
and the number of pairs k has P(k) = Catalan(k) p^k (1 - p)^(k + 1) / Z.

A string is a block of ``data.block_size`` tokens: its characters, then the end marker
``.`` repeated to the end of the block (every block has at least one).  Token ids:
``<bos>`` 0, ``<unk>`` 1, ``(`` 2, ``)`` 3, ``.`` 4.  ``data.count`` strings are drawn with
``data.split_seed`` and split into train/test by ``data.test_fraction``.

``RealData.truth`` is the ``Brackets`` language: ``is_valid(blocks)`` (exact membership:
brackets balanced and never closing below depth 0, then only end markers),
``lengths`` / ``depths`` of blocks, the exact length distribution, and the exact
``log_probs`` of every token (the text metrics' ``kl_truth``; the normaliser log Z is put
on each block's first token).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import Config, ConfigError, DataConfig, opt
from . import DATASETS, RealData, TokenSet
from .text import SPECIALS, Tokenizer

OPEN, CLOSE, END = 2, 3, 4


class BracketTokenizer(Tokenizer):
    """One token per character of ``( ) .`` (the brackets source's own: fixed, not trained, not
    a choice of ``data.tokenizer``)."""

    name = "brackets-chars"

    def __init__(self, vocab: Optional[list] = None) -> None:
        super().__init__(vocab or SPECIALS + ["(", ")", "."])

    def split(self, text: str) -> list[str]:
        return list(text)

    def join(self, tokens: list[str]) -> str:
        return "".join(tokens)

    @staticmethod
    def split_static(text: str) -> list[str]:
        return list(text)


class Brackets:
    """The language and its grammar's exact distribution (module docstring)."""

    def __init__(self, p: float, block: int, min_pairs: int = 0) -> None:
        self.p, self.block, self.min_pairs = p, block, min_pairs
        kmax = (block - 1) // 2
        if min_pairs > kmax:
            raise ConfigError(f"data.brackets.min_pairs: {min_pairs} pairs do not fit in data.block_size = {block} "
                              f"(at most {kmax}: a block holds the string and at least one end marker)")
        k = np.arange(kmax + 1)
        log_catalan = np.array([math.lgamma(2 * i + 1) - math.lgamma(i + 2) - math.lgamma(i + 1) for i in k])
        w = np.exp(log_catalan + k * math.log(p) + (k + 1) * math.log(1 - p)) * (k >= min_pairs)
        self.log_z = float(math.log(w.sum()))
        self.pairs_probs = w / w.sum()  # P(k pairs), k = 0..kmax

    def length_probs(self) -> np.ndarray:
        """Exact P(length = l), l = 0..block - 1 (zero for odd l)."""
        out = np.zeros(self.block)
        out[0::2][: len(self.pairs_probs)] = self.pairs_probs
        return out

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` blocks (int32 (n, block)) of strings of the truncated grammar (rejection)."""
        out = []
        have = 0
        while have < n:
            m = 2 * (n - have) + 16
            toks = np.full((m, self.block), END, dtype=np.int32)
            d = np.zeros(m, dtype=np.int64)
            done = np.zeros(m, dtype=bool)
            for t in range(self.block - 1):
                u = rng.random(m)
                opening = ~done & (u < self.p)
                closing = ~done & ~opening & (d > 0)
                ending = ~done & ~opening & (d == 0)
                toks[opening, t] = OPEN
                toks[closing, t] = CLOSE
                d += opening.astype(np.int64) - closing.astype(np.int64)
                done |= ending
            ok = done & ((toks == OPEN).sum(1) >= self.min_pairs)  # ended within block - 1 characters
            out.append(toks[ok][: n - have])
            have += int(min(ok.sum(), n - have))
        return np.concatenate(out)

    @staticmethod
    def _steps(tokens: np.ndarray) -> np.ndarray:
        t = np.asarray(tokens, dtype=np.int64)
        return np.where(t == OPEN, 1, np.where(t == CLOSE, -1, 0))

    def is_valid(self, tokens: np.ndarray) -> np.ndarray:
        """(N,) bool: the block is a string of the language followed by end markers only."""
        t = np.asarray(tokens, dtype=np.int64)
        if t.ndim != 2 or not len(t):
            return np.zeros(len(t), dtype=bool)
        is_end = t == END
        has_end = is_end.any(1)
        first_end = np.where(has_end, is_end.argmax(1), t.shape[1])
        pos = np.arange(t.shape[1])[None, :]
        before = pos < first_end[:, None]
        brackets_only = np.all(~before | (t == OPEN) | (t == CLOSE), 1)
        ends_only = np.all(before | is_end, 1)
        depth = np.cumsum(np.where(before, self._steps(t), 0), 1)
        balanced = (depth.min(1) >= 0) & (depth[:, -1] == 0)
        long_enough = (t == OPEN).sum(1) >= self.min_pairs
        return has_end & brackets_only & ends_only & balanced & long_enough

    def lengths(self, tokens: np.ndarray) -> np.ndarray:
        """Characters before the first end marker (the block length when there is none)."""
        is_end = np.asarray(tokens) == END
        return np.where(is_end.any(1), is_end.argmax(1), is_end.shape[1])

    def depths(self, tokens: np.ndarray) -> np.ndarray:
        """Deepest nesting of each block's prefix before its first end marker (other tokens count 0)."""
        t = np.asarray(tokens, dtype=np.int64)
        before = np.arange(t.shape[1])[None, :] < self.lengths(t)[:, None]
        return np.maximum(np.cumsum(np.where(before, self._steps(t), 0), 1).max(1), 0)

    def log_probs(self, tokens: np.ndarray) -> np.ndarray:
        """Exact log-probability of every token of (N, L) blocks under the grammar (the chain on
        the depth; log Z on the first token; -inf for a token the language cannot have)."""
        t = np.asarray(tokens, dtype=np.int64)
        n, length = t.shape
        out = np.zeros((n, length))
        d = np.zeros(n, dtype=np.int64)
        ended = np.zeros(n, dtype=bool)
        lp, lq = math.log(self.p), math.log(1 - self.p)
        for i in range(length):
            x = t[:, i]
            alive = ~ended
            out[alive & (x == OPEN), i] = lp
            out[alive & (x == CLOSE) & (d > 0), i] = lq
            out[alive & (x == END) & (d == 0), i] = lq
            bad = alive & ~(((x == OPEN)) | ((x == CLOSE) & (d > 0)) | ((x == END) & (d == 0)))
            bad |= ended & (x != END)
            out[bad, i] = -np.inf
            d += (alive & (x == OPEN)).astype(np.int64) - (alive & (x == CLOSE)).astype(np.int64)
            ended |= alive & (x == END)
        out[:, 0] -= self.log_z
        out[(t == OPEN).sum(1) < self.min_pairs, 0] = -np.inf  # too short for the language
        return out


@dataclass
class BracketsOptions:
    """Options of the ``brackets`` source (``data.brackets.<key>``)."""

    p: float = opt(0.45, "probability of S -> ( S ) S in the grammar (else S -> empty); the mean number of pairs is p / (1 - 2 p) before the length cut", gt=0.0, lt=0.5, old="brackets_p")
    min_pairs: int = opt(1, "strings have at least this many bracket pairs (the grammar conditioned on it; 0 keeps the empty string)", ge=0, old="brackets_min_pairs")

    def check_with(self, cfg: Config) -> None:
        if self.min_pairs > (cfg.data.block_size - 1) // 2:
            raise ConfigError(f"data.brackets.min_pairs: {self.min_pairs} pairs do not fit in data.block_size = "
                              f"{cfg.data.block_size} (at most {(cfg.data.block_size - 1) // 2}: a block holds the "
                              "string and at least one end marker)")


@DATASETS.register("brackets", options=BracketsOptions)
def load_brackets(cfg: DataConfig, cache_dir: Optional[Path] = None) -> RealData:
    o: BracketsOptions = cfg.options()
    truth = Brackets(o.p, cfg.block_size, o.min_pairs)
    tokens = truth.sample(cfg.count, np.random.default_rng([cfg.split_seed, 0xB4AC]))
    k = min(max(1, int(round(cfg.count * cfg.test_fraction))), cfg.count - 1)
    tok = BracketTokenizer()
    v = len(tok)
    return RealData(TokenSet(tokens[k:], v, tok), TokenSet(tokens[:k], v, tok), truth=truth)
