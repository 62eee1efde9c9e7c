"""Benchmark of the interaction models with the analytic ``gaussian`` generator:
a 200-generation chain on 1-D Gaussian data (``data.name=gaussian``, 125 points:
100 train / 25 test, N(0, 1)) under every interaction model, 20 seeds each,
run in memory by ``genloop.loop.run_in_memory`` (the chain runner of ``genloop.run``
without the run folder; called ``simulate`` when the output below was recorded).  Reports the time per model, the total, and the
final generation's variance ratio var(samples) / var(real train) (mean, sd and
median over seeds) and Fréchet distance; plus the per-generation overhead of
the run folder (``genloop.run``, from the prepared folder to the written tables) on one
200-generation chain.

Applicability to unlabelled 1-D data: every model runs; two options are adapted:
- ``curate`` with ``curate_threshold`` needs the domain classifier, i.e. labelled
  data (a ConfigError here), so it runs as ``curate_top_fraction=0.9``: keep the
  90% of samples with the highest log-density under a Gaussian fitted to the real data;
- ``fresh``'s automatic reserve (no image ever reused) cannot give 10% fresh points
  to 199 generations from 100 points (a ConfigError), so it runs with
  ``fresh_reserve=0.5`` (50 points held back, 5 fresh per generation, reused after
  10 generations).

Command:  python benchmarks/bench_interactions.py [--seeds 20] [--generations 200] [--count 125]

Output of that command on this machine (2 CPU cores, shared with other jobs):

    $ python benchmarks/bench_interactions.py --seeds 20 --generations 200 --count 125
    gaussian generator, 1-D N(0,1) data, n = 100 train points, 200 generations, 20 seeds per model
    theory, replace: E[var ratio of the last samples] = ((n-1)/n)^200 = 0.134; E[log] = 200 x E[log chi2_(n-1)/n] (median -> 0)

    | model | options | time (s) | variance ratio, mean ± sd | median | Fréchet, mean | final pool |
    | --- | --- | ---: | ---: | ---: | ---: | ---: |
    | replace | - | 0.8 | 0.120 ± 0.211 | 0.012 | 1.2089 | 100 |
    | mix | real_fraction=0.5 | 0.8 | 0.986 ± 0.174 | 0.977 | 0.0293 | 100 |
    | mix | real_fraction=0.1 | 0.8 | 0.892 ± 0.196 | 0.897 | 0.0774 | 100 |
    | accumulate | - | 3.3 | 0.977 ± 0.163 | 0.993 | 0.0278 | 20000 |
    | accumulate_subsample | - | 3.6 | 0.993 ± 0.227 | 0.990 | 0.0504 | 100 |
    | fresh | fresh_fraction=0.1 fresh_reserve=0.5 | 0.8 | 0.855 ± 0.408 | 0.701 | 0.1696 | 50 |
    | curate | curate_top_fraction=0.9 | 0.8 | 0.000 ± 0.000 | 0.000 | 1.0284 | 90 |
    | detect | detector=oracle | 0.9 | 1.002 ± 0.156 | 0.973 | 0.0150 | 105 |
    | detect | detector=learned | 2.7 | 0.629 ± 0.334 | 0.565 | 0.3438 | 94 |
    | ecosystem | lineages=[{}, {name: kde, bandwidth: 0.05}] shares=[0.5, 0.5] | 2.9 | 0.169 ± 0.210 | 0.076 | 1.9028 | 100 |

    total: 17.4 s for 10 models x 20 seeds x 200 generations (0.43 ms per generation)
    ecosystem per-lineage variance ratio (mean): l0 0.164, l1 0.170
    one replace chain through the runner (run folder, durable writes): 2.40 s = 12.0 ms per generation; in memory (simulate): 0.04 s = 0.22 ms per generation

(``curate``'s variance ratio is exactly 0: cutting the tails shrinks the variance
by ~0.6 per generation, so after 200 the float32 samples are all equal.  The
runner's ~12 ms per generation is its durable writes - samples, provenance,
model, metrics and the DONE marker fsynced - against ~0.2 ms of work.)
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from genloop.loading import from_dict, load_raw  # noqa: E402
from genloop.data import load_real  # noqa: E402
from genloop.loop import run_in_memory  # noqa: E402

MODELS = [
    ("replace", []),
    ("mix", ["loop.real_fraction=0.5"]),
    ("mix", ["loop.real_fraction=0.1"]),
    ("accumulate", []),
    ("accumulate_subsample", []),
    ("fresh", ["loop.fresh_fraction=0.1", "loop.fresh_reserve=0.5"]),
    ("curate", ["loop.curate_top_fraction=0.9"]),
    ("detect", ["loop.detector=oracle"]),
    ("detect", ["loop.detector=learned"]),
    ("ecosystem", ["loop.lineages=[{}, {name: kde, bandwidth: 0.05}]", "loop.shares=[0.5, 0.5]"]),
]


def base(args) -> list[str]:
    return ["data.name=gaussian", f"data.count={args.count}", "data.dim=1", "generator.name=gaussian",
            "metrics.names=[variance_ratio,frechet]", f"loop.generations={args.generations}", "device=cpu"]


def run_model(name: str, extra: list[str], args) -> dict:
    cfg = from_dict(load_raw(None, base(args) + [f"loop.interaction={name}", *extra]))
    real = load_real(cfg.data)
    t = time.perf_counter()
    finals = [run_in_memory(dataclasses.replace(cfg, seed=s), real)[-1] for s in range(args.seeds)]
    dt = time.perf_counter() - t
    vr = [r["variance_ratio"] for r in finals]
    out = {"model": name, "options": " ".join(e.split(".", 1)[1] for e in extra), "seconds": dt,
           "vr_mean": statistics.mean(vr), "vr_sd": statistics.stdev(vr) if len(vr) > 1 else 0.0,
           "vr_median": statistics.median(vr), "fd_mean": statistics.mean(r["frechet"] for r in finals),
           "pool": statistics.mean(r["pool_size"] for r in finals)}
    if name == "ecosystem":
        out["lineages"] = ", ".join(f"l{k} {statistics.mean(r[f'variance_ratio_l{k}'] for r in finals):.3f}"
                                    for k in range(2))
    return out


def runner_overhead(args) -> tuple[float, float]:
    """Seconds of one chain through ``genloop.run`` (run folder, fsync; from the prepared
    folder to the written tables, no report) and in memory."""
    import genloop

    raw = load_raw(None, base(args) + ["loop.interaction=replace"])
    started: list = []
    with tempfile.TemporaryDirectory() as d:
        genloop.run(raw, Path(d) / "run", report=False,
                    on_reference=lambda refs: started.append(time.perf_counter()))  # data, reference rows ready
        runner = time.perf_counter() - started[0]
    t = time.perf_counter()
    run_in_memory(from_dict(raw))
    return runner, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--generations", type=int, default=200)
    ap.add_argument("--count", type=int, default=125)
    args = ap.parse_args()
    logging.getLogger("genloop").setLevel(logging.ERROR)  # fresh's "reserve reused" warning, once per seed
    n = args.count - round(args.count * 0.2)
    print(f"gaussian generator, 1-D N(0,1) data, n = {n} train points, {args.generations} generations, "
          f"{args.seeds} seeds per model")
    print(f"theory, replace: E[var ratio of the last samples] = ((n-1)/n)^{args.generations} "
          f"= {((n - 1) / n) ** args.generations:.3f}; E[log] = {args.generations} x E[log chi2_(n-1)/n] "
          "(median -> 0)")
    t0 = time.perf_counter()
    rows = [run_model(name, extra, args) for name, extra in MODELS]
    total = time.perf_counter() - t0
    print()
    print("| model | options | time (s) | variance ratio, mean ± sd | median | Fréchet, mean | final pool |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    def f(v: float) -> str:
        return f"{v:.3f}" if v >= 0.001 or v == 0 else f"{v:.1e}"

    for r in rows:
        print(f"| {r['model']} | {r['options'] or '-'} | {r['seconds']:.1f} | {f(r['vr_mean'])} ± {f(r['vr_sd'])} "
              f"| {f(r['vr_median'])} | {r['fd_mean']:.4f} | {r['pool']:.0f} |")
    print(f"\ntotal: {total:.1f} s for {len(rows)} models x {args.seeds} seeds x {args.generations} generations "
          f"({total / (len(rows) * args.seeds * args.generations) * 1e3:.2f} ms per generation)")
    for r in rows:
        if "lineages" in r:
            print(f"ecosystem per-lineage variance ratio (mean): {r['lineages']}")
    runner, memory = runner_overhead(args)
    g = args.generations
    print(f"one replace chain through the runner (run folder, durable writes): {runner:.2f} s "
          f"= {runner / g * 1e3:.1f} ms per generation; in memory (run_in_memory): {memory:.2f} s = "
          f"{memory / g * 1e3:.2f} ms per generation")


if __name__ == "__main__":
    import genloop

    genloop.load_builtins()  # this script calls genloop.loading and the runner directly
    main()
