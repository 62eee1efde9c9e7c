"""Run folders a researcher can extend, inspect and trust: extending a run (more
generations, seeds, grid values), one writer per folder (the lock), verified files
(DONE records sizes and SHA-256) and ``genloop status``.  Fast: the analytic
gaussian generator."""
import json
import logging
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import genloop
from genloop import run
from genloop.cli import main
from genloop.loading import load_raw
from genloop.loop.experiment import TIME_COLUMNS, RunFolderMismatch
from genloop.runfolder import LOCK_NAME, RunLocked, RunStore, read_csv


GAUSS = ["data.name=gaussian", "data.count=250", "generator.name=gaussian",
         "metrics.names=[frechet,wasserstein,variance_ratio]", "device=cpu",
         "generator.guidance_scale=1.0"]
ROOT = Path(__file__).resolve().parents[1]


def _rows(path, drop=("chain",)):
    """metrics.csv rows without timings (and chain ids, which depend on the order chains were added),
    keyed by their settings and generation."""
    out = {}
    for r in read_csv(Path(path) / "metrics.csv"):
        key = (r["seed"], r.get("generator.name"), r.get("generator.guidance_scale"), r["generation"])
        out[key] = {k: "nan" if isinstance(v, float) and math.isnan(v) else v
                    for k, v in r.items() if k not in TIME_COLUMNS and k not in drop}
    return out


def _summary(path):
    return [{k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()
             if not k.startswith(TIME_COLUMNS)} for r in read_csv(Path(path) / "summary.csv")]


def _done_mtimes(path):
    store = RunStore(path)
    return {(c["id"], g): (store.gen_dir(c["id"], g) / "DONE").stat().st_mtime_ns
            for c in store.chains() for g in range(store.finished_generations(c["id"]))}


def _run(out, extra, **kwargs):
    seen = []
    genloop.run(None, out, GAUSS + extra, report=False, on_generation=seen.append, **kwargs)
    return seen


# --------------------------------------------------------------------------- extend, never redo


def test_two_then_three_generations_equals_a_fresh_three_generation_run(tmp_path, capsys):
    out, fresh = tmp_path / "grown", tmp_path / "fresh"
    _run(out, ["loop.generations=2", "generator.name=[gaussian,gmm]"])
    before = _done_mtimes(out)
    capsys.readouterr()
    assert main(["run", "-o", str(out), "--no-progress", *GAUSS, "loop.generations=3",
                 "generator.name=[gaussian,gmm]"]) == 0
    printed = capsys.readouterr().out
    assert "extending" in printed and "loop.generations" in printed
    assert [line.split(" | ")[1] for line in printed.splitlines() if " | gen " in line] == ["gen  2", "gen  2"]
    assert all(_done_mtimes(out)[k] == t for k, t in before.items())  # finished generations kept
    _run(fresh, ["loop.generations=3", "generator.name=[gaussian,gmm]"])
    assert _rows(out, drop=()) == _rows(fresh, drop=())  # same ids too: no chain was added
    assert _summary(out) == _summary(fresh) and len(_summary(out)) == 6
    html = (out / "report.html").read_text()
    assert "3 / 3" in html  # the report covers the new generations
    assert json.loads((out / "chains.json").read_text())[0]["generations"] == 3


def test_adding_a_seed_runs_only_that_seeds_chains(tmp_path):
    out, fresh = tmp_path / "grown", tmp_path / "fresh"
    grid = ["loop.generations=2", "generator.name=[gaussian,kde]"]
    first = _run(out, grid + ["seeds=[0]"])
    assert len(first) == 4
    ids = [c["id"] for c in RunStore(out).chains()]
    added = _run(out, grid + ["seeds=[0,1]"])
    assert len(added) == 4 and {r["seed"] for r in added} == {1}  # only seed 1's chains ran
    chains = RunStore(out).chains()
    assert [c["id"] for c in chains if c["seed"] == 0] == ids  # old chains keep their ids
    assert len({c["id"] for c in chains}) == 4
    _run(fresh, grid + ["seeds=[0,1]"])
    assert _rows(out) == _rows(fresh)
    assert _summary(out) == _summary(fresh)
    assert {r["n"] for r in _summary(out)} == {2}  # the summary spans both seeds


def test_adding_a_grid_value_and_seeds_to_a_single_chain(tmp_path):
    """A scalar becomes a grid key and seeds are added in one go: the old chain is kept
    (its rows gain the new columns), the others run."""
    out = tmp_path / "grown"
    assert len(_run(out, ["loop.generations=2"])) == 2
    added = _run(out, ["loop.generations=2", "generator.name=[gaussian,kde]", "seeds=[0,1]"])
    assert len(added) == 6 and not [r for r in added if r["seed"] == 0 and r["generator.name"] == "gaussian"]
    rows = read_csv(out / "metrics.csv")
    assert len(rows) == 8 and all(r["generator.name"] in ("gaussian", "kde") for r in rows)
    assert rows[0]["chain"] == "c00" and list(rows[0])[:4] == ["chain", "seed", "generation", "generator.name"]
    assert {(r["generator.name"], r["seed"]) for r in rows} == {("gaussian", 0), ("gaussian", 1), ("kde", 0), ("kde", 1)}
    assert [r["setting"] for r in read_csv(out / "summary.csv")][::2] == ["name=gaussian", "name=kde"]


def test_other_changes_are_refused_naming_the_keys(tmp_path, capsys):
    out = tmp_path / "run"
    base = [*GAUSS, "loop.generations=3", "seeds=[0,1]"]
    _run(out, base[len(GAUSS):])
    cases = [(["data.count=300"], "keys that differ: data.count"),
             (["loop.generations=2"], "3 -> 2"),
             (["seeds=[0]"], "keys that differ: seeds"),
             (["seeds=[0,1]", "generator.name=kde"], "keys that differ: generator.name")]
    for extra, fragment in cases:
        capsys.readouterr()
        assert main(["run", "-o", str(out), "--no-progress", *base, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and fragment in err[0] and "--force" in err[0], err
    # fresh without a fixed reserve sizes its reserve from loop.generations: not extendable
    fresh = [*GAUSS, "loop.interaction=fresh", "loop.fresh_fraction=0.2"]
    _run(tmp_path / "fresh", fresh[len(GAUSS):] + ["loop.generations=2"])
    with pytest.raises(RunFolderMismatch, match="loop.schedule.reserve"):
        _run(tmp_path / "fresh", fresh[len(GAUSS):] + ["loop.generations=3"])
    _run(tmp_path / "reserve", ["loop.interaction=fresh", "loop.fresh_reserve=0.2", "loop.generations=2"])
    assert len(_run(tmp_path / "reserve", ["loop.interaction=fresh", "loop.fresh_reserve=0.2",
                                           "loop.generations=3"])) == 1
    # --force starts over (keeping nothing of the old folder)
    assert len(_run(out, base[len(GAUSS):] + ["data.count=300"], force=True)) == 6
    assert len(read_csv(out / "metrics.csv")) == 6


def test_extend_with_workers(tmp_path):
    """--workers 2: the added grid value's chains run in worker processes; the old ones are not rerun."""
    out, fresh = tmp_path / "grown", tmp_path / "fresh"
    _run(out, ["loop.generations=2", "generator.name=[gaussian]"], threads=1)
    before = _done_mtimes(out)
    added = _run(out, ["loop.generations=3", "generator.name=[gaussian,kde]"], workers=2, threads=1)
    assert sorted((r["generator.name"], r["generation"]) for r in added) == [
        ("gaussian", 2), ("kde", 0), ("kde", 1), ("kde", 2)]
    assert all(_done_mtimes(out)[k] == t for k, t in before.items())
    _run(fresh, ["loop.generations=3", "generator.name=[gaussian,kde]"])
    assert _rows(out) == _rows(fresh)


@pytest.mark.ray
def test_extend_with_ray(tmp_path):
    pytest.importorskip("ray")
    out, fresh = tmp_path / "grown", tmp_path / "fresh"
    _run(out, ["loop.generations=2", "seeds=[0]"], backend="ray", threads=1)
    added = _run(out, ["loop.generations=3", "seeds=[0,1]"], backend="ray", threads=1)
    assert sorted((r["seed"], r["generation"]) for r in added) == [(0, 2), (1, 0), (1, 1), (1, 2)]
    _run(fresh, ["loop.generations=3", "seeds=[0,1]"])
    assert _rows(out) == _rows(fresh)


# --------------------------------------------------------------------------- one writer per folder


HOLD = """
import sys, time
from genloop.runfolder import acquire_lock
acquire_lock(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _holder(folder, seconds=60):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(seconds)], stdout=subprocess.PIPE,
                         text=True, env=env)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_a_second_writer_stops_at_once_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "run"
    _run(out, ["loop.generations=2"])
    holder = _holder(out)
    try:
        capsys.readouterr()
        t0 = time.perf_counter()
        assert main(["run", "-o", str(out), "--no-progress", *GAUSS, "loop.generations=3"]) == 5
        assert time.perf_counter() - t0 < 10
        captured = capsys.readouterr()
        err = captured.err.strip().splitlines()
        assert len(err) == 1 and f"pid {holder.pid} on host {socket.gethostname()}" in err[0], err
        assert " | gen " not in captured.out
        assert RunStore(out).finished_generations("c00") == 2  # nothing written
        with pytest.raises(RunLocked, match=f"pid {holder.pid}"):
            _run(out, ["loop.generations=3"])
        # readers need no lock
        assert main(["report", str(out)]) == 0
        assert main(["status", str(out)]) == 0
        text = capsys.readouterr().out
        assert f"a run is writing it (pid {holder.pid}" in text
        assert genloop.status(out)["writer"]["state"] == "running"
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed: its lock file is left behind, stale; status says so
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == holder.pid
    assert genloop.status(out)["writer"]["state"] == "stale"


def test_a_stale_lock_is_taken_over_with_a_log_line(tmp_path, caplog):
    out = tmp_path / "run"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "earlier"}))
    caplog.set_level(logging.WARNING, logger="genloop.runfolder.lock")
    assert len(_run(out, ["loop.generations=2"])) == 2
    assert f"took over a stale lock (pid {dead.pid} on host {socket.gethostname()}" in caplog.text
    assert not (out / LOCK_NAME).exists()  # released at the end


# --------------------------------------------------------------------------- verified files


def test_done_records_files_and_a_damaged_file_redoes_its_generation(tmp_path, caplog):
    out = tmp_path / "run"
    _run(out, ["loop.generations=3", "generator.name=[gaussian,gmm]"])
    reference = _rows(out, drop=())
    store = RunStore(out)
    a, b = [c["id"] for c in store.chains()]
    record = store.done_record(a, 1)
    assert set(record) == {"samples.npz", "provenance.npz", "metrics.json", "model.safetensors"}
    samples = store.gen_dir(a, 1) / "samples.npz"
    assert record["samples.npz"]["size"] == samples.stat().st_size and len(record["samples.npz"]["sha256"]) == 64
    assert all(store.verify_done(c, g) is None for c in (a, b) for g in range(3))
    mtimes = _done_mtimes(out)
    # cut a samples file short and a checkpoint, flip one byte of another checkpoint (same size)
    with open(samples, "r+b") as f:
        f.truncate(samples.stat().st_size // 2)
    ckpt = store.gen_dir(b, 0) / "model.safetensors"
    with open(ckpt, "r+b") as f:
        f.truncate(10)
    flipped = store.gen_dir(a, 2) / "model.safetensors"
    data = bytearray(flipped.read_bytes())
    data[-1] ^= 1
    flipped.write_bytes(bytes(data))
    assert "samples.npz has" in store.verify_done(a, 1) and "model.safetensors" in store.verify_done(b, 0)
    assert "SHA-256" in store.verify_done(a, 2)
    caplog.set_level(logging.WARNING, logger="genloop.loop.experiment")
    redone = _run(out, ["loop.generations=3", "generator.name=[gaussian,gmm]"])
    assert f"chain {a} generation 1: samples.npz has" in caplog.text and "redoing generations 1..2" in caplog.text
    assert f"chain {b} generation 0: model.safetensors has 10 bytes" in caplog.text
    assert sorted((r["chain"], r["generation"]) for r in redone) == [(a, 1), (a, 2), (b, 0), (b, 1), (b, 2)]
    assert _done_mtimes(out)[(a, 0)] == mtimes[(a, 0)]  # the intact generation was kept
    assert _rows(out, drop=()) == reference  # and the redone ones give the same numbers
    assert all(store.verify_done(c, g) is None for c in (a, b) for g in range(3))


def test_old_empty_done_markers_are_trusted(tmp_path):
    out = tmp_path / "run"
    _run(out, ["loop.generations=2"])
    store = RunStore(out)
    (store.gen_dir("c00", 0) / "DONE").write_text("")  # a folder from before DONE records
    assert store.done_record("c00", 0) is None and store.verify_done("c00", 0) is None
    assert _run(out, ["loop.generations=2"]) == []


# --------------------------------------------------------------------------- status


class _Stop(Exception):
    pass


def test_status_of_a_partial_run_with_a_failure(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    extra = ["loop.generations=3", "generator.name=[gaussian,kde]"]
    raw = load_raw(None, GAUSS + extra)
    count = []

    def stop_after_4(row):
        count.append(row)
        if len(count) == 4:
            raise _Stop

    with pytest.raises(_Stop):
        run(raw, out, report=False, on_generation=stop_after_4)
    st = genloop.status(out)
    assert st["generations"] == {"finished": 4, "planned": 6, "remaining": 2}
    c0, c1 = st["chains"]  # chains run generation by generation: 2 + 2
    assert (c0["finished"], c0["planned"], c0["state"]) == (2, 3, "pending")
    assert (c1["finished"], c1["state"]) == (2, "pending") and c1["last_row"]["generation"] == 1
    assert c1["last_row"]["generator.name"] == "kde" and "variance_ratio" in c1["last_row"]
    assert st["seconds_per_generation"] > 0 and st["eta_seconds"] == pytest.approx(2 * st["seconds_per_generation"])
    assert st["writer"] == {"state": "none"} and st["failures"] == []
    # a chain that fails for good: its last error line is kept for status
    from genloop.loop.experiment import Experiment as Exp

    real_iter_chain = Exp.iter_chain

    def failing(self, chain):
        if "kde" in chain.id:
            raise RuntimeError("disk on fire\nsecond line: the last one")
        return real_iter_chain(self, chain)

    monkeypatch.setattr(Exp, "iter_chain", failing)
    with pytest.raises(Exception, match="disk on fire"):
        run(raw, out, report=False, workers=1, retries=0)
    capsys.readouterr()
    assert main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "generations 5 / 6 finished" in text and "no run is writing it" in text  # the gaussian chain finished
    assert "failed" in text and "second line: the last one" in text and "ETA" in text
    assert main(["status", str(out), "--json"]) == 0
    js = json.loads(capsys.readouterr().out)
    assert js["failures"][0]["chain"] == c1["id"] and js["failures"][0]["error"] == "second line: the last one"
    assert js["chains"][1]["state"] == "failed"
    monkeypatch.setattr(Exp, "iter_chain", real_iter_chain)
    run(raw, out, report=False, workers=1)  # the rerun finishes it and clears the failure
    st = genloop.status(out)
    assert st["failures"] == [] and st["eta_seconds"] == 0 and st["generations"]["remaining"] == 0
    assert main(["status", str(tmp_path / "nothing")]) == 2
