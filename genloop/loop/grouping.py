"""Chains grouped into settings, and the interval over a setting's seeds: what the summary
table (``summary.py``) and the collapse-onset table (``onset.py``) share.

A *setting* is one combination of the varied config keys other than ``seed``; its
interval is mean +- t(0.975, n-1) * std / sqrt(n) (Student's t over the seeds).
"""
from __future__ import annotations

import math

from ..chains import format_value as _fmt


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


_T_CACHE: dict[tuple[int, float], float] = {}


def t_quantile(level: float, dof: int) -> float:
    """Student's t quantile (cached: a summary asks for the same few thousand times)."""
    key = (dof, level)
    if key not in _T_CACHE:
        from scipy.stats import t

        _T_CACHE[key] = float(t.ppf(0.5 + level / 2, dof))
    return _T_CACHE[key]


def interval(values: list[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """(mean, std, low, high) of ``values`` with a Student-t interval at ``level``."""
    n = len(values)
    if n == 0:
        return (math.nan,) * 4
    mean = math.fsum(values) / n
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(level, n - 1) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half
