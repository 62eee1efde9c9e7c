"""Time the analytic phase-diagram presets end to end, as ``genloop run -p PRESET`` runs them
(every chain and generation, the live report redraws and the final report), and check that
their numbers equal those of another run folder.

For each preset: the CPU seconds (user + system) and the wall seconds of the ``genloop run``
process, with the load average before and after (on a shared machine the wall time depends
on the load; compare CPU seconds).  ``--compare DIR`` compares the run's metrics.csv,
summary.csv and reference.csv with those of ``DIR/PRESET`` (e.g. runs of an earlier
version), timing columns aside.

Command:  python benchmarks/bench_safe_presets.py [PRESET ...] [--out DIR] [--compare DIR]
(default: the three presets, run folders under a new temporary folder)

RESULTS (2026-12-07, 2 cores shared with other jobs).  "before": the previous version, measured
with /usr/bin/time -v around ``nice -n 5 genloop run -p PRESET --threads 1 --no-progress -o DIR``
(OMP_NUM_THREADS=1); "after": safe-categorical the same way, safe-gaussian and safe-brackets
with this script (``nice -n 10 python benchmarks/bench_safe_presets.py safe-gaussian
safe-brackets --compare BEFORE``, which printed the lines below the table):

    preset             before: CPU s (wall s, load)     after: CPU s (wall s, load)
    safe-categorical   115.7 (178, load 1.9-5.0)        52.1 (149, load 6-8)
    safe-gaussian       58.7 (116, load 5.0)             35.1 (126, load 8-10)
    safe-brackets       88.3 (174, load 5.3)             70.4 (249, load 8-10)

    safe-gaussian      CPU   35.1 s, wall  125.5 s (load average 8.22 7.92 7.31 before, 10.39 8.78 7.70 after); numbers identical to /tmp/hs-runs/basedir/safe-gaussian
    safe-brackets      CPU   70.4 s, wall  249.4 s (load average 10.39 8.78 7.70 before, 10.14 9.46 8.25 after); numbers identical to /tmp/hs-runs/basedir/safe-brackets

The wall times are those of a machine loaded 4-10 times over its 2 cores; on an idle
machine a run takes about its CPU seconds plus the disk's fsyncs (not measured idle here).
metrics.csv, summary.csv and reference.csv identical to the "before" runs (timing columns
aside) in every case.  Where the time went (cProfile of the CLI): not the models (a
categorical generation takes about 3 ms) but the report: the redraws while a run goes saved
every figure as PNG and PDF (now PNG only; the PDFs once, at the end), the pool-composition
figure drew a bar of height 0 for every source at every generation (2,500 rectangles per
chain of 50 generations; now only the bars that show), and the chains' row logs were
flushed once per chain and generation (8,525 fsyncs for safe-categorical; now all chains
together at most every 2 s, 220 fsyncs).  The figures left (about 40 per preset, each drawn
as PNG and PDF at the end) are most of what remains.
"""
from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRESETS = ["safe-categorical", "safe-gaussian", "safe-brackets"]
TIME_PREFIXES = ("train_seconds", "sample_seconds", "score_seconds", "total_seconds")
TABLES = ("metrics.csv", "summary.csv", "reference.csv")


def load_table(path: Path) -> list[dict]:
    """A table's rows without the timing columns, in a fixed order."""
    with open(path, newline="") as f:
        rows = [{k: v for k, v in r.items() if not k.startswith(TIME_PREFIXES)} for r in csv.DictReader(f)]
    return sorted(rows, key=lambda r: (r.get("chain", r.get("setting", "")), r.get("generation", "")))


def run_preset(preset: str, out: Path) -> tuple[float, float, str, str]:
    """(CPU seconds, wall seconds, load before, load after) of ``genloop run -p preset``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "genloop", "run", "-p", preset, "--threads", "1", "--no-progress", "-o", str(out)]
    load0 = " ".join(f"{x:.2f}" for x in os.getloadavg())
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, load0, " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("presets", nargs="*", default=PRESETS)
    ap.add_argument("--out", type=Path, default=None, help="folder of the run folders (default: a new temporary one)")
    ap.add_argument("--compare", type=Path, default=None, help="folder holding a run folder per preset to compare with")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_safe_"))
    for preset in args.presets:
        cpu, wall, load0, load1 = run_preset(preset, out / preset)
        line = f"{preset:18s} CPU {cpu:6.1f} s, wall {wall:6.1f} s (load average {load0} before, {load1} after)"
        if args.compare is not None:
            same = [load_table(out / preset / t) == load_table(args.compare / preset / t) for t in TABLES]
            line += "; numbers " + ("identical" if all(same) else "DIFFER in " + ", ".join(
                t for t, s in zip(TABLES, same) if not s)) + f" to {args.compare / preset}"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
