"""The image oracle (genloop.metrics.oracle) and ``verify`` on labelled images: the oracle
is accurate on held-out real digits, independent of the metrics' judge (other data, other
features, other model family), and the verifier built on it has the configured error
rates on top of the oracle's decision within binomial tolerance."""
import csv
import math

import numpy as np
import pytest
import torch

from genloop import run
from genloop.data import ImageSet, load_real
from genloop.loading import from_dict, load_raw
from genloop.loop import INTERACTIONS
from genloop.metrics.oracle import Oracle, gradient_features, image_oracle, oracle_split


def _digits(*overrides):
    cfg = from_dict(load_raw(None, ["data.name=digits", *overrides]))
    return cfg, load_real(cfg.data)


def test_oracle_is_accurate_on_held_out_real_digits():
    _, real = _digits()
    oracle, rates = image_oracle(real)
    # measured: 0.938 on the 178 check digits of the default split (test_fraction 0.2)
    assert rates["accuracy"] > 0.9
    assert rates["false_reject"] == pytest.approx(1 - rates["accuracy"])  # threshold 0: reject = misclassified
    assert rates["false_accept"] < 0.02  # a real digit given a wrong label is rarely accepted
    assert (oracle.probs(real.train.images).argmax(1) == real.train.labels).mean() > 0.9  # images it never saw
    strict = image_oracle(real, 0.9)[1]
    assert strict["false_reject"] > rates["false_reject"] and strict["false_accept"] <= rates["false_accept"]


def test_oracle_is_independent_of_the_judge():
    cfg, real = _digits()
    oracle, _ = image_oracle(real)
    fit, check = oracle_split(real.test)
    # other data: the oracle trains on half of the test set; the judge on the training images
    assert len(set(fit) & set(check)) == 0 and len(fit) + len(check) == len(real.test)
    train_rows = {bytes(x) for x in real.train.images}
    overlap = np.mean([bytes(x) in train_rows for x in real.test.images[fit]])
    assert overlap < 0.02  # only exact duplicate digits of the dataset itself
    # other model family: a linear model of scikit-learn, not a torch network like the judge
    assert not isinstance(oracle.model, torch.nn.Module)
    assert type(oracle.model).__name__ == "LogisticRegression"
    # other features: gradient histograms see no pixel values, so a constant brightness offset
    # changes nothing (the judge's pixel input would change)
    x = (real.test.images[:50].astype(np.int64) // 2).astype(np.uint8)
    assert np.allclose(gradient_features(x), gradient_features(x + np.uint8(40)))


def _binomial_ok(hits, trials, p, k=5.0):
    se = math.sqrt(max(p * (1 - p), 1e-12) / trials)
    return abs(hits / trials - p) <= k * se + 1e-12, f"{hits}/{trials} = {hits / trials:.4f} vs {p} (5 SE = {k * se:.4f})"


@pytest.mark.parametrize("fa, fr", [(0.0, 0.0), (0.3, 0.1), (1.0, 0.5)])
def test_image_verifier_has_the_configured_error_rates_on_top_of_the_oracle(fa, fr):
    cfg = from_dict(load_raw(None, ["data.name=digits", "loop.interaction=verify", "loop.generations=3",
                                    f"loop.verify_false_accept={fa}", f"loop.verify_false_reject={fr}"]))
    real = load_real(cfg.data)
    inter = INTERACTIONS.get("verify")(cfg, real)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(real.train), 12000)
    labels = real.train.labels[idx].copy()
    wrong = rng.random(len(idx)) < 0.5  # half the samples claim a wrong class
    labels[wrong] = (labels[wrong] + rng.integers(1, 10, wrong.sum())) % 10
    samples = ImageSet(real.train.images[idx], labels, 10)
    truth = image_oracle(real)[0].accepts(samples.images, labels)
    kept, stats = inter.select(1, samples, np.random.default_rng(1))
    assert stats["verify_valid"] == truth.sum() and stats["verify_accepted"] == len(kept)
    assert 0.4 < truth.mean() < 0.55  # the oracle accepts most right labels and few wrong ones
    ok, msg = _binomial_ok(stats["verify_wrongly_accepted"], int((~truth).sum()), fa)
    assert ok, "false accepts: " + msg
    ok, msg = _binomial_ok(stats["verify_wrongly_rejected"], int(truth.sum()), fr)
    assert ok, "false rejects: " + msg
    assert stats["verify_oracle_accuracy"] > 0.9 and 0 <= stats["verify_oracle_false_accept"] < 0.02
    unlabelled = ImageSet(real.train.images[:5])
    with pytest.raises(ValueError, match="conditioning class"):
        inter.select(1, unlabelled, np.random.default_rng(0))


def test_verify_runs_on_digits_and_records_the_oracle(tmp_path, tiny_overrides):
    run(load_raw(None, tiny_overrides + ["data.name=digits", "generator.name=gaussian", "loop.interaction=verify",
                                         "loop.synthetic_schedule=constant", "loop.synthetic_fraction=0.5",
                                         "metrics.names=[classifier]", "metrics.classifier.steps=30", "device=cpu"]),
        tmp_path, report=False)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    last = rows[-1]
    assert float(last["verify_offered"]) == 200 and 0 < float(last["verify_accepted"]) <= 200
    assert float(last["verify_oracle_accuracy"]) > 0.9 and float(last["pool_real"]) >= 0.5


def test_oracle_handles_a_single_class():
    images = np.random.default_rng(0).integers(0, 256, (6, 1, 8, 8)).astype(np.uint8)
    o = Oracle(ImageSet(images, np.zeros(6, np.int64), 3))
    assert o.accepts(images, np.zeros(6, np.int64)).all() and not o.accepts(images, np.ones(6, np.int64)).any()


def test_text_curation_filter_is_another_model_family_than_the_judge():
    """The text filter is a log-bilinear model (learnt embeddings), not the Kneser-Ney judge
    nor its back-off; it learns a bigram language: a deterministic successor gets most of the mass."""
    from genloop.models.loglinear import LogBilinear
    from genloop.models.ngram import KneserNey

    rng = np.random.default_rng(0)
    succ = rng.permutation(np.arange(1, 12))  # token t (1..11) is followed by succ[t - 1]
    rows = []
    for _ in range(300):
        t = [int(rng.integers(1, 12))]
        for _ in range(11):
            t.append(int(succ[t[-1] - 1]))
        rows.append(t)
    tokens = np.array(rows, dtype=np.int32)
    model = LogBilinear(2, 12, seed=0).fit(tokens)
    lp = model.log_probs(tokens)
    assert lp.shape == tokens.shape and np.exp(lp[:, 1:]).mean() > 0.8  # > 0.8 where uniform gives 1/11
    assert np.array_equal(lp, LogBilinear(2, 12, seed=0).fit(tokens).log_probs(tokens))  # reproducible
    shuffled = tokens.copy()
    rng.shuffle(shuffled.reshape(-1))
    assert model.log_probs(shuffled).mean() < lp.mean() - 1.0

    from genloop.data import load_real
    from genloop.loop.interactions.curate import CURATE_SCORES

    cfg = from_dict(load_raw(None, ["data.name=zipf-markov", "data.count=100", "loop.interaction=curate",
                                    "loop.curate_top_fraction=0.5"]))
    real = load_real(cfg.data)
    score = CURATE_SCORES["tokens"](cfg, real)
    assert not any(isinstance(c.cell_contents, KneserNey) for c in score.__closure__)
    assert any(isinstance(c.cell_contents, LogBilinear) for c in score.__closure__)
