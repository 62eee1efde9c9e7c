"""What the commands share: the config arguments of ``run`` and ``config`` (preset, config
file, plugins, ``key=value`` overrides), where they come from, and the parsing that takes
overrides anywhere on the command line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from ..reference import preset_path


def config_args(sp: argparse.ArgumentParser) -> None:
    """The arguments that choose a config: ``-c``, ``-p``, ``--plugin`` and the overrides."""
    sp.add_argument("-c", "--config", help="YAML config file (merged over the preset / defaults)")
    sp.add_argument("-p", "--preset", help="a shipped preset (see `genloop presets`); default: 'default'")
    sp.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                    help="import MODULE (e.g. mypkg.mymodel) before the config is checked, here and in every "
                         "worker, so the components it registers can be named; repeatable (the config key `plugins`)")
    sp.add_argument("overrides", nargs="*", metavar="key=value",
                    help="dotted overrides, e.g. loop.generations=3; a list makes one chain per value")


def config_sources(args: argparse.Namespace) -> list:
    """The config files of ``-p`` and ``-c`` in merge order (the ``default`` preset when neither)."""
    files: list = []
    if args.preset:
        files.append(preset_path(args.preset))
    if args.config:
        files.append(Path(args.config))
    if not files:
        files.append(preset_path("default"))
    return files


def default_out(args: argparse.Namespace) -> Path:
    """``runs/<config file stem or preset name>``."""
    stem = Path(args.config).stem if args.config else (args.preset or "default")
    return Path("runs") / stem


def parse(parser: argparse.ArgumentParser, argv: Optional[list[str]]) -> argparse.Namespace:
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
