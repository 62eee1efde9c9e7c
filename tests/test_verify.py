"""The ``verify`` interaction: its error rates against the exact truth are the configured
ones within binomial tolerance (5 standard errors; fixed seeds, deterministic), its rows
count what it did, it mixes by the schedule, and it refuses data it cannot judge."""
import csv
import math

import numpy as np
import pytest

from genloop import run
from genloop.cli import main
from genloop.data import ImageSet, load_real
from genloop.loading import from_dict, load_raw
from genloop.loop import INTERACTIONS
from genloop.data.categorical import OFFSET


def _make(*overrides):
    cfg = from_dict(load_raw(None, ["loop.interaction=verify", "loop.generations=4", *overrides]))
    real = load_real(cfg.data)
    return INTERACTIONS.get("verify")(cfg, real), real


def _binomial_ok(hits, trials, p, k=5.0):
    se = math.sqrt(max(p * (1 - p), 1e-12) / trials)
    return abs(hits / trials - p) <= k * se + 1e-12, f"{hits}/{trials} = {hits / trials:.4f} vs {p} (5 SE = {k * se:.4f})"


@pytest.mark.parametrize("fa, fr", [(0.0, 0.0), (0.2, 0.1), (0.5, 0.5), (1.0, 0.0)])
def test_categorical_verifier_has_the_configured_error_rates(fa, fr):
    inter, real = _make("data.name=categorical", "data.categorical.valid=[0,1,2]",
                        f"loop.verify.false_accept={fa}", f"loop.verify.false_reject={fr}")
    rng = np.random.default_rng(0)
    samples = real.train.like((rng.integers(0, 6, 20000) + OFFSET).astype(np.int32)[:, None])
    valid = np.isin(samples.tokens[:, 0] - OFFSET, [0, 1, 2])
    kept, stats = inter.select(1, samples, np.random.default_rng(1))
    assert stats["verify_offered"] == 20000 and stats["verify_valid"] == valid.sum()
    assert stats["verify_accepted"] == len(kept)
    invalid = 20000 - valid.sum()
    ok, msg = _binomial_ok(stats["verify_wrongly_accepted"], invalid, fa)
    assert ok, "false accepts: " + msg
    ok, msg = _binomial_ok(stats["verify_wrongly_rejected"], valid.sum(), fr)
    assert ok, "false rejects: " + msg
    kept_valid = np.isin(kept.tokens[:, 0] - OFFSET, [0, 1, 2]).sum()
    assert kept_valid == valid.sum() - stats["verify_wrongly_rejected"]


def test_gaussian_verifier_checks_the_true_density_region():
    inter, real = _make("data.name=gaussian", "data.gaussian.dim=2", "generator.conditional=false",
                        "loop.verify.coverage=0.9", "loop.verify.false_reject=0.25")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40000, 2, 1, 1)).astype(np.float32)
    _, stats = inter.select(1, ImageSet(x), np.random.default_rng(4))
    ok, msg = _binomial_ok(stats["verify_valid"], 40000, 0.9)  # exact coverage of the true N(0, I)
    assert ok, msg
    ok, msg = _binomial_ok(stats["verify_wrongly_rejected"], stats["verify_valid"], 0.25)
    assert ok, msg
    assert stats["verify_wrongly_accepted"] == 0
    far = ImageSet(np.full((10, 2, 1, 1), 5.0, dtype=np.float32))  # squared distance 50 > chi2_2(0.9) = 4.6
    assert inter.select(1, far, np.random.default_rng(0))[1]["verify_valid"] == 0


def test_a_perfect_verifier_removes_invalid_outcomes_from_the_loop(tmp_path):
    run(None, tmp_path, ["data.name=categorical", "data.count=500", "data.categorical.valid=[0,1,2,3]",
                         "generator.name=categorical", "metrics.names=[categorical]", "loop.interaction=verify",
                         "loop.generations=3", "device=cpu", "generator.guidance_scale=1"], report=False)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    for r in rows:
        assert float(r["verify_wrongly_accepted"]) == 0 and float(r["verify_wrongly_rejected"]) == 0
        assert float(r["verify_valid_kept"]) == 1.0
    last = rows[-1]  # generation 2 trained on verified samples only: outcomes 4 and 5 are gone
    assert float(last["model_outcomes_lost"]) >= 2 and float(last["pool_real"]) == 0.0


def test_verify_mixes_real_data_by_the_schedule_and_resumes(tmp_path):
    args = ["data.name=gaussian", "data.count=250", "generator.name=gaussian", "generator.conditional=false",
            "metrics.names=[variance_ratio]", "loop.interaction=verify", "loop.generations=4", "device=cpu",
            "loop.schedule.kind=constant", "loop.schedule.fraction=0.5", "loop.verify.false_reject=0.2",
            "loop.verify.false_accept=0.3", "generator.guidance_scale=1"]
    raw = load_raw(None, args)
    run(raw, tmp_path / "full", report=False)

    class Stop(BaseException):
        pass

    def stop(row):
        if row["generation"] == 2:
            raise Stop

    with pytest.raises(Stop):
        run(raw, tmp_path / "cut", report=False, on_generation=stop)
    run(raw, tmp_path / "cut", report=False)
    rows = lambda d: [(r["generation"], r["variance_ratio"], r["pool_real"], r["verify_accepted"])
                      for r in csv.DictReader(open(d / "metrics.csv"))]
    assert rows(tmp_path / "full") == rows(tmp_path / "cut")
    for g, _, real_share, _ in rows(tmp_path / "full")[1:]:
        assert float(real_share) == 0.5  # 100 real + 100 of the ~150+ accepted samples


def test_data_without_a_truth_or_labels_is_one_line_before_any_run_folder(tmp_path, capsys):
    out = tmp_path / "r"
    images = np.random.default_rng(0).integers(0, 256, (60, 1, 8, 8)).astype(np.uint8)
    np.savez(tmp_path / "plain.npz", images=images)  # images without labels: the oracle cannot judge them
    for args, words in ((["data.name=npz", f"data.root={tmp_path / 'plain.npz'}"], ("verify", "npz", "labels")),
                        (["data.name=zipf-markov"], ("verify", "zipf-markov"))):
        assert main(["run", "-o", str(out), "--no-progress", "loop.interaction=verify", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and all(w in err[0] for w in words), err
        assert not out.exists()
    assert main(["run", "-o", str(out), "--no-progress", "data.name=categorical", "loop.interaction=verify",
                 "loop.verify.false_accept=1.2"]) == 2
    assert "loop.verify.false_accept: 1.2 is out of range" in capsys.readouterr().err
