"""``categorical``: K outcomes with known probabilities, the discrete counterpart of the
Gaussian theory checks (Kazdan et al.'s discrete distributions).

``data.count`` draws of one outcome each from ``data.categorical.probs`` (uniform over
``data.categorical.categories`` outcomes when unset), drawn with ``data.split_seed`` and split into
train/test by ``data.test_fraction``.  The data travel as text blocks of one token
(``TokenSet`` (N, 1)): outcome k is the token ``c<k>``, id k + 2 (after ``<bos>`` and
``<unk>``), so every component that reads text reads them.  ``RealData.truth`` is the
``Categorical`` itself: the exact probabilities, the exact log-probability of every token
(the text metrics' ``kl_truth``) and which outcomes are *valid* (the support, or the
subset ``data.categorical.valid``), the truth a verifier checks samples against.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import ConfigError, DataConfig, opt
from . import DATASETS, RealData, TokenSet
from .text import SPECIALS, WordTokenizer

OFFSET = len(SPECIALS)  # outcome k is token id k + OFFSET


class Categorical:
    """The true distribution: ``probs`` (K,) over outcomes 0..K-1; ``valid`` (K,) bool."""

    def __init__(self, probs: np.ndarray, valid: Optional[np.ndarray] = None) -> None:
        self.probs = np.asarray(probs, dtype=np.float64)
        self.k = len(self.probs)
        self.valid = self.probs > 0 if valid is None else np.asarray(valid, dtype=bool)

    @staticmethod
    def outcomes(tokens: np.ndarray) -> np.ndarray:
        """(N, 1) token ids -> (N,) outcomes (-1 for a token that is no outcome)."""
        t = np.asarray(tokens, dtype=np.int64).reshape(len(tokens), -1)[:, 0]
        return np.where(t >= OFFSET, t - OFFSET, -1)

    def frequencies(self, tokens: np.ndarray) -> np.ndarray:
        """Empirical distribution (K,) of the outcomes of (N, 1) blocks (zeros when N = 0)."""
        o = self.outcomes(tokens)
        o = o[(o >= 0) & (o < self.k)]
        counts = np.bincount(o, minlength=self.k).astype(np.float64)
        return counts / max(len(tokens), 1)

    def is_valid(self, tokens: np.ndarray) -> np.ndarray:
        """(N,) bool: the block is one valid outcome (in the support, or in data.categorical.valid)."""
        t = np.asarray(tokens, dtype=np.int64).reshape(len(tokens), -1)
        o = t[:, 0] - OFFSET
        ok = (o >= 0) & (o < self.k) & (t.shape[1] == 1)
        return ok & self.valid[np.clip(o, 0, self.k - 1)]

    def log_probs(self, tokens: np.ndarray) -> np.ndarray:
        """Exact log p of every token of (N, 1) blocks (-inf outside the support)."""
        o = self.outcomes(tokens)
        p = np.where((o >= 0) & (o < self.k), self.probs[np.clip(o, 0, self.k - 1)], 0.0)
        with np.errstate(divide="ignore"):
            return np.log(p)[:, None]


def gini_simpson(p: np.ndarray) -> float:
    """1 - sum p_k^2: the chance that two independent draws differ."""
    return float(1.0 - np.sum(np.asarray(p, dtype=np.float64) ** 2))


def tokenizer(k: int) -> WordTokenizer:
    return WordTokenizer(SPECIALS + [f"c{i}" for i in range(k)])


@dataclass
class CategoricalOptions:
    """Options of the ``categorical`` source (``data.categorical.<key>``)."""

    categories: int = opt(6, "number K of outcomes", ge=2, le=100000)
    probs: Optional[list[float]] = opt(None, "probability of each outcome, K numbers summing to 1 (None: uniform over data.categorical.categories)", ge=0.0, le=1.0, old="category_probs")
    valid: Optional[list[int]] = opt(None, "the outcomes a verifier accepts as correct (None: every outcome of positive probability)", ge=0, old="valid_categories")

    def check(self) -> None:
        if self.probs is not None:
            if len(self.probs) != self.categories:
                raise ConfigError(f"data.categorical.probs: {len(self.probs)} probabilities for data.categorical.categories = "
                                  f"{self.categories} outcomes (give one per outcome, or set data.categorical.categories)")
            if abs(sum(self.probs) - 1.0) > 1e-6:
                raise ConfigError(f"data.categorical.probs: they sum to {sum(self.probs):.6g}, not 1 "
                                  "(give probabilities that sum to 1)")
        if self.valid is not None:
            bad = [c for c in self.valid if c >= self.categories]
            if bad:
                raise ConfigError(f"data.categorical.valid: {bad[0]} is not an outcome (allowed: 0..{self.categories - 1})")


def truth_of(cfg: DataConfig) -> Categorical:
    o: CategoricalOptions = cfg.group("categorical")
    probs = np.full(o.categories, 1.0 / o.categories) if o.probs is None else np.array(o.probs)
    valid = None
    if o.valid is not None:
        valid = np.zeros(len(probs), dtype=bool)
        valid[list(o.valid)] = True
    return Categorical(probs / probs.sum(), valid)


@DATASETS.register("categorical", options=CategoricalOptions)
def load_categorical(cfg: DataConfig, cache_dir: Optional[Path] = None) -> RealData:
    truth = truth_of(cfg)
    rng = np.random.default_rng([cfg.split_seed, 0xCA7])
    outcomes = rng.choice(truth.k, size=cfg.count, p=truth.probs)
    tokens = (outcomes + OFFSET).astype(np.int32)[:, None]
    k = min(max(1, int(round(cfg.count * cfg.test_fraction))), cfg.count - 1)
    tok = tokenizer(truth.k)
    v = len(tok)
    return RealData(TokenSet(tokens[k:], v, tok), TokenSet(tokens[:k], v, tok), truth=truth)
