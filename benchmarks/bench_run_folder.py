"""Benchmark of the run-folder cost for fast generators, and of a big analytic sweep.

Part 1 (``--part cli``): 7 interaction models x 20 seeds x 200 generations of the
Gaussian generator (1-D N(0, 1), 100 train points: the ``theory`` preset's data and
generator) through ``genloop run`` in a subprocess (``store.samples=last``,
``store.checkpoints=last``; everything included: start-up, the run folder, the tables,
plots and the HTML report), against the same 140 chains run in memory by
``genloop.loop.run_in_memory`` (the same chain runner without a run folder; the results
below were recorded when it was called ``simulate``).  Targets: <= 60 s, within 3x of it.

Part 2 (``--part ray``): a 1,000-chain analytic sweep (``-p theory`` with
``loop.interaction=replace``, 1,000 seeds, ``--generations`` generations) on a local Ray
(``--backend ray``): chains per second and the peak resident memory of the driver
process (``VmHWM`` of ``genloop run`` itself, read from /proc while it runs; Ray's own
processes are not counted), and the size of the streamed ``summary.csv``.

Command:  python benchmarks/bench_run_folder.py [--part cli|ray|both] [--generations 200]

RESULTS (2026-11-29, this 2-core machine; other jobs were running on it too, load average
2-3 during these runs, so the wall times are upper bounds):

    $ python benchmarks/bench_run_folder.py --part cli
    7 models x 20 seeds x 200 generations = 140 chains, 28000 generations
    genloop run --workers 2 (whole command, report included): 55.0 s wall = 1.96 ms per generation; 71.8 s CPU
    simulate (in memory, this process, one core): 27.8 s wall = 0.99 ms per generation; 27.4 s CPU
    ratio (wall): 1.98x; run folder: 891 files, 103.5 MB

    $ python benchmarks/bench_run_folder.py --part ray
    1000 chains x 50 generations on a local Ray: 109.7 s = 9.1 chains/s (456 generations/s), whole command
    peak driver RSS (genloop run process): 689 MiB; summary.csv 34 kB, 50 rows

    $ python benchmarks/bench_run_folder.py --part ray --chains 250
    250 chains x 50 generations on a local Ray: 41.6 s = 6.0 chains/s (300 generations/s), whole command
    peak driver RSS (genloop run process): 489 MiB; summary.csv 34 kB, 50 rows

Reading: 7 x 20 x 200 through ``genloop run`` take 55 s (the
machine partly loaded), within 3x of ``simulate`` (1.98x).  Before the
composition plot drew one band per source generation instead of a bar per generation
the same command took 335 s (309 s CPU), 526 s of a profiled 42-chain run being
matplotlib drawing 200,000 bar rectangles.  The driver's peak memory grows with the
number of chains (about 0.27 MiB per chain between 250 and 1,000: the chains' configs
and task handles), not with the rows: the tables and summary.csv are streamed one chain
at a time.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = "[replace,mix,accumulate,accumulate_subsample,fresh,curate,detect]"
OPTIONS = ["loop.fresh_reserve=0.5", "loop.curate_top_fraction=0.9", "loop.detector=oracle"]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_cli(args: list[str]) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds of the genloop process and its workers, peak RSS of the
    genloop process in KiB, its output).  CPU seconds count every process the command
    waited for (its local workers; not Ray's own processes)."""
    cmd = [sys.executable, "-m", "genloop", "run", "--no-progress", *args]
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0]

    def watch() -> None:
        while p.poll() is None:
            peak[0] = max(peak[0], _hwm_kib(p.pid))
            time.sleep(0.2)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    out, _ = p.communicate()
    th.join()
    dt = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    if p.returncode != 0:
        raise SystemExit(f"genloop run failed ({p.returncode}):\n{out[-3000:]}")
    return dt, cpu, peak[0], out


def part_cli(generations: int, seeds: int, tmp: Path, workers: int) -> None:
    from genloop.loading import expand, load_raw
    from genloop.reference import preset_path
    from genloop.loop import run_in_memory

    over = [f"loop.interaction={MODELS}", f"seeds={list(range(seeds))}", f"loop.generations={generations}", *OPTIONS]
    out = tmp / "cli"
    dt, cpu, _, text = run_cli(["-p", "theory", "-o", str(out), "--workers", str(workers), *over])
    chains = expand(load_raw(preset_path("theory"), over))
    t0, c0 = time.perf_counter(), time.process_time()
    for ch in chains:
        run_in_memory(ch.config)
    sim, sim_cpu = time.perf_counter() - t0, time.process_time() - c0
    n = len(chains) * generations
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    files = sum(1 for f in out.rglob("*") if f.is_file())
    print(f"7 models x {seeds} seeds x {generations} generations = {len(chains)} chains, {n} generations")
    print(f"genloop run --workers {workers} (whole command, report included): {dt:.1f} s wall = "
          f"{1000 * dt / n:.2f} ms per generation; {cpu:.1f} s CPU")
    print(f"run_in_memory (this process, one core): {sim:.1f} s wall = {1000 * sim / n:.2f} ms per generation; "
          f"{sim_cpu:.1f} s CPU")
    print(f"ratio (wall): {dt / sim:.2f}x; run folder: {files} files, {size / 1e6:.1f} MB")
    print("last lines:", *text.strip().splitlines()[-4:], sep="\n  ")


def part_ray(generations: int, chains: int, tmp: Path) -> None:
    out = tmp / "ray"
    over = ["loop.interaction=replace", f"seeds={list(range(chains))}", f"loop.generations={generations}"]
    dt, _, peak, text = run_cli(["-p", "theory", "-o", str(out), "--backend", "ray", *over])
    summary = out / "summary.csv"
    print(f"{chains} chains x {generations} generations on a local Ray: {dt:.1f} s = {chains / dt:.1f} chains/s "
          f"({chains * generations / dt:.0f} generations/s), whole command")
    print(f"peak driver RSS (genloop run process): {peak / 1024:.0f} MiB; summary.csv {summary.stat().st_size / 1e3:.0f} kB, "
          f"{sum(1 for _ in open(summary)) - 1} rows")
    print("last lines:", *text.strip().splitlines()[-3:], sep="\n  ")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=("cli", "ray", "both"), default="both")
    ap.add_argument("--generations", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2, help="genloop run --workers (this machine has 2 cores)")
    ap.add_argument("--chains", type=int, default=1000)
    ap.add_argument("--ray-generations", type=int, default=50)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_run_folder."))
    try:
        if args.part in ("cli", "both"):
            part_cli(args.generations, args.seeds, tmp, args.workers)
        if args.part in ("ray", "both"):
            part_ray(args.ray_generations, args.chains, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    import genloop

    genloop.load_builtins()  # this script calls genloop.loading and the runner directly
    main()
