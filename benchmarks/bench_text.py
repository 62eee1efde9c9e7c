"""Text benchmarks: the gpt generator's training throughput against the fp32 matrix-product
bound measured in the same process, KV-cache generation against recomputation, and the
ngram generator's fit/sample speed.

    python benchmarks/bench_text.py [--width 128 --depth 4 --block 64 --batch 32 --steps 30]

Training FLOPs per token are ``GPT.flops_per_token`` (6 x matrix-product parameters + 12 x
depth x context x width); the bound is the best GFLOP/s of ``torch.mm`` on the shapes of
the model's largest products (batch x block rows).  Figures: see FIGURES below (filled in
from a run; the command line and whether the machine was loaded are stated there).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

FIGURES = """
python benchmarks/bench_text.py --width 96 --depth 3 --heads 4 --block 64 --batch 32 --vocab 2000 --steps 20 --threads 2
(the `text` preset's model; 2026-11-29, this 2-core machine idle, fused AdamW as in training):
  gpt width 96 depth 3 block 64 batch 32 vocab 2000, 2 thread(s): 3.36 MFLOP per training token
  fp32 matmul bound: 148.0 GFLOP/s
  training: 23,464 tokens/s = 78.9 GFLOP/s = 0.53 of the bound (1.88x from it)
  generation (64 blocks of 64): KV cache 8,792 tokens/s, recomputation 2,032 tokens/s (4.3x)
  ngram order 3 on Shakespeare (1,016,128 training tokens): fit 0.07 s, sample as many tokens 0.67 s
Target "gpt training within 2x of the bound": met (1.88x; an earlier run of the same command
with the unfused AdamW and one timing round printed 2.38x, one before that 1.96x: the margin
is small and the machine's speed varies by ~15 % from run to run).  In the `text` run
itself (`genloop run -p text`, 30 generations in 518 s) a generation trains 100 steps of
2,048 tokens in 7.3-10.3 s: 20,000-28,000 tokens/s, the same rate.
Earlier, on a machine loaded by other jobs (load ~3.5) and the benchmark's default model
(width 128, depth 4, vocab 8,000): 1,325 tokens/s, 6.75x from the bound.
"""


def matmul_bound(rows: int, width: int, repeat: int = 5) -> float:
    """Best GFLOP/s of fp32 torch.mm over the MLP's products (rows x w) @ (w x 4w) and back."""
    best = 0.0
    for k, n in ((width, 4 * width), (4 * width, width), (width, 3 * width)):
        a, b = torch.randn(rows, k), torch.randn(k, n)
        torch.mm(a, b)
        for _ in range(repeat):
            t = time.perf_counter()
            for _ in range(5):
                torch.mm(a, b)
            dt = (time.perf_counter() - t) / 5
            best = max(best, 2.0 * rows * k * n / dt / 1e9)
    return best


def train_throughput(net, vocab: int, block: int, batch: int, steps: int) -> tuple[float, float]:
    """(tokens/s, GFLOP/s) of AdamW training steps on random blocks (after 3 warm-up steps; the best of 3 rounds of ``steps``)."""
    from genloop.generators.gpt import inputs
    from genloop.generators.training import make_optimizer

    opt = make_optimizer(net, 1e-3, 0.01)  # the optimiser the gpt generator trains with
    g = torch.Generator().manual_seed(0)
    net.train()

    def step():
        y = torch.randint(2, vocab, (batch, block), generator=g)
        loss = F.cross_entropy(net(inputs(y)).reshape(-1, vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    dt = float("inf")
    for _ in range(3):  # best of 3 rounds, as the bound is the best of its repeats
        t = time.perf_counter()
        for _ in range(steps):
            step()
        dt = min(dt, time.perf_counter() - t)
    tok_s = steps * batch * block / dt
    return tok_s, tok_s * net.flops_per_token(block) / 1e9


def generation_speed(net, vocab: int, block: int, n: int) -> tuple[float, float]:
    """Tokens/s of generating n blocks with the KV cache and by recomputing the whole prefix."""
    from genloop.config import DecodeConfig
    from genloop.generators.decoding import generate
    from genloop.models.gpt import KVCache

    net.eval()

    def cached(seq, cache):
        cache = cache if cache is not None else KVCache()
        return net(seq[:, cache.length:], cache)[:, -1], cache

    def full(seq, state):
        return net(seq)[:, -1], None

    out = []
    for fn in (cached, full):
        with torch.no_grad():
            t = time.perf_counter()
            generate(fn, lambda c, r: c, torch.zeros((n, 0), dtype=torch.long), block, DecodeConfig(),
                     torch.Generator().manual_seed(0))
            out.append(n * block / (time.perf_counter() - t))
    return out[0], out[1]


def ngram_speed() -> tuple[float, float, int]:
    """Seconds to fit and to sample an order-3 Kneser-Ney on the Shakespeare training blocks (word tokens)."""
    from genloop.config import DataConfig
    from genloop.data import load_real
    from genloop.models.ngram import KneserNey

    real = load_real(DataConfig(name="shakespeare"))
    t = time.perf_counter()
    m = KneserNey(3, real.train.vocab_size).fit(real.train.tokens)
    fit = time.perf_counter() - t
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    seq = np.zeros((len(real.train), 2), dtype=np.int64)
    for _ in range(real.train.shape[0]):
        seq = np.concatenate([seq, m.sample_next(seq[:, -2:], rng)[:, None]], 1)
    return fit, time.perf_counter() - t, real.train.tokens.size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from genloop.models.gpt import GPT

    torch.manual_seed(0)
    net = GPT(args.vocab, args.block, args.width, args.depth, args.heads)
    bound = matmul_bound(args.batch * args.block, args.width)
    tok_s, gflops = train_throughput(net, args.vocab, args.block, args.batch, args.steps)
    print(f"gpt width {args.width} depth {args.depth} block {args.block} batch {args.batch} vocab {args.vocab}, "
          f"{args.threads} thread(s): {net.flops_per_token(args.block) / 1e6:.2f} MFLOP per training token")
    print(f"fp32 matmul bound: {bound:.1f} GFLOP/s")
    print(f"training: {tok_s:,.0f} tokens/s = {gflops:.1f} GFLOP/s = {gflops / bound:.2f} of the bound "
          f"({bound / gflops:.2f}x from it)")
    cached, full = generation_speed(net, args.vocab, args.block, 64)
    print(f"generation (64 blocks of {args.block}): KV cache {cached:,.0f} tokens/s, recomputation {full:,.0f} tokens/s "
          f"({cached / full:.1f}x)")
    fit, sample, n = ngram_speed()
    print(f"ngram order 3 on Shakespeare ({n:,} training tokens): fit {fit:.2f} s, sample as many tokens {sample:.2f} s")


if __name__ == "__main__":
    main()
