"""Benchmark of the image-quality metrics (run: ``python benchmarks/bench_metrics.py``).

Measured side by side in one run, on random features (torch.set_num_threads(2)):

1. Fréchet distance at D=2048: the eigenvalue route (genloop) vs the scipy ``sqrtm``
   route of pytorch-fid (re-derived here).  Goal: >= 5x faster, same value within 1e-6 relative.
2. Precision/recall/density/coverage at N=M=10,000, D=2048: genloop (float32 and float64
   paths) vs the ``prdc`` 0.2 package; plus the time of the bare chunked distance-matrix
   products genloop needs (real-real, fake-fake, real-fake).  Goals: >= 3x faster than prdc,
   peak RSS increase <= 1 GiB, time <= 1.5x the bare products.  Also: how far the float32
   path is from the float64 path (which gives prdc's counts).
3. The same at N=M=50,000 (float32 path): must finish within 8 GiB peak RSS (``--skip-large``
   to skip; it takes minutes).
4. Feature-extraction throughput (images/s) of every extractor (Inception with random weights
   on 64x64 inputs resized to 299).

Every PRDC measurement runs in its own subprocess; its peak RSS increase is the kernel's
high-water mark (VmHWM, reset through /proc/self/clear_refs once the features exist and the
libraries are warm) minus the RSS at that point.

Command and output of the last full run (2026-11-29, 2 CPU cores, AMD EPYC, machine otherwise
idle).  Timings on this machine vary by up to 4x when other jobs share it: an earlier run under
load (load average 3-4) measured the sqrtm route at 41.7 s against 1.66 s (25x), PRDC float32 at
15.3 s = 1.21x the bare products and 3.1x faster than prdc (float64 2.8x), the 50,000 case in
231 s, and Inception at 6.9 images/s.

    $ python benchmarks/bench_metrics.py
    torch 2.13.0+cpu, 2 threads, 2 CPUs, load average 1.1
    [fd] D=2048 (covariances of 5000 samples): eigenvalue route 0.66 s, sqrtm route 8.23 s -> 12.4x faster (goal >= 5x); value 303.564359 vs 303.564359, relative difference 1.3e-10 (goal <= 1e-6)
    [prdc] N=M=10,000, D=2048, k=5, chunk_size=1024 (each in its own process)
      bare chunked float32 products it needs (real-real and fake-fake upper triangles, real-fake): 4.1 s
      genloop float32: 4.6 s = 1.12x the bare products (goal <= 1.5x), peak RSS +275 MiB (total 667 MiB); P=0.4437, R=0.4567, D=0.9548, C=0.9644
      genloop float64: 7.8 s, peak RSS +506 MiB; P=0.4437, R=0.4567, D=0.9548, C=0.9644
      prdc 0.2:        17.9 s, peak RSS +1317 MiB; P=0.4437, R=0.4567, D=0.9548, C=0.9644
      speed-up over prdc: float32 3.9x, float64 2.3x (goal >= 3x)
      float32 vs float64: largest difference 4.0e-05; count differences {'precision': 0, 'recall': 0, 'density': -2, 'coverage': 0}
      prdc (float32 input, distances rounded to float32) vs genloop float64: count differences {'precision': 0, 'recall': 0, 'density': -2, 'coverage': 0}
    [prdc] N=M=50,000, D=2048, float32: 112 s, peak RSS 2281 MiB (features 781 MiB, increase +1264 MiB; goal: total <= 8192 MiB); P=0.3817, R=0.3830, D=1.0009, C=0.9687
    [features] inception        12.4 images/s  (100 images, random weights, 3x64x64 -> 299x299, D=2048, batch 50)
    [features] classifier     1087.1 images/s  (5,000 images, CNN for 3x32x32 colour images, width 256, D=256, batch 1024)
    [features] classifier   914118.8 images/s  (100,000 images, MLP for 1x8x8 digits (MLP up to 1,024 values, e.g. 28x28), width 256, D=256, batch 1024)
    [features] pixels         9465.0 images/s  (20,000 images, 3x64x64, D=12288, batch 4096)
    total 192 s, load average at the end 2.0

Reading: every goal is met by the float32 path (12.4x for the Fréchet distance; PRDC 3.9x
faster than prdc at 1.12x the bare products and +275 MiB; 50,000 in 2.2 GiB).  The float64
path, which gives prdc's exact counts and is the default (``metrics.distance_dtype``), is
2.3x faster than prdc here: float64 products run at half the float32 rate on this CPU.  The
float32 path differed from the exact counts by 2 of 50,000 density counts (points on a radius).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _threads() -> None:
    import torch

    torch.set_num_threads(2)


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # kB
    raise KeyError(field)


def _reset_peak() -> float:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; returns the current RSS in MiB."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_mib("VmRSS")


def _peak_mib() -> float:
    return _status_mib("VmHWM")


def _features(n: int, m: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d), dtype=np.float32), rng.standard_normal((m, d), dtype=np.float32)


# --------------------------------------------------------------------------- workers (one per subprocess)


def worker(spec: dict) -> dict:
    _threads()
    import torch

    kind, n, m, d, chunk = spec["kind"], spec["n"], spec["m"], spec["d"], spec.get("chunk", 1024)
    real, fake = _features(n, m, d, spec.get("seed", 0))
    out: dict = {"kind": kind}
    if kind == "ours":
        from genloop.metrics.prdc import prdc

        prdc(real[:64], fake[:64], k=5, dtype=spec["dtype"])  # warm-up: libraries loaded before the baseline
        base = _reset_peak()
        t = time.perf_counter()
        out["result"] = prdc(real, fake, k=5, dtype=spec["dtype"], chunk_size=chunk)
    elif kind == "prdc":
        import contextlib
        import io

        from prdc import compute_prdc

        with contextlib.redirect_stdout(io.StringIO()):
            compute_prdc(real[:64], fake[:64], 5)
            base = _reset_peak()
            t = time.perf_counter()
            res = compute_prdc(real, fake, 5)
        out["result"] = {k: float(v) for k, v in res.items()}
    elif kind == "bare":
        # Only the chunked products genloop's PRDC needs: the upper block triangles of real-real
        # and fake-fake (the k-NN radii use the symmetry) and all of real-fake.
        r = torch.from_numpy(real)
        f = torch.from_numpy(fake)
        torch.mm(r[:64], f[:64].T)
        base = _reset_peak()
        t = time.perf_counter()
        with torch.inference_mode():
            for rows, cols, triangle in ((r, r, True), (f, f, True), (r, f, False)):
                for s in range(0, len(rows), chunk):
                    e = min(s + chunk, len(rows))
                    torch.mm(rows[s:e], cols[s:].T if triangle else cols.T)
    else:
        raise ValueError(kind)
    out["seconds"] = time.perf_counter() - t
    out["rss_increase_mib"] = _peak_mib() - base
    out["rss_peak_mib"] = _peak_mib()
    return out


def run_worker(spec: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {spec} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- sections


def bench_frechet(d: int = 2048, n: int = 5000) -> None:
    from scipy import linalg

    from genloop.metrics.frechet import feature_stats, frechet_distance

    rng = np.random.default_rng(1)
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    real = rng.standard_normal((n, d)) @ mix
    fake = 1.1 * rng.standard_normal((n, d)) @ (mix + 0.05 * rng.standard_normal((d, d)) / np.sqrt(d)) + 0.01
    mu_r, s_r = feature_stats(real)
    mu_f, s_f = feature_stats(fake)

    def sqrtm_route() -> float:
        diff = mu_r - mu_f
        covmean = linalg.sqrtm(s_r @ s_f)
        if not np.isfinite(covmean).all():
            off = np.eye(d) * 1e-6
            covmean = linalg.sqrtm((s_r + off) @ (s_f + off))
        covmean = covmean.real
        return float(diff @ diff + np.trace(s_r) + np.trace(s_f) - 2 * np.trace(covmean))

    times_ours, times_ref = [], []
    for _ in range(2):  # best of 2 for both routes
        t = time.perf_counter(); ours = frechet_distance(mu_r, s_r, mu_f, s_f); times_ours.append(time.perf_counter() - t)
    for _ in range(2):
        t = time.perf_counter(); ref = sqrtm_route(); times_ref.append(time.perf_counter() - t)
    to, tr = min(times_ours), min(times_ref)
    print(f"[fd] D={d} (covariances of {n} samples): eigenvalue route {to:.2f} s, sqrtm route {tr:.2f} s "
          f"-> {tr / to:.1f}x faster (goal >= 5x); value {ours:.6f} vs {ref:.6f}, "
          f"relative difference {abs(ours - ref) / abs(ref):.1e} (goal <= 1e-6)")


def _fmt(res: dict) -> str:
    return ", ".join(f"{k[0].upper()}={v:.4f}" for k, v in res.items())


def bench_prdc(n: int, d: int, with_reference: bool) -> None:
    print(f"[prdc] N=M={n:,}, D={d}, k=5, chunk_size=1024 (each in its own process)")
    bare = run_worker({"kind": "bare", "n": n, "m": n, "d": d})
    print(f"  bare chunked float32 products it needs (real-real and fake-fake upper triangles, real-fake): "
          f"{bare['seconds']:.1f} s")
    ours32 = run_worker({"kind": "ours", "n": n, "m": n, "d": d, "dtype": "float32"})
    print(f"  genloop float32: {ours32['seconds']:.1f} s = {ours32['seconds'] / bare['seconds']:.2f}x the bare products "
          f"(goal <= 1.5x), peak RSS +{ours32['rss_increase_mib']:.0f} MiB (total {ours32['rss_peak_mib']:.0f} MiB); "
          f"{_fmt(ours32['result'])}")
    if not with_reference:
        return
    ours64 = run_worker({"kind": "ours", "n": n, "m": n, "d": d, "dtype": "float64"})
    print(f"  genloop float64: {ours64['seconds']:.1f} s, peak RSS +{ours64['rss_increase_mib']:.0f} MiB; "
          f"{_fmt(ours64['result'])}")
    ref = run_worker({"kind": "prdc", "n": n, "m": n, "d": d})
    print(f"  prdc 0.2:        {ref['seconds']:.1f} s, peak RSS +{ref['rss_increase_mib']:.0f} MiB; {_fmt(ref['result'])}")
    print(f"  speed-up over prdc: float32 {ref['seconds'] / ours32['seconds']:.1f}x, "
          f"float64 {ref['seconds'] / ours64['seconds']:.1f}x (goal >= 3x)")
    diff32 = max(abs(ours32["result"][k] - ours64["result"][k]) for k in ours64["result"])
    counts = {"precision": n, "recall": n, "density": 5 * n, "coverage": n}
    cdiff = {k: round(ours32["result"][k] * c) - round(ours64["result"][k] * c) for k, c in counts.items()}
    print(f"  float32 vs float64: largest difference {diff32:.1e}; count differences {cdiff}")
    rdiff = {k: round(ref["result"][k] * c) - round(ours64["result"][k] * c) for k, c in counts.items()}
    print(f"  prdc (float32 input, distances rounded to float32) vs genloop float64: count differences {rdiff}")


def bench_large(n: int, d: int) -> None:
    res = run_worker({"kind": "ours", "n": n, "m": n, "d": d, "dtype": "float32"})
    feats = 2 * n * d * 4 / 2**20
    print(f"[prdc] N=M={n:,}, D={d}, float32: {res['seconds']:.0f} s, peak RSS {res['rss_peak_mib']:.0f} MiB "
          f"(features {feats:.0f} MiB, increase +{res['rss_increase_mib']:.0f} MiB; goal: total <= 8192 MiB); "
          f"{_fmt(res['result'])}")


def bench_extractors() -> None:
    import torch

    from genloop.metrics.classifier import DomainClassifier
    from genloop.metrics.features.classifier import ClassifierFeatures
    from genloop.metrics.features.inception import FIDInceptionV3, InceptionFeatures
    from genloop.metrics.features.pixels import PixelFeatures
    from genloop.models.classifier import build_classifier

    rng = np.random.default_rng(0)
    cases = [
        ("inception", InceptionFeatures(FIDInceptionV3(), "cpu", batch_size=50),
         rng.integers(0, 256, (100, 3, 64, 64), dtype=np.uint8), "random weights, 3x64x64 -> 299x299"),
        ("classifier", ClassifierFeatures(DomainClassifier(build_classifier((3, 32, 32), 10, 256), torch.device("cpu"))),
         rng.integers(0, 256, (5_000, 3, 32, 32), dtype=np.uint8), "CNN for 3x32x32 colour images, width 256"),
        ("classifier", ClassifierFeatures(DomainClassifier(build_classifier((1, 8, 8), 10, 256), torch.device("cpu"))),
         rng.integers(0, 256, (100_000, 1, 8, 8), dtype=np.uint8), "MLP for 1x8x8 digits (MLP up to 1,024 values, e.g. 28x28), width 256"),
        ("pixels", PixelFeatures(), rng.integers(0, 256, (20_000, 3, 64, 64), dtype=np.uint8), "3x64x64"),
    ]
    for name, ex, images, what in cases:
        ex(images[: min(len(images), 8)])  # warm-up
        t = time.perf_counter()
        f = ex(images)
        dt = time.perf_counter() - t
        print(f"[features] {name:10s} {len(images) / dt:10.1f} images/s  ({len(images):,} images, {what}, "
              f"D={f.shape[1]}, batch {ex.batch_size})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--skip-large", action="store_true", help="skip the N=M=50,000 PRDC run (minutes)")
    p.add_argument("--n", type=int, default=10_000, help="samples per set of the PRDC comparison")
    p.add_argument("--n-large", type=int, default=50_000, help="samples per set of the large PRDC run")
    p.add_argument("--dim", type=int, default=2048)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    _threads()
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    t0 = time.perf_counter()
    bench_frechet(args.dim)
    bench_prdc(args.n, args.dim, with_reference=True)
    if not args.skip_large:
        bench_large(args.n_large, args.dim)
    bench_extractors()
    print(f"total {time.perf_counter() - t0:.0f} s, load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
