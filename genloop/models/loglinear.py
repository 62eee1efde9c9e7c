"""A log-bilinear n-gram language model (Mnih & Hinton, "Three new graphical models for
statistical language modelling", ICML 2007): each token has a learnt embedding, the
n - 1 previous tokens' embeddings are mixed by one learnt matrix per position, and the
next token's probability is a softmax of the mix's dot product with every token's output
embedding plus a bias.  A model of another family than the count-based Kneser-Ney models
(``ngram.py``): its probabilities come from a low-rank, gradient-trained
parametrisation, not from discounted counts, so its mistakes differ from theirs.

Contexts before the start of a block are padded with ``<bos>`` (id 0), which is never
predicted.  Training: Adam on random mini-batches of (context, next token) pairs, seeded,
on one thread, so a fit gives the same model whatever the thread setting
(a resumed run scores its samples exactly as the first one did).
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

BOS = 0  # as in genloop.data.text and ngram.py


@contextlib.contextmanager
def _one_thread():
    """torch on one thread meanwhile: the same sums in the same order whatever the setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class LogBilinear:
    """``fit(tokens)`` on int (N, L) blocks; ``log_probs(tokens)`` -> float64 (N, L)."""

    def __init__(self, order: int, vocab: int, dim: int = 32, steps: int = 300, batch_size: int = 1024,
                 lr: float = 0.02, seed: int = 0) -> None:
        self.n, self.v, self.dim = order, vocab, dim
        self.steps, self.batch_size, self.lr, self.seed = steps, batch_size, lr, seed
        g = torch.Generator().manual_seed(seed)
        self.embed = (0.1 * torch.randn(vocab, dim, generator=g)).requires_grad_()
        self.mix = (torch.eye(dim).repeat(max(order - 1, 0), 1, 1)
                    + 0.01 * torch.randn(max(order - 1, 0), dim, dim, generator=g)).requires_grad_()
        self.out = (0.1 * torch.randn(vocab, dim, generator=g)).requires_grad_()
        self.bias = torch.zeros(vocab).requires_grad_()

    def _pairs(self, tokens: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.as_tensor(np.asarray(tokens, dtype=np.int64))
        pad = torch.full((len(t), self.n - 1), BOS, dtype=torch.int64)
        full = torch.cat([pad, t], 1)
        length = t.shape[1]
        ctx = torch.stack([full[:, self.n - 1 - j:self.n - 1 - j + length] for j in range(1, self.n)], -1) \
            if self.n > 1 else torch.zeros(len(t), length, 0, dtype=torch.int64)
        return ctx.reshape(-1, self.n - 1), t.reshape(-1)

    def _logits(self, ctx: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(len(ctx), self.dim)
        for j in range(self.n - 1):
            h = h + self.embed[ctx[:, j]] @ self.mix[j]
        logits = h @ self.out.T + self.bias
        logits[:, BOS] = float("-inf")
        return logits

    def fit(self, tokens: np.ndarray) -> "LogBilinear":
        with _one_thread():
            return self._fit(tokens)

    def _fit(self, tokens: np.ndarray) -> "LogBilinear":
        ctx, target = self._pairs(tokens)
        keep = target != BOS
        ctx, target = ctx[keep], target[keep]
        params = [self.embed, self.mix, self.out, self.bias]
        opt = torch.optim.Adam(params, lr=self.lr)
        g = torch.Generator().manual_seed(self.seed + 1)
        for _ in range(self.steps if len(target) else 0):
            idx = torch.randint(0, len(target), (min(self.batch_size, len(target)),), generator=g)
            loss = F.cross_entropy(self._logits(ctx[idx]), target[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return self

    @torch.inference_mode()
    def log_probs(self, tokens: np.ndarray, chunk: int = 1 << 14) -> np.ndarray:
        """log q(x_t | the n - 1 tokens before it), float64 (N, L)."""
        with _one_thread():
            return self._log_probs(tokens, chunk)

    def _log_probs(self, tokens: np.ndarray, chunk: int) -> np.ndarray:
        ctx, target = self._pairs(tokens)
        out = np.zeros(len(target))
        for s in range(0, len(target), chunk):
            lp = torch.log_softmax(self._logits(ctx[s:s + chunk]).double(), 1)
            out[s:s + chunk] = lp.gather(1, target[s:s + chunk, None])[:, 0].numpy()
        return out.reshape(np.asarray(tokens).shape)
