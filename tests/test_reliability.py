"""Nothing lost, nothing trusted blindly: ``--force`` never deletes what genloop did not
write, every file read back from a run folder is verified, and expected failures end in
one line and a non-zero exit.  Each test injects a fault into a temporary run folder (or
the command line) and checks the line, the exit code and which files were kept or redone.
Fast: the analytic gaussian generator."""
import errno
import json
import logging
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import genloop
from genloop.cli import main
from genloop.config import ConfigError
from genloop.loading import expand, load_raw
from genloop.runfolder import (LOCK_NAME, MARKER_NAME, DamagedFile, RunStore, read_csv, read_weights, save_weights,
                               weights_bytes)

GAUSS = ["data.name=gaussian", "data.count=250", "generator.name=gaussian",
         "metrics.names=[frechet,wasserstein,variance_ratio]", "device=cpu", "generator.guidance_scale=1.0"]
NO_FILES = ["store.samples=none", "store.checkpoints=none"]  # every generation only a line of rows.jsonl
ROOT = Path(__file__).resolve().parents[1]


def _run(out, extra, **kwargs):
    seen = []
    genloop.run(None, out, GAUSS + extra, report=False, on_generation=seen.append, **kwargs)
    return seen


def _cli(capsys, *args):
    """(exit code, stderr lines) of ``genloop ARGS``."""
    capsys.readouterr()
    rc = main(list(map(str, args)))
    return rc, capsys.readouterr().err.strip().splitlines()


def _numbers(path):
    """metrics.csv without timings: what a redone generation must reproduce."""
    return [{k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()
             if not k.endswith("seconds") and not k.startswith("train_seconds")}
            for r in read_csv(Path(path) / "metrics.csv")]


def _tree(path):
    """Every file under ``path`` with its bytes."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(Path(path).rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- 1. --force deletes only what genloop wrote


def test_force_never_touches_a_folder_genloop_did_not_make(tmp_path, capsys):
    home = tmp_path / "home"
    (home / "thesis").mkdir(parents=True)
    (home / "thesis" / "ch1.tex").write_text("chapter one")
    (home / "notes.txt").write_text("mine")
    (home / "config.yaml").write_text("my: own config\n")  # a project's own config.yaml is not a run folder
    before = _tree(home)
    for force in ([], ["--force"]):
        rc, err = _cli(capsys, "run", "-o", home, "--no-progress", *force, *GAUSS, "loop.generations=1")
        assert rc == 2 and len(err) == 1, err
        assert "not a genloop run folder" in err[0] and "'notes.txt'" in err[0] and "choose another output folder" in err[0]
    assert _tree(home) == before  # not a byte changed, nothing added
    # -o naming a file
    f = tmp_path / "results.txt"
    f.write_text("x")
    rc, err = _cli(capsys, "run", "-o", f, "--force", "--no-progress", *GAUSS, "loop.generations=1")
    assert rc == 2 and len(err) == 1 and "is a file, not a folder" in err[0] and f.read_text() == "x"


def test_force_starts_over_in_a_run_folder_keeping_what_genloop_did_not_write(tmp_path, capsys):
    out = tmp_path / "run"
    assert len(_run(out, ["loop.generations=2"])) == 2
    assert (out / MARKER_NAME).exists()
    (out / "my-notes.txt").write_text("kept")
    (out / MARKER_NAME).unlink()  # a run folder made before the marker: recognised by its layout
    assert _run(out, ["loop.generations=2"]) == []  # resumes, nothing redone
    assert (out / MARKER_NAME).exists()
    assert len(_run(out, ["loop.generations=2", "data.count=300"], force=True)) == 2
    assert (out / "my-notes.txt").read_text() == "kept"
    assert [r["generation"] for r in read_csv(out / "metrics.csv")] == [0, 1]
    assert RunStore(out).read_config()["data"]["count"] == 300


# --------------------------------------------------------------------------- 2. files read back are verified


def _flip(path, at):
    data = bytearray(Path(path).read_bytes())
    data[at] ^= 0x01
    Path(path).write_bytes(bytes(data))


def test_weights_checksum_finds_a_flipped_bit_a_cut_and_a_missing_checksum(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(path, {"a": torch.arange(6.0), "b": torch.ones(2, 2)}, {"fingerprint": "f"})
    tensors, meta = read_weights(path)
    assert torch.equal(tensors["a"], torch.arange(6.0)) and meta["fingerprint"] == "f"
    good = path.read_bytes()
    for damage, fragment in ((lambda: _flip(path, len(good) - 3), "differs from its checksum"),
                             (lambda: path.write_bytes(good[:len(good) - 4]), "differs from its checksum"),
                             (lambda: path.write_bytes(good[:40]), "cut short"),
                             (lambda: path.write_bytes(good[:5]), "too short"),
                             (lambda: _flip(path, 12), None)):  # a bit of the header
        path.write_bytes(good)
        damage()
        with pytest.raises(DamagedFile, match=fragment):
            read_weights(path)
    from safetensors.torch import save

    path.write_bytes(save({"a": torch.zeros(2)}))  # written without a checksum
    with pytest.raises(DamagedFile, match="no checksum"):
        read_weights(path)
    assert weights_bytes({"a": torch.arange(6.0)}) == weights_bytes({"a": torch.arange(6.0)})  # deterministic


def test_a_damaged_cached_judge_is_trained_again_with_one_warning(tmp_path, caplog):
    from genloop.data import load_real
    from genloop.loading import from_dict
    from genloop.metrics import MetricContext

    cfg = from_dict(load_raw(None, ["metrics.classifier.steps=5", "metrics.classifier.width=16",
                                           "metrics.classifier.batch_size=32"]))
    real = load_real(cfg.data)
    cache = tmp_path / "run" / "cache"

    def judge():
        ctx = MetricContext(config=cfg, real=real, device=torch.device("cpu"), cache_dir=cache)
        return ctx.classifier().logits(real.test.images[:64])

    reference = judge()
    (path,) = cache.glob("classifier-*.safetensors")
    good = path.read_bytes()
    _flip(path, len(good) - 100)  # one bit of one weight
    caplog.set_level(logging.WARNING, logger="genloop.metrics.classifier")
    assert torch.equal(judge(), reference)  # trained again: the same judge, not the damaged one
    assert caplog.text.count("training it again") == 1 and "differs from its checksum" in caplog.text
    assert path.read_bytes() == good  # rewritten as it was
    caplog.clear()
    assert torch.equal(judge(), reference) and "training it again" not in caplog.text  # the cache is used again
    from safetensors.torch import save

    path.write_bytes(save(read_weights(path)[0]))  # a judge cached before checksums: used as it is
    assert torch.equal(judge(), reference) and "training it again" not in caplog.text


def test_a_damaged_training_state_restarts_the_generation_with_one_warning(tmp_path, caplog):
    from genloop.generators.training import resume_step

    state = tmp_path / "run" / "chains" / "c00" / "train_state" / "state.safetensors"
    tensors = {"net.w": torch.arange(4.0), "step": torch.tensor(7)}
    loaded = []

    def load(t):
        loaded.append(t)
        return int(t["step"])

    caplog.set_level(logging.WARNING, logger="genloop.generators.training")
    save_weights(state, tensors, {"fingerprint": "fp"})
    assert resume_step(state, lambda: "fp", load, "c00 gen 1") == 7 and len(loaded) == 1
    good = state.read_bytes()
    for damage in (lambda: _flip(state, len(good) - 9), lambda: state.write_bytes(good[:len(good) - 20])):
        state.write_bytes(good)
        damage()
        caplog.clear()
        assert resume_step(state, lambda: "fp", load, "c00 gen 1") == 0 and len(loaded) == 1
        assert "c00 gen 1:" in caplog.text and "training this generation from step 0" in caplog.text
        assert len(caplog.records) == 1 and not state.exists()  # removed: the next resume starts clean


def test_an_edited_or_damaged_rows_jsonl_line_redoes_its_generation(tmp_path, caplog, capsys):
    out = tmp_path / "run"
    extra = NO_FILES + ["loop.generations=4"]
    assert len(_run(out, extra)) == 4
    reference = _numbers(out)
    log_path = RunStore(out).rows_log_path("c00")
    lines = log_path.read_bytes().splitlines(keepends=True)
    assert len(lines) == 4 and all(b'"row_sha256"' in line for line in lines)
    row = json.loads(lines[1])
    edited = lines[1].replace(json.dumps(row["frechet"]).encode(), json.dumps(row["frechet"] * 1.5).encode())
    assert edited != lines[1]
    log_path.write_bytes(b"".join([lines[0], edited, *lines[2:]]))
    assert RunStore(out).finished_generations("c00") == 1  # readers stop at the damaged line
    caplog.set_level(logging.WARNING, logger="genloop.loop.experiment")
    redone = _run(out, extra)
    assert [r["generation"] for r in redone] == [1, 2, 3]
    assert "rows.jsonl line 2: its content differs from its checksum" in caplog.text
    assert _numbers(out) == reference
    # a byte that is not UTF-8: status still reads the folder, and the run redoes from that line
    lines = log_path.read_bytes().splitlines(keepends=True)
    log_path.write_bytes(b"".join([*lines[:2], b"\xff" + lines[2][1:], lines[3]]))
    rc, err = _cli(capsys, "status", out)
    assert rc == 0 and err == []
    assert genloop.status(out)["generations"]["finished"] == 2
    assert [r["generation"] for r in _run(out, extra)] == [2, 3]
    assert _numbers(out) == reference
    # old lines without a checksum are trusted (folders written before checksums)
    plain = [json.dumps({k: v for k, v in json.loads(line).items() if k != "row_sha256"}).encode() + b"\n"
             for line in log_path.read_bytes().splitlines()]
    log_path.write_bytes(b"".join(plain))
    assert _run(out, extra) == [] and _numbers(out) == reference


@pytest.mark.parametrize("damage, why", [(lambda t: t[: len(t) // 2] + b"  - [", "not valid YAML"),
                                         (lambda t: b"", "empty"),
                                         (lambda t: b"\xff\xfe" + t, "not UTF-8")])
def test_a_damaged_config_yaml_is_reported_as_damaged(tmp_path, capsys, damage, why):
    out = tmp_path / "run"
    _run(out, ["loop.generations=2"])
    cfg = out / "config.yaml"
    cfg.write_bytes(damage(cfg.read_bytes()))
    before = _tree(out)
    rc, err = _cli(capsys, "run", "-o", out, "--no-progress", *GAUSS, "loop.generations=2")
    assert rc == 2 and len(err) == 1, err
    assert f"config.yaml: damaged ({why}" in err[0] and "restore it from a copy" in err[0]
    assert "different config" not in err[0]
    assert _tree(out) == before  # nothing written


def test_a_damaged_chains_json_is_reported_as_damaged(tmp_path, capsys):
    out = tmp_path / "run"
    _run(out, ["loop.generations=2"])
    chains = out / "chains.json"
    chains.write_bytes(chains.read_bytes()[:40])
    before = _tree(out)
    for cmd in (["run", "-o", out, "--no-progress", *GAUSS, "loop.generations=2"], ["status", out], ["report", out]):
        rc, err = _cli(capsys, *cmd)
        assert rc == 2 and len(err) == 1, (cmd, err)
        assert "chains.json: damaged (JSONDecodeError" in err[0] and "restore it from a copy" in err[0]
    assert _tree(out) == before
    assert len(_run(out, ["loop.generations=2"], force=True)) == 2  # --force starts the folder over


# --------------------------------------------------------------------------- 3. paths stay inside the run folder


def test_an_edited_chain_id_never_makes_a_run_write_outside_the_folder(tmp_path, capsys):
    out = tmp_path / "a" / "b" / "run"
    extra = ["loop.generations=2", "generator.name=[gaussian,kde]"]
    _run(out, extra)
    chains = json.loads((out / "chains.json").read_text())
    chains[1]["id"] = "../../../escaped"
    (out / "chains.json").write_text(json.dumps(chains))
    for g in (1, 0):  # make the chain unfinished, so a resume would write it
        RunStore(out).undo(chains[0]["id"], g)
    rc, err = _cli(capsys, "run", "-o", out, "--no-progress", *GAUSS, *extra)
    assert rc == 2 and len(err) == 1 and "chain id '../../../escaped' is not one genloop writes" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"] and not (tmp_path / "a" / "escaped").exists()
    with pytest.raises(DamagedFile):
        RunStore(out).chain_dir("../x")


def test_long_grid_values_give_short_chain_ids(tmp_path):
    long = "x" * 300
    rows = _run(tmp_path / "run", ["loop.generations=1", f"name=[{long},short]"])
    ids = [c["id"] for c in RunStore(tmp_path / "run").chains()]
    assert len(rows) == 2 and all(len(i) <= 100 for i in ids) and len(set(ids)) == 2


# --------------------------------------------------------------------------- 4. one line, never a traceback


def test_file_system_failures_are_one_line(tmp_path, capsys, monkeypatch):
    args = ["--no-progress", *GAUSS, "loop.generations=1"]
    rc, err = _cli(capsys, "run", "-o", tmp_path / ("n" * 300), *args)
    assert rc == 6 and len(err) == 1 and "File name too long" in err[0] and "shorter" in err[0], err
    (tmp_path / "file").write_text("x")
    rc, err = _cli(capsys, "run", "-o", tmp_path / "file" / "run", *args)
    assert rc == 2 and len(err) == 1 and "has a file where a folder should be in its path" in err[0], err
    import genloop.runfolder.lock as store

    real_open = os.open

    def denied(path, *a, **k):
        if str(path).endswith(LOCK_NAME):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(store.os, "open", denied)
    rc, err = _cli(capsys, "run", "-o", tmp_path / "ro", *args)
    assert rc == 6 and len(err) == 1 and "Permission denied" in err[0] and "choose a folder you may write" in err[0]
    monkeypatch.undo()
    assert not (tmp_path / "ro").exists()  # a failed start leaves no folder

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "fsync", full)
    rc, err = _cli(capsys, "run", "-o", tmp_path / "full", *args)
    assert rc == 6 and len(err) == 1 and "No space left on device" in err[0] and "rerun the same command" in err[0]
    monkeypatch.undo()
    leftovers = [p.name for p in (tmp_path / "full").rglob("*")] if (tmp_path / "full").exists() else []
    assert not [n for n in leftovers if n.endswith(".tmp")]


def test_input_and_size_failures_are_one_line(tmp_path, capsys, monkeypatch):
    binary = tmp_path / "model.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    rc, err = _cli(capsys, "run", "-c", binary, "-o", tmp_path / "r1", "--no-progress")
    assert rc == 2 and len(err) == 1 and "model.bin: not a text file" in err[0]
    rc, err = _cli(capsys, "run", "-o", tmp_path / "r2", "--no-progress", *GAUSS, "data.count=100000000000")
    assert rc == 2 and len(err) == 1 and "data.count: 100000000000" in err[0] and "lower data.count" in err[0]
    import genloop.loop.experiment as experiment

    def oom(*a, **k):
        raise MemoryError()

    monkeypatch.setattr(experiment, "load_real", oom)
    rc, err = _cli(capsys, "run", "-o", tmp_path / "r3", "--no-progress", *GAUSS)
    assert rc == 7 and len(err) == 1 and "out of memory" in err[0]
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()


def test_eval_size_and_count_mismatches_are_one_line(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "rgb16.npz", images=rng.integers(0, 256, (40, 3, 16, 16), dtype=np.uint8))
    np.savez(tmp_path / "grey8.npz", images=rng.integers(0, 256, (40, 1, 8, 8), dtype=np.uint8))
    np.savez(tmp_path / "unit.npz", images=rng.random((40, 3, 16, 16)).astype(np.float32))
    np.savez(tmp_path / "three.npz", images=rng.integers(0, 256, (3, 3, 16, 16), dtype=np.uint8))
    for fake, fragment in (("grey8", "the real images are 3 x 16 x 16 (C x H x W) and the generated ones 1 x 8 x 8"),
                           ("unit", "must be uint8 pixels 0..255"),
                           ("three", "needs at least")):
        rc, err = _cli(capsys, "eval", "--real", tmp_path / "rgb16.npz", "--fake", tmp_path / f"{fake}.npz",
                       "--features", "pixels")
        assert rc == 2 and len(err) == 1 and fragment in err[0], (fake, err)


def test_dollar_signs_in_grid_values_reach_the_plots_as_text(tmp_path, capsys):
    out = tmp_path / "run"
    rc, err = _cli(capsys, "run", "-o", out, "--no-progress", *GAUSS, "loop.generations=2", "name=[$x_$, a$b]")
    assert rc == 0, err
    assert (out / "report.html").exists() and list((out / "plots").glob("*.png"))


# --------------------------------------------------------------------------- 5. no half-made folders


def test_a_failed_start_leaves_no_folder_and_the_corrected_command_runs(tmp_path, capsys):
    out = tmp_path / "run"
    rc, err = _cli(capsys, "run", "-o", out, "--no-progress", *GAUSS, "data.name=npz",
                   f"data.root={tmp_path / 'missing.npz'}", "loop.generations=1")
    assert rc == 2 and len(err) == 1 and "missing.npz" in err[0], err
    assert not out.exists()
    assert len(_run(out, ["loop.generations=1"])) == 1  # the corrected command



def test_a_folder_that_failed_to_load_its_data_reruns_with_the_corrected_command(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    rc, err = _cli(capsys, "run", "-o", out, "--no-progress", *GAUSS, "data.name=npz",
                   f"data.root={tmp_path / 'missing.npz'}")
    assert rc == 2 and len(err) == 1
    assert list(out.iterdir()) == []  # the folder the user made is left as it was: empty
    assert len(_run(out, ["loop.generations=1"])) == 1  # the corrected command


# --------------------------------------------------------------------------- 6. the smaller points


def test_duplicate_grid_values_and_non_finite_numbers_are_refused(capsys):
    for bad, fragment in (("seeds=[0,0,1]", "seeds: 0 is listed twice"),
                          ("generator.name=[gaussian,gaussian]", "generator.name: 'gaussian' is listed twice"),
                          ("train.lr=.inf", "train.lr: inf is not allowed"),
                          ("data.gaussian_std=-.inf", "data.gaussian.std: -inf is not allowed"),
                          ("train.lr=1e400", "train.lr: inf is not allowed")):
        rc, err = _cli(capsys, "config", *GAUSS, bad)
        assert rc == 2 and len(err) == 1 and fragment in err[0], (bad, err)


def test_a_shadowed_override_is_refused_naming_both_keys(capsys):
    rc, err = _cli(capsys, "config", "-p", "paper-mnist", "train.steps=3")
    assert rc == 2 and len(err) == 1
    assert "train.steps=3 has no effect: train.epochs=20" in err[0] and "train.epochs=null" in err[0]
    raw = load_raw(ROOT / "genloop" / "presets" / "paper-mnist.yaml", ["train.steps=3", "train.epochs=null"])
    assert expand(raw)[0].config.train.steps == 3


def test_overrides_are_taken_anywhere_on_the_command_line_in_order(capsys):
    rc = main(["config", "loop.generations=2", "-p", "default", "loop.generations=3", "seed=4"])
    text = capsys.readouterr().out
    assert rc == 0 and "generations: 3" in text and "seed: 4" in text
    rc = main(["config", "seed=5", "-p", "default"])
    assert rc == 0 and "seed: 5" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["config", "-p", "default", "--nope"])


def test_a_plugin_that_exits_is_a_plugin_error(tmp_path, capsys, monkeypatch):
    (tmp_path / "exits_on_import.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    rc, err = _cli(capsys, "config", "--plugin", "exits_on_import")
    assert rc == 2 and len(err) == 1 and "'exits_on_import' called sys.exit(3)" in err[0], err
    # a component that exits while a chain runs
    from genloop.generators.analytic import GaussianGenerator

    def exits(self, *a, **k):
        sys.exit(3)

    monkeypatch.setattr(GaussianGenerator, "fit", exits)
    rc, err = _cli(capsys, "run", "-o", tmp_path / "run", "--no-progress", *GAUSS, "loop.generations=1")
    assert rc == 2 and len(err) == 1 and "a component called sys.exit(3)" in err[0], err
    assert RunStore(tmp_path / "run").failure("c00")["status"] == "invalid"


def test_a_refused_second_writer_says_nothing_about_extending(tmp_path, capsys):
    out = tmp_path / "run"
    _run(out, ["loop.generations=2"])
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from genloop.runfolder import acquire_lock; "
                               f"acquire_lock({str(out)!r}); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert main(["run", "-o", str(out), "--no-progress", *GAUSS, "loop.generations=3"]) == 5
        captured = capsys.readouterr()
        assert "extending" not in captured.out and "another genloop run" in captured.err
    finally:
        holder.kill()
        holder.wait()


def test_files_follow_the_umask_and_a_killed_runs_temp_files_are_cleaned(tmp_path):
    out = tmp_path / "run"
    old = os.umask(0o022)
    try:
        _run(out, NO_FILES + ["loop.generations=2"])
        for name in ("config.yaml", "chains.json", "metrics.csv", "chains/c00/rows.jsonl"):
            assert (out / name).stat().st_mode & 0o777 == 0o644, name
        os.umask(0o077)
        (out / "metrics.csv").unlink()
        stale = [out / ".metrics.csv.k9x_2ab3.tmp", out / "chains" / "c00" / ".rows.jsonl.abcdefgh.tmp"]
        for p in stale:
            p.write_text("half")
        (out / "keep.tmp").write_text("not ours")
        _run(out, NO_FILES + ["loop.generations=2"])
        assert (out / "metrics.csv").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)
    assert not any(p.exists() for p in stale) and (out / "keep.tmp").exists()


def test_status_reads_a_600_chain_folder_quickly(tmp_path, monkeypatch):
    """600 chains x 50 generations logged in rows.jsonl (as the theory preset writes them):
    status reads each chain's log once and parses only its last row (it parsed the whole log
    once per generation: 1.5 million rows here)."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("name: big\n")
    ids = [f"c{i:03d}" for i in range(600)]
    (out / "chains.json").write_text(json.dumps([{"id": c, "varied": {"seed": i}, "seed": i, "generations": 60}
                                                 for i, c in enumerate(ids)]))
    store = RunStore(out)
    from genloop.runfolder.rows import row_line as _row_line

    for i, c in enumerate(ids):
        store.rows_log_path(c).parent.mkdir(parents=True)
        store.rows_log_path(c).write_text("".join(_row_line({"chain": c, "seed": i, "generation": g, "frechet": 0.01 * g,
                                                              "total_seconds": 0.01}) for g in range(50)))
    import genloop.runfolder.rows as store_module

    parsed = []
    real_loads = store_module.json.loads
    monkeypatch.setattr(store_module.json, "loads", lambda *a, **k: parsed.append(1) or real_loads(*a, **k))
    t0 = time.perf_counter()
    st = genloop.status(out)
    spent = time.perf_counter() - t0
    monkeypatch.undo()
    assert len(parsed) <= 2 * 600  # chains.json and each chain's last row
    assert st["generations"] == {"finished": 30000, "planned": 36000, "remaining": 6000}
    assert st["chains"][599]["last_row"]["generation"] == 49
    assert st["seconds_per_generation"] == pytest.approx(0.01)
    assert spent < 10.0, spent  # 0.2 s of CPU time
