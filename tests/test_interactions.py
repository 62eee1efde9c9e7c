"""A shared base test that every registered interaction model passes (with its
defaults and with the variants in CASES), plus each model's specifics."""
import dataclasses

import numpy as np
import pytest
import torch

from genloop.config import ConfigError
from genloop.loading import from_dict, load_raw
from genloop.data import ImageSet, RealData
from genloop.loop import INTERACTIONS, History
from genloop.loop.interactions import (REAL, Pool, class_balanced_labels, lineage_generator, proportional_counts,
                                       take)


def _real(n=300, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    rng.shuffle(labels)
    imgs = rng.integers(0, 256, (n, 1, 4, 4), dtype=np.uint8)
    test = ImageSet(imgs[:30].copy(), labels[:30].copy(), classes)
    return RealData(ImageSet(imgs, labels, classes), test)


def _fake_history(real, generations, lineages=1):
    """Each generation's 'samples': constant images tagged by value (g + 1 + 50 * lineage),
    with the real labels; lineage k of g keeps the share of a fixed ecosystem split."""
    def load(g, lineage=0):
        tr = real.train
        return ImageSet(np.full_like(tr.images, g + 1 + 50 * lineage), tr.labels.copy(), tr.num_classes)
    return History(real, load, lineages)


class _FakeScorer:
    """A MetricContext stand-in whose judge (``classifier``) must never be asked by a filter."""

    shared: dict = {}

    def classifier(self):
        raise AssertionError("a filter used the metric's judge")


class _FakeFilter:
    """A curate filter confident in class 0 in proportion to the pixel mean."""

    def probs(self, images):
        m = torch.from_numpy(images.reshape(len(images), -1).mean(1) / 255.0).float()
        return torch.softmax(torch.stack([4 * m, 4 * (1 - m), torch.zeros_like(m)], 1), 1).numpy()


# Every registered model with its defaults, plus variants of their options.
# Models that need more than the defaults (verify: a data source with an exact truth).
NEEDS = {"verify": ("data.name=gaussian", "loop.verify.false_accept=0.5")}
CASES = [(name, NEEDS.get(name, ())) for name in INTERACTIONS.names()] + [
    ("mix", ("loop.mix.real_fraction=0",)),
    ("mix", ("loop.mix.real_fraction=1",)),
    ("fresh", ("loop.schedule.reserve=0.1", "loop.fresh.fraction=0.2")),
    ("curate", ("loop.curate.top_fraction=0.3",)),
    ("detect", ("loop.detect.detector=learned",)),
    ("detect", ("loop.detect.recall=1", "loop.detect.false_positive_rate=0")),
    ("ecosystem", ("loop.ecosystem.lineages=[{guidance_scale: 1.0}, {guidance_scale: 0.1}, {}]", "loop.ecosystem.shares=[0.5,0.25,0.25]")),
    # synthetic-fraction schedules (schedule.py)
    ("mix", ("loop.schedule.kind=linear", "loop.schedule.fraction=0.2", "loop.schedule.fraction_end=0.8",
             "loop.schedule.ramp=2")),
    ("mix", ("loop.schedule.kind=exponential", "loop.schedule.real_draws=fresh", "loop.schedule.real_floor=0.2")),
    ("fresh", ("loop.schedule.kind=list", "loop.schedule.fractions=[0.5,0.7,0.9]")),
    ("accumulate", ("loop.schedule.kind=constant", "loop.schedule.fraction=0.6")),
    ("accumulate_subsample", ("loop.schedule.kind=constant", "loop.schedule.fraction=0.7", "loop.schedule.train_size=200",
                              "loop.schedule.real_draws=fresh", "loop.schedule.reserve=0.2")),
    ("verify", ("data.name=gaussian", "loop.schedule.kind=constant", "loop.schedule.fraction=0.6",
                "loop.verify.false_reject=0.3")),
]


def test_cases_cover_every_registered_interaction():
    assert {n for n, _ in CASES} == set(INTERACTIONS.names())
    assert {"replace", "mix", "accumulate", "accumulate_subsample", "fresh", "curate", "detect",
            "ecosystem"} <= set(INTERACTIONS.names())


@pytest.mark.parametrize("name, extra", CASES, ids=[f"{n}{'-' + '-'.join(e) if e else ''}" for n, e in CASES])
class TestEveryInteraction:
    def _make(self, name, extra=()):
        cfg = from_dict(load_raw(None, ["loop.generations=4", f"loop.interaction={name}", *extra]))
        real = _real()
        if "data.name=gaussian" in extra:  # a verifier checks the source's truth: here N(127.5, 74^2) per pixel
            from genloop.data.lowdim import GaussianTruth

            real = dataclasses.replace(real, truth=GaussianTruth(16, 127.5, 74.0))
        return INTERACTIONS.get(name)(cfg, real), real

    def test_generation_zero_trains_on_real_data(self, name, extra):
        inter, real = self._make(name, extra)
        pool = inter.training_set(0, _fake_history(real, 0), np.random.default_rng(0))
        reserve = inter.real_reserve()
        assert np.all(pool.origin == REAL)
        if not len(reserve):
            assert len(pool) == len(real.train)
        # A model may hold real images back from generation 0 (fresh); the rest is all of it.
        assert len(pool) == len(real.train) - len(reserve)
        assert np.array_equal(pool.data.images, real.train.images[pool.index])
        assert not np.intersect1d(pool.index, reserve).size

    def test_later_pools_are_valid_and_reproducible(self, name, extra):
        inter, real = self._make(name, extra)
        nl = len(inter.lineages())
        hist = _fake_history(real, 3, nl)
        for g in (1, 2, 3):
            a = inter.training_set(g, hist, np.random.default_rng([0, g]))
            b = inter.training_set(g, hist, np.random.default_rng([0, g]))
            assert len(a) > 0 and a.data.images.dtype == np.uint8
            assert np.array_equal(a.data.images, b.data.images) and np.array_equal(a.origin, b.origin)
            assert a.origin.max() < g  # nothing from the future
            comp = a.composition(nl)
            assert comp["pool_size"] == len(a)
            # Provenance is exact: every image is where origin/lineage/index say it came from.
            for i in range(len(a)):
                src = real.train if a.origin[i] == REAL else hist.samples(int(a.origin[i]), int(a.lineage[i])).data
                assert np.array_equal(a.data.images[i], src.images[a.index[i]])
            parts = [v for k, v in comp.items() if k == "pool_real" or k.startswith("pool_gen_")]
            assert sum(parts) == pytest.approx(1.0)
            if nl > 1:
                synth = sum(v for k, v in comp.items() if k.startswith("pool_lineage_"))
                assert synth == pytest.approx(1.0 - comp["pool_real"])

    def test_the_model_keeps_no_state_between_generations(self, name, extra):
        inter, real = self._make(name, extra)
        hist = _fake_history(real, 3, len(inter.lineages()))
        for g in (1, 2):
            inter.training_set(g, hist, np.random.default_rng([0, g]))
        after = inter.training_set(3, hist, np.random.default_rng([0, 3]))
        fresh, _ = self._make(name, extra)
        alone = fresh.training_set(3, hist, np.random.default_rng([0, 3]))
        assert np.array_equal(after.data.images, alone.data.images) and np.array_equal(after.index, alone.index)

    def test_sample_labels_have_the_real_class_counts(self, name, extra):
        inter, real = self._make(name, extra)
        labels, n = inter.sample_labels(1, np.random.default_rng(0))
        assert n == len(real.train)
        assert np.array_equal(np.bincount(labels, minlength=3), real.train.class_counts())
        parts = inter.split_samples(1, labels, n)
        assert len(parts) == len(inter.lineages())
        assert sum(m for _, m in parts) == n
        assert np.array_equal(np.concatenate([lab for lab, _ in parts]), labels)
        assert all(len(lab) == m for lab, m in parts)

    def test_lineages_are_valid_generator_overrides(self, name, extra):
        inter, _ = self._make(name, extra)
        lineages = inter.lineages()
        assert lineages and all(isinstance(o, dict) for o in lineages)
        for i, over in enumerate(lineages):
            lineage_generator(inter.config, over, i)

    def test_select_keeps_a_subset_reproducibly(self, name, extra):
        inter, real = self._make(name, extra)
        samples = ImageSet(real.train.images.copy(), real.train.labels.copy(), 3)
        k1, s1 = inter.select(1, samples, np.random.default_rng(5), _FakeScorer())
        k2, s2 = inter.select(1, samples, np.random.default_rng(5), _FakeScorer())
        assert 0 < len(k1) <= len(samples) and np.array_equal(k1.images, k2.images) and s1 == s2
        assert all(isinstance(v, float) for v in s1.values())
        rows = {r.tobytes() for r in samples.images}
        assert all(r.tobytes() in rows for r in k1.images)


def test_replace_trains_only_on_previous_generation_with_same_size_and_counts():
    cfg = from_dict(load_raw(None, ["loop.interaction=replace"]))
    real = _real()
    inter = INTERACTIONS.get("replace")(cfg, real)
    hist = _fake_history(real, 3)
    pool = inter.training_set(3, hist, np.random.default_rng(0))
    assert np.all(pool.origin == 2) and np.all(pool.data.images == 3)
    assert len(pool) == len(real.train)
    assert np.array_equal(pool.data.class_counts(), real.train.class_counts())


def test_class_balanced_labels_proportional_when_n_differs():
    real = _real(n=300, classes=3)
    labels = class_balanced_labels(real.train, 100, np.random.default_rng(0))
    counts = np.bincount(labels, minlength=3)
    assert counts.sum() == 100 and counts.max() - counts.min() <= 1


def test_proportional_counts_and_stratified_take():
    assert proportional_counts([1, 1, 2], 10).tolist() == [3, 2, 5]
    assert proportional_counts([0.5, 0.5], 7).sum() == 7
    real = _real(n=300, classes=3)
    sub = take(Pool.real(real.train), 60, np.random.default_rng(1), like=real.train)
    assert len(sub) == 60 and np.array_equal(sub.data.class_counts(), [20, 20, 20])
    assert len(np.unique(sub.index)) == 60
    assert take(Pool.real(real.train), 400, np.random.default_rng(1)).data is real.train


def _make(name, *extra, real=None):
    cfg = from_dict(load_raw(None, ["loop.generations=6", f"loop.interaction={name}", *extra]))
    real = real if real is not None else _real()
    return INTERACTIONS.get(name)(cfg, real), real


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.5, 1.0])
def test_mix_real_fraction_and_size(fraction):
    inter, real = _make("mix", f"loop.mix.real_fraction={fraction}")
    pool = inter.training_set(3, _fake_history(real, 3), np.random.default_rng(0))
    n = len(real.train)
    assert len(pool) == n
    assert pool.composition()["pool_real"] == pytest.approx(round(fraction * n) / n)
    assert set(np.unique(pool.origin)) <= {REAL, 2}
    assert np.abs(pool.data.class_counts() - real.train.class_counts()).max() <= 1
    assert len(np.unique(pool.index[pool.origin == REAL])) == (pool.origin == REAL).sum()  # no duplicates


def test_accumulate_keeps_everything_and_grows():
    inter, real = _make("accumulate")
    hist = _fake_history(real, 5)
    n = len(real.train)
    for g in range(1, 6):
        pool = inter.training_set(g, hist, np.random.default_rng(g))
        assert len(pool) == n * (g + 1)
        comp = pool.composition()
        assert comp["pool_real"] == pytest.approx(1 / (g + 1))
        assert all(comp[f"pool_gen_{k}"] == pytest.approx(1 / (g + 1)) for k in range(g))


def test_accumulate_subsample_is_uniform_over_the_accumulated_pool():
    inter, real = _make("accumulate_subsample")
    hist = _fake_history(real, 5)
    n = len(real.train)
    fracs = []
    for seed in range(40):
        pool = inter.training_set(4, hist, np.random.default_rng(seed))
        assert len(pool) == n and len(np.unique(np.stack([pool.origin, pool.index]), axis=1).T) == n
        comp = pool.composition()
        fracs.append([comp["pool_real"]] + [comp.get(f"pool_gen_{k}", 0.0) for k in range(4)])
    mean = np.mean(fracs, 0)
    # Each of the 5 sources is 1/5 of the accumulated pool; hypergeometric sd of one draw ~0.02.
    assert np.allclose(mean, 0.2, atol=0.02)


def test_fresh_images_are_new_every_generation_and_never_in_generation_zero():
    g_total = 6
    inter, real = _make("fresh", "loop.fresh.fraction=0.1")
    hist = _fake_history(real, g_total)
    gen0 = inter.training_set(0, hist, np.random.default_rng(0))
    n0 = len(gen0)
    k = inter.per_generation
    assert len(inter.real_reserve()) == k * (g_total - 1) and n0 == len(real.train) - k * (g_total - 1)
    assert k / n0 == pytest.approx(0.1, abs=0.01)
    seen = set(gen0.index.tolist())
    for g in range(1, g_total):
        pool = inter.training_set(g, hist, np.random.default_rng(g))
        assert len(pool) == n0
        fresh = pool.index[pool.origin == REAL]
        assert len(fresh) == k and not (set(fresh.tolist()) & seen)  # never seen by any earlier generation
        seen |= set(fresh.tolist())
        assert np.all(pool.origin[pool.origin != REAL] == g - 1)
    # Deterministic given the seed; another seed holds back other images.
    again, _ = _make("fresh", "loop.fresh.fraction=0.1", real=real)
    assert np.array_equal(again.real_reserve(), inter.real_reserve())
    other, _ = _make("fresh", "loop.fresh.fraction=0.1", "seed=1", real=real)
    assert not np.array_equal(other.real_reserve(), inter.real_reserve())
    # The reserve is class-stratified, so generation 0 keeps the real class balance.
    counts = gen0.data.class_counts()
    assert counts.max() - counts.min() <= 1


def test_fresh_with_a_small_fixed_reserve_reuses_oldest_first():
    inter, real = _make("fresh", "loop.schedule.reserve=0.05", "loop.fresh.fraction=0.05")
    reserve = inter.real_reserve()
    assert len(reserve) == 15 and inter.per_generation == 14
    used = np.concatenate([inter.fresh_index(g) for g in range(1, 3)])
    assert set(used[:15].tolist()) == set(reserve.tolist())  # every reserve image once before any repeat


def test_fresh_rejects_too_little_data():
    with pytest.raises(ConfigError, match="loop.fresh.fraction"):
        _make("fresh", "loop.fresh.fraction=0.001")


def test_curate_threshold_and_top_fraction():
    real = _real()
    imgs = np.concatenate([np.full((50, 1, 4, 4), 250, np.uint8), np.full((50, 1, 4, 4), 10, np.uint8)])
    samples = ImageSet(imgs, np.zeros(100, np.int64), 3)  # class 0: confident iff bright
    inter, _ = _make("curate", "loop.curate.threshold=0.9", real=real)
    inter.score_fn.filter = _FakeFilter()
    kept, stats = inter.select(1, samples, np.random.default_rng(0), _FakeScorer())
    assert len(kept) == 50 and np.all(kept.images == 250) and stats["curate_kept_fraction"] == 0.5
    inter, _ = _make("curate", "loop.curate.top_fraction=0.2", real=real)
    inter.score_fn.filter = _FakeFilter()
    kept, stats = inter.select(1, samples, np.random.default_rng(0), _FakeScorer())
    assert len(kept) == 20 and np.all(kept.images == 250)
    inter, _ = _make("curate", "loop.curate.threshold=1.0", real=real)
    inter.score_fn.filter = _FakeFilter()
    kept, _ = inter.select(1, samples, np.random.default_rng(0), _FakeScorer())
    assert len(kept) == 1  # nothing passes: the best sample is kept so the chain can go on
    # The pool of the next generation is the kept samples of the previous one.
    pool = inter.training_set(2, History(real, lambda g: kept), np.random.default_rng(0))
    assert len(pool) == 1 and np.all(pool.origin == 1)


def test_curate_on_unlabelled_data_needs_a_top_fraction_and_keeps_the_typical_points():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 2, 1, 1)).astype(np.float32)
    real = RealData(ImageSet(x[:300]), ImageSet(x[300:]))
    with pytest.raises(ConfigError, match="loop.curate.top_fraction"):
        _make("curate", real=real)
    inter, _ = _make("curate", "loop.curate.top_fraction=0.5", real=real)
    samples = ImageSet((3 * rng.standard_normal((200, 2, 1, 1))).astype(np.float32))
    kept, stats = inter.select(1, samples, np.random.default_rng(0), None)
    xr = x[:300].reshape(300, 2).astype(np.float64)
    prec = np.linalg.inv(np.cov(xr, rowvar=False, bias=True))

    def mahalanobis(s):
        d = s.images.reshape(len(s), 2) - xr.mean(0)
        return np.einsum("ni,ij,nj->n", d, prec, d)

    assert len(kept) == 100 and stats["curate_kept_fraction"] == 0.5
    assert mahalanobis(kept).max() <= np.sort(mahalanobis(samples))[99] + 1e-9  # the 100 most typical


def test_detect_oracle_has_the_configured_error_rates():
    real = _real(n=3000)
    inter, _ = _make("detect", "loop.detect.recall=0.9", "loop.detect.false_positive_rate=0.05", real=real)
    pool = inter.training_set(1, _fake_history(real, 1), np.random.default_rng(0))
    st = pool.stats
    n = 3000  # binomial standard errors: sqrt(.9*.1/3000)=0.0055, sqrt(.05*.95/3000)=0.004
    assert st["detect_recall"] == pytest.approx(0.9, abs=4 * 0.0055)
    assert st["detect_false_positive_rate"] == pytest.approx(0.05, abs=4 * 0.004)
    comp = pool.composition()
    assert comp["pool_size"] == pytest.approx(n * 2 - st["detect_removed"])
    assert np.mean(pool.origin == 0) == pytest.approx((1 - st["detect_recall"]) * n / len(pool))


def test_detect_learned_measures_its_own_error_rates():
    real = _real(n=400)

    def load(g):  # synthetic images: real ones shifted to be brighter - detectable
        imgs = np.clip(real.train.images.astype(np.int64) // 2 + 128, 0, 255).astype(np.uint8)
        return ImageSet(imgs, real.train.labels.copy(), 3)

    inter, _ = _make("detect", "loop.detect.detector=learned", real=real)
    pool = inter.training_set(1, History(real, load), np.random.default_rng(0))
    assert pool.stats["detect_recall"] > 0.9 and pool.stats["detect_false_positive_rate"] < 0.1
    assert pool.composition()["pool_real"] > 0.9
    # Indistinguishable samples: the detector is at chance, neither rate near 1 or 0 together.
    inter2, _ = _make("detect", "loop.detect.detector=learned", real=real)
    same = inter2.training_set(1, History(real, lambda g: real.train), np.random.default_rng(0))
    assert abs(same.stats["detect_recall"] - same.stats["detect_false_positive_rate"]) < 0.25


def test_ecosystem_shares_split_the_samples_and_the_pool():
    inter, real = _make("ecosystem", "loop.ecosystem.lineages=[{guidance_scale: 1.0}, {guidance_scale: 0.1}]",
                        "loop.ecosystem.shares=[0.7, 0.3]")
    assert inter.lineages() == [{"ddpm": {"guidance_scale": 1.0}}, {"ddpm": {"guidance_scale": 0.1}}]  # old keys, read as the new ones
    labels, n = inter.sample_labels(1, np.random.default_rng(0))
    parts = inter.split_samples(1, labels, n)
    assert [m for _, m in parts] == [210, 90]

    def load(g, lineage=0):
        m = parts[lineage][1]
        return ImageSet(np.full((m, 1, 4, 4), 10 + lineage, np.uint8), parts[lineage][0], 3)

    pool = inter.training_set(2, History(real, load, 2), np.random.default_rng(0))
    comp = pool.composition(2)
    assert comp["pool_lineage_0"] == pytest.approx(0.7) and comp["pool_lineage_1"] == pytest.approx(0.3)
    assert np.all(pool.data.images[pool.lineage == 1] == 11)
    assert lineage_generator(inter.config, {"guidance_scale": 0.1}, 1).guidance_scale == 0.1


def test_ecosystem_default_is_two_equal_lineages():
    inter, real = _make("ecosystem")
    assert inter.lineages() == [{}, {}]
    assert [m for _, m in inter.split_samples(1, None, 301)] == [151, 150]


@pytest.mark.parametrize("overrides, fragment", [
    (["loop.interaction=ecosystem", "loop.ecosystem.lineages=[{guidance_scale: 1.0}, {guidanse: 0.1}]"],
     "loop.ecosystem.lineages[1].guidanse: unknown key"),
    (["loop.interaction=ecosystem", "loop.ecosystem.lineages=[{guidance_scale: -1}]"], "loop.ecosystem.lineages[0].ddpm.guidance_scale: -1"),
    (["loop.interaction=ecosystem", "loop.ecosystem.lineages=[{}, {}]", "loop.ecosystem.shares=[0.5, 0.6]"], "sums to 1.1"),
    (["loop.interaction=ecosystem", "loop.ecosystem.shares=[1.0]"], "loop.ecosystem.shares: [1.0] has 1 entries but there are 2"),
    (["loop.interaction=ecosystem", "loop.ecosystem.lineages=[]"], "loop.ecosystem.lineages: an empty list"),
    (["loop.interaction=replace", "loop.ecosystem.lineages=[{}, {}]"], "loop.ecosystem.lineages: only used by"),
    (["loop.interaction=mix", "loop.mix.real_fraction=1.5"], "loop.mix.real_fraction: 1.5 is out of range"),
    (["loop.detect.detector=psychic"], "loop.detect.detector: 'psychic' is not allowed"),
])
def test_bad_interaction_options_are_config_errors(overrides, fragment):
    with pytest.raises(ConfigError) as err:
        from_dict(load_raw(None, overrides))
    assert fragment in str(err.value)


def test_unknown_generator_in_a_lineage_is_reported_before_work():
    # genloop.builtins.check_names runs as a config validator: resolving the config fails
    with pytest.raises(ConfigError, match=r"loop.ecosystem.lineages\[1\].name: unknown generator 'gan'"):
        from_dict(load_raw(None, ["loop.interaction=ecosystem", "loop.ecosystem.lineages=[{name: gaussian}, {name: gan}]"]))


def test_curation_filter_is_the_image_oracle_not_the_judge(tmp_path):
    """The curate filter on labelled images is the image oracle (logistic regression on
    gradient histograms, trained on half of the test set), never the metrics' judge or its
    recipe: the judge is not trained or asked, and each row carries the oracle's rates."""
    from genloop.metrics.oracle import image_oracle

    real = _real()
    inter, _ = _make("curate", "loop.curate.threshold=0.5", real=real)
    assert inter.score_fn.filter is image_oracle(real)[0]
    assert not isinstance(inter.score_fn.filter.model, torch.nn.Module)
    samples = ImageSet(real.train.images.copy(), real.train.labels.copy(), 3)
    _, stats = inter.select(1, samples, np.random.default_rng(0), _FakeScorer())  # _FakeScorer: the judge refuses
    assert {"curate_oracle_accuracy", "curate_oracle_false_accept", "curate_oracle_false_reject"} <= set(stats)
