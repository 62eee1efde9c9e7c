"""Synthetic-fraction schedules: how much of each later generation's training set is
synthetic, read by every interaction model that mixes real and synthetic data (``mix``,
``fresh``, ``accumulate``, ``accumulate_subsample``, ``verify``).

The synthetic share s_g of generation g >= 1 (generation 0 trains on real data):

- ``constant``     s_g = ``loop.schedule.fraction``
- ``list``         s_g = ``loop.schedule.fractions[g - 1]`` (one entry per later generation)
- ``linear``       from ``loop.schedule.fraction`` at generation 1 to ``loop.schedule.fraction_end``
                   at generation 1 + ``loop.schedule.ramp``, constant after
- ``exponential``  the real share decays geometrically:
                   1 - s_g = (1 - ``loop.schedule.fraction``) ``loop.schedule.decay``^(g - 1)

then s_g = min(s_g, 1 - ``loop.schedule.real_floor``) (a floor on the real share).  Without
``loop.schedule.kind`` each model keeps its own key: ``mix`` s = 1 -
``loop.mix.real_fraction``, ``fresh`` s = 1 - ``loop.fresh.fraction``, ``accumulate`` and
``accumulate_subsample`` no share (their old pools), ``verify`` s = 1 (the accepted
samples only).

A training set of size N has round(s_g N) synthetic items and N - round(s_g N) real ones.
N is ``loop.schedule.train_size`` or: ``mix``, ``accumulate_subsample`` the real training set's size
n, ``fresh`` (and ``loop.schedule.real_draws: fresh``) generation 0's size n0 = n - reserve;
``accumulate``: the largest set with share s_g that uses each real and synthetic item at
most once (at most ``loop.schedule.train_size``).  The real part is drawn without replacement from
the real training set (``loop.schedule.real_draws: same``, the same real set every generation) or
is real data never used before, from a reserve held back from generation 0
(``loop.schedule.real_draws: fresh``; ``fresh`` always).  The reserve is ``loop.schedule.reserve`` of
the real training set, or just enough for every generation of the run.

The target share goes into each generation's row as ``synthetic_target``; ``pool_real``
is the share the pool has.  Bad settings stop with one line before a run folder is made.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ...config import Config, ConfigError, LoopConfig, add_shared_group, opt
from ...data import RealData
from ...loading import register_validator
from .base import INTERACTIONS, Pool, take

log = logging.getLogger(__name__)

READERS = ("mix", "fresh", "accumulate", "accumulate_subsample", "verify")


@dataclass
class ScheduleOptions:
    """The synthetic-fraction schedule (``loop.schedule.<key>``) of mix, fresh, accumulate(_subsample), verify."""

    kind: Optional[str] = opt(None, "share of synthetic data in each later generation's training set: constant, list, linear, exponential (None: each model's own key, e.g. loop.mix.real_fraction); read by mix, fresh, accumulate, accumulate_subsample, verify", choices=("constant", "list", "linear", "exponential"), old="synthetic_schedule")
    fraction: float = opt(0.5, "synthetic share of generation 1 (constant: of every later generation)", ge=0.0, le=1.0, old="synthetic_fraction")
    fraction_end: float = opt(1.0, "linear: synthetic share reached after loop.schedule.ramp generations", ge=0.0, le=1.0, old="synthetic_fraction_end")
    ramp: int = opt(10, "linear: generations from loop.schedule.fraction to loop.schedule.fraction_end", ge=1, old="synthetic_ramp")
    decay: float = opt(0.5, "exponential: the real share is multiplied by this each generation", gt=0.0, le=1.0, old="synthetic_decay")
    fractions: Optional[list[float]] = opt(None, "list: synthetic share of generations 1, 2, ... (one entry per later generation)", ge=0.0, le=1.0, old="synthetic_fractions")
    real_floor: float = opt(0.0, "the real share of every later training set is at least this", ge=0.0, le=1.0)
    train_size: Optional[int] = opt(None, "items in every later generation's training set (None: the model's own size: n for mix and accumulate_subsample, generation 0's for fresh, all it can use for accumulate)", ge=1)
    real_draws: str = opt("same", "the real part of a later training set comes from the same real training set each generation (same), or is real data never used before, from a reserve held back from generation 0 (fresh; the fresh model always)", choices=("same", "fresh"))
    reserve: Optional[float] = opt(None, "fraction of the real training set held back as the reserve of never-used real items (fresh, and loop.schedule.real_draws=fresh; None: just enough that no item is ever reused)", gt=0.0, lt=1.0, old="fresh_reserve")


add_shared_group(LoopConfig, "schedule", ScheduleOptions, "synthetic-fraction schedule (mix, fresh, accumulate, accumulate_subsample, verify)")


def options(loop: LoopConfig) -> ScheduleOptions:
    return loop.group("schedule")


def configured(loop: LoopConfig) -> bool:
    """True when any schedule key differs from its default (the models' old pools otherwise)."""
    o = options(loop)
    return (o.kind is not None or o.train_size is not None or o.real_floor > 0
            or o.real_draws != "same" or o.fractions is not None)


def model_default(loop: LoopConfig) -> Optional[float]:
    """The synthetic share a model uses without a schedule (None: it has none): the
    interaction's own (``Interaction.synthetic_default``)."""
    return INTERACTIONS.get(loop.interaction).synthetic_default(loop)


def synthetic_share(loop: LoopConfig, g: int, default: Optional[float]) -> Optional[float]:
    """s_g of generation ``g`` >= 1 (module docstring); ``default`` without a schedule (None: no share)."""
    o = options(loop)
    kind = o.kind
    if kind is None:
        s = default
    elif kind == "constant":
        s = o.fraction
    elif kind == "list":
        s = o.fractions[g - 1]
    elif kind == "linear":
        t = min(1.0, (g - 1) / o.ramp)
        s = o.fraction + (o.fraction_end - o.fraction) * t
    else:  # exponential
        s = 1.0 - (1.0 - o.fraction) * o.decay ** (g - 1)
    if s is None:
        return None
    return float(min(max(s, 0.0), 1.0 - o.real_floor))


def split(s: float, size: int) -> tuple[int, int]:
    """(real, synthetic) counts of a set of ``size`` with synthetic share ``s``."""
    m = int(round(s * size))
    return size - m, m


def largest_split(s: float, real: int, synth: int, cap: Optional[int] = None) -> tuple[int, int]:
    """The largest (real, synthetic) counts with synthetic share ``s`` using at most ``real``
    real and ``synth`` synthetic items (and at most ``cap`` in all)."""
    if s <= 0.0:
        size = real
    elif s >= 1.0:
        size = synth
    else:
        size = int(np.floor(min(real / (1.0 - s), synth / s) + 1e-9))
    if cap is not None:
        size = min(size, cap)
    k, m = split(s, size)
    return min(k, real), min(m, synth)


def reserve_size(loop: LoopConfig, n: int, default: Optional[float]) -> int:
    """Real items held back from generation 0 for ``real_draws: fresh``: ``loop.schedule.reserve`` of
    n, or the real parts of every later generation of the run."""
    o = options(loop)
    if o.reserve is not None:
        return int(round(o.reserve * n))
    later = range(1, loop.generations)
    shares = [1.0 - synthetic_share(loop, g, default) for g in later]
    if o.train_size is not None:
        return int(sum(split(1.0 - r, o.train_size)[0] for r in shares))
    n0 = n / (1.0 + sum(shares))  # n0 + sum_g (1 - s_g) n0 = n
    return int(sum(split(1.0 - r, int(round(n0)))[0] for r in shares)) if later else 0


@register_validator
def _check_schedule(cfg: Config) -> None:
    loop = cfg.loop
    if not configured(loop):
        return
    o = options(loop)
    if loop.interaction not in READERS:
        key = "kind" if o.kind is not None else next(
            k for k in ("train_size", "real_floor", "real_draws", "fractions") if getattr(o, k) not in (None, 0.0, "same"))
        raise ConfigError(f"loop.schedule.{key}: read only by the interaction models that mix real and synthetic data "
                          f"({', '.join(READERS)}); loop.interaction is {loop.interaction!r}")
    if o.fractions is not None and o.kind != "list":
        raise ConfigError(f"loop.schedule.fractions: a list of shares needs loop.schedule.kind=list (it is {o.kind})")
    if o.kind == "list":
        have = len(o.fractions or [])
        if have < loop.generations - 1:
            raise ConfigError(f"loop.schedule.fractions: {have} entries for {loop.generations} generations; give one "
                              f"synthetic share in [0, 1] per later generation ({loop.generations - 1})")
    if loop.interaction == "accumulate_subsample" and o.real_draws == "fresh" and o.kind is None:
        raise ConfigError("loop.schedule.real_draws: fresh real draws in accumulate_subsample need a synthetic share; "
                          "set loop.schedule.kind (e.g. constant with loop.schedule.fraction)")
    if loop.interaction == "accumulate" and o.real_draws == "fresh":
        raise ConfigError("loop.schedule.real_draws: fresh is read by mix, fresh and accumulate_subsample; accumulate "
                          "keeps the whole real set (use same)")
    if loop.sample_count is not None and o.train_size is not None and loop.interaction in ("mix", "fresh"):
        for g in range(1, loop.generations):
            _, m = split(synthetic_share(loop, g, 0.5), o.train_size)
            if m > loop.sample_count:
                raise ConfigError(f"loop.schedule.train_size: {o.train_size} items with synthetic share "
                                  f"{synthetic_share(loop, g, 0.5):g} need {m} samples of the previous generation, "
                                  f"more than loop.sample_count = {loop.sample_count} (lower it, or raise "
                                  "loop.sample_count)")


class RealSupply:
    """Where a scheduled model's real items come from, and the size of its training sets
    (module docstring).  Built once per chain from the config and the real data; keeps no
    state between generations (generation g's fresh items are found from g)."""

    def __init__(self, config: Config, real: RealData, sample_count: int) -> None:
        loop = config.loop
        o = options(loop)
        self.loop, self.train = loop, real.train
        n = len(real.train)
        self.default = model_default(loop)
        self.fresh = o.real_draws == "fresh" or loop.interaction == "fresh"
        later = range(1, loop.generations)
        if self.fresh:
            size = reserve_size(loop, n, self.default if self.default is not None else 0.0)
            if n - size < 1:
                raise ConfigError(f"loop.schedule.reserve: holding back {size} of {n} real items leaves none for "
                                  "generation 0 (lower loop.schedule.reserve or loop.schedule.train_size)")
            rng = np.random.default_rng([config.seed, config.data.split_seed, 0xF2E5])
            reserve = take(Pool.real(real.train), size, rng, like=real.train).index if size else np.zeros(0, np.int64)
            self.reserve = rng.permutation(reserve)  # the order in which reserve items are used
        else:
            self.reserve = np.zeros(0, dtype=np.int64)
        self.n0 = n - len(self.reserve)
        self.size = o.train_size or self.n0
        shares = {g: synthetic_share(loop, g, self.default) for g in later}
        self.real_counts = {g: split(s, self.size)[0] if s is not None else None for g, s in shares.items()}
        if loop.interaction in ("mix", "fresh", "accumulate_subsample"):
            for g, s in shares.items():
                if s is None:
                    continue
                k, m = split(s, self.size)
                if not self.fresh and k > n:
                    raise ConfigError(f"loop.schedule.train_size: {self.size} items with synthetic share {s:g} need {k} "
                                      f"real items, more than the {n} of the real training set (lower "
                                      "loop.schedule.train_size)")
                if loop.interaction != "accumulate_subsample" and m > sample_count:
                    raise ConfigError(f"loop.schedule.train_size: {self.size} items with synthetic share {s:g} need {m} "
                                      f"samples of the previous generation, which makes only {sample_count} (lower "
                                      "loop.schedule.train_size, or raise loop.sample_count)")
        if self.fresh:
            need = sum(k for k in self.real_counts.values() if k)
            if need and not len(self.reserve):
                raise ConfigError("loop.schedule.real_draws: fresh real data need a reserve, and the schedule leaves "
                                  "none (set loop.schedule.reserve)")
            if need > len(self.reserve):
                log.warning("fresh real draws: the reserve of %d real items is smaller than the %d the schedule "
                            "uses; items are reused once it is exhausted", len(self.reserve), need)

    def share(self, g: int) -> Optional[float]:
        return synthetic_share(self.loop, g, self.default)

    def real_part(self, g: int, k: int, rng: np.random.Generator) -> Pool:
        """``k`` real items for generation ``g``: drawn from the real training set (same), or the
        next ``k`` never-used reserve items (fresh)."""
        if not self.fresh:
            return take(Pool.real(self.train), k, rng, like=self.train)
        start = sum(self.real_counts[h] or 0 for h in range(1, g))
        idx = self.reserve[(start + np.arange(k)) % len(self.reserve)] if k else np.zeros(0, np.int64)
        return Pool.real(self.train.subset(idx), idx)

    def pool(self, g: int, synthetic: Pool, rng: np.random.Generator, size: Optional[int] = None,
             short_ok: bool = False) -> Pool:
        """Generation ``g``'s training set: its share of ``synthetic`` (drawn without
        replacement) and the rest real; ``size`` defaults to ``self.size``.  ``short_ok``:
        fewer synthetic items than the share asks for are all used (verify)."""
        s = self.share(g)
        size = self.size if size is None else size
        k, m = split(s, size)
        if short_ok:
            m = min(m, len(synthetic))
        if m > len(synthetic):
            raise ConfigError(f"loop.schedule.train_size: generation {g} needs {m} synthetic items and only "
                              f"{len(synthetic)} are available (lower loop.schedule.train_size or the synthetic share)")
        parts = [self.real_part(g, k, rng), take(synthetic, m, rng, like=self.train) if m else None]
        out = Pool.concat([p for p in parts if p is not None and len(p)] or [parts[0]])
        out.stats = {"synthetic_target": s}
        return out
