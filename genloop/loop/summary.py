"""The aggregate table ``summary.csv``: per setting and generation, the mean,
standard deviation and 95% confidence interval over seeds of every numeric
column of ``metrics.csv``.

A *setting* is one combination of the varied config keys other than ``seed``
(chains that differ only in their seed share a setting).  Columns::

    <varied keys...>, setting, generation, n,
    <metric>_mean, <metric>_std, <metric>_ci95_low, <metric>_ci95_high, ...

``n`` is the number of seeds with that generation finished; per metric, missing
and NaN values are left out.  ``std`` is the sample standard deviation (ddof 1)
and the interval is mean +- t(0.975, n-1) * std / sqrt(n) (Student's t over the
seeds); both are NaN with fewer than two values.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

from ..store import RunStore, write_csv

# Row keys that identify a row rather than measure something.
ID_COLUMNS = ("chain", "seed", "generation")
STATS = ("mean", "std", "ci95_low", "ci95_high")


def _number(v: Any) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return "-".join(_fmt(x) for x in v)
    return str(v)


def setting_label(values: dict) -> str:
    """``guidance_scale=1, width=64`` (short key names); ``all`` when nothing varies."""
    return ", ".join(f"{k.split('.')[-1]}={_fmt(v)}" for k, v in values.items()) or "all"


def setting_keys(chains: list[dict], rows: list[dict]) -> list[str]:
    """Varied keys except seed, in chains.json order (or from the rows' columns)."""
    keys: list[str] = []
    for ch in chains:
        for k in ch.get("varied", {}):
            if k != "seed" and k not in keys:
                keys.append(k)
    return keys


def interval(values: list[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """(mean, std, low, high) of ``values`` with a Student-t interval at ``level``."""
    n = len(values)
    if n == 0:
        return (math.nan,) * 4
    mean = math.fsum(values) / n
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    from scipy.stats import t

    half = float(t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def summary_rows(rows: list[dict], chains: list[dict]) -> list[dict]:
    """Aggregate metric rows over seeds: one row per (setting, generation)."""
    keys = setting_keys(chains, rows)
    skip = set(ID_COLUMNS) | set(keys)
    metrics: list[str] = []
    for r in rows:
        for k, v in r.items():
            if k not in skip and k not in metrics and _number(v) is not None:
                metrics.append(k)
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        ident = tuple(json.dumps(r.get(k), sort_keys=True) for k in keys)
        groups.setdefault(ident, []).append(r)
    out = []
    for ident, members in groups.items():
        values = {k: members[0].get(k) for k in keys}
        for g in sorted({int(r["generation"]) for r in members}):
            at = [r for r in members if int(r["generation"]) == g]
            row: dict[str, Any] = dict(values)
            row.update({"setting": setting_label(values), "generation": g, "n": len(at)})
            for m in metrics:
                xs = [x for x in (_number(r.get(m)) for r in at) if x is not None and not math.isnan(x)]
                for stat, v in zip(STATS, interval(xs)):
                    row[f"{m}_{stat}"] = v
            out.append(row)
    return out


def write_summary(store: RunStore, rows: Optional[list[dict]] = None) -> Optional[Path]:
    """Write ``RUN/summary.csv`` from the finished generations; returns its path."""
    rows = store.metric_rows() if rows is None else rows
    if not rows:
        return None
    path = store.root / "summary.csv"
    write_csv(path, summary_rows(rows, store.chains()))
    return path
