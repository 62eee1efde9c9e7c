"""Command line: ``genloop run | status | eval | data | presets | config | report``.

``main`` parses the command line, runs the command and turns its errors into one line and
an exit code.  One module per command group: ``run`` (with ``live``, the report redrawn
while running), ``evaluate`` (eval), ``data`` (data info, data fetch), ``config`` (config,
presets), ``folder`` (report, status); ``args`` holds what they share.

Only this package prints; the library logs.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional

from ..config import ConfigError
from . import config, data, evaluate, folder, run
from .args import config_sources, parse
from .errors import loaded, os_error_line
from .live import LiveReport

__all__ = ["LiveReport", "build_parser", "config_sources", "main"]

# The command groups, in the order `genloop --help` lists their commands.
COMMANDS = (run, evaluate, data, config, folder)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genloop", description="Simulate generative models trained on their predecessors' output.")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = p.add_subparsers(dest="cmd", required=True)
    for group in COMMANDS:
        group.add_parsers(sub)
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = parse(build_parser(), argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    # The error classes of modules that import torch are looked up only when an error is
    # handled (``loaded``): `genloop status` does not import torch.
    try:
        if args.func not in (folder.cmd_status, config.cmd_presets):  # both read files only: no torch, no components
            from .. import load_builtins

            load_builtins()
        return args.func(args)
    except (ConfigError, loaded("genloop.data", "DataError")) as exc:
        print(f"genloop: error: {exc}", file=sys.stderr)
        return 2
    except loaded("genloop.generators", "TrainingDiverged") as exc:
        print(f"genloop: error: {exc}", file=sys.stderr)
        return 3
    except loaded("genloop.sweep", "SweepError") as exc:
        print(f"genloop: error: {exc}", file=sys.stderr)
        return 4
    except loaded("genloop.runfolder", "RunLocked") as exc:
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
        print(f"genloop: error: {os_error_line(exc)}", file=sys.stderr)
        return 6
    except MemoryError:
        print("genloop: error: out of memory; lower the sizes (data.count, data.limit, loop.sample_count, "
              "train.batch_size) or the number of --workers", file=sys.stderr)
        return 7
    except SystemExit as exc:  # a plugin's component exited (genloop's own code never calls sys.exit here)
        print(f"genloop: error: a component called sys.exit({exc.code!r}); a plugin must raise an exception "
              "instead", file=sys.stderr)
        return 2

