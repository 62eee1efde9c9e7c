"""The registered metrics fd, kid, prdc (loop side) and ``evaluate`` (CLI side)."""
import logging

import numpy as np
import pytest
import torch

from genloop.config import ConfigError
from genloop.loading import from_dict, load_raw
from genloop.data import ImageSet, RealData
from genloop.metrics import METRICS, MetricContext, build_metrics
from genloop.metrics.evaluate import evaluate
from genloop.metrics.features import inception as inc
from genloop.metrics.frechet import frechet_distance_features
from genloop.metrics.image_metrics import metric_name
from genloop.metrics.kid import kid
from genloop.metrics.prdc import prdc
from test_metrics_features import one_thread, random_inception_state  # noqa: F401  (fixture)


def blobs(rng, n, shift=0.0, labelled=True):
    """Small 1x6x6 uint8 images: noise around a class-dependent pattern."""
    labels = rng.integers(0, 3, n)
    base = np.stack([np.full((1, 6, 6), 60.0 + 60 * c) for c in labels])
    images = np.clip(base + shift + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
    return ImageSet(images, labels if labelled else None, 3 if labelled else 0)


def make_ctx(rng, overrides=(), cache_dir=None, n_train=400, n_test=150):
    cfg = from_dict(load_raw(None, ["metrics.names=[fd,kid,prdc]", "metrics.features=pixels",
                                    "metrics.kid_subsets=10", "metrics.kid_subset_size=100", *overrides]))
    real = RealData(train=blobs(rng, n_train), test=blobs(rng, n_test))
    return MetricContext(config=cfg, real=real, device=torch.device("cpu"), cache_dir=cache_dir, seed=3)


def test_metric_names_follow_the_features():
    assert [metric_name(b, "inception") for b in ("fd", "kid_mean", "kid_std", "precision", "coverage")] == \
        ["fid", "kid_mean", "kid_std", "precision", "coverage"]
    assert [metric_name(b, "classifier") for b in ("fd", "kid_mean", "density")] == \
        ["fd_classifier", "kid_mean_classifier", "density_classifier"]


def test_registered_metrics_score_fake_against_real_train(rng):
    ctx = make_ctx(rng, ["metrics.equal_n=false"])  # every image: the array functions' values
    metrics = dict(build_metrics(ctx))
    assert set(metrics) == {"fd", "kid", "prdc"}
    fake = blobs(rng, 300, shift=30.0)
    row = {}
    for m in metrics.values():
        row.update(m(fake))
    assert list(row) == ["fd_pixels", "kid_mean_pixels", "kid_std_pixels", "precision_pixels", "recall_pixels",
                         "density_pixels", "coverage_pixels"]
    assert all(isinstance(v, float) for v in row.values())
    real = ctx.real.train.images.reshape(400, -1) / 255.0
    f = fake.images.reshape(300, -1) / 255.0
    assert row["fd_pixels"] == pytest.approx(frechet_distance_features(real, f), rel=1e-5)
    assert row["kid_mean_pixels"] == pytest.approx(kid(real, f, subsets=10, subset_size=100, seed=3)[0], rel=1e-4)
    assert row["coverage_pixels"] == prdc(real, f, k=5, dtype="float64")["coverage"]
    # The reference (real test vs real train) is the floor: better than the shifted fakes.
    ref = {}
    for m in metrics.values():
        ref.update(m.reference())
    assert set(ref) == set(row)
    assert ref["fd_pixels"] < row["fd_pixels"] and ref["kid_mean_pixels"] < row["kid_mean_pixels"]
    assert ref["coverage_pixels"] > row["coverage_pixels"]


def test_real_statistics_are_cached_on_disk(rng, tmp_path, monkeypatch):
    ctx = make_ctx(rng, cache_dir=tmp_path)
    first = METRICS.get("fd")(ctx)(ctx.real.test)
    assert list(tmp_path.glob("features-pixels-*.npz")) and list(tmp_path.glob("fd-stats-pixels-*.npz"))
    # A later run with the same real data does not recompute the real side.
    import genloop.metrics.image_metrics as im

    monkeypatch.setattr(im, "feature_stats", _fail_on_real(im.feature_stats, len(ctx.real.train)))
    ctx2 = MetricContext(config=ctx.config, real=ctx.real, device=ctx.device, cache_dir=tmp_path, seed=3)
    assert METRICS.get("fd")(ctx2)(ctx.real.test) == first


def _fail_on_real(fn, n_real):
    def wrapped(x):
        assert len(x) != n_real, "real statistics were recomputed"
        return fn(x)
    return wrapped


def gaussian_images(rng, n):
    """uint8 1x4x4 images of one fixed distribution (a smooth, tie-free pixel distribution)."""
    return ImageSet(np.clip(rng.normal(128, 30, (n, 1, 4, 4)), 0, 255).astype(np.uint8), None, 0)


def test_reference_is_at_the_generations_sample_count(rng):
    """Two samples of one distribution (1,438 training vs 359 held-out images, the digits'
    split): the reference coverage is >= 0.9 at k = 5 (it was 0.67 with 359 held-out images
    against 1,438 training balls), and its n is stored beside it."""
    cfg = from_dict(load_raw(None, ["metrics.names=[fd,kid,prdc]", "metrics.features=pixels", "metrics.k=5",
                                    "metrics.kid_subsets=5", "metrics.min_samples_warning=0"]))
    real = RealData(train=gaussian_images(rng, 1438), test=gaussian_images(rng, 359))
    ctx = MetricContext(config=cfg, real=real, device=torch.device("cpu"), seed=1)
    metrics = dict(build_metrics(ctx))
    ref = metrics["prdc"].reference()
    assert ref["coverage_pixels"] >= 0.9
    assert ref["eval_n_pixels"] == 359.0
    assert metrics["fd"].reference()["eval_n_pixels"] == 359.0
    # A generation of 1,438 samples of the same distribution is scored at the same n, so it
    # lands where the reference is (coverage ~0.97 for equal n) instead of far above it.
    gen = metrics["prdc"](gaussian_images(rng, 1438))
    assert gen["eval_n_pixels"] == 359.0 and abs(gen["coverage_pixels"] - ref["coverage_pixels"]) < 0.05
    # Without equal_n the reference is the old mismatched one (fewer fakes than real balls).
    ctx_all = MetricContext(config=from_dict(load_raw(None, ["metrics.names=[prdc]", "metrics.features=pixels",
                                                               "metrics.equal_n=false"])),
                            real=real, device=torch.device("cpu"), seed=1)
    assert METRICS.get("prdc")(ctx_all).reference()["coverage_pixels"] < 0.8


def test_equal_n_draws_are_averaged_and_repeatable(rng):
    ctx = make_ctx(rng, ["metrics.draws=3", "metrics.min_samples_warning=0"])
    metric = METRICS.get("fd")(ctx)
    fake = blobs(rng, 300, shift=10.0)
    out = metric(fake)
    assert out == metric(fake) and out["eval_n_pixels"] == 150.0   # n = the 150 held-out images
    # By hand: the same three draws of 150 of the 400 training and of the 300 fake features.
    from genloop.metrics.frechet import frechet_distance_features
    from genloop.metrics.image_metrics import _draw_pairs

    real_f = ctx.real.train.images.reshape(400, -1).astype(np.float32) / np.float32(255)
    fake_f = fake.images.reshape(300, -1).astype(np.float32) / np.float32(255)
    pairs = list(_draw_pairs(real_f, fake_f, 150, 3, ctx.seed))
    assert len(pairs) == 3
    assert out["fd_pixels"] == pytest.approx(np.mean([frechet_distance_features(r, f) for r, f, _ in pairs]), rel=1e-6)


def test_too_few_samples_rule():
    from genloop.metrics.image_metrics import too_few_samples

    assert "singular" in too_few_samples("fd", 1200, 2048, 1000)         # paper-flowers-cpu: Inception FD
    assert "singular" in too_few_samples("fd", 2048, 2048, 1000)
    assert too_few_samples("fd", 3000, 2048, 1000) is None
    assert too_few_samples("prdc", 1200, 2048, 1000) is None             # k-NN metrics: N only
    assert "min_samples_warning=1000" in too_few_samples("kid", 359, 64, 1000)
    assert "min_samples_warning" in too_few_samples("fd", 500, 64, 1000)


def test_fd_warns_when_samples_do_not_exceed_the_dimension(rng, caplog):
    """FD on 150 samples of 36-d pixels is fine, on 150 samples of 200-d features it is singular:
    one warning line in the run log, even with min_samples_warning off."""
    ctx = make_ctx(rng, ["metrics.min_samples_warning=0"])
    with caplog.at_level(logging.WARNING, logger="genloop.metrics.image_metrics"):
        METRICS.get("fd")(ctx)(blobs(rng, 300))
    assert not caplog.records
    big = RealData(train=ImageSet(rng.integers(0, 255, (400, 2, 10, 10), dtype=np.uint8), None, 0),
                   test=ImageSet(rng.integers(0, 255, (150, 2, 10, 10), dtype=np.uint8), None, 0))
    ctx2 = MetricContext(config=ctx.config, real=big, device=torch.device("cpu"), seed=3)
    with caplog.at_level(logging.WARNING, logger="genloop.metrics.image_metrics"):
        m = METRICS.get("fd")(ctx2)
        m.reference()
        m.reference()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "150 samples <= 200 feature dimensions" in lines[0]


def test_warns_below_min_samples(rng, caplog):
    ctx = make_ctx(rng, ["metrics.min_samples_warning=500"])
    metric = METRICS.get("prdc")(ctx)
    with caplog.at_level(logging.WARNING, logger="genloop.metrics.image_metrics"):
        metric(blobs(rng, 100))
        metric(blobs(rng, 100))
    warnings = [r for r in caplog.records if "docs/metrics.md" in r.getMessage()]
    assert len(warnings) == 1 and "prdc" in warnings[0].getMessage()
    with pytest.raises(ValueError, match="at least 6"):
        metric(blobs(rng, 4))


def test_unknown_features_rejected_by_config():
    import genloop.builtins  # noqa: F401  (registers the validators)

    with pytest.raises(ConfigError, match="metrics.features"):
        from_dict(load_raw(None, ["metrics.names=[fd]", "metrics.features=nope"]))


def test_evaluate_pixels(rng):
    real = blobs(rng, 300, labelled=False)
    fake = blobs(rng, 200, shift=20.0, labelled=False)
    out = evaluate(real, fake, features="pixels", k=3, kid_subsets=5, kid_subset_size=100)
    assert list(out) == ["fd_pixels", "kid_mean_pixels", "kid_std_pixels", "precision_pixels", "recall_pixels",
                         "density_pixels", "coverage_pixels"]
    r = real.images.reshape(300, -1) / 255.0
    f = fake.images.reshape(200, -1) / 255.0
    expected = prdc(r, f, k=3, dtype="float64")
    assert out["recall_pixels"] == expected["recall"] and out["density_pixels"] == expected["density"]
    same = evaluate(real, real, features="pixels", metrics=("prdc",))
    assert same["precision_pixels"] == same["recall_pixels"] == same["coverage_pixels"] == 1.0


def test_evaluate_classifier_needs_labels(rng):
    with pytest.raises(ValueError, match="labels"):
        evaluate(blobs(rng, 50, labelled=False), blobs(rng, 50), features="classifier")
    with pytest.raises(ValueError, match="unknown features"):
        evaluate(blobs(rng, 50), blobs(rng, 50), features="nope")


def test_evaluate_classifier_features(rng):
    out = evaluate(blobs(rng, 300), blobs(rng, 100), features="classifier", metrics=("fd", "prdc"),
                   config=from_dict(load_raw(None, ["metrics.classifier.steps=30", "metrics.classifier.width=16"])))
    assert set(out) == {"fd_classifier", "precision_classifier", "recall_classifier", "density_classifier",
                        "coverage_classifier"}


def _fake_inception_weights(tmp_path, monkeypatch):
    path = tmp_path / "w.pth"
    torch.save(random_inception_state(), path)
    monkeypatch.setenv(inc.ENV_VAR, str(path))


def test_evaluate_inception_kid_prdc(rng, tmp_path, monkeypatch, one_thread):
    _fake_inception_weights(tmp_path, monkeypatch)
    real = blobs(rng, 4, labelled=False)
    fake = blobs(rng, 5, shift=40.0, labelled=False)  # 5 > the 4-image KID subsets: they differ
    out = evaluate(real, fake, features="inception", k=2, kid_subsets=2, batch_size=4, metrics=("kid", "prdc"))
    assert list(out) == ["kid_mean", "kid_std", "precision", "recall", "density", "coverage"]
    assert all(np.isfinite(v) for v in out.values())


@pytest.mark.slow
def test_evaluate_inception_all(rng, tmp_path, monkeypatch, one_thread):
    # The Fréchet distance of 2048-d features costs two 2048 x 2048 eigenproblems (~1-2 s, more on a busy machine).
    _fake_inception_weights(tmp_path, monkeypatch)
    real = blobs(rng, 4, labelled=False)
    fake = blobs(rng, 5, shift=40.0, labelled=False)
    out = evaluate(real, fake, features="inception", k=2, kid_subsets=2, batch_size=4)
    assert list(out) == ["fid", "kid_mean", "kid_std", "precision", "recall", "density", "coverage"]
    assert all(np.isfinite(v) for v in out.values())


def test_classifier_cross_entropy_is_exact_for_confident_mistakes():
    """Logits (0, 100) with label 0: cross-entropy is log(1 + e^100) = 100 nats (it was capped
    at 27.6 by -log(p + 1e-12) on float32 probabilities); entropy ~ 100 e^-100, accuracy 0."""
    from genloop.data import ImageSet
    from genloop.metrics.classifier import ClassifierMetric

    class Fixed:
        def logits(self, images):
            return torch.tensor([[0.0, 100.0], [3.0, 1.0]])

    m = ClassifierMetric.__new__(ClassifierMetric)
    m.clf, m.num_classes, m._warned = Fixed(), 2, False
    out = m._score(ImageSet(np.zeros((2, 1, 2, 2), np.uint8), np.array([0, 0]), 2))
    expected = (np.logaddexp(0, 100) + np.logaddexp(0, -2)) / 2
    assert out["cross_entropy"] == pytest.approx(expected, rel=1e-12)
    assert out["accuracy"] == 0.5
    assert np.isfinite(out["entropy"]) and out["entropy"] >= 0
