"""Training budget against generation-0 quality for the default job: one
generation of `genloop run` per recipe, its FD on classifier features against the run's
own equal-N reference row (n = 359 per side, metrics.draws = 5 draws), and the seconds it
trained.

    python benchmarks/bench_default_recipe.py [--out DIR] [--w 1e-10] ["key=value key=value" ...]

Each positional argument is one recipe (a space-separated list of overrides of the
default preset); without any, the recipes below are run.  Prints one line per recipe.

RESULTS (2026-11-29, commit after e2108fa with fused AdamW, this 2-core machine idle, fp32
matmul bound 137-175 GFLOP/s over the session; w = 1e-10, the hardest setting; each line
one run of `genloop run -o DIR loop.generations=1 generator.guidance_scale=1e-10 RECIPE`,
reference row FD 6.128; the figures were printed by this script's loop body run as a
scratch script, same command and same reading of metrics.csv / reference.csv):

    recipe (train.*)                         FD     x ref   accuracy   train s
    steps=600  batch 128 lr 3e-3            29.60   4.83    0.951        8.3
    steps=1500 batch 128 lr 3e-3 (old)      16.08   2.62    0.977       27.9 (20.3-20.8 for w = 1, 0.1 in the same run)
    steps=2000 batch 128 lr 3e-3            13.58   2.22    0.981       34.9 *
    steps=3000 batch 128 lr 3e-3            10.84   1.77    0.991       43.7
    steps=500  batch 256 lr 8e-3            22.50   3.67    0.963        8.2
    steps=800  batch 256 lr 4e-3            16.74   2.73    0.976       14.1
    steps=800  batch 256 lr 8e-3            16.21   2.65    0.973       14.3
    steps=1200 batch 256 lr 5e-3            12.40   2.02    0.987       26.1 *
    steps=1600 batch 256 lr 5e-3 (new)      11.08   1.81    0.985       32.2 *
    steps=400  batch 512 lr 1.2e-2          19.60   3.20    0.978       10.7
    steps=600  batch 512 lr 3e-3            18.11   2.95    0.975       17.1
    steps=600  batch 512 lr 6e-3            15.59   2.54    0.984       17.8
    steps=1000 batch 512 lr 6e-3            11.34   1.85    0.991       32.7 *
    width 512 depth 2, steps=1000           17.36   2.83    0.960       23.2
    generator.ema_decay=0.995 (1500 steps)  16.08   2.62    0.977       25.3
    sampler.steps=50 (1500 steps)           16.37   2.67    0.978       26.0

    (* these ran while the machine was slower: 1200 x 256 should cost 1.5x 800 x 256)

    Narrower MLP (session 5, 2026-11-29; the same command, one chain at w = 1e-10; the cores
    were shared with a paper-mnist-cpu run, so "train s" is not comparable and is left out):
    width 128, steps=1600  batch 256 lr 5e-3  15.14   2.47    0.972
    width 128, steps=2400  batch 256 lr 5e-3  12.11   1.98    0.981
    width 128, steps=3200  batch 256 lr 5e-3  11.03   1.80    0.987
    Step time on the idle cores (forward, backward and fused AdamW of the MLP, batch 256,
    2 threads, 100 steps, twice): width 128 7.5 / 7.8 ms, width 192 10.9 / 11.5 ms, width 256
    16.0 / 16.5 ms.  So width 128 x 2,400 steps reaches FD <= 2x the reference with ~0.7x the training
    time of the preset (about 12 minutes for the job, estimated) and width 128 x 1,600 gives 2.5x
    at ~0.5x (about 8 minutes): better per second than width 256, still not 5 minutes at 2x.

Reading: quality is bought with training compute.  Larger batches with a higher learning
rate use the CPU better (a 256-image step costs ~1.6x a 128-image step) but no recipe
reaches FD <= 2x the reference in less than ~25 s of training per generation on these 2
cores; the ~9 s per generation a 5-minute job allows gives FD ~3.5x.  More sampler steps do
not help (the samples are limited by the network, not the solver).  `generator.ema_decay`
0.995 and 0.999 give identical samples at <= 1,500 steps: the EMA warm-up
min(decay, (1 + step) / (10 + step)) is below both until step 1,791.  torch.compile of the
MLP (measured separately: 10.1 -> 9.5 ms per step after a 25 s compile) and 3 chains in 3
one-thread worker processes (`--workers 3 --threads 1`: 50.7 s for the 3 chains' first
generation against ~62 s one after another, numbers identical) gain 5-25 %, not the 3x a
5-minute job would need.  The default preset takes 1,600 x 256 at lr 5e-3.
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPES = [
    "train.steps=1500 train.batch_size=128 train.lr=3e-3",
    "train.steps=800 train.batch_size=256 train.lr=4e-3",
    "train.steps=1600 train.batch_size=256 train.lr=5e-3",
    "train.steps=1000 train.batch_size=512 train.lr=6e-3",
]


def one(out: Path, w: str, recipe: str) -> str:
    overrides = recipe.split()
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "genloop", "run", "--no-progress", "-o", str(out), "loop.generations=1",
                        f"generator.guidance_scale={w}", *overrides], capture_output=True, text=True)
    if r.returncode:
        return f"{recipe}: failed\n{r.stderr[-2000:]}"
    ref = float(next(csv.DictReader(open(out / "reference.csv")))["fd_classifier"])
    row = next(csv.DictReader(open(out / "metrics.csv")))
    fd = float(row["fd_classifier"])
    return (f"{recipe:55s} FD {fd:6.2f} = {fd / ref:.2f}x ref {ref:.3f} | accuracy {float(row['accuracy']):.3f} | "
            f"train {float(row['train_seconds']):.1f} s | wall {time.perf_counter() - t:.0f} s")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--w", default="1e-10", help="guidance scale of the chain")
    ap.add_argument("recipes", nargs="*")
    args = ap.parse_args()
    base = Path(args.out or tempfile.mkdtemp(prefix="bench_recipe_"))
    for i, recipe in enumerate(args.recipes or RECIPES):
        print(one(base / f"r{i:02d}", args.w, recipe), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
