"""``genloop eval``: score two image sets (folders of images or ``.npz`` files)."""
from __future__ import annotations

import json

from ..config import ConfigError


def add_parsers(sub) -> None:
    e = sub.add_parser("eval", help="score two image sets (folders of images or .npz files)")
    e.add_argument("--real", required=True, help="real images: folder or .npz")
    e.add_argument("--fake", required=True, help="generated images: folder or .npz")
    e.add_argument("--features", default="inception", help="feature extractor: inception, pixels, classifier")
    e.add_argument("--k", type=int, default=5, help="nearest neighbours for precision/recall/density/coverage")
    e.add_argument("--json", action="store_true", help="print JSON")
    e.set_defaults(func=cmd_eval)


def cmd_eval(args) -> int:
    from ..data.io import load_path
    from ..metrics.evaluate import evaluate

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
