"""``genloop run``: run an experiment into its run folder, a line per finished generation."""
from __future__ import annotations

import argparse
import contextlib
import logging
import math
import sys
import time
from pathlib import Path

from .args import config_args, config_sources, default_out
from .live import LiveReport

# `genloop run` prints a line per finished generation up to this many generations in all,
# else a line per finished chain.
LINES_PER_GENERATION_UP_TO = 1000


def add_parsers(sub) -> None:
    r = sub.add_parser("run", help="run an experiment (default: the paper's MNIST experiment on embedded digits)")
    config_args(r)
    r.add_argument("-o", "--out", help="run folder (default: runs/<config or preset name>); rerun to resume")
    r.add_argument("--force", action="store_true", help="start over in a folder made with a different config")
    r.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars (default: only when stdout and stderr are terminals; otherwise a line per "
                        "finished generation and a heartbeat line at most once a minute during long training "
                        "or sampling)")
    r.add_argument("--no-share", action="store_true",
                   help="train every model in its own chain, also where chains that differ only in sampling "
                        "options (or, at generation 0, in the interaction model) would share a generation's model "
                        "(the numbers are the same either way)")
    r.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads per chain (default: cores // workers; Ray: 1). "
                        "Numbers are identical across --workers and backends at equal --threads")
    r.add_argument("--workers", default=None, metavar="N|auto",
                   help="chains run at once: N worker processes, or 'auto' = as many as fit the cores "
                        "(default: 1, one at a time in this process; with --backend ray: no limit)")
    r.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="where chains run: local processes, or tasks on a Ray cluster (pip install 'genloop[ray]')")
    r.add_argument("--address", help="Ray cluster address, e.g. auto or ray://head:10001 (with --backend ray; "
                                     "default: start a local Ray for the run); the run folder must be on shared storage")
    r.add_argument("--gpus-per-chain", type=float, default=None, metavar="F",
                   help="GPUs per chain (sweep.gpus_per_chain): fractions pack chains on one GPU (0.25 = 4 per GPU); "
                        "local workers get disjoint CUDA_VISIBLE_DEVICES, Ray tasks request num_gpus=F "
                        "(default: 1 when CUDA devices exist and device is not cpu, else 0)")
    r.add_argument("--retries", type=int, default=2,
                   help="times a chain whose worker died is retried, resuming from its last finished generation (default 2)")
    r.set_defaults(func=cmd_run)


def _fmt_row(row: dict) -> str:
    parts = [f"{row['chain']}", f"gen {row['generation']:>2}",
             f"{row.get('total_seconds', float('nan')):6.1f}s (train {row.get('train_seconds', 0):.1f}, "
             f"sample {row.get('sample_seconds', 0):.1f}, score {row.get('score_seconds', 0):.1f})"]
    for key, label, fmt in (("accuracy", "acc", ".3f"), ("cross_entropy", "ce", ".3f"), ("fid", "fid", ".2f"),
                            ("fd_classifier", "fd", ".3f"), ("precision", "prec", ".3f"), ("recall", "rec", ".3f"),
                            ("variance_ratio", "var", ".3f"), ("frechet", "fd", ".4f")):
        v = row.get(key)
        if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
            parts.append(f"{label} {v:{fmt}}")
    return " | ".join(parts)


@contextlib.contextmanager
def _heartbeat_to_stdout(on: bool):
    """While running: print the library's heartbeat lines (``genloop.heartbeat``) on stdout,
    as ``genloop: ...`` (``on``), and restore the logger after."""
    hb = logging.getLogger("genloop.heartbeat")
    if not on:
        yield
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("genloop: %(message)s"))
    saved = hb.level, hb.propagate
    hb.addHandler(handler)
    hb.setLevel(logging.INFO)
    hb.propagate = False
    try:
        yield
    finally:
        hb.removeHandler(handler)
        hb.setLevel(saved[0])
        hb.propagate = saved[1]


def _want_progress(args) -> bool:
    """Progress bars: ``--progress`` / ``--no-progress``, else only when stdout and stderr are terminals."""
    if args.progress is not None:
        return bool(args.progress)
    return sys.stdout.isatty() and sys.stderr.isatty()


def cmd_run(args) -> int:
    from .. import run
    from ..report import draw
    from ..utils import mark_activity
    from ..runfolder import Layout

    out = Path(args.out) if args.out else default_out(args)
    last: dict = {}  # chain -> its last generation
    every_line = [True]
    progress = _want_progress(args)
    live = LiveReport(out)

    def on_start(exp, changed: list) -> None:
        last.update({ch.id: ch.config.loop.generations - 1 for ch in exp.chains})
        every_line[0] = sum(last.values()) + len(last) <= LINES_PER_GENERATION_UP_TO
        if args.no_share:
            exp.share_models = False
        live.exp = exp
        print(f"genloop: {len(exp.chains)} chain(s) x {exp.chains[0].config.loop.generations} generation(s) -> {out}"
              + ("" if every_line[0] else " (one line per finished chain)"), flush=True)
        print(f"genloop: report {Layout(out).report_path} (redrawn as generations finish)", flush=True)
        if changed and not args.force:
            print(f"genloop: extending {out} ({', '.join(changed)}); finished generations are kept", flush=True)

    def on_generation(row: dict) -> None:
        # a line per generation; for big sweeps only each chain's last generation
        if every_line[0] or row["generation"] == last.get(row["chain"]):
            print(_fmt_row(row), flush=True)
        mark_activity()
        live.generation()

    def on_reference(rows: list) -> None:
        for ref in rows:
            if isinstance(ref.get("accuracy"), float):
                print(f"classifier on the real test set ({ref.get('data')}): accuracy {ref['accuracy']:.4f}, "
                      f"cross-entropy {ref.get('cross_entropy', float('nan')):.4f}", flush=True)
        live(force=True)  # the report exists from the start (no generation yet)
        mark_activity()

    t0 = time.perf_counter()
    with _heartbeat_to_stdout(not progress):
        # One at a time in this process (--workers 1), in worker processes, or on Ray;
        # every chain runs with the same torch thread count in every mode (see genloop.sweep).
        run(config_sources(args), out, args.overrides, force=args.force, progress=progress,
            report=False, workers=args.workers, backend=args.backend, address=args.address,
            retries=args.retries, threads=args.threads or None, gpus_per_chain=args.gpus_per_chain,
            on_generation=on_generation, on_reference=on_reference, on_start=on_start, return_rows=False,
            plugins=args.plugin)
    plots, report = draw(out)
    print(f"done in {time.perf_counter() - t0:.1f}s")
    print(f"results: {out}/{Layout.METRICS_CSV}")
    if plots:
        print(f"plots:   {out}/{Layout.PLOTS}/ ({len(plots)} figures)")
    if report:
        print(f"report:  {report}" + (f" (redrawn {live.draws} times while running, {live.seconds:.1f}s in all)"
                                      if live.draws else ""))
    return 0
