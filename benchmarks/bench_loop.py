"""Benchmark of the default job: the paper's MNIST experiment on the
embedded digits, 3 guidance values x 10 generations, on this machine's CPU.

Reports: wall time; seconds per generation split into train / sample / score;
the training step's achieved GFLOP/s against the measured fp32 matrix-product
bound; generation 0's classifier accuracy at w = 1.0 beside the classifier's
real-test accuracy; per-generation accuracy and cross-entropy of every chain.

Command:  python benchmarks/bench_loop.py [--out DIR] [--generations N] [key=value ...]

It also prints generation 0's equal-N FD (benchmarks/equal_n.py): FD(real test, 359 of the
generation's samples) against FD(real test, 359 real training images), 10 draws each (3
before 2026-11-29's last run: the figures below that say "3 draws" used 3).

RESULTS, current recipe (1,600 steps x 256 images at lr 5e-3, Min-SNR-5, DPM-Solver++(2M) 20
steps), whole job: the README's literal command in a clean clone of commit f60261f
(2026-11-29, machine otherwise idle): `pip install torch==2.13.0 -e . && genloop run` printed
"done in 950.2s" (962.6 s with the install); then this script on that finished folder
(`python benchmarks/bench_loop.py --out /tmp/final3/runs/default`: the run resumes with
nothing to do, so its "in 2.0s wall" line is the resume; the per-generation seconds are the
run's own rows):

    fp32 matmul bound (2048^3, 2 threads): 131.5 GFLOP/s
    training step: 1.418 GFLOP/step, 67.8 GFLOP/s achieved = 52% of the bound
    default job: 30 generations in 2.0s wall (0.03 min), run folder /tmp/final3/runs/default
      train_seconds   mean  30.11s  min  26.08s  max  38.79s
      sample_seconds  mean   0.88s  min   0.78s  max   1.07s
      score_seconds   mean   0.16s  min   0.11s  max   0.21s
      total_seconds   mean  31.15s  min  27.04s  max  40.04s
    classifier accuracy on the real test set: 0.9749 (cross-entropy 0.1256)
    generation 0 at w = 1.0: accuracy 1.0000
    reference (real test set vs real train): fd_classifier 6.128, precision 0.964, recall 0.953
    equal-N reference: FD(real test, 359 real train images) = 6.143 (10 draws; the run's own reference row: 6.128, 5 draws)
      generation 0, c00_guidance_scale=1: FD(real test, 359 samples) = 9.643 = 1.57x the reference
      generation 0, c01_guidance_scale=0.1: FD(real test, 359 samples) = 9.442 = 1.54x the reference
      generation 0, c02_guidance_scale=1e-10: FD(real test, 359 samples) = 10.553 = 1.72x the reference
    (per-generation tables: docs/results.md, "The default job")

Reading: generation-0 FD within 2x of the equal-N reference for every w (also by the run's
5-draw reference row too: 1.65x / 1.61x / 1.81x); the job takes 15.8 minutes (not 5;
benchmarks/bench_default_recipe.py measures why: quality costs training
compute, and the recipes that fit 5 minutes give FD ~3.5x).  The matmul bound on this
machine varied 131-175 GFLOP/s over the session (226 in an earlier session's machine).

RESULTS, previous recipe (1,500 steps x 128 at lr 3e-3), whole job (commit fe1e0d1, 2026-11-29; the test suite ran on the same
2 cores for the first ~13 minutes, so the wall time is not the idle time; the least-loaded
generations, 19-25 s, give about 10-12 minutes idle):

    fp32 matmul bound (2048^3, 2 threads): 166.0 GFLOP/s
    training step: 0.709 GFLOP/step, 49.6 GFLOP/s achieved = 30% of the bound
    default job: 30 generations in 1074.9s wall (17.91 min), run folder /work/coord/final_default2
      train_seconds   mean  34.41s  min  18.36s  max 181.90s
      sample_seconds  mean   1.04s  min   0.74s  max   5.95s
      score_seconds   mean   0.17s  min   0.10s  max   0.47s
      total_seconds   mean  35.62s  min  19.24s  max 184.99s
    classifier accuracy on the real test set: 0.9749 (cross-entropy 0.1256)
    generation 0 at w = 1.0: accuracy 1.0000
    reference (real test set vs real train): fd_classifier 6.128, precision 0.964, recall 0.953
    equal-N reference: FD(real test, 359 real train images) = 8.488 (3 draws)
      generation 0, c00_guidance_scale=1: FD(real test, 359 samples) = 11.833 = 1.39x the reference
      generation 0, c01_guidance_scale=0.1: FD(real test, 359 samples) = 13.152 = 1.55x the reference
      generation 0, c02_guidance_scale=1e-10: FD(real test, 359 samples) = 15.213 = 1.79x the reference

(The equal-N reference at n = 359 is noisy: 10 draws give 6.14 +- 2.69, against which the
generation-0 ratios are 1.91x / 2.25x / 2.62x; see docs/results.md.)

RESULTS, previous recipe (1,500 steps at lr 3e-3, Min-SNR-5, DPM-Solver++(2M) 20 steps), one generation:
python benchmarks/bench_loop.py --out /tmp/i10/bench_loop_g1 --generations 1, 2026-11-29, 2 cores
HEAVILY LOADED by other jobs (note the matmul rate, 31 against 226 GFLOP/s idle), so the
seconds are not the job's idle time:

    fp32 matmul bound (2048^3, 2 threads): 31.0 GFLOP/s
    training step: 0.709 GFLOP/step, 12.1 GFLOP/s achieved = 39% of the bound
    default job: 3 generations in 360.2s wall (6.00 min), run folder /tmp/i10/bench_loop_g1
      train_seconds   mean 106.50s  min  93.10s  max 124.23s
      sample_seconds  mean   4.57s  min   3.66s  max   5.34s
      score_seconds   mean   1.30s  min   0.46s  max   1.77s
      total_seconds   mean 112.37s  min  99.49s  max 130.03s
    classifier accuracy on the real test set: 0.9749 (cross-entropy 0.1256)
    generation 0 at w = 1.0: accuracy 1.0000
    reference (real test set vs real train): fd_classifier 2.463, precision 0.981, recall 0.960
    equal-N reference: FD(real test, 359 real train images) = 8.488 (3 draws)
      generation 0, c00_guidance_scale=1: FD(real test, 359 samples) = 11.833 = 1.39x the reference
      generation 0, c01_guidance_scale=0.1: FD(real test, 359 samples) = 13.152 = 1.55x the reference
      generation 0, c02_guidance_scale=1e-10: FD(real test, 359 samples) = 15.213 = 1.79x the reference
    chain w = 1:     gen 0 | acc 1.000 | ce 0.000 | fd 6.3 | prec 0.989 | rec 0.595
    chain w = 0.1:   gen 0 | acc 0.987 | ce 0.031 | fd 9.0 | prec 0.955 | rec 0.836
    chain w = 1e-10: gen 0 | acc 0.977 | ce 0.065 | fd 11.3 | prec 0.938 | rec 0.853

Reading: generation-0 FD is within 2x of the equal-N real reference for every w (the previous recipe: 1.53x / 3.43x / 4.13x, measured the same way with a scratch script).
Idle time is estimated, not measured: 1,500 steps x 0.709 GFLOP at the idle ~117 GFLOP/s is
~9 s per generation, about 5 minutes for the whole job.

RESULTS, previous recipe (800 steps, DDIM 25 steps; the figures below are that recipe's):

(python benchmarks/bench_loop.py --out /tmp/bench_loop2, 2026-11-29, 2 cores, machine
otherwise idle; an earlier run while other jobs loaded the machine took 19 min, so timings
need an idle machine):

    fp32 matmul bound (2048^3, 2 threads): 225.7 GFLOP/s
    training step: 0.709 GFLOP/step, 117.3 GFLOP/s achieved = 52% of the bound
    metrics: fd with classifier features on 1438 real and 359 fake samples (< 1000): the estimate is biased upwards (the bias shrinks like 1/N; compare FDs only at equal sample counts); see docs/metrics.md for the sample counts it needs
    metrics: prdc with classifier features on 1438 real and 359 fake samples (< 1000): the estimate is noisy (density and coverage especially; k-NN radii from few samples are unstable); see docs/metrics.md for the sample counts it needs
    default job: 30 generations in 200.0s wall (3.33 min), run folder /tmp/bench_loop2
      train_seconds   mean   5.79s  min   5.51s  max   6.15s
      sample_seconds  mean   0.69s  min   0.66s  max   0.74s
      score_seconds   mean   0.09s  min   0.06s  max   0.15s
      total_seconds   mean   6.57s  min   6.26s  max   6.93s
    classifier accuracy on the real test set: 0.9749 (cross-entropy 0.1258)
    generation 0 at w = 1.0: accuracy 0.9993
    reference (real test set vs real train): fd_classifier 2.639, precision 0.978, recall 0.959
    chain w = 1:
      gen |    acc |     ce |     fd |   prec |    rec
        0 |  0.999 |  0.002 |    9.9 |  0.921 |  0.631
        1 |  1.000 |  0.000 |   27.8 |  0.801 |  0.089
        2 |  1.000 |  0.000 |   45.9 |  0.619 |  0.004
        3 |  1.000 |  0.000 |   67.6 |  0.414 |  0.000
        4 |  1.000 |  0.000 |   87.2 |  0.276 |  0.000
        5 |  1.000 |  0.000 |  110.3 |  0.186 |  0.000
        6 |  1.000 |  0.000 |  137.5 |  0.085 |  0.000
        7 |  1.000 |  0.000 |  154.9 |  0.061 |  0.000
        8 |  1.000 |  0.000 |  171.1 |  0.029 |  0.000
        9 |  1.000 |  0.000 |  181.8 |  0.019 |  0.000
    chain w = 0.1:
      gen |    acc |     ce |     fd |   prec |    rec
        0 |  0.944 |  0.191 |   24.0 |  0.790 |  0.863
        1 |  0.891 |  0.399 |   82.3 |  0.512 |  0.664
        2 |  0.798 |  0.822 |  171.4 |  0.272 |  0.458
        3 |  0.731 |  1.074 |  273.4 |  0.136 |  0.361
        4 |  0.655 |  1.326 |  380.3 |  0.067 |  0.303
        5 |  0.597 |  1.485 |  482.9 |  0.035 |  0.162
        6 |  0.540 |  1.723 |  584.2 |  0.010 |  0.184
        7 |  0.503 |  1.731 |  647.6 |  0.006 |  0.016
        8 |  0.490 |  1.812 |  708.3 |  0.003 |  0.026
        9 |  0.442 |  1.936 |  754.7 |  0.001 |  0.013
    chain w = 1e-10:
      gen |    acc |     ce |     fd |   prec |    rec
        0 |  0.923 |  0.297 |   29.9 |  0.755 |  0.872
        1 |  0.808 |  0.752 |  102.0 |  0.448 |  0.655
        2 |  0.661 |  1.576 |  207.4 |  0.229 |  0.412
        3 |  0.535 |  2.147 |  320.6 |  0.111 |  0.246
        4 |  0.421 |  2.637 |  436.0 |  0.067 |  0.188
        5 |  0.360 |  2.957 |  538.7 |  0.024 |  0.076
        6 |  0.287 |  3.259 |  639.7 |  0.010 |  0.123
        7 |  0.243 |  3.377 |  704.3 |  0.003 |  0.002
        8 |  0.180 |  3.736 |  760.8 |  0.004 |  0.002
        9 |  0.153 |  3.881 |  802.0 |  0.003 |  0.001

Reading: the job takes 3.3 min.  Per generation 6.6 s: train 5.8 s
(800 steps x 0.71 GFLOP at ~117 GFLOP/s, about half the measured fp32 matmul bound; the
MLP's 256-wide matrices are small for this CPU's GEMM), sample 0.7 s, score 0.1 s.
Generation 0 at w = 1.0 reaches 0.999 classifier accuracy (classifier on the real test
set: 0.975).  Strong guidance keeps accuracy at 1.0 but loses diversity (recall on
classifier features falls from 0.63 to 0 by generation 3, FD grows); weak and no guidance
lose both accuracy and fidelity every generation, as in the paper's Figure 2.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))


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
    ap.add_argument("overrides", nargs="*", help="extra key=value overrides (e.g. for a quick check)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    from genloop.loading import from_dict, load_raw
    from genloop.reference import preset_path
    from genloop import run
    from genloop.runfolder import RunStore, read_csv

    raw = load_raw(preset_path("default"), [f"loop.generations={args.generations}"] + args.overrides)
    chains_cfg = from_dict({**raw, "generator": {**raw["generator"], "guidance_scale": 1.0}})
    bound = matmul_bound()
    gflop, rate = train_step_rate(chains_cfg)
    print(f"fp32 matmul bound (2048^3, 2 threads): {bound:.1f} GFLOP/s")
    print(f"training step: {gflop:.3f} GFLOP/step, {rate:.1f} GFLOP/s achieved = {100 * rate / bound:.0f}% of the bound")

    out = Path(args.out or tempfile.mkdtemp(prefix="bench_loop_"))
    t0 = time.perf_counter()
    run(raw, out, report=False, force=True)
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
    print(f"reference (real test set vs real train): fd_classifier {ref.get('fd_classifier', float('nan')):.3f}, "
          f"precision {ref.get('precision_classifier', float('nan')):.3f}, recall {ref.get('recall_classifier', float('nan')):.3f}")
    from equal_n import EqualN

    eq = EqualN(out, draws=10)  # FD at n = 359 varies by ~2.7 between draws: average 10
    print(f"equal-N reference: FD(real test, {eq.n} real train images) = {eq.reference:.3f} (10 draws; the run's "
          f"own reference row: {ref.get('fd_classifier', float('nan')):.3f}, 5 draws)")
    for c in RunStore(out).chains():
        if RunStore(out).is_done(c["id"], 0):
            f = eq.fd_generation(c["id"], 0)
            print(f"  generation 0, {c['id']}: FD(real test, {eq.n} samples) = {f:.3f} = {f / eq.reference:.2f}x the reference")
    chains = sorted({r["generator.guidance_scale"] for r in rows}, reverse=True)
    cols = [("accuracy", "acc", ".3f"), ("cross_entropy", "ce", ".3f"), ("fd_classifier", "fd", ".1f"),
            ("precision_classifier", "prec", ".3f"), ("recall_classifier", "rec", ".3f")]
    for w in chains:
        print(f"chain w = {w:g}:")
        print("  gen | " + " | ".join(f"{lab:>6s}" for _, lab, _ in cols))
        for g in range(args.generations):
            r = [x for x in rows if x["generation"] == g and x["generator.guidance_scale"] == w]
            if r:
                print(f"  {g:3d} | " + " | ".join(f"{r[0].get(c, float('nan')):6{fmt}}" for c, _, fmt in cols))
    return 0


if __name__ == "__main__":
    import genloop

    genloop.load_builtins()  # this script calls genloop.loading and the runner directly
    sys.exit(main())
