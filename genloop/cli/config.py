"""``genloop config`` (the resolved config, or ``--reference`` of every key) and
``genloop presets`` (the shipped presets)."""
from __future__ import annotations

from ..chains import expand
from ..loading import load_raw
from ..reference import presets, reference
from .args import config_args, config_sources


def add_parsers(sub) -> None:
    pr = sub.add_parser("presets", help="list the shipped presets and what each needs")
    pr.set_defaults(func=cmd_presets)

    c = sub.add_parser("config", help="print the resolved config, or --reference for every key")
    config_args(c)
    c.add_argument("--reference", action="store_true", help="print the reference of every key (markdown)")
    c.set_defaults(func=cmd_config)


def cmd_presets(args) -> int:
    for name, line in presets().items():
        print(f"{name:18s} {line}")
    return 0


def cmd_config(args) -> int:
    if args.reference:
        print(reference(), end="")
        return 0
    from ..loading import dump_yaml

    raw = load_raw(config_sources(args), args.overrides, plugins=args.plugin)
    expand(raw)
    print(dump_yaml(raw), end="")
    return 0
