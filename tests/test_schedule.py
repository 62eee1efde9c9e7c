"""Synthetic-fraction schedules (genloop/loop/interactions/schedule.py): the arithmetic of
each schedule, the pools every mixing model builds from it, fresh real draws, bad input
before any run folder, and a resumed run equal to an uninterrupted one."""
import csv

import numpy as np
import pytest

from genloop import run
from genloop.cli import main
from genloop.config import ConfigError
from genloop.data import ImageSet, RealData
from genloop.loading import from_dict, load_raw
from genloop.loop import INTERACTIONS, History
from genloop.loop.interactions import REAL
from genloop.loop.interactions.schedule import largest_split, split, synthetic_share


def _loop(*overrides):
    return from_dict(load_raw(None, ["loop.interaction=mix", "loop.generations=8", *overrides])).loop


def _real(n=200):
    rng = np.random.default_rng(0)
    return RealData(ImageSet(rng.integers(0, 256, (n, 1, 2, 2), dtype=np.uint8)),
                    ImageSet(rng.integers(0, 256, (20, 1, 2, 2), dtype=np.uint8)))


def _history(real, m=None):
    def load(g, lineage=0):
        k = m or len(real.train)
        return ImageSet(np.full((k, 1, 2, 2), g + 1, dtype=np.uint8))
    return History(real, load)


def _make(name, *overrides, real=None):
    real = real or _real()
    cfg = from_dict(load_raw(None, [f"loop.interaction={name}", "loop.generations=6", *overrides]))
    return INTERACTIONS.get(name)(cfg, real), real


def test_schedule_arithmetic_against_hand_values():
    c = _loop("loop.synthetic_schedule=constant", "loop.synthetic_fraction=0.3")
    assert [synthetic_share(c, g, None) for g in (1, 5)] == [0.3, 0.3]
    lin = _loop("loop.synthetic_schedule=linear", "loop.synthetic_fraction=0.2", "loop.synthetic_fraction_end=0.8",
                "loop.synthetic_ramp=3")
    assert [synthetic_share(lin, g, None) for g in (1, 2, 3, 4, 7)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 0.8])
    ex = _loop("loop.synthetic_schedule=exponential", "loop.synthetic_fraction=0.5", "loop.synthetic_decay=0.5")
    assert [synthetic_share(ex, g, None) for g in (1, 2, 3)] == pytest.approx([0.5, 0.75, 0.875])
    floor = _loop("loop.synthetic_schedule=exponential", "loop.synthetic_fraction=0.5", "loop.real_floor=0.2")
    assert [synthetic_share(floor, g, None) for g in (1, 2, 3, 4)] == pytest.approx([0.5, 0.75, 0.8, 0.8])
    lst = _loop("loop.synthetic_schedule=list", "loop.synthetic_fractions=[0,0.1,0.2,0.3,0.4,0.5,1]")
    assert [synthetic_share(lst, g, None) for g in range(1, 8)] == pytest.approx([0, 0.1, 0.2, 0.3, 0.4, 0.5, 1])
    # without a schedule: the model's own key
    assert synthetic_share(_loop(), 3, 0.9) == 0.9 and synthetic_share(_loop(), 3, None) is None
    assert split(0.25, 100) == (75, 25) and split(1.0, 7) == (0, 7)
    assert largest_split(0.5, 100, 30) == (30, 30)      # synthetic-limited
    assert largest_split(0.25, 100, 900) == (100, 33)   # real-limited: 133 items, 33 synthetic
    assert largest_split(0.5, 100, 300, cap=50) == (25, 25)
    assert largest_split(0.0, 100, 300) == (100, 0) and largest_split(1.0, 100, 300) == (0, 300)


@pytest.mark.parametrize("name", ["mix", "accumulate_subsample", "fresh"])
def test_every_mixing_model_follows_a_list_schedule(name):
    shares = [0.0, 0.25, 0.5, 0.75, 1.0]
    inter, real = _make(name, "loop.synthetic_schedule=list", f"loop.synthetic_fractions={shares}".replace(" ", ""),
                        "loop.train_size=80", "loop.fresh_reserve=0.5")
    hist = _history(real)
    for g in range(1, 6):
        pool = inter.training_set(g, hist, np.random.default_rng(g))
        assert len(pool) == 80
        assert np.sum(pool.origin != REAL) == round(shares[g - 1] * 80)
        assert pool.stats["synthetic_target"] == shares[g - 1]


def test_old_keys_keep_working_and_equal_the_constant_schedule():
    old, real = _make("mix", "loop.real_fraction=0.3")
    new, _ = _make("mix", "loop.synthetic_schedule=constant", "loop.synthetic_fraction=0.7", real=real)
    hist = _history(real)
    a, b = old.training_set(2, hist, np.random.default_rng(1)), new.training_set(2, hist, np.random.default_rng(1))
    assert len(a) == len(b) == 200
    assert np.sum(a.origin == REAL) == np.sum(b.origin == REAL) == 60
    fresh, _ = _make("fresh", "loop.fresh_fraction=0.2", real=real)  # no schedule key: the fresh model as it was
    assert fresh.supply is None and fresh.per_generation >= 1


def test_fresh_real_draws_are_never_reused_and_never_in_generation_zero():
    inter, real = _make("mix", "loop.synthetic_schedule=linear", "loop.synthetic_fraction=0.5",
                        "loop.synthetic_fraction_end=0.9", "loop.synthetic_ramp=4", "loop.real_draws=fresh")
    hist = _history(real)
    g0 = inter.training_set(0, hist, np.random.default_rng(0))
    used = [set(g0.index)]
    for g in range(1, 6):
        pool = inter.training_set(g, hist, np.random.default_rng(g))
        idx = set(pool.index[pool.origin == REAL])
        assert all(not (idx & u) for u in used), g
        used.append(idx)
        n0 = len(g0)
        assert len(pool) == n0 and np.sum(pool.origin == REAL) == n0 - round(synthetic_share(inter.config.loop, g, None) * n0)


def test_accumulate_takes_the_largest_set_with_the_share():
    inter, real = _make("accumulate", "loop.synthetic_schedule=constant", "loop.synthetic_fraction=0.2")
    hist = _history(real)
    p1 = inter.training_set(1, hist, np.random.default_rng(1))  # 200 synthetic there: real-limited
    assert np.sum(p1.origin == REAL) == 200 and np.sum(p1.origin != REAL) == 50
    inter, _ = _make("accumulate", "loop.synthetic_schedule=constant", "loop.synthetic_fraction=0.8", real=real)
    p3 = inter.training_set(3, hist, np.random.default_rng(3))  # 600 synthetic, 200 real: share 0.8 -> 750 items (synthetic-limited)
    assert len(p3) == 750 and np.sum(p3.origin != REAL) == 600


BAD = [  # old flat keys (aliases) and new ones; the errors name the new keys
    (["loop.synthetic_schedule=constant", "loop.synthetic_fraction=1.5"], "loop.schedule.fraction: 1.5 is out of range"),
    (["loop.schedule.kind=list", "loop.schedule.fractions=[0.5,0.5]"], "loop.schedule.fractions: 2 entries"),
    (["loop.synthetic_schedule=list", "loop.synthetic_fractions=[0.5,-0.1,0.5]"], "loop.schedule.fractions[1]"),
    (["loop.schedule.fractions=[0.5,0.5,0.5]"], "needs loop.schedule.kind=list"),
    (["loop.synthetic_schedule=constant", "loop.interaction=replace"], "loop.schedule.kind: read only"),
    (["loop.schedule.kind=linear", "loop.schedule.train_size=500"], "loop.schedule.train_size: 500 items"),
    (["loop.synthetic_schedule=constant", "loop.train_size=150", "loop.sample_count=50"], "loop.schedule.train_size: 150"),
    (["loop.real_floor=2"], "loop.schedule.real_floor: 2"),
    (["loop.interaction=accumulate_subsample", "loop.schedule.real_draws=fresh"], "loop.schedule.real_draws: fresh real draws"),
    (["loop.synthetic_schedule=often"], "loop.schedule.kind: 'often' is not allowed"),
]


@pytest.mark.parametrize("extra, fragment", BAD, ids=[b[1][:30] for b in BAD])
def test_bad_schedules_are_one_line_before_any_run_folder(extra, fragment, tmp_path, capsys):
    out = tmp_path / "r"
    args = ["data.name=gaussian", "data.count=250", "generator.name=gaussian", "generator.conditional=false",
            "metrics.names=[variance_ratio]", "loop.interaction=mix", "loop.generations=4", "device=cpu", *extra]
    assert main(["run", "-o", str(out), "--no-progress", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err
    assert not out.exists()


class _Stop(BaseException):
    """Stands for the process being killed mid-run."""


def test_a_schedule_runs_and_resumes_after_a_kill(tmp_path):
    args = ["data.name=categorical", "data.count=250", "generator.name=categorical", "metrics.names=[categorical]",
            "loop.interaction=[mix,fresh,accumulate_subsample]", "loop.generations=4", "device=cpu",
            "loop.synthetic_schedule=exponential", "loop.synthetic_fraction=0.5", "loop.real_floor=0.2",
            "loop.real_draws=fresh", "loop.fresh_reserve=0.3", "generator.guidance_scale=1"]
    raw = load_raw(None, args)
    run(raw, tmp_path / "full", report=False)

    def stop(row):
        if row["generation"] == 2:
            raise _Stop

    with pytest.raises(_Stop):
        run(raw, tmp_path / "cut", report=False, on_generation=stop)
    run(raw, tmp_path / "cut", report=False)
    rows = lambda d: sorted((r["chain"], r["generation"], r["gini_simpson"], r["pool_real"])
                            for r in csv.DictReader(open(d / "metrics.csv")))
    full = rows(tmp_path / "full")
    assert len(full) == 12 and full == rows(tmp_path / "cut")
    target = {r["generation"]: r["synthetic_target"] for r in csv.DictReader(open(tmp_path / "full" / "metrics.csv"))}
    assert [float(target[str(g)]) for g in (1, 2, 3)] == pytest.approx([0.5, 0.75, 0.8])
