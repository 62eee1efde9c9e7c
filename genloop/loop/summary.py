"""The aggregate table ``summary.csv``: per setting and generation, the mean,
standard deviation and 95% confidence interval over seeds of every numeric
column of ``metrics.csv``.

A *setting* is one combination of the varied config keys other than ``seed``
(chains that differ only in their seed share a setting).  Columns::

    <varied keys...>, setting, generation, n,
    <metric>_mean, <metric>_std, <metric>_ci95_low, <metric>_ci95_high, ...

The pool composition by source generation (``pool_gen_<g>``, one column per
generation; in ``metrics.csv``, where the composition plot reads it) is left out.
``n`` is the number of seeds with that generation finished; per metric, missing
and NaN values are left out.  ``std`` is the sample standard deviation (ddof 1)
and the interval is mean +- t(0.975, n-1) * std / sqrt(n) (Student's t over the
seeds); both are NaN with fewer than two values.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Optional

from ..runfolder import RunStore, atomic_write, csv_value, jsonable, write_csv
from .grouping import interval, setting_keys, setting_label  # noqa: F401  (interval: where it was first)
from .grouping import t_quantile as _t

# Row keys that identify a row rather than measure something.
ID_COLUMNS = ("chain", "seed", "generation")
STATS = ("mean", "std", "ci95_low", "ci95_high")
SKIP_PREFIXES = ("pool_gen_",)  # one column per source generation: not summarised


def _number(v: Any) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _from_moments(n: int, mean: float, m2: float, level: float = 0.95) -> tuple[float, float, float, float]:
    """``interval`` from running moments (count, mean, sum of squared deviations)."""
    if n == 0:
        return (math.nan,) * 4
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    std = math.sqrt(max(m2, 0.0) / (n - 1))
    half = _t(level, n - 1) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


class SummaryAccumulator:
    """``summary.csv`` built from rows fed one chain at a time, in memory proportional to
    settings x generations x metrics (not to seeds): per value a running count, mean and
    sum of squared deviations (Welford's update), so a sweep of thousands of seeds is
    summarised without holding its rows."""

    def __init__(self, chains: list[dict]) -> None:
        self.keys = setting_keys(chains, [])
        self.skip = set(ID_COLUMNS) | set(self.keys)
        self.metrics: dict[str, None] = {}  # first-seen order
        self.groups: dict[tuple, dict] = {}  # ident -> {"values": ..., "gens": {g: {"n": k, m: [n, mean, m2]}}}

    def add(self, r: dict) -> None:
        ident = tuple(json.dumps(r.get(k), sort_keys=True) for k in self.keys)
        grp = self.groups.get(ident)
        if grp is None:
            grp = self.groups[ident] = {"values": {k: r.get(k) for k in self.keys}, "gens": {}}
        at = grp["gens"].setdefault(int(r["generation"]), {"n": 0})
        at["n"] += 1
        for k, v in r.items():
            if k in self.skip or k.startswith(SKIP_PREFIXES):
                continue
            x = _number(v)
            if x is None:
                continue
            self.metrics.setdefault(k, None)
            if math.isnan(x):
                at.setdefault(k, [0, 0.0, 0.0])
                continue
            acc = at.setdefault(k, [0, 0.0, 0.0])
            acc[0] += 1
            d = x - acc[1]
            acc[1] += d / acc[0]
            acc[2] += d * (x - acc[1])

    def rows(self) -> list[dict]:
        out = []
        for grp in self.groups.values():
            values = grp["values"]
            for g in sorted(grp["gens"]):
                at = grp["gens"][g]
                row: dict[str, Any] = dict(values)
                row.update({"setting": setting_label(values), "generation": g, "n": at["n"]})
                for m in self.metrics:
                    for stat, v in zip(STATS, _from_moments(*at.get(m, (0, 0.0, 0.0)))):
                        row[f"{m}_{stat}"] = v
                out.append(row)
        return out


def summary_rows(rows: list[dict], chains: list[dict]) -> list[dict]:
    """Aggregate metric rows over seeds: one row per (setting, generation)."""
    acc = SummaryAccumulator(chains)
    for r in rows:
        acc.add(r)
    return acc.rows()


def write_summary(store: RunStore, rows: Optional[list[dict]] = None) -> Optional[Path]:
    """Write ``RUN/summary.csv`` from the finished generations; returns its path."""
    acc = SummaryAccumulator(store.chains())
    if rows is None:
        for ch in store.chains():
            for r in store.chain_rows(ch["id"], varied=ch.get("varied")):
                acc.add(r)
    else:
        for r in rows:
            acc.add(r)
    if not acc.groups:
        return None
    from .onset import add_onset

    path = store.summary_csv
    write_csv(path, add_onset(store, acc.rows()))
    return path


def write_tables(store: RunStore) -> int:
    """Rewrite ``metrics.csv``, ``metrics.jsonl`` and ``summary.csv`` from the run folder,
    streaming one chain's rows at a time (memory bounded by one chain and the summary);
    returns the number of rows.  Each file is replaced atomically."""
    chains = store.chains()
    columns: dict[str, None] = {}
    acc = SummaryAccumulator(chains)
    count = 0

    def jsonl(f) -> None:
        nonlocal count
        for ch in chains:
            for r in store.chain_rows(ch["id"], varied=ch.get("varied")):
                columns.update(dict.fromkeys(r))
                acc.add(r)
                f.write((json.dumps(r, default=jsonable) + "\n").encode("utf-8"))
                count += 1

    atomic_write(store.metrics_jsonl, jsonl)
    if not count:
        return 0

    def csv_(f) -> None:
        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        w = csv.writer(text, lineterminator="\n")
        cols = list(columns)
        w.writerow(cols)
        for ch in chains:
            for r in store.chain_rows(ch["id"], varied=ch.get("varied")):
                w.writerow([csv_value(r.get(k)) for k in cols])
        text.flush()
        text.detach()

    atomic_write(store.metrics_csv, csv_)
    from .onset import add_onset

    write_csv(store.summary_csv, add_onset(store, acc.rows()))
    return count
