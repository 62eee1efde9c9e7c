"""End to end: the CLI on a tiny config, every file of the run folder, resume."""
import csv
import json
import math

import numpy as np
import pytest
import yaml
from PIL import Image

from genloop import run
from genloop.cli import main
from genloop.loading import load_raw
from genloop.generators import diffusion as diffusion_gen
from genloop.loop import Experiment
from genloop.loop.experiment import TIME_COLUMNS
from genloop.runfolder import RunStore, load_npz, load_weights, read_csv


def _results(path):
    rows = read_csv(path / "metrics.csv")
    return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in rows]


def test_cli_run_writes_every_file(tmp_path, tiny_overrides, capsys):
    out = tmp_path / "run"
    rc = main(["run", "-o", str(out), "--no-progress", "generator.guidance_scale=[1.0,0.1]", *tiny_overrides])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "gen  1" in printed and "acc " in printed and "ce " in printed
    assert (out / "config.yaml").exists()
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["generator"]["ddpm"]["guidance_scale"] == [1.0, 0.1]
    chains = json.loads((out / "chains.json").read_text())
    assert [c["varied"]["generator.guidance_scale"] for c in chains] == [1.0, 0.1]
    store = RunStore(out)
    for ch in chains:
        for g in range(2):
            d = store.gen_dir(ch["id"], g)
            z = load_npz(d / "samples.npz")
            assert z["images"].dtype == np.uint8 and z["images"].shape == (200, 1, 8, 8)
            assert z["labels"].shape == (200,)
            w = load_weights(d / "model.safetensors")
            assert w and all(not k.startswith("_orig_mod") for k in w)
            img = Image.open(d / "grid.png")
            assert img.size[0] > 0 and img.size[1] > 0
            assert (d / "DONE").exists() and (d / "metrics.json").exists() and (d / "provenance.npz").exists()
        assert not store.train_state_path(ch["id"]).exists()
    rows = read_csv(out / "metrics.csv")
    assert len(rows) == 4
    for r in rows:
        assert 0.0 <= r["accuracy"] <= 1.0 and r["cross_entropy"] > 0
        assert "acc_class_9" in r and "pred_frac_0" in r and "generator.guidance_scale" in r
        assert r["train_seconds"] > 0 and r["sample_seconds"] > 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 4
    ref = read_csv(out / "reference.csv")
    assert ref[0]["accuracy"] > 0.8  # the classifier on the real test set
    for stem in ("accuracy", "cross_entropy", "acc_class_1", "acc_class_3", "acc_class_9"):
        assert (out / "plots" / f"{stem}.png").stat().st_size > 0
        assert (out / "plots" / f"{stem}.pdf").stat().st_size > 0


def test_rerun_refuses_other_config_and_force_starts_over(tmp_path, tiny_overrides, capsys):
    out = tmp_path / "run"
    tiny_overrides = tiny_overrides + ["loop.generations=1"]  # one finished generation is enough to refuse
    assert main(["run", "-o", str(out), "--no-progress", *tiny_overrides]) == 0
    rc = main(["run", "-o", str(out), "--no-progress", *tiny_overrides, "train.steps=21"])
    assert rc == 2
    assert "train.steps" in capsys.readouterr().err
    assert main(["run", "-o", str(out), "--no-progress", "--force", *tiny_overrides, "train.steps=21"]) == 0


@pytest.mark.parametrize("override, fragment", [
    ("generator.guidance_scale=strong", "generator.ddpm.guidance_scale: 'strong' is not a number"),  # old key: named anew
    ("loop.generations=-1", "loop.generations"),
    ("generator.ddpm.label_dropout=2", "generator.ddpm.label_dropout: 2.0 is out of range"),
    ("generator.nme=x", "generator.nme: unknown key"),
    ("loop.interaction=nope", "loop.interaction: unknown interaction model 'nope'"),
    ("sampler.name=euler", "sampler.name: unknown sampler 'euler'"),
])
def test_bad_input_stops_before_work(tmp_path, override, fragment, capsys):
    out = tmp_path / "run"
    assert main(["run", "-o", str(out), override]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


class _Stop(BaseException):
    """Stands for the process being killed mid-run: a BaseException, so the runner does not retry it."""


def test_resume_after_generation_gives_same_numbers(tmp_path, tiny_overrides):
    raw = load_raw(None, tiny_overrides + ["loop.generations=3"])
    run(raw, tmp_path / "full", report=False)

    def stop_after_1(row):
        if row["generation"] == 1:
            raise _Stop

    with pytest.raises(_Stop):
        run(raw, tmp_path / "cut", report=False, on_generation=stop_after_1)
    assert RunStore(tmp_path / "cut").finished_generations("c00") == 2
    seen = []
    run(raw, tmp_path / "cut", report=False, on_generation=lambda r: seen.append(r["generation"]))
    assert seen == [2]  # only the missing generation ran
    assert _results(tmp_path / "cut") == _results(tmp_path / "full")


def test_resume_inside_a_generation_from_training_checkpoint(tmp_path, tiny_overrides, monkeypatch):
    raw = load_raw(None, tiny_overrides + ["loop.generations=1", "train.steps=30"])
    run(raw, tmp_path / "full", report=False)

    original = diffusion_gen.DiffusionGenerator._ema_update
    calls = {"n": 0}

    def crash(self, step):
        original(self, step)
        calls["n"] += 1
        if step == 24:
            raise _Stop  # killed after the checkpoint at step 20

    monkeypatch.setattr(diffusion_gen.DiffusionGenerator, "_ema_update", crash)
    with pytest.raises(_Stop):
        run(raw, tmp_path / "cut", report=False)
    store = RunStore(tmp_path / "cut")
    assert store.train_state_path("c00").exists() and not store.is_done("c00", 0)
    monkeypatch.setattr(diffusion_gen.DiffusionGenerator, "_ema_update", original)
    run(raw, tmp_path / "cut", report=False)
    assert _results(tmp_path / "cut") == _results(tmp_path / "full")
    a = load_npz(RunStore(tmp_path / "full").gen_dir("c00", 0) / "samples.npz")["images"]
    b = load_npz(store.gen_dir("c00", 0) / "samples.npz")["images"]
    assert np.array_equal(a, b)


def test_nan_loss_stops_chain_and_keeps_finished_generations(tmp_path, tiny_overrides, monkeypatch, capsys):
    out = tmp_path / "run"
    original = diffusion_gen.DiffusionGenerator.fit
    state = {"fits": 0}

    def fit(self, train):
        state["fits"] += 1
        if state["fits"] == 2:  # generation 1 diverges
            for p in self.net.parameters():
                p.data.fill_(float("nan"))
        return original(self, train)

    monkeypatch.setattr(diffusion_gen.DiffusionGenerator, "fit", fit)
    rc = main(["run", "-o", str(out), "--no-progress", "generator.guidance_scale=1.0", *tiny_overrides])
    assert rc == 3
    err = capsys.readouterr().err
    assert "loss became nan" in err and "finished generations are kept" in err
    store = RunStore(out)
    assert store.is_done("c00", 0) and not store.is_done("c00", 1)
    assert len(read_csv(out / "metrics.csv")) == 1


def test_python_api_returns_rows(tmp_path, tiny_overrides):
    import genloop

    rows = genloop.run(overrides=tiny_overrides + ["loop.generations=1", "generator.guidance_scale=1.0"], out_dir=tmp_path / "api")
    assert len(rows) == 1 and 0 <= rows[0]["accuracy"] <= 1


def test_unconditional_unet_on_colour_shapes_with_image_metrics(tmp_path, tiny_overrides):
    """The flowers/birds path in miniature: unconditional U-Net DDIM on a labelled colour
    dataset; samples carry no labels, label-free classifier scores and FD/KID/PRDC are computed."""
    out = tmp_path / "shapes"
    rc = main(["run", "-o", str(out), "--no-progress", "-p", "shapes", *tiny_overrides,
               "data.count=150", "loop.sample_count=60", "generator.width=8", "generator.channel_mult=[1,2]",
               "metrics.kid_subset_size=50", "metrics.classifier.steps=50", "loop.generations=2"])
    assert rc == 0
    rows = read_csv(out / "metrics.csv")
    assert len(rows) == 2
    for r in rows:
        assert "accuracy" not in r and r["entropy"] >= 0
        for col in ("fd_classifier", "kid_mean_classifier", "precision_classifier", "coverage_classifier"):
            assert isinstance(r[col], float) and not math.isnan(r[col])
    z = load_npz(RunStore(out).gen_dir(rows[0]["chain"], 0) / "samples.npz")
    assert z["images"].shape == (60, 3, 32, 32) and "labels" not in z


SELECT = ["loop.generations=1", "train.steps=30", "train.select_every=10", "train.select_samples=100",
          "train.select_steps=3", "metrics.features=pixels", "metrics.kid_subsets=10"]


def test_checkpoint_selection_keeps_the_best_validation_kid(tmp_path, tiny_overrides, monkeypatch):
    """train.select_every: a validation split is held out, the EMA weights are scored
    every 10 steps and at the end, and the best ones are kept (their step and KID land
    in metrics.csv); the model file holds exactly those weights."""
    seen, fitted, val_images = [], [], []
    original = diffusion_gen.DiffusionGenerator._validate
    original_fit = diffusion_gen.DiffusionGenerator.fit

    def spy(self, val, step):
        score = original(self, val, step)
        seen.append((step, score, len(val)))
        val_images.append(val.images)
        return score

    def spy_fit(self, train):
        out = original_fit(self, train)
        fitted.append((len(train), out["train_images"]))
        return out

    monkeypatch.setattr(diffusion_gen.DiffusionGenerator, "_validate", spy)
    monkeypatch.setattr(diffusion_gen.DiffusionGenerator, "fit", spy_fit)
    raw = load_raw(None, tiny_overrides + SELECT + ["generator.guidance_scale=1.0"])
    rows = run(raw, tmp_path / "sel", report=False)
    assert [s for s, *_ in seen] == [10, 20, 30]
    assert all(n == 100 for _, _, n in seen)  # select_samples images of the real test split
    # The validation images are not taken from the training count: all 1,438 images train,
    # and every validation image is one of the real test split's.
    assert fitted == [(1438, 1438)]
    from genloop.data import load_real

    test = {im.tobytes() for im in load_real(Experiment(raw, tmp_path / "sel").chains[0].config.data).test.images}
    assert all(im.tobytes() in test for im in val_images[0])
    best_step, best = min(((s, k) for s, k, _ in seen), key=lambda x: x[1])
    assert rows[0]["ckpt_step"] == best_step and rows[0]["ckpt_val_kid"] == pytest.approx(best)
    # without selection the last weights are kept and there are no ckpt_ columns
    plain = run(load_raw(None, tiny_overrides + SELECT[:2] + ["metrics.features=pixels",
                                                                     "generator.guidance_scale=1.0"]), tmp_path / "plain", report=False)
    assert "ckpt_step" not in plain[0]


def test_checkpoint_selection_picks_the_lowest_score_and_resumes(tmp_path, tiny_overrides, monkeypatch):
    """A scripted validation score (best at step 20 of 30) decides which EMA weights
    are saved; a run killed after the step-20 checkpoint resumes with the same choice."""
    scores = {10: 0.5, 20: 0.1, 30: 0.3}
    kept = {}
    original_validate = diffusion_gen.DiffusionGenerator._validate

    def scripted(self, val, step):
        self.ctx.select_score = lambda real, fake: scores[step]
        s = original_validate(self, val, step)
        if step == 20:
            kept["ema"] = {k: v.clone() for k, v in self.ema.state_dict().items()}
        return s

    monkeypatch.setattr(diffusion_gen.DiffusionGenerator, "_validate", scripted)
    raw = load_raw(None, tiny_overrides + SELECT + ["generator.guidance_scale=1.0"])
    rows = run(raw, tmp_path / "full", report=False)
    assert rows[0]["ckpt_step"] == 20 and rows[0]["ckpt_val_kid"] == pytest.approx(0.1)
    saved = load_weights(RunStore(tmp_path / "full").gen_dir("c00", 0) / "model.safetensors")
    for k, v in kept["ema"].items():
        assert np.array_equal(saved[k].numpy(), v.numpy()), k

    original_ema = diffusion_gen.DiffusionGenerator._ema_update

    def crash(self, step):
        original_ema(self, step)
        if step == 24:
            raise _Stop  # after the checkpoint at step 20, which holds the best weights so far

    monkeypatch.setattr(diffusion_gen.DiffusionGenerator, "_ema_update", crash)
    with pytest.raises(_Stop):
        run(raw, tmp_path / "cut", report=False)
    monkeypatch.setattr(diffusion_gen.DiffusionGenerator, "_ema_update", original_ema)
    again = run(raw, tmp_path / "cut", report=False)
    assert again[0]["ckpt_step"] == 20
    assert _results(tmp_path / "cut") == _results(tmp_path / "full")


def test_checkpoint_selection_bad_features_is_a_config_error(tmp_path, tiny_overrides, capsys):
    rc = main(["run", "-o", str(tmp_path / "x"), "--no-progress", *tiny_overrides, "train.select_every=10",
               "train.select_features=nonsense"])
    assert rc == 2
    assert "train.select_features: unknown feature extractor 'nonsense'" in capsys.readouterr().err
