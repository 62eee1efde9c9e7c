"""What a generation writes (store.samples / store.checkpoints), the batched row log,
resume without kept samples, GPU placement of sweep workers, and the theory preset."""
import json
import logging
import math
import os

import numpy as np
import pytest

from genloop import run
from genloop.config import ConfigError
from genloop.loading import expand, from_dict, load_raw
from genloop.reference import preset_path
from genloop.loop import TIME_COLUMNS, run_in_memory
from genloop.runfolder import RunStore, read_csv
from genloop.sweep import _LocalBackend, _Job, gpu_slots, resolve_gpus

GAUSS = ["data.name=gaussian", "data.count=125", "generator.name=gaussian", "generator.conditional=false",
         "metrics.names=[variance_ratio,frechet]", "device=cpu"]


def _results(path):
    return [{k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in r.items() if k not in TIME_COLUMNS}
            for r in read_csv(path / "metrics.csv")]


class _Stop(Exception):
    pass


def _stop_at(g):
    def on_generation(row):
        if row["generation"] == g:
            raise _Stop
    return on_generation


@pytest.mark.parametrize("interaction", ["replace", "accumulate"])
def test_samples_last_and_none_give_the_numbers_of_every_and_keep_only_that(tmp_path, interaction):
    base = GAUSS + ["loop.generations=12", f"loop.interaction={interaction}", "seeds=[0,1]"]
    run(load_raw(None, base), tmp_path / "every", report=False)
    ref = _results(tmp_path / "every")
    sim = run_in_memory(from_dict(load_raw(None, GAUSS + ["loop.generations=12", f"loop.interaction={interaction}"])))
    assert [r["variance_ratio"] for r in ref[:12]] == pytest.approx([r["variance_ratio"] for r in sim], rel=1e-12)
    for mode in ("last", "none"):
        out = tmp_path / mode
        run(load_raw(None, base + [f"store.samples={mode}", f"store.checkpoints={mode}"]), out, report=False)
        assert _results(out) == ref
        store = RunStore(out)
        for ch in store.chains():
            dirs = sorted(p.name for p in store.chain_dir(ch["id"]).glob("gen_*"))
            assert dirs == (["gen_011"] if mode == "last" else [])
            assert not store.resume_samples_path(ch["id"]).exists()  # only while a chain is unfinished
            logged = [json.loads(x) for x in store.rows_log_path(ch["id"]).read_text().splitlines()]
            assert [r["generation"] for r in logged] == list(range(11 if mode == "last" else 12))
        if mode == "last":
            d = store.gen_dir(store.chains()[0]["id"], 11)
            assert {p.name for p in d.iterdir()} == {"samples.npz", "provenance.npz", "model.safetensors",
                                                     "metrics.json", "DONE"}  # no grid for vectors


@pytest.mark.parametrize("mode,interaction,recomputes", [("last", "replace", False), ("last", "accumulate", True),
                                                         ("none", "replace", True)])
def test_resume_without_kept_samples_recomputes_never_guesses(tmp_path, caplog, mode, interaction, recomputes):
    """A resume that needs samples that were not kept says so and recomputes them in memory
    (same numbers as an uninterrupted run); with store.samples=last and replace the
    newest samples were kept for it."""
    base = GAUSS + ["loop.generations=9", f"loop.interaction={interaction}"]
    run(load_raw(None, base), tmp_path / "ref", report=False)
    raw = load_raw(None, base + [f"store.samples={mode}", "store.checkpoints=none"])
    out = tmp_path / "cut"
    with pytest.raises(_Stop):
        run(raw, out, report=False, on_generation=_stop_at(5))
    store = RunStore(out)
    assert store.finished_generations("c00") == 6  # rows of finished generations are flushed on the way out
    if mode == "last":
        assert int(np.load(store.resume_samples_path("c00"))["generation"]) == 5
    caplog.set_level(logging.WARNING, logger="genloop")
    seen = []
    run(raw, out, report=False, on_generation=seen.append)
    assert [r["generation"] for r in seen] == [6, 7, 8]  # only the missing generations are reported
    assert ("were not kept" in caplog.text) == recomputes
    assert _results(out) == _results(tmp_path / "ref")


def test_torn_row_log_is_ignored_and_cut_before_the_next_append(tmp_path):
    raw = load_raw(None, GAUSS + ["loop.generations=6", "store.samples=none", "store.checkpoints=none"])
    run(raw, tmp_path / "ref", report=False)
    out = tmp_path / "torn"
    with pytest.raises(_Stop):
        run(raw, out, report=False, on_generation=_stop_at(3))
    store = RunStore(out)
    with open(store.rows_log_path("c00"), "a") as f:
        f.write('{"chain": "c00", "generation": 4, "variance_ra')  # a writer killed mid-line
    assert store.finished_generations("c00") == 4
    run(raw, out, report=False)
    lines = store.rows_log_path("c00").read_text().splitlines()
    assert [json.loads(x)["generation"] for x in lines] == list(range(6))
    assert _results(out) == _results(tmp_path / "ref")


def test_store_and_sweep_options_may_change_on_resume_but_nothing_else(tmp_path):
    base = GAUSS + ["loop.generations=3"]
    run(load_raw(None, base + ["store.samples=none"]), tmp_path / "r", report=False)
    run(load_raw(None, base + ["store.samples=every", "sweep.gpus_per_chain=0"]), tmp_path / "r", report=False)
    with pytest.raises(ConfigError, match="loop.mix.real_fraction"):
        run(load_raw(None, base + ["loop.real_fraction=0.2"]), tmp_path / "r", report=False)
    with pytest.raises(ConfigError, match="sweep option, not a grid axis"):
        expand(load_raw(None, ["sweep.gpus_per_chain=[0,1]"]))


# --------------------------------------------------------------------------- GPUs


def test_gpus_per_chain_default_packing_and_one_line_errors():
    cpu = expand(load_raw(None, ["device=cpu"]))
    auto = expand(load_raw(None, []))
    assert resolve_gpus(None, 2, auto) == 1.0 and resolve_gpus(None, 0, auto) == 0.0
    assert resolve_gpus(None, 2, cpu) == 0.0
    assert resolve_gpus(0.25, 1, auto) == 0.25
    assert gpu_slots(4, 0.25, ["0"]) == ["0", "0", "0", "0"]
    assert gpu_slots(4, 0.5, ["0", "1"]) == ["0", "0", "1", "1"]
    assert gpu_slots(2, 1, ["0", "1"]) == ["0", "1"]
    assert gpu_slots(2, 2, ["0", "1", "2", "3"]) == ["0,1", "2,3"]
    assert gpu_slots(3, 0, []) == [None, None, None]
    for args, match in [((3, 2, auto), "asks for 3 GPUs but only 2 exist"),
                        ((1, 0, auto), "no CUDA device is visible"),
                        ((1.5, 4, auto), "cannot be split"), ((-1, 2, auto), "must be a number >= 0")]:
        with pytest.raises(ConfigError, match=match) as exc:
            resolve_gpus(*args)
        assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match="--workers 3 with --gpus-per-chain 1 needs more GPUs than the 2 here"):
        gpu_slots(3, 1, ["0", "1"])


def _visible_devices(tag):
    return tag, os.environ.get("CUDA_VISIBLE_DEVICES")


def test_local_workers_each_get_their_own_cuda_visible_devices(tmp_path, monkeypatch):
    """With 2 (faked) GPUs and one GPU per chain, the two spawned workers see disjoint
    devices from their start; a sweep asking for too many fails before any work."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    slots = gpu_slots(2, 1, ["5", "7"])
    pool = _LocalBackend([{"CUDA_VISIBLE_DEVICES": d} for d in slots], target=_visible_devices)
    try:
        for i in range(2):
            pool.submit(_Job(f"c{i}", 1), f"c{i}")
        results = []
        while pool.running:
            results += pool.wait(5)
        assert sorted(r[2] for r in results) == ["5", "7"]
    finally:
        pool.shutdown()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5,7"  # the parent's own is untouched
    import genloop.sweep.gpus as sweep

    monkeypatch.setattr(sweep, "cuda_devices", lambda: ["0", "1"])
    raw = load_raw(None, GAUSS + ["loop.generations=2", "seeds=[0,1,2]"])
    with pytest.raises(ConfigError, match="--workers 3 with --gpus-per-chain 1"):
        run(raw, tmp_path / "g", report=False, workers=3, gpus_per_chain=1)
    assert not (tmp_path / "g").exists()


@pytest.mark.ray
def test_ray_tasks_request_gpus_and_see_their_own_devices(tmp_path):
    """A local Ray declared with 2 GPUs: each chain's task asks for num_gpus=1 and Ray
    gives it its own CUDA_VISIBLE_DEVICES."""
    ray = pytest.importorskip("ray")
    from genloop.sweep import _RayBackend, ray_gpus_per_node

    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, object_store_memory=100 * 1024 * 1024,
             logging_level=logging.WARNING)
    try:
        assert ray_gpus_per_node(ray) == 2
        def visible_devices(tag):  # nested: Ray ships it by value (the test module is not on its workers' path)
            return tag, os.environ.get("CUDA_VISIBLE_DEVICES")

        pool = _RayBackend(None)
        pool.configure(1, 1.0, target=visible_devices)
        for i in range(2):
            pool.submit(_Job(f"c{i}", 1), f"c{i}")
        results = []
        while pool.running:
            results += pool.wait(30)
        assert sorted(r[2] for r in results) == ["0", "1"]
        with pytest.raises(ConfigError, match="asks for 3 GPUs but only 2 exist on any node"):
            resolve_gpus(3, ray_gpus_per_node(ray), [], where="on any node of the Ray cluster")
    finally:
        ray.shutdown()


# --------------------------------------------------------------------------- theory preset


def test_theory_preset_and_its_theory_curve(tmp_path, monkeypatch):
    chains = expand(load_raw(preset_path("theory")))
    assert len(chains) == 60 and {c.config.loop.interaction for c in chains} == {"replace", "mix", "accumulate"}
    assert all(c.config.loop.generations == 200 for c in chains)
    from genloop.report import plots

    drawn = []
    real_draw = plots._draw_theory
    monkeypatch.setattr(plots, "_draw_theory", lambda ax, xs, n, done: (drawn.append((xs, n)), real_draw(ax, xs, n, done)))
    out = tmp_path / "theory"
    run(load_raw(preset_path("theory"), ["seeds=[0,1]", "loop.generations=20"]), out, report=False)
    plots.plot_bands(out)
    (xs, n), = drawn  # once: replace only
    assert n == 100 and xs == list(range(20))
    summary = [r for r in read_csv(out / "summary.csv") if r["setting"] == "interaction=replace"]
    assert len(summary) == 20 and summary[0]["n"] == 2


def test_precision_is_bf16_autocast_on_cuda_only(monkeypatch):
    import torch

    from genloop.generators.diffusion import autocast_dtype

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype(cpu, "auto") is None and autocast_dtype(cpu, "fp32") is None  # CPU numbers unchanged
    with pytest.raises(ConfigError, match="train.precision: bf16 needs a CUDA device"):
        autocast_dtype(cpu, "bf16")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype(cuda, "auto") is torch.bfloat16 and autocast_dtype(cuda, "bf16") is torch.bfloat16
    assert autocast_dtype(cuda, "fp32") is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert autocast_dtype(cuda, "auto") is None
    with pytest.raises(ConfigError, match="not supported by this GPU"):
        autocast_dtype(cuda, "bf16")
