"""Sweeps: grids over settings and seeds, parallel workers, retries, resume, Ray,
and the summary table over seeds."""
import logging
import math
import multiprocessing
import os
import signal
import sys

import pytest

from genloop import run
from genloop.cli import main
from genloop.config import ConfigError
from genloop.loading import expand, load_raw
from genloop.reference import preset_path
from genloop.loop.experiment import TIME_COLUMNS
from genloop.loop.summary import interval, summary_rows
from genloop.runfolder import RunStore, read_csv
from genloop.sweep import resolve_workers

GRID = ["generator.guidance_scale=[1.0,0.1]", "seeds=[0,1]"]


def _results(path):
    rows = read_csv(path / "metrics.csv")
    return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in rows]


def _keys(rows):
    return sorted((r["chain"], r["generation"]) for r in rows)


@pytest.fixture(scope="module")
def sweep_raw():
    from conftest import TINY

    return load_raw(preset_path("default"), TINY + GRID)  # what `genloop run` loads


@pytest.fixture(scope="module")
def sequential(tmp_path_factory, sweep_raw):
    """The tiny 2 settings x 2 seeds sweep run one chain at a time, 1 torch thread per chain."""
    out = tmp_path_factory.mktemp("sequential")
    rows = []
    run(sweep_raw, out, report=False, on_generation=rows.append, workers=1, threads=1)
    assert len(rows) == 8
    return out


def test_grid_repeats_every_setting_per_seed(sweep_raw):
    chains = expand(sweep_raw)
    assert [(c.varied["generator.guidance_scale"], c.varied["seed"]) for c in chains] == [
        (1.0, 0), (1.0, 1), (0.1, 0), (0.1, 1)]
    assert [c.config.seed for c in chains] == [0, 1, 0, 1]
    assert len({c.id for c in chains}) == 4
    assert all(c.config.seeds is None for c in chains)
    # a list for any scalar key is an axis: 2 x 3 x 2 chains
    raw = load_raw(None, ["generator.guidance_scale=[1.0,0.1]", "train.lr=[1e-3,2e-3,3e-3]", "seeds=[5,6]"])
    chains = expand(raw)
    assert len(chains) == 12 and {c.config.train.lr for c in chains} == {1e-3, 2e-3, 3e-3}
    assert {c.config.seed for c in chains} == {5, 6}


def test_workers_and_threads_resolution():
    assert resolve_workers(None, "local", 4, None, ncores=8) == (1, 8)
    assert resolve_workers(2, "local", 4, None, ncores=8) == (2, 4)
    assert resolve_workers("3", "local", 4, None, ncores=8) == (3, 2)
    assert resolve_workers("auto", "local", 4, None, ncores=8) == (4, 2)   # one per chain
    assert resolve_workers("auto", "local", 16, None, ncores=8) == (8, 1)  # one per core
    assert resolve_workers("auto", "local", 16, 2, ncores=8) == (4, 2)     # cores // threads
    assert resolve_workers(None, "ray", 4, None, ncores=8) == (None, 1)
    assert resolve_workers(3, "ray", 4, 2, ncores=8) == (3, 2)
    for bad in ("many", 0, -1):
        with pytest.raises(ConfigError, match="--workers"):
            resolve_workers(bad, "local", 4, None, ncores=8)
    with pytest.raises(ConfigError, match="--threads"):
        resolve_workers(2, "local", 4, 0, ncores=8)


def test_summary_mean_std_and_t_interval():
    from scipy import stats

    chains = [{"id": f"c{i}", "varied": {"generator.guidance_scale": w, "seed": s}}
              for i, (w, s) in enumerate([(1.0, 0), (1.0, 1), (1.0, 2), (0.1, 0)])]
    acc = [0.5, 0.7, 0.9, 0.4]
    rows = [{"chain": c["id"], "seed": c["varied"]["seed"], "generation": 0, "generator.guidance_scale":
             c["varied"]["generator.guidance_scale"], "accuracy": a, "fid": float("nan"), "name": "x"}
            for c, a in zip(chains, acc)]
    out = summary_rows(rows, chains)
    assert [(r["setting"], r["generation"], r["n"]) for r in out] == [("guidance_scale=1", 0, 3), ("guidance_scale=0.1", 0, 1)]
    r = out[0]
    lo, hi = stats.t.interval(0.95, 2, loc=0.7, scale=stats.sem(acc[:3]))
    assert r["accuracy_mean"] == pytest.approx(0.7) and r["accuracy_std"] == pytest.approx(0.2)
    assert r["accuracy_ci95_low"] == pytest.approx(lo) and r["accuracy_ci95_high"] == pytest.approx(hi)
    assert "name_mean" not in r and "seed_mean" not in r and "generator.guidance_scale_mean" not in r
    assert math.isnan(r["fid_mean"])
    single = out[1]
    assert single["accuracy_mean"] == 0.4 and math.isnan(single["accuracy_std"]) and math.isnan(single["accuracy_ci95_low"])
    assert all(math.isnan(x) for x in interval([]))


def test_parallel_sweep_equals_one_at_a_time_and_retries_a_killed_worker(tmp_path, sweep_raw, sequential, caplog):
    """--workers 2 gives the numbers of the one-at-a-time run (same thread count);
    a worker killed mid-run is retried and resumes; each generation is reported once."""
    out = tmp_path / "parallel"
    store = RunStore(out)
    seen, killed = [], []

    def on_generation(row):
        seen.append(row)
        if killed:
            return
        for p in multiprocessing.active_children():  # the sweep's workers are named genloop-<chain>
            cid = p.name[len("genloop-"):]
            if p.name.startswith("genloop-") and not store.is_done(cid, 1):
                os.kill(p.pid, signal.SIGKILL)
                p.join(10)
                # unless it finished in the instant before the kill, it died without a result
                killed.append((cid, not store.is_done(cid, 1)))
                return

    caplog.set_level(logging.WARNING, logger="genloop.sweep")
    rows = run(sweep_raw, out, report=False, on_generation=on_generation, workers=2, threads=1, retries=2)
    assert _keys(seen) == _keys(rows) and len(seen) == 8  # every generation reported exactly once
    assert _results(out) == _results(sequential)
    if killed and killed[0][1]:
        assert f"chain {killed[0][0]}: worker failed" in caplog.text and "retry 1 of 2" in caplog.text
    summary = read_csv(out / "summary.csv")
    assert [(r["setting"], r["generation"], r["n"]) for r in summary] == [
        ("guidance_scale=1", 0, 2), ("guidance_scale=1", 1, 2), ("guidance_scale=0.1", 0, 2), ("guidance_scale=0.1", 1, 2)]
    assert all(r["accuracy_ci95_low"] <= r["accuracy_mean"] <= r["accuracy_ci95_high"] for r in summary)


class _Stop(Exception):
    pass


def test_interrupted_sweep_reruns_only_what_was_left(tmp_path, sweep_raw, sequential, capsys):
    out = tmp_path / "cut"
    count = []

    def stop_after_3(row):
        count.append(row)
        if len(count) == 3:
            raise _Stop

    with pytest.raises(_Stop):
        run(sweep_raw, out, report=False, on_generation=stop_after_3, workers=2, threads=1)
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("genloop-")]  # workers stopped
    store = RunStore(out)
    done = {(c["id"], g): (store.gen_dir(c["id"], g) / "DONE").stat().st_mtime_ns
            for c in store.chains() for g in range(2) if store.is_done(c["id"], g)}
    assert 3 <= len(done) < 8
    capsys.readouterr()
    from conftest import TINY

    rc = main(["run", "-o", str(out), "--no-progress", "--workers", "2", "--threads", "1", *GRID, *TINY])
    assert rc == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if " | gen " in line]
    assert len(printed) == 8 - len(done)  # only the missing generations ran (and were reported)
    for (cid, g), mtime in done.items():
        assert (store.gen_dir(cid, g) / "DONE").stat().st_mtime_ns == mtime  # not redone
    assert _results(out) == _results(sequential)
    assert (out / "report.html").exists() and (out / "summary.csv").exists()
    # a finished sweep is not run again
    assert main(["run", "-o", str(out), "--no-progress", "--workers", "2", "--threads", "1", *GRID, *TINY]) == 0
    assert not [line for line in capsys.readouterr().out.splitlines() if " | gen " in line]


def test_ray_backend_missing_gives_a_clear_error(tmp_path, sweep_raw, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'genloop\[ray\]'"):
        run(sweep_raw, tmp_path / "r", report=False, backend="ray")
    assert not (tmp_path / "r").exists()  # before any work
    with pytest.raises(ConfigError, match="--backend"):
        run(sweep_raw, tmp_path / "r", report=False, backend="slurm")


@pytest.mark.ray
def test_ray_backend_gives_the_same_numbers(tmp_path, sweep_raw, sequential):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    seen = []
    rows = run(sweep_raw, out, report=False, on_generation=seen.append, backend="ray", threads=1)
    assert len(seen) == 8 and _keys(seen) == _keys(rows)
    assert _results(out) == _results(sequential)


def test_python_api_runs_a_sweep_with_workers(tmp_path, sequential):
    """genloop.run(..., workers=2) runs the same sweep as the CLI and gives the numbers of
    the one-at-a-time run at equal threads; on_generation sees every generation."""
    import genloop
    from conftest import TINY

    seen = []
    rows = genloop.run(preset_path("default"), tmp_path / "api", TINY + GRID, workers=2, threads=1,
                       report=False, on_generation=seen.append)
    assert len(rows) == 8 and len(seen) == 8
    assert _results(tmp_path / "api") == _results(sequential)
