"""``zipf-markov``: a synthetic language with a known distribution (the text
counterpart of the Gaussian theory checks).

An order-2 Markov chain over ``data.zipf-markov.words`` words ``w0 .. w{V-1}``: every
context (a, b) of the two previous tokens (``<bos>`` included, so that a block
starts from (``<bos>``, ``<bos>``)) has its own next-word distribution, Zipf
weights ``1 / r^s`` (``s = data.zipf-markov.exponent``) over a random ranking of the
words drawn from ``data.split_seed``.  ``data.count`` blocks of
``data.block_size`` tokens are drawn (each from ``<bos>``) and split into
train/test by ``data.test_fraction``.  ``RealData.truth`` is the chain itself:
``log_probs(tokens)`` gives the exact log-probability of every token of a
set of blocks, so the KL of a model to the truth is estimated without bias as
the mean of ``log p_true(x) - log q_model(x)`` over the fixed real test tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import DataConfig, opt
from . import DATASETS, RealData, TokenSet
from .text import BOS, SPECIALS, WordTokenizer

OFFSET = len(SPECIALS)  # word k is token id k + OFFSET


class ZipfMarkov:
    """The true order-2 chain: ``probs[a, b]`` is the next-word distribution (over the
    V words) after tokens a, b, indexed by state s = 0 for ``<bos>`` and k + 1 for word k."""

    def __init__(self, words: int, exponent: float, seed: int) -> None:
        rng = np.random.default_rng([seed, 0x21CF])
        v = words
        weights = 1.0 / np.arange(1, v + 1) ** exponent
        weights /= weights.sum()
        ranks = np.argsort(rng.random((v + 1, v + 1, v)), axis=2)  # a random ranking per context
        self.probs = weights[ranks]  # probs[a, b, w] = weight of w's rank in context (a, b)
        self.words = v

    @staticmethod
    def state(tokens: np.ndarray) -> np.ndarray:
        """Token ids -> chain states (<bos> 0, word k -> k + 1)."""
        return np.where(tokens == BOS, 0, tokens - OFFSET + 1)

    def sample(self, n: int, length: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` blocks of ``length`` token ids, each started from (<bos>, <bos>)."""
        cum = np.cumsum(self.probs, axis=2)
        a = np.zeros(n, dtype=np.int64)
        b = np.zeros(n, dtype=np.int64)
        out = np.empty((n, length), dtype=np.int32)
        for t in range(length):
            c = cum[a, b]
            w = np.minimum((c < rng.random((n, 1)) * c[:, -1:]).sum(1), self.words - 1)
            out[:, t] = w + OFFSET
            a, b = b, w + 1
        return out

    def log_probs(self, tokens: np.ndarray) -> np.ndarray:
        """Exact log p(x_t | x_{t-2}, x_{t-1}) of every token of (N, L) blocks started from <bos>."""
        s = self.state(np.asarray(tokens, dtype=np.int64))
        n = len(s)
        prev = np.concatenate([np.zeros((n, 2), dtype=np.int64), s], 1)
        w = s - 1
        with np.errstate(divide="ignore"):
            return np.log(np.where(w >= 0, self.probs[prev[:, :-2], prev[:, 1:-1], np.maximum(w, 0)], 0.0))

    def entropy_rate(self, tokens: np.ndarray) -> float:
        """Mean true conditional entropy (nats per token) over the contexts of ``tokens``."""
        s = self.state(np.asarray(tokens, dtype=np.int64))
        n = len(s)
        prev = np.concatenate([np.zeros((n, 2), dtype=np.int64), s], 1)
        p = self.probs[prev[:, :-2], prev[:, 1:-1]]
        return float(-(p * np.log(p)).sum(-1).mean())


@dataclass
class ZipfMarkovOptions:
    """Options of the ``zipf-markov`` source (``data.zipf-markov.<key>``)."""

    words: int = opt(50, "number of words of the synthetic language (its vocabulary)", ge=2, le=400)
    exponent: float = opt(1.1, "exponent s of the Zipf weights 1/rank^s of each context's next-word distribution", gt=0.0, old="zipf_exponent")

    def item_bytes(self, data: DataConfig) -> int:
        """Memory of one block as drawn (int64), for the check of data.count."""
        return 8 * data.block_size


@DATASETS.register("zipf-markov", options=ZipfMarkovOptions)
def load_zipf_markov(cfg: DataConfig, cache_dir: Optional[Path] = None) -> RealData:
    o: ZipfMarkovOptions = cfg.options()
    truth = ZipfMarkov(o.words, o.exponent, cfg.split_seed)
    rng = np.random.default_rng([cfg.split_seed, 0x21D0])
    tokens = truth.sample(cfg.count, cfg.block_size, rng)
    k = min(max(1, int(round(cfg.count * cfg.test_fraction))), cfg.count - 1)
    tok = WordTokenizer(SPECIALS + [f"w{i}" for i in range(o.words)])
    v = len(tok)
    return RealData(TokenSet(tokens[k:], v, tok), TokenSet(tokens[:k], v, tok), truth=truth)
