"""Text metrics (metric ``text``), per generation, on token blocks.

Model side (needs the generation's model, ``uses_model``):

- ``ppl_test``     perplexity of the generation's model on the real test text,
                   exp(mean over test tokens of -log q(x_t | block prefix)).
- ``kl_truth``     (data with a known distribution, e.g. zipf-markov) KL rate of the
                   model to the truth in nats per token, mean over the real test tokens
                   of log p_true(x_t | ...) - log q(x_t | ...): an unbiased estimate
                   from the fixed test blocks of KL(truth || model).

Sample side (the samples only; computed on as many blocks as the real test set, a
fixed random subset when there are more, so the reference row -- the real test
set -- is at equal size):

- ``ppl_judge``    perplexity of the samples under the judge: an interpolated
                   Kneser-Ney model of order ``metrics.text.judge_order`` trained once on the
                   real training text (for an ``ngram`` chain of the same order it is
                   the generation-0 model exactly; for other generators a fixed stand-in
                   for it).
- ``distinct_1/2/3`` distinct n-grams / all n-grams (n-grams within blocks).
- ``vocab``        number of distinct tokens;  ``ttr`` = vocab / tokens.
- ``tail_survival`` share of the real tail (tokens seen 1..``metrics.text.tail_max_count``
                   times in the real training text) that appears in the samples.
- ``repeat4``      share of blocks in which some 4-gram occurs at least twice.
- ``unigram_kl``   KL(real training unigram || sample unigram), the sample's
                   frequencies smoothed by adding 0.5 to every count (nats).
- ``zipf``         Zipf exponent: minus the least-squares slope of log frequency on
                   log rank over the 1,000 most frequent tokens (at least 2 needed).

``<bos>`` never counts as a token (it only pads contexts).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..config import opt
from ..data.text import BOS
from . import METRICS, MetricContext


def ngrams(blocks: np.ndarray, n: int) -> np.ndarray:
    """Every n-gram within the blocks (N, L) as rows (N * (L - n + 1), n)."""
    if blocks.shape[1] < n:
        return np.zeros((0, n), dtype=blocks.dtype)
    w = np.lib.stride_tricks.sliding_window_view(blocks, n, axis=1)
    return w.reshape(-1, n)


def gram_keys(blocks: np.ndarray, n: int) -> np.ndarray:
    """Each n-gram within the blocks as one integer, (N, L - n + 1): the ids as digits in
    base max id + 1 (exact, no collisions, while that fits in 63 bits; rows compared otherwise)."""
    b = np.asarray(blocks, dtype=np.int64)
    base = int(b.max()) + 1 if b.size else 1
    if base ** n >= 2**62:
        raise OverflowError
    k = np.zeros((b.shape[0], b.shape[1] - n + 1), dtype=np.int64)
    for j in range(n):
        k = k * base + b[:, j:b.shape[1] - n + 1 + j]
    return k


def distinct_n(blocks: np.ndarray, n: int) -> float:
    """Distinct n-grams / all n-grams."""
    if blocks.shape[1] < n or not len(blocks):
        return float("nan")
    try:
        k = gram_keys(blocks, n).reshape(-1)
        return len(np.unique(k)) / len(k)
    except OverflowError:
        g = ngrams(blocks, n)
        return len(np.unique(g, axis=0)) / len(g)


def repeated_ngram_share(blocks: np.ndarray, n: int = 4) -> float:
    """Share of blocks containing some n-gram at least twice."""
    if not len(blocks) or blocks.shape[1] < n:
        return float("nan")
    try:
        k = np.sort(gram_keys(blocks, n), axis=1)
        return float((k[:, 1:] == k[:, :-1]).any(1).mean())
    except OverflowError:
        hits = 0
        for row in blocks:
            g = ngrams(row[None], n)
            hits += len(np.unique(g, axis=0)) < len(g)
        return hits / len(blocks)


def unigram_counts(blocks: np.ndarray, vocab: int) -> np.ndarray:
    c = np.bincount(blocks.reshape(-1), minlength=vocab).astype(np.float64)
    c[BOS] = 0.0
    return c


def unigram_kl(real_counts: np.ndarray, fake_counts: np.ndarray, alpha: float = 0.5) -> float:
    """KL(p_real || q_fake) in nats, q = (fake + alpha) / (N + alpha V') over the V' tokens
    other than <bos>; p from the real counts."""
    mask = np.ones(len(real_counts), dtype=bool)
    mask[BOS] = False
    p = real_counts[mask] / real_counts[mask].sum()
    q = (fake_counts[mask] + alpha) / (fake_counts[mask].sum() + alpha * mask.sum())
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / q[nz])))


def zipf_exponent(counts: np.ndarray, top: int = 1000) -> float:
    """Minus the least-squares slope of log count on log rank (ranks 1..top, non-zero counts)."""
    c = np.sort(counts[counts > 0])[::-1][:top]
    if len(c) < 2:
        return float("nan")
    x, y = np.log(np.arange(1, len(c) + 1)), np.log(c)
    return float(-np.polyfit(x, y, 1)[0])


def tail_survival(tail: np.ndarray, fake_counts: np.ndarray) -> float:
    """Share of the ``tail`` token ids that occur in the samples."""
    if not len(tail):
        return float("nan")
    return float((fake_counts[tail] > 0).mean())


def perplexity(log_probs: np.ndarray) -> float:
    return float(math.exp(-float(np.mean(log_probs))))


@dataclass
class TextMetricOptions:
    """Options of the ``text`` metrics (``metrics.text.<key>``)."""

    judge_order: int = opt(3, "n of the Kneser-Ney judge trained once on the real training text (ppl_judge)", ge=1, le=8)
    tail_max_count: int = opt(2, "the real tail is the tokens seen at most this often in the real training text (tail_survival)", ge=1)


@METRICS.register("text", options=TextMetricOptions)
class TextMetrics:
    """All the text columns; see the module docstring."""

    uses_model = True

    def __init__(self, ctx: MetricContext) -> None:
        from ..data import TokenSet
        from ..models.ngram import KneserNey

        real = ctx.real
        if not isinstance(real.train, TokenSet):
            raise ValueError(f"metrics.names: text needs a text data source (shakespeare, text, zipf-markov), "
                             f"not {ctx.config.data.name!r}")
        self.cfg: TextMetricOptions = ctx.config.metrics.group("text")
        self.vocab = real.train.vocab_size
        self.test = real.test
        self.truth = real.truth
        self.real_counts = unigram_counts(real.train.tokens, self.vocab)
        rc = self.real_counts
        self.tail = np.flatnonzero((rc > 0) & (rc <= self.cfg.tail_max_count))
        self.size = len(self.test)
        self.seed = ctx.seed
        self.judge = KneserNey(self.cfg.judge_order, self.vocab).fit(real.train.tokens)
        if self.truth is not None:
            self.truth_lp = self.truth.log_probs(self.test.tokens)

    def equal_size(self, blocks: np.ndarray) -> np.ndarray:
        """As many blocks as the real test set: a fixed random subset when there are more."""
        if len(blocks) <= self.size:
            return blocks
        rng = np.random.default_rng([self.seed, 0x7E57])
        return blocks[np.sort(rng.permutation(len(blocks))[: self.size])]

    def sample_columns(self, blocks: np.ndarray) -> dict[str, float]:
        b = self.equal_size(blocks)
        if not len(b):
            return {}
        counts = unigram_counts(b, self.vocab)
        tokens = counts.sum()
        vocab = int((counts > 0).sum())
        return {"ppl_judge": perplexity(self.judge.log_probs(b)),
                "distinct_1": distinct_n(b, 1), "distinct_2": distinct_n(b, 2), "distinct_3": distinct_n(b, 3),
                "vocab": float(vocab), "ttr": float(vocab / tokens) if tokens else float("nan"),
                "tail_survival": tail_survival(self.tail, counts), "repeat4": repeated_ngram_share(b, 4),
                "unigram_kl": unigram_kl(self.real_counts, counts), "zipf": zipf_exponent(counts)}

    def model_columns(self, model: Any) -> dict[str, float]:
        if model is None or not hasattr(model, "log_probs"):
            return {}
        lp = model.log_probs(self.test)
        out = {"ppl_test": perplexity(lp)}
        if self.truth is not None:
            out["kl_truth"] = float(np.mean(self.truth_lp - lp))
        return out

    def __call__(self, fake: Any, model: Optional[Any] = None) -> dict[str, float]:
        return {**self.model_columns(model), **self.sample_columns(fake.tokens)}

    def reference(self) -> dict[str, float]:
        """The real test set: the judge's perplexity on it (ppl_test, ppl_judge), the truth's
        KL (0) and its sample columns."""
        out = {"ppl_test": perplexity(self.judge.log_probs(self.test.tokens))}
        if self.truth is not None:
            out["kl_truth"] = 0.0
        out.update(self.sample_columns(self.test.tokens))
        return out
