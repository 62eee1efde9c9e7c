"""Collapse onset: for each chain and metric, the first generation whose value leaves the
real reference's band.

The band of a metric is its value on the real test set (``reference.csv``) plus or minus
``metrics.onset.tolerance`` times its size (default 0.1: 10 %; a reference of 0 has the
band [-tolerance, +tolerance]).  The reference has one value, not a spread, so the band is
this stated tolerance.  Generations are checked in order; a chain that never leaves the
band has no onset.  Metrics: every numeric column of the reference row but the sample
counts (``n_*``, ``eval_n*``).

``onset.csv`` holds one row per chain (its varied settings, seed and ``onset_<metric>``,
empty when it never left); ``summary.csv`` gets, per setting, ``onset_<metric>_mean`` /
``_std`` / ``_ci95_low`` / ``_ci95_high`` over the seeds that left the band and
``onset_<metric>_left``, the share of seeds that did (the same on every generation's row
of a setting).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from ..config import MetricsConfig, add_shared_group, opt
from ..runfolder import RunStore, read_csv, write_csv
from .grouping import interval, setting_keys, setting_label

DEFAULT_TOLERANCE = 0.1


@dataclass
class OnsetOptions:
    """The collapse-onset band (``metrics.onset.<key>``)."""

    tolerance: float = opt(DEFAULT_TOLERANCE, "a metric has left the real reference's band when it differs from the reference value by more than this fraction of it (this much when the reference is 0); onset.csv, summary.csv onset_* columns", gt=0.0, old="onset_tolerance")


add_shared_group(MetricsConfig, "onset", OnsetOptions, "collapse onset")


def tolerance(store: RunStore) -> float:
    """``metrics.onset.tolerance`` of the run folder's config (default 0.1; ``metrics.onset_tolerance`` in
    the flat layout of earlier versions)."""
    import yaml

    if not store.config_path.exists():
        return DEFAULT_TOLERANCE
    raw = yaml.safe_load(store.config_path.read_text()) or {}
    metrics = raw.get("metrics") or {}
    value = (metrics.get("onset") or {}).get("tolerance", metrics.get("onset_tolerance", DEFAULT_TOLERANCE))
    return float(value) if isinstance(value, (int, float)) else DEFAULT_TOLERANCE


def _number(v: Any) -> Optional[float]:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def band(reference: float, tol: float) -> tuple[float, float]:
    half = tol * abs(reference) if reference != 0 else tol
    return reference - half, reference + half


def reference_metrics(ref: dict) -> dict[str, float]:
    out = {}
    for k, v in ref.items():
        if k in ("reference", "data") or k.startswith(("n_", "eval_n")) or "." in k:
            continue
        x = _number(v)
        if x is not None:
            out[k] = x
    return out


def chain_onset(rows: list[dict], ref: dict[str, float], tol: float) -> dict[str, Optional[int]]:
    """First generation at which each metric of ``ref`` leaves its band (None: never)."""
    out: dict[str, Optional[int]] = {}
    for m, r in ref.items():
        lo, hi = band(r, tol)
        out[m] = None
        for row in sorted(rows, key=lambda x: int(x["generation"])):
            x = _number(row.get(m))
            if x is not None and not lo <= x <= hi:
                out[m] = int(row["generation"])
                break
    return out


def _reference_for(refs: list[dict], varied: dict) -> Optional[dict]:
    for ref in refs:
        if all(str(ref.get(k)) == str(v) for k, v in varied.items() if k in ref):
            return ref
    return refs[0] if refs else None


def onset_rows(store: RunStore) -> list[dict]:
    """One row per chain: its settings, seed and ``onset_<metric>`` (None: never left)."""
    path = store.root / "reference.csv"
    refs = read_csv(path) if path.exists() else []
    if not refs:
        return []
    tol = tolerance(store)
    out = []
    for ch in store.chains():
        varied = ch.get("varied", {})
        ref = _reference_for(refs, varied)
        rows = store.chain_rows(ch["id"], varied=varied)
        if ref is None or not rows:
            continue
        onset = chain_onset(rows, reference_metrics(ref), tol)
        out.append({"chain": ch["id"], **{k: v for k, v in varied.items() if k != "seed"}, "seed": ch.get("seed"),
                    "generations": len(rows), **{f"onset_{m}": g for m, g in onset.items()}})
    return out


def add_onset(store: RunStore, summary: list[dict]) -> list[dict]:
    """Write ``onset.csv`` and add the per-setting onset columns to ``summary`` rows."""
    rows = onset_rows(store)
    if not rows:
        return summary
    write_csv(store.root / "onset.csv", rows)
    keys = setting_keys(store.chains(), [])
    metrics = [k for k in rows[0] if k.startswith("onset_")]
    per: dict[str, dict] = {}
    for r in rows:
        label = setting_label({k: r.get(k) for k in keys})
        grp = per.setdefault(label, {m: [] for m in metrics} | {"_n": 0})
        grp["_n"] += 1
        for m in metrics:
            if r.get(m) is not None:
                grp[m].append(float(r[m]))
    for s in summary:
        grp = per.get(s.get("setting"))
        if grp is None:
            continue
        for m in metrics:
            mean, std, lo, hi = interval(grp[m]) if grp[m] else (math.nan,) * 4
            s.update({f"{m}_mean": mean, f"{m}_std": std, f"{m}_ci95_low": lo, f"{m}_ci95_high": hi,
                      f"{m}_left": len(grp[m]) / grp["_n"]})
    return summary

