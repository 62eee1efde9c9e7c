"""``categorical``: the maximum-likelihood refit of a distribution over whole blocks.

``fit`` counts the distinct training blocks; the model is their empirical distribution
(the maximum-likelihood categorical over the blocks seen), and ``sample(labels, n)`` draws
``n`` blocks from it: multinomial counts, in random order.  On the ``categorical`` source
(blocks of one token) this is exactly the ML refit of K outcome probabilities from n
draws, the model whose collapse has closed forms (docs/safe-synthetic.md); on longer
blocks (e.g. the ``brackets`` language) it is a model that only ever reproduces training
strings.

Randomness: sampling uses ``numpy.random.default_rng([ctx.seed, 1])``.  ``state_dict``
holds the distinct blocks (int64) and their counts.  ``probs`` (over the
``categorical`` source's outcomes) and ``log_probs(blocks)`` serve the metrics.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..data import TokenSet
from . import GENERATORS, GenContext


@GENERATORS.register("categorical")
class CategoricalGenerator:
    """The empirical distribution of the training blocks (maximum likelihood)."""

    def __init__(self, ctx: GenContext) -> None:
        self.ctx = ctx
        self.blocks: Optional[np.ndarray] = None
        self.counts: Optional[np.ndarray] = None
        self.like: Optional[TokenSet] = None

    def fit(self, train: TokenSet) -> dict:
        if not isinstance(train, TokenSet):
            raise ValueError(f"generator.name: categorical models text blocks (data.name categorical, brackets, "
                             f"or a text source), not {getattr(train, 'kind', type(train).__name__)}")
        if len(train) == 0:
            raise ValueError(f"{self.ctx.desc}: cannot fit 'categorical' on an empty training set")
        self.like = train
        t = train.tokens.astype(np.int64)
        if t.shape[1] == 1:  # one-token blocks: the same rows, without unique's slow row-wise path
            values, self.counts = np.unique(t[:, 0], return_counts=True)
            self.blocks = values[:, None]
        else:
            self.blocks, self.counts = np.unique(t, axis=0, return_counts=True)
        p = self.counts / self.counts.sum()
        return {"train_loss": float(-(p * np.log(p)).sum())}  # the ML fit's mean NLL per block

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def sample(self, labels: Optional[np.ndarray], n: int) -> TokenSet:
        if self.blocks is None:
            raise RuntimeError("categorical: sample() called before fit()")
        rng = np.random.default_rng([self.ctx.seed, 1])
        k = rng.multinomial(n, self.counts / self.counts.sum())
        idx = rng.permutation(np.repeat(np.arange(len(self.blocks)), k))
        return self.like.like(self.blocks[idx].astype(np.int32))

    def probs(self, outcomes: int, offset: int) -> np.ndarray:
        """Fitted probability (outcomes,) of each one-token block ``offset + k``."""
        p = np.zeros(outcomes)
        single = self.blocks.shape[1] == 1
        if single:
            o = self.blocks[:, 0] - offset
            ok = (o >= 0) & (o < outcomes)
            np.add.at(p, o[ok], self.counts[ok] / self.counts.sum())
        return p

    def log_probs(self, blocks: TokenSet) -> np.ndarray:
        """log q of each whole block, put on its first token (0 on the others); -inf when unseen."""
        t = blocks.tokens.astype(np.int64)
        out = np.zeros(t.shape)
        lookup = {tuple(b): c for b, c in zip(self.blocks.tolist(), self.counts.tolist())}
        total = self.counts.sum()
        with np.errstate(divide="ignore"):
            out[:, 0] = np.log(np.array([lookup.get(tuple(r), 0) / total for r in t.tolist()]))
        return out

    def state_dict(self) -> dict:
        return {"blocks": torch.as_tensor(np.ascontiguousarray(self.blocks)),
                "counts": torch.as_tensor(np.ascontiguousarray(self.counts.astype(np.int64)))}
