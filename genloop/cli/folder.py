"""``genloop status`` and ``genloop report``: look at a run folder (read only, or redraw its
plots and report)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import ConfigError


def add_parsers(sub) -> None:
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


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of class numbers (e.g. 1,3,9)") from None


def cmd_report(args) -> int:
    from ..report import draw

    from ..runfolder import Layout, folder_kind

    out = Path(args.run_dir)
    if not Layout(out).config_path.exists() or folder_kind(out)[0] != "genloop":  # never draws into other folders
        raise ConfigError(f"{out}: not a genloop run folder (no config.yaml and chains.json)")
    plots, report = draw(out, args.classes)
    print(f"plots: {len(plots)} in {out}/{Layout.PLOTS}")
    if report:
        print(f"report: {report}")
    return 0


def cmd_status(args) -> int:
    from ..runfolder.status import format_status, run_status

    st = run_status(Path(args.run_dir))
    print(json.dumps(st, indent=2, default=str) if args.json else format_status(st))
    return 0
