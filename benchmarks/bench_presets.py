"""Time one generation of each CPU preset on this machine, to size them.

The real datasets (MNIST, Flowers-102, CUB-200) and the Inception weights cannot be
downloaded here, so each preset runs on a stand-in of the same tensor shapes and sizes:
- paper-mnist-cpu: the embedded digits resized to 28x28 (1,437 training images instead of
  2,000; the time per generation is scaled by 2000/1437 for the data-size-dependent parts:
  sampling and scoring);
- paper-flowers-cpu / paper-birds-cpu (identical settings): the embedded `shapes` at 32x32
  with 1,500 training images, and an Inception network with random weights in the
  published file format (same cost as the real one);
- shapes: as shipped.
A preset's estimated run time = chains x generations x measured seconds per generation.

Command:  python benchmarks/bench_presets.py [--full] [PRESET ...]
(--full runs every chain and generation of the preset instead of one generation.)
RESULTS (2026-11-29, 2 cores, machine otherwise idle; two runs, the first stopped after
paper-mnist-cpu by a bug since fixed (unconditional samples carried labels)):

    $ python benchmarks/bench_presets.py
    (paper-mnist-cpu below is the PREVIOUS preset, a width-16 U-Net with T = 400 and DDIM, replaced on
    2026-11-29 by the paper-mnist-small recipe at 28x28, whose times on real digits are in the preset's
    comments; this line was not re-measured)
    paper-mnist-cpu    1 generation: train 56.6s, sample 35.5s, score 0.1s (scaled to the preset's size: 106.2s); set-up 2.9s -> estimated 3 chain(s) x 10 generations = 53.1 min
    $ python benchmarks/bench_presets.py paper-flowers-cpu shapes
    paper-flowers-cpu  1 generation: train 132.1s, sample 99.4s, score 115.6s (scaled to the preset's size: 347.2s); set-up 152.5s -> estimated 1 chain(s) x 10 generations = 60.4 min
    shapes             1 generation: train 110.4s, sample 79.0s, score 2.4s (scaled to the preset's size: 191.8s); set-up 88.5s -> estimated 1 chain(s) x 6 generations = 20.7 min

After this run paper-flowers-cpu / paper-birds-cpu were cut from 1,500 to 1,200 training
images: sampling and Inception scoring scale with the image count, so the estimate becomes
132 + 0.8 x 215 = 304 s per generation, about 51 min plus about 2.5 min of set-up (not
re-measured).  Inception-v3 at 299x299 runs at about 13 images/s here; it dominates scoring.
These are estimates from one measured generation, not full runs.

A FULL run of paper-flowers-cpu (1,200 training images, 10 generations, same stand-ins:
shapes at 32x32, Inception with random weights), 2026-11-29, machine otherwise idle:

    $ python benchmarks/bench_presets.py --full paper-flowers-cpu
      paper-flowers-cpu c00 gen 0: train 130.9s, sample 80.6s, score 103.1s, elapsed 7.4 min
      paper-flowers-cpu c00 gen 1: train 129.7s, sample 75.8s, score 101.3s, elapsed 12.5 min
      paper-flowers-cpu c00 gen 2: train 133.9s, sample 84.4s, score 96.6s, elapsed 17.8 min
      paper-flowers-cpu c00 gen 3: train 122.2s, sample 81.7s, score 96.6s, elapsed 22.8 min
      paper-flowers-cpu c00 gen 4: train 131.3s, sample 85.3s, score 102.8s, elapsed 28.1 min
      paper-flowers-cpu c00 gen 5: train 133.8s, sample 77.1s, score 102.3s, elapsed 33.4 min
      paper-flowers-cpu c00 gen 6: train 131.0s, sample 78.8s, score 99.1s, elapsed 38.5 min
      paper-flowers-cpu c00 gen 7: train 143.2s, sample 84.0s, score 106.3s, elapsed 44.1 min
      paper-flowers-cpu c00 gen 8: train 137.1s, sample 78.4s, score 104.5s, elapsed 49.4 min
      paper-flowers-cpu c00 gen 9: train 140.0s, sample 81.0s, score 105.6s, elapsed 54.8 min
    paper-flowers-cpu  full run (every chain and generation): 54.8 min

(about 2.2 min of set-up - the real set's Inception features - then 5.2 min per generation:
train 2.2, sample 1.3, score 1.7.)  paper-birds-cpu has the same settings and sizes.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch


class _FirstGeneration(Exception):
    """Stops the run once its first chain's first generation is saved."""


def one_generation(preset: str, overrides: list[str]) -> dict:
    """The row of the first chain's generation 0 of ``preset`` through ``genloop.run``, with
    the seconds it took to prepare the run folder and the preset's chain count."""
    import genloop
    from genloop.loading import load_raw
    from genloop.reference import preset_path

    raw = load_raw(preset_path(preset), overrides + ["loop.generations=1"])
    out = Path(tempfile.mkdtemp(prefix=f"bench_{preset}_"))
    seen: dict = {"chains": 0}
    t0 = time.perf_counter()

    def first(row: dict) -> None:
        seen["row"] = row
        raise _FirstGeneration

    try:
        genloop.run(raw, out, report=False, on_start=lambda exp, changed: seen.update(chains=len(exp.chains)),
                    on_reference=lambda refs: seen.update(prepare_seconds=time.perf_counter() - t0),
                    on_generation=first)
    except _FirstGeneration:
        pass
    row = dict(seen["row"])
    row["prepare_seconds"] = seen["prepare_seconds"]
    row["chains"] = seen["chains"]
    return row


def full_run(preset: str, overrides: list[str]) -> float:
    """Run the whole preset (every chain and generation) as `genloop run` does; print a
    line per generation; return the wall time in seconds."""
    from genloop.loading import load_raw
    from genloop.reference import preset_path
    from genloop import run

    out = Path(tempfile.mkdtemp(prefix=f"bench_full_{preset}_"))
    t0 = time.perf_counter()

    def line(row: dict) -> None:
        print(f"  {preset} {row['chain']} gen {row['generation']}: train {row['train_seconds']:.1f}s, "
              f"sample {row['sample_seconds']:.1f}s, score {row['score_seconds']:.1f}s, "
              f"elapsed {(time.perf_counter() - t0) / 60:.1f} min", flush=True)

    run(load_raw(preset_path(preset), overrides), out, report=False, on_generation=line)
    return time.perf_counter() - t0


def main() -> int:
    torch.set_num_threads(2)
    full = "--full" in sys.argv[1:]
    from genloop.loading import from_dict, load_raw
    from genloop.reference import preset_path
    from genloop.metrics.features.inception import FIDInceptionV3

    tmp = Path(tempfile.mkdtemp(prefix="bench_presets_"))
    weights = tmp / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(FIDInceptionV3().state_dict(), weights)
    cases = [
        ("paper-mnist-cpu", ["data.name=digits", "data.image_size=28", "data.root=null", "generator.guidance_scale=1.0"], 2000 / 1437),
        ("paper-flowers-cpu", ["data.name=shapes", "data.count=1875", "data.root=null", f"metrics.inception_weights={weights}"], 1.0),
        ("shapes", [], 1.0),
    ]
    only = set(a for a in sys.argv[1:] if not a.startswith("--"))
    for preset, ov, scale in cases:
        if only and preset not in only:
            continue
        if full:
            wall = full_run(preset, ov)
            print(f"{preset:18s} full run (every chain and generation): {wall / 60:.1f} min", flush=True)
            continue
        cfg_chains = len(__import__("genloop").load_config(preset_path(preset)))
        gens = from_dict({**load_raw(preset_path(preset)), "generator": {**load_raw(preset_path(preset))["generator"],
                          "guidance_scale": 1.0}}).loop.generations
        r = one_generation(preset, ov)
        per_gen = r["train_seconds"] + scale * (r["sample_seconds"] + r["score_seconds"])
        total = cfg_chains * gens * per_gen + r["prepare_seconds"]
        print(f"{preset:18s} 1 generation: train {r['train_seconds']:.1f}s, sample {r['sample_seconds']:.1f}s, "
              f"score {r['score_seconds']:.1f}s (scaled to the preset's size: {per_gen:.1f}s); "
              f"set-up {r['prepare_seconds']:.1f}s -> estimated {cfg_chains} chain(s) x {gens} generations = "
              f"{total / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    import genloop

    genloop.load_builtins()  # this script calls genloop.loading and the runner directly
    sys.exit(main())
