"""An interpolated Kneser-Ney n-gram language model (Kneser & Ney 1995; the
interpolated form of Chen & Goodman 1998, one discount per order): fitting and
sampling are vectorised numpy, seconds per generation.  The ``ngram`` generator
(``genloop.generators.ngram``) wraps it; the text metrics' judge and curation's
text filter use it too, which is why it lives here, below both.

Every block is a sequence started by n - 1 ``<bos>`` tokens.  With c the
counts of the highest order and, for the lower orders, the continuation
counts N1+(. h w) (the number of distinct tokens seen before h w), except
that a lower-order n-gram starting with ``<bos>`` keeps its raw count (its only
left context is ``<bos>``, so its continuation count would always be 1; KenLM
does the same for n-grams starting with ``<s>``)::

    P_k(w | h) = max(c_k(h w) - D_k, 0) / c_k(h) + D_k N1+(h .) / c_k(h) P_{k-1}(w | h')

(h' drops h's oldest token; P_k = P_{k-1} for a context never seen), down to
P_0 uniform over every token but ``<bos>``.  D_k = n1 / (n1 + 2 n2) from the
numbers of k-grams seen once and twice (Ney et al. 1994).

``sample_next`` uses the mixture form of the same formula (descend from the
highest order with the probabilities of the discounted counts; exact, no
V-sized vectors); ``dist`` builds the full next-token distribution.
``state_dict`` holds every order's sorted n-gram keys and counts (int64).
"""
from __future__ import annotations

import numpy as np
import torch

# The id of ``<bos>``: every text vocabulary puts it first (``genloop.data.text.BOS``).
BOS = 0


class KneserNey:
    """Interpolated Kneser-Ney of order ``order`` over ids 0..vocab-1, fitted on (N, L) blocks."""

    def __init__(self, order: int, vocab: int) -> None:
        if vocab ** order >= 2**62:
            raise ValueError(f"generator.ngram.order: {order} with {vocab} tokens overflows the 64-bit n-gram keys "
                             "(use a smaller order or data.vocab_size)")
        self.n, self.v = order, vocab
        self.levels: list[dict] = []

    # ---------------------------------------------------------------- fitting
    def padded(self, tokens: np.ndarray) -> np.ndarray:
        t = np.asarray(tokens, dtype=np.int64)
        return np.concatenate([np.full((len(t), self.n - 1), BOS, dtype=np.int64), t], 1)

    def windows(self, tokens: np.ndarray) -> np.ndarray:
        """(N * L, n) int64: each token with its n - 1 predecessors (<bos>-padded)."""
        p = self.padded(tokens)
        n, length = tokens.shape
        return np.lib.stride_tricks.sliding_window_view(p, self.n, axis=1).reshape(n * length, self.n)

    def key(self, grams: np.ndarray) -> np.ndarray:
        k = np.zeros(len(grams), dtype=np.int64)
        for j in range(grams.shape[1]):
            k = k * self.v + grams[:, j]
        return k

    def fit(self, tokens: np.ndarray) -> "KneserNey":
        grams = self.windows(tokens)
        levels = []
        top_keys, top_counts = np.unique(self.key(grams), return_counts=True)
        keys, counts = top_keys, top_counts
        for k in range(self.n, 0, -1):
            if k < self.n:  # continuation counts: distinct left extensions of each k-gram ...
                keys, counts = np.unique(prev_keys % self.v ** k, return_counts=True)
                # ... except for k-grams that start with <bos>, whose only left extension is <bos>:
                # their raw counts (as KenLM does for n-grams that start with <s>)
                suffix, inv = np.unique(top_keys % self.v ** k, return_inverse=True)
                raw = np.bincount(inv.reshape(-1), weights=top_counts).astype(np.int64)
                assert np.array_equal(suffix, keys)
                counts = np.where(keys // self.v ** (k - 1) == BOS, raw, counts)
            levels.append(self._level(keys, counts.astype(np.int64)))
            prev_keys = keys
        self.levels = levels[::-1]  # levels[k - 1] is order k
        return self

    def _level(self, keys: np.ndarray, counts: np.ndarray) -> dict:
        n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
        d = n1 / (n1 + 2 * n2) if n1 + 2 * n2 > 0 and n1 > 0 else 0.5
        d = min(max(d, 1e-3), 0.999)
        ctx = keys // self.v
        ctx_keys, start, types = np.unique(ctx, return_index=True, return_counts=True)
        cum = np.concatenate([[0], np.cumsum(counts)])
        total = cum[start + types] - cum[start]
        cumd = np.concatenate([[0.0], np.cumsum(counts - d)])
        return {"keys": keys, "counts": counts, "d": d, "ctx": ctx_keys, "start": start, "types": types,
                "total": total, "cumd": cumd}

    def _context(self, level: dict, hist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Index of each history's order-k context in ``level`` (and whether it was seen)."""
        ck = self.key(hist[:, hist.shape[1] - (k - 1):]) if k > 1 else np.zeros(len(hist), dtype=np.int64)
        i = np.searchsorted(level["ctx"], ck)
        i = np.minimum(i, len(level["ctx"]) - 1)
        return i, level["ctx"][i] == ck

    # ---------------------------------------------------------------- probabilities
    def prob(self, hist: np.ndarray, w: np.ndarray) -> np.ndarray:
        """P(w | the last n - 1 tokens of ``hist``) for rows of ``hist`` (B, n - 1) and ``w`` (B,)."""
        p = np.where(w == BOS, 0.0, 1.0 / (self.v - 1))
        for k in range(1, self.n + 1):
            lv = self.levels[k - 1]
            i, seen = self._context(lv, hist, k)
            ck = self.key(hist[:, hist.shape[1] - (k - 1):]) if k > 1 else np.zeros(len(hist), dtype=np.int64)
            full = ck * self.v + w
            j = np.minimum(np.searchsorted(lv["keys"], full), len(lv["keys"]) - 1)
            c = np.where(lv["keys"][j] == full, lv["counts"][j], 0)
            t = lv["total"][i].astype(np.float64)
            q = np.maximum(c - lv["d"], 0.0) / t + lv["d"] * lv["types"][i] / t * p
            p = np.where(seen, q, p)
        return p

    def log_probs(self, tokens: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
        """log P of every token of (N, L) blocks given its block prefix."""
        g = self.windows(tokens)
        out = np.empty(len(g))
        for s in range(0, len(g), chunk):
            part = g[s:s + chunk]
            out[s:s + chunk] = np.log(self.prob(part[:, :-1], part[:, -1]))
        return out.reshape(tokens.shape)

    def dist(self, hist: np.ndarray) -> np.ndarray:
        """Full next-token distributions (B, V) for histories (B, n - 1)."""
        b = len(hist)
        p = np.full((b, self.v), 1.0 / (self.v - 1))
        p[:, BOS] = 0.0
        for k in range(1, self.n + 1):
            lv = self.levels[k - 1]
            i, seen = self._context(lv, hist, k)
            rows = np.flatnonzero(seen)
            if not len(rows):
                continue
            ii = i[rows]
            t = lv["total"][ii].astype(np.float64)
            p[rows] *= (lv["d"] * lv["types"][ii] / t)[:, None]
            lens = lv["types"][ii]
            r = np.repeat(np.arange(len(rows)), lens)
            pos = np.repeat(lv["start"][ii], lens) + (np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens))
            np.add.at(p, (rows[r], lv["keys"][pos] % self.v), (lv["counts"][pos] - lv["d"]) / t[r])
        return p

    def sample_next(self, hist: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One next token per history row, drawn exactly from P(. | hist) by descending the orders."""
        b = len(hist)
        out = np.full(b, -1, dtype=np.int64)
        active = np.arange(b)
        for k in range(self.n, 0, -1):
            if not len(active):
                break
            lv = self.levels[k - 1]
            i, seen = self._context(lv, hist[active], k)
            t = lv["total"][i].astype(np.float64)
            u = rng.random(len(active)) * t
            take = seen & (u < t - lv["d"] * lv["types"][i])
            if take.any():
                ii = i[take]
                target = lv["cumd"][lv["start"][ii]] + u[take]
                j = np.searchsorted(lv["cumd"], target, side="right") - 1
                j = np.clip(j, lv["start"][ii], lv["start"][ii] + lv["types"][ii] - 1)
                out[active[take]] = lv["keys"][j] % self.v
            active = active[~take]
        if len(active):  # the uniform base: any token but <bos>
            out[active] = rng.integers(1, self.v, len(active))
        return out

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict:
        out = {}
        for k, lv in enumerate(self.levels, 1):
            out[f"order{k}.keys"] = torch.from_numpy(lv["keys"].copy())
            out[f"order{k}.counts"] = torch.from_numpy(lv["counts"].copy())
        return out

    @classmethod
    def from_state(cls, state: dict, order: int, vocab: int) -> "KneserNey":
        m = cls(order, vocab)
        levels = []
        for k in range(1, order + 1):
            levels.append(m._level(state[f"order{k}.keys"].numpy(), state[f"order{k}.counts"].numpy()))
        m.levels = levels
        return m
