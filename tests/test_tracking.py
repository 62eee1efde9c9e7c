"""Experiment trackers (genloop.tracking): each tracker's logged run is read back with the
tracker's own package and compared with metrics.csv; a resumed (extended) run, in worker
processes, logs every generation once; a tracker that is missing or raises is switched
off with one warning and the run finishes."""
import glob
import importlib.util
import json
import logging
import math
import os
import struct
import sys
from pathlib import Path

import pytest

import genloop
from genloop.runfolder import read_csv
from genloop.tracking import ID_COLUMNS, TRACKERS, Tracker

ALL = ("mlflow", "wandb", "tensorboard")
PACKAGE = {"mlflow": "mlflow", "wandb": "wandb", "tensorboard": "tensorboard"}
# Two chains (seeds) of a tiny image run: a Gaussian fitted to 100 digits, FD on pixels.
TINY = ["generator.name=gaussian", "generator.guidance_scale=1.0", "data.limit=100", "metrics.names=[fd]",
        "metrics.features=pixels", "metrics.min_samples_warning=0", "device=cpu", "store.checkpoints=none",
        "seeds=[0,1]"]


def installed(name: str) -> bool:
    return importlib.util.find_spec(PACKAGE[name]) is not None


def needs(name: str):
    return pytest.mark.skipif(not installed(name), reason=f"the {PACKAGE[name]} package is not installed "
                                                          f"(pip install 'genloop[{name}]')")


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    """Every installed tracker on one run folder: 2 generations, then extended to 3 (a resume:
    the trackers reopen their runs and log generation 2 only)."""
    return two_sessions(tmp_path_factory.mktemp("tracked") / "run", workers=1)


def two_sessions(out: Path, workers: int) -> Path:
    names = [n for n in ALL if installed(n)]
    if not names:
        pytest.skip("no tracker package is installed (pip install 'genloop[all-trackers]')")
    over = TINY + [f"tracking=[{','.join(names)}]"]
    genloop.run(None, out, over + ["loop.generations=2"], report=False, workers=workers, threads=1)
    genloop.run(None, out, over + ["loop.generations=3"], report=False, workers=workers, threads=1)
    return out


def csv_metrics(out: Path) -> dict:
    """chain -> generation -> {numeric column: value} from metrics.csv (what every tracker must hold)."""
    chains = {c["id"]: c for c in json.loads((out / "chains.json").read_text())}
    table: dict = {}
    for r in read_csv(out / "metrics.csv"):
        varied = chains[r["chain"]]["varied"]
        table.setdefault(r["chain"], {})[int(r["generation"])] = {
            k: float(v) for k, v in r.items()
            if k not in ID_COLUMNS and k not in varied and isinstance(v, (int, float)) and not isinstance(v, bool)}
    return table


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-6, abs=1e-12)


def check_history(expected: dict, logged: dict) -> None:
    """``logged``: chain -> column -> [(step, value), ...]; each generation once, equal to metrics.csv."""
    assert set(logged) == set(expected)
    for chain, gens in expected.items():
        columns = {k for row in gens.values() for k in row}
        assert columns <= set(logged[chain]), f"{chain}: missing {columns - set(logged[chain])}"
        for col in columns:
            points = logged[chain][col]
            steps = [s for s, _ in points]
            want = sorted(g for g, row in gens.items() if col in row)
            assert sorted(steps) == want, f"{chain} {col}: steps {steps}, want {want} (each generation once)"
            for step, value in points:
                assert same(value, gens[step][col]), (chain, col, step, value, gens[step][col])


@needs("mlflow")
def test_mlflow_run_reads_back_as_metrics_csv(tracked_run):
    from mlflow import MlflowClient

    out = tracked_run
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # as the tracker sets it for a local store
    client = MlflowClient(tracking_uri=(out / "tracking" / "mlruns").resolve().as_uri())
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 2
    logged = {}
    for run in runs:
        chain = run.data.tags["genloop.chain"]
        assert run.info.status == "FINISHED"
        assert run.data.params["loop.generations"] == "3" or run.data.params["loop.generations"] == "2"
        assert run.data.params["generator.name"] == "gaussian"
        logged[chain] = {k: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, k)]
                         for k in run.data.metrics}
        assert [a.path for a in client.list_artifacts(run.info.run_id, "gen_002")] == ["gen_002/grid.png"]
        assert any(a.path.endswith(".png") for a in client.list_artifacts(run.info.run_id, "plots"))
    check_history(csv_metrics(out), logged)
    # Reopened with a state file that lags behind (a crash right after logging), the run itself
    # says what it holds, so the lagging generations are not offered to it again.
    from genloop.tracking.mlflow_tracker import MLflowTracker

    chain, st = next(iter(json.loads((out / "tracking" / "state.json").read_text())["mlflow"].items()))
    tr = MLflowTracker(out, chain, "experiment", {}, {}, {**st, "logged": 1}, 1)
    assert tr.logged_until() == 3
    tr.close("finished")


def read_wandb(path: Path) -> list:
    """The records of a W&B offline run file (``run-<id>.wandb``: a header, then LevelDB-log
    framed protobuf ``Record`` messages of the wandb package, in 32 KiB blocks)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, chunks, part = 32768, 7, [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            break
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 1:  # full
            chunks.append(chunk)
        elif kind == 2:  # first
            part = chunk
        elif kind == 3:  # middle
            part += chunk
        else:  # last
            chunks.append(part + chunk)
    records = []
    for c in chunks:
        r = pb.Record()
        r.ParseFromString(c)
        records.append(r)
    return records


@needs("wandb")
def test_wandb_offline_runs_read_back_as_metrics_csv(tracked_run):
    out = tracked_run
    files = sorted(glob.glob(str(out / "tracking" / "wandb" / "offline-run-*" / "run-*.wandb")))
    assert len(files) == 4  # two chains, each: the first run and its resume (same run id)
    logged: dict = {}
    ids: dict = {}
    for f in files:
        records = read_wandb(Path(f))
        run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
        chain = run.display_name.split("/")[-1]
        ids.setdefault(chain, set()).add(run.run_id)
        config = {u.key: json.loads(u.value_json) for u in run.config.update}
        assert config["generator.name"] == "gaussian"
        for r in records:
            if r.WhichOneof("record_type") != "history":
                continue
            items = {i.key or "/".join(i.nested_key): i.value_json for i in r.history.item}
            step = int(r.history.step.num)
            for k, v in items.items():
                if not k.startswith(("_", "samples/", "plots/")):
                    value = json.loads(v) if v not in ("NaN", "Infinity", "-Infinity") else float(v)
                    logged.setdefault(chain, {}).setdefault(k, []).append((step, float(value)))
            assert any(k.startswith("samples/grid") for k in items)
    assert all(len(v) == 1 for v in ids.values()), ids  # a resume continues the same W&B run
    check_history(csv_metrics(out), logged)


@needs("tensorboard")
def test_tensorboard_events_read_back_as_metrics_csv(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tracked_run
    logged = {}
    for d in sorted((out / "tracking" / "tensorboard").iterdir()):
        acc = EventAccumulator(str(d), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
        acc.Reload()
        tags = acc.Tags()
        logged[d.name] = {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in tags["scalars"]}
        assert [e.step for e in acc.Images("samples/grid")] == [0, 1, 2]
        assert any(t.startswith("plots/") for t in tags["images"])
        assert "config/text_summary" in tags["tensors"]
    check_history(csv_metrics(out), logged)


@pytest.mark.slow
def test_trackers_are_fed_from_the_parent_when_chains_run_in_workers(tmp_path):
    """--workers 2 (slow: two sessions, each spawning two workers; 83 s on a 2-core machine loaded by other jobs)."""
    out = two_sessions(tmp_path / "run", workers=2)
    if installed("mlflow"):
        test_mlflow_run_reads_back_as_metrics_csv(out)
    if installed("wandb"):
        test_wandb_offline_runs_read_back_as_metrics_csv(out)
    if installed("tensorboard"):
        test_tensorboard_events_read_back_as_metrics_csv(out)


@needs("tensorboard")
def test_tracking_added_to_a_finished_run_logs_its_generations(tmp_path):
    out = tmp_path / "run"
    genloop.run(None, out, TINY + ["seeds=[0]", "loop.generations=2"], report=False)
    genloop.run(None, out, TINY + ["seeds=[0]", "loop.generations=2", "tracking=[tensorboard]"], report=False)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (d,) = (out / "tracking" / "tensorboard").iterdir()
    acc = EventAccumulator(str(d))
    acc.Reload()
    assert [e.step for e in acc.Scalars("fd_pixels")] == [0, 1]


def test_missing_package_warns_once_and_the_run_finishes(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    with caplog.at_level(logging.WARNING, logger="genloop"):
        rows = genloop.run(None, tmp_path / "run", TINY + ["loop.generations=2", "tracking=[wandb]"], report=False)
    assert len(rows) == 4
    warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("tracker ")]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("tracker wandb is off for the rest of this run") and "pip install 'genloop[wandb]'" in warnings[0]


if "flaky" not in TRACKERS:
    @TRACKERS.register("flaky")
    class Flaky(Tracker):
        """Starts, then raises on its second generation (a tracker that breaks mid-run)."""
        calls: list = []

        def log_generation(self, step, metrics, files):
            Flaky.calls.append((self.chain, step))
            if step == 1:
                raise RuntimeError("connection reset by peer")

        def log_plots(self, step, plots):
            Flaky.calls.append((self.chain, "plots"))


def test_tracker_that_raises_warns_once_and_the_run_finishes(tmp_path, caplog):
    Flaky.calls.clear()
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="genloop"):
        rows = genloop.run(None, out, TINY + ["loop.generations=3", "tracking=[flaky]"], report=False)
    assert len(rows) == 6 and len(read_csv(out / "metrics.csv")) == 6
    warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("tracker ")]
    assert warnings == ["tracker flaky is off for the rest of this run (RuntimeError: connection reset by peer); "
                        "the run goes on"]
    # chains run generation by generation: every chain's generation 0, then the first chain's
    # generation 1 raises; nothing more is logged after the failure, for any chain
    first = Flaky.calls[0][0]
    assert Flaky.calls[-1] == (first, 1)
    assert [step for _, step in Flaky.calls[:-1]] == [0, 0]


def test_unknown_tracker_is_a_config_error(tmp_path):
    from genloop.config import ConfigError

    with pytest.raises(ConfigError, match="tracking: unknown tracker 'mlfow'"):
        genloop.run(None, tmp_path / "run", TINY + ["tracking=[mlfow]"], report=False)
    assert not (tmp_path / "run").exists()


def test_the_documented_tracker_example_runs_as_a_plugin(tmp_path, monkeypatch, capsys):
    import re

    doc = (Path(__file__).resolve().parents[1] / "docs" / "tracking.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc[doc.index("## Adding a tracker"):], re.S).group(1)
    (tmp_path / "printer_tracker.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    genloop.run(None, tmp_path / "run", TINY + ["seeds=[0]", "loop.generations=2", "tracking=[printer]"],
                report=False, plugins=["printer_tracker"])
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("c00")]
    assert [ln.split()[1] for ln in lines] == ["0", "1"] and "fd_pixels" in lines[0]
