"""Analytic generators (gaussian, gmm, kde), the low-dimensional data source and
metrics, and the loop checked against theory.

Theory (1-D Gaussian, n real points from N(0, sigma^2), ``replace``, n samples per
generation): generation g's maximum-likelihood variance is
sigma^2 * prod_{k=0..g} chi2_{n-1}/n with independent factors, so

    E[var_g]     = sigma^2 ((n-1)/n)^(g+1)                 (g+1 fits: the real data's and g refits)
    E[log var_g] = log sigma^2 + (g+1) (digamma((n-1)/2) + log(2/n))   (-> -inf: collapse)

Every comparison of a mean over seeds with its expectation uses a tolerance of
4 standard errors (standard deviation over seeds / sqrt(seeds)); the seeds are
fixed, so the tests are deterministic.
"""
import copy
import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy.special import digamma

from genloop import run
from genloop.config import ConfigError
from genloop.loading import from_dict, load_raw
from genloop.data import ImageSet, RealData, load_real
from genloop.generators import GenContext, build_generator
from genloop.loop import TIME_COLUMNS, run_in_memory
from genloop.metrics import MetricContext, build_metrics
from genloop.runfolder import RunStore, load_npz, load_weights, read_csv

N = 20  # real points (and samples) per generation in the theory checks


def _cfg(*overrides):
    return from_dict(load_raw(None, ["generator.name=gaussian", "device=cpu", "metrics.names=[]", *overrides]))


def _real_1d(seed, n=N):
    """n points of N(0, 1) (another draw per seed, so expectations are over the real data too)."""
    rng = np.random.default_rng([seed, 99])
    return RealData(ImageSet(rng.standard_normal((n, 1, 1, 1)).astype(np.float32)),
                    ImageSet(rng.standard_normal((10, 1, 1, 1)).astype(np.float32)))


def _fitted(cfg, seeds, generations):
    """(mean, variance) fitted by each generation of each seed's chain: two (seeds, generations) arrays."""
    loop = copy.deepcopy(cfg.loop)  # with its interaction's options (dataclasses.replace would reset them)
    loop.generations = generations
    base = dataclasses.replace(cfg, loop=loop)
    mu, var = np.zeros((len(seeds), generations)), np.zeros((len(seeds), generations))
    for i, s in enumerate(seeds):
        out = []
        run_in_memory(dataclasses.replace(base, seed=s), _real_1d(s), metrics=False,
                      on_generation=lambda r: out.append(r.generators[0].state_dict()))
        mu[i] = [float(st["all.mean"][0]) for st in out]
        var[i] = [float(st["all.cov"][0, 0]) for st in out]
    return mu, var


def _within(values, expected, k=4.0):
    m, se = values.mean(), values.std(ddof=1) / math.sqrt(len(values))
    return abs(m - expected) <= k * se, f"mean {m:.5g} vs expected {expected:.5g} (4 SE = {k * se:.3g})"


# --------------------------------------------------------------------------- theory


def test_replace_variance_shrinks_as_the_formula_says():
    seeds = range(2000)
    _, var = _fitted(_cfg("loop.interaction=replace"), seeds, 5)
    for g in range(5):
        ok, msg = _within(var[:, g], ((N - 1) / N) ** (g + 1))
        assert ok, f"generation {g}: {msg}"
    # The maximum-likelihood (divisor n) fit is what shrinks: an unbiased fit would give 1.
    assert var[:, 0].mean() + 4 * var[:, 0].std() / math.sqrt(2000) < 1.0


def test_replace_collapses_log_variance_drifts_linearly():
    seeds = range(100)
    _, var = _fitted(_cfg("loop.interaction=replace"), seeds, 200)
    step = digamma((N - 1) / 2) + math.log(2 / N)  # E[log(chi2_{n-1} / n)] ~ -0.104
    for g in (0, 9, 49, 99):
        ok, msg = _within(np.log(var[:, g]), (g + 1) * step)
        assert ok, f"generation {g}: {msg}"
    assert np.median(var[:, -1]) < 1e-6  # expected log-variance -21: collapsed


def _w2(mu, var):
    """Squared 2-Wasserstein distance between N(mu, var) and N(0, 1)."""
    return mu ** 2 + (np.sqrt(var) - 1.0) ** 2


def test_accumulate_stays_close_to_the_real_distribution():
    seeds, G = range(200), 50
    mu, var = _fitted(_cfg("loop.interaction=accumulate"), seeds, G)
    # The pool mean moves by (sample error)/(g+1) per generation, so n E[mu_g^2] <= sum 1/k^2 = pi^2/6
    # (when var stays <= sigma^2); under replace it would be n (1 - ((n-1)/n)^(g+1)) = 18.5 at g = 49.
    nmu2 = N * mu[:, -1] ** 2
    assert nmu2.mean() <= math.pi ** 2 / 6 + 4 * nmu2.std() / math.sqrt(len(seeds))
    assert var[:, -1].mean() > 0.8
    d = _w2(mu, var).mean(0)
    assert d.max() <= 3 * d[0]  # bounded by a small multiple of generation 0's estimation error
    mu_r, var_r = _fitted(_cfg("loop.interaction=replace"), range(50), G)
    assert _w2(mu_r, var_r).mean(0)[-1] > 3 * d[0]  # the same check fails for replace


def test_mix_with_a_fixed_real_fraction_stays_bounded():
    seeds, G, r = range(200), 50, 0.5
    mu, var = _fitted(_cfg("loop.interaction=mix", f"loop.mix.real_fraction={r}"), seeds, G)
    # var_pool >= r var_real_part + (1-r) var_synthetic_part, whose expectations give the fixed point
    # v* = r a / (1 - (1-r) b) with a = (rn-1)/(rn), b = ((1-r)n-1)/((1-r)n): here 0.818.
    a, b = (r * N - 1) / (r * N), ((1 - r) * N - 1) / ((1 - r) * N)
    v_star = r * a / (1 - (1 - r) * b)
    late = var[:, -10:].mean(1)
    assert late.mean() >= v_star - 4 * late.std() / math.sqrt(len(seeds))
    d = _w2(mu, var).mean(0)
    assert d.max() <= 3 * d[0]


# --------------------------------------------------------------------------- generators


def _ctx(name, shape=(2, 1, 1), num_classes=0, seed=0, **gen):
    cfg = _cfg(f"generator.name={name}", *[f"generator.{k}={v}" for k, v in gen.items()])
    return GenContext(config=cfg, shape=shape, num_classes=num_classes, device=torch.device("cpu"), seed=seed)


def test_gaussian_is_the_maximum_likelihood_fit_and_samples_reproducibly():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((500, 2)) @ np.array([[2.0, 0.0], [1.0, 0.5]]) + [3, -1]).astype(np.float32)
    gen = build_generator(_ctx("gaussian"))
    stats = gen.fit(ImageSet(x.reshape(500, 2, 1, 1)))
    st = gen.state_dict()
    x64 = x.astype(np.float64)
    assert np.allclose(st["all.mean"].numpy(), x64.mean(0))
    assert np.allclose(st["all.cov"].numpy(), np.cov(x64, rowvar=False, bias=True))  # divisor n
    assert all(isinstance(v, torch.Tensor) for v in st.values()) and math.isfinite(stats["train_loss"])
    a, b = gen.sample(None, 20000), gen.sample(None, 20000)
    assert a.images.dtype == np.float32 and a.images.shape == (20000, 2, 1, 1) and a.labels is None
    assert np.array_equal(a.images, b.images)
    other = build_generator(_ctx("gaussian", seed=1))
    other.fit(ImageSet(x.reshape(500, 2, 1, 1)))
    assert not np.array_equal(other.sample(None, 10).images, a.images[:10])
    s = a.images.reshape(-1, 2).astype(np.float64)
    assert np.allclose(np.cov(s, rowvar=False), st["all.cov"].numpy(), atol=0.1)


def test_analytic_generators_on_uint8_images_per_class():
    real = load_real(_cfg().data)  # the embedded digits, 8x8, 10 classes
    for name in ("gaussian", "gmm", "kde"):
        gen = build_generator(_ctx(name, shape=real.train.shape, num_classes=10, components=2, bandwidth=0.05))
        gen.fit(real.train)
        labels = np.repeat(np.arange(10), 30)
        s = gen.sample(labels, len(labels))
        assert s.images.dtype == np.uint8 and s.images.shape == (300, *real.train.shape)
        assert np.array_equal(s.labels, labels) and s.num_classes == 10
        # Per-class models: each class's mean image is close to the real class mean.
        for c in (0, 7):
            real_mean = real.train.images[real.train.labels == c].astype(float).mean(0)
            fake_mean = s.images[labels == c].astype(float).mean(0)
            assert np.abs(real_mean - fake_mean).mean() < 25, name
        assert gen.state_dict()


def test_gmm_recovers_two_separated_modes():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-5, 0.5, 400), rng.normal(5, 0.5, 600)]).astype(np.float32).reshape(-1, 1, 1, 1)
    gen = build_generator(_ctx("gmm", shape=(1, 1, 1), components=2))
    gen.fit(ImageSet(x))
    st = gen.state_dict()
    order = np.argsort(st["all.means"].numpy()[:, 0])
    assert np.allclose(st["all.means"].numpy()[order, 0], [-5, 5], atol=0.1)
    assert np.allclose(st["all.weights"].numpy()[order], [0.4, 0.6], atol=0.01)
    s = gen.sample(None, 10000).images.ravel()
    assert abs(np.mean(s > 0) - 0.6) < 0.02 and np.abs(np.abs(s) - 5).mean() < 0.6


@pytest.mark.parametrize("cov", ["full", "diag", "spherical", "tied"])
def test_gmm_covariance_types(cov):
    x = np.random.default_rng(1).standard_normal((200, 3, 1, 1)).astype(np.float32)
    gen = build_generator(_ctx("gmm", shape=(3, 1, 1), components=3, covariance_type=cov))
    gen.fit(ImageSet(x))
    assert gen.state_dict()["all.covariances"].shape == (3, 3, 3)
    assert np.isfinite(gen.sample(None, 50).images).all()


def test_kde_sample_is_a_training_point_plus_bandwidth_noise():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 1, 1, 1)).astype(np.float32)
    gen = build_generator(_ctx("kde", shape=(1, 1, 1), bandwidth=0.0))
    gen.fit(ImageSet(x))
    assert set(gen.sample(None, 100).images.ravel()) <= set(x.ravel())
    gen = build_generator(_ctx("kde", shape=(1, 1, 1), bandwidth=0.5))
    gen.fit(ImageSet(x))
    s = gen.sample(None, 40000).images.ravel().astype(np.float64)
    # Var(sample) = var(training points) + h^2; sd of the variance estimate ~ 0.01.
    assert s.var() == pytest.approx(x.astype(np.float64).var() + 0.25, abs=0.05)


def test_gaussian_data_source_and_lowdim_metrics():
    # every point on both sides (metrics.equal_n=false): the formulas on whole sets
    cfg = _cfg("data.name=gaussian", "data.gaussian.dim=3", "data.count=500", "data.gaussian.mean=2", "data.gaussian.std=3",
               "metrics.names=[frechet,wasserstein,variance_ratio]", "metrics.equal_n=false")
    real = load_real(cfg.data)
    assert real.train.images.dtype == np.float32 and real.train.images.shape == (400, 3, 1, 1)
    assert len(real.test) == 100 and not real.train.labelled
    x = real.train.images.reshape(400, 3)
    assert np.allclose(x.mean(0), 2, atol=0.5) and np.allclose(x.std(0), 3, atol=0.4)
    assert np.array_equal(load_real(cfg.data).train.images, real.train.images)  # fixed by data.split_seed
    metrics = build_metrics(MetricContext(config=cfg, real=real, device=torch.device("cpu")))
    row = {}
    for _, m in metrics:
        row.update(m(real.train))
    assert row["frechet"] == pytest.approx(0.0, abs=1e-9) and row["wasserstein"] == pytest.approx(0.0, abs=1e-12)
    assert row["variance_ratio"] == pytest.approx(1.0)
    half = ImageSet((real.train.images - 2) * np.float32(0.5) + 2)
    row = {}
    for _, m in metrics:
        row.update(m(half))
        assert hasattr(m, "reference") and set(m.reference()) <= {"frechet", "wasserstein", "variance_ratio"}
    assert row["variance_ratio"] == pytest.approx(0.25, rel=1e-5)
    # Frechet distance to a copy shrunk by 1/2 about 2: mean moves by (mu - 2)/2, covariance scaled by 1/4.
    x64 = x.astype(np.float64)
    cov = np.cov(x64, rowvar=False, bias=True)
    from scipy.linalg import sqrtm
    shift = (x64.mean(0) - 2) / 2
    expected = shift @ shift + np.trace(cov) + np.trace(cov / 4) - 2 * np.trace(sqrtm(cov @ cov / 4)).real
    assert row["frechet"] == pytest.approx(expected, rel=1e-6)


def test_lowdim_reference_is_scored_at_the_generations_sample_count():
    """A perfect generator (fresh draws from the true Gaussian, as many as the training set)
    scores what the reference (held-out vs training set) scores, on average, only when both
    are at one N (metrics.equal_n); with every point the small held-out set makes the
    reference's frechet/wasserstein larger."""
    ratios = {True: {"frechet": [], "wasserstein": []}, False: {"frechet": [], "wasserstein": []}}
    var_ref = []
    for seed in range(24):
        for eq in (True, False):
            cfg = _cfg("data.name=gaussian", "data.gaussian.dim=2", "data.count=500", f"data.split_seed={seed}",
                       "metrics.names=[frechet,wasserstein,variance_ratio]", f"metrics.equal_n={str(eq).lower()}")
            real = load_real(cfg.data)  # 400 train / 100 test
            fresh = np.random.default_rng([seed, 7]).standard_normal((400, 2, 1, 1)).astype(np.float32)
            row, ref = {}, {}
            for _, m in build_metrics(MetricContext(config=cfg, real=real, device=torch.device("cpu"), seed=seed)):
                row.update(m(ImageSet(fresh)))
                ref.update(m.reference())
            for k in ("frechet", "wasserstein"):
                ratios[eq][k].append((row[k], ref[k]))
            if eq:
                assert row["eval_n_vectors"] == ref["eval_n_vectors"] == 100
                assert row["eval_n_variance_ratio"] == 400 and ref["eval_n_variance_ratio"] == 100
                var_ref.append(ref["variance_ratio"])
    for k in ("frechet", "wasserstein"):
        gen, ref = (np.mean([p[i] for p in ratios[True][k]]) for i in (0, 1))
        assert 0.75 < gen / ref < 1.33, (k, gen, ref)
        gen_all, ref_all = (np.mean([p[i] for p in ratios[False][k]]) for i in (0, 1))
        assert gen_all / ref_all < 0.75, (k, gen_all, ref_all)  # the unequal-N reference is too high
    assert np.mean(var_ref) == pytest.approx(1.0, abs=0.05)  # equal sides: unbiased


# --------------------------------------------------------------------------- end to end through the runner

GAUSS = ["data.name=gaussian", "data.count=250", "generator.name=gaussian",
         "metrics.names=[frechet,wasserstein,variance_ratio]", "device=cpu"]


def _results(path):
    """Rows without timings; NaN (kde has no training loss) as the string 'nan' so rows compare equal."""
    return [{k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in r.items() if k not in TIME_COLUMNS}
            for r in read_csv(path / "metrics.csv")]


def test_experiment_gaussian_chain_matches_theory_and_run_in_memory(tmp_path):
    raw = load_raw(None, GAUSS + ["loop.generations=30"])
    run(raw, tmp_path / "run", report=False)
    store = RunStore(tmp_path / "run")
    rows = _results(tmp_path / "run")
    assert len(rows) == 30 and rows[0]["chain"] == "c00"
    ref = read_csv(tmp_path / "run" / "reference.csv")[0]
    assert {"frechet", "wasserstein", "variance_ratio"} <= set(ref)
    for g in range(1, 30):
        prev = load_npz(store.gen_dir("c00", g - 1) / "samples.npz")["images"]
        w = load_weights(store.gen_dir("c00", g) / "model.safetensors")
        # Generation g's fit is the ML fit of generation g-1's samples, its whole training set.
        assert float(w["all.cov"][0, 0]) == pytest.approx(prev.astype(np.float64).var(), rel=1e-9)
        prov = load_npz(store.gen_dir("c00", g) / "provenance.npz")
        assert np.all(prov["origin"] == g - 1) and np.array_equal(prov["index"], np.arange(200))
    assert prev.dtype == np.float32 and prev.shape == (200, 1, 1, 1)
    assert rows[-1]["variance_ratio"] < rows[0]["variance_ratio"]
    # The in-memory entry (run_in_memory) gives the run folder's numbers.
    sim = run_in_memory(from_dict(raw))
    for a, b in zip(rows, sim):
        for k, v in b.items():
            if k not in TIME_COLUMNS:
                assert a[k] == pytest.approx(v, rel=1e-12, abs=1e-15), k


def test_ecosystem_runs_lineages_saves_them_and_resumes(tmp_path):
    raw = load_raw(None, GAUSS + ["loop.generations=4", "loop.interaction=ecosystem",
                                  "loop.ecosystem.lineages=[{}, {name: kde, bandwidth: 0.3}]", "loop.ecosystem.shares=[0.75, 0.25]"])
    run(raw, tmp_path / "full", report=False)
    rows = _results(tmp_path / "full")
    store = RunStore(tmp_path / "full")
    for r in rows:
        for col in ("variance_ratio", "variance_ratio_l0", "variance_ratio_l1", "train_loss_l0", "samples_l1"):
            assert col in r
        assert r["samples_l0"] == 150 and r["samples_l1"] == 50
    assert rows[2]["pool_lineage_0"] == pytest.approx(0.75) and rows[2]["pool_lineage_1"] == pytest.approx(0.25)
    assert rows[0]["pool_real"] == 1.0
    d = store.gen_dir("c00", 1)
    z = load_npz(d / "samples.npz")
    assert np.bincount(z["lineage"]).tolist() == [150, 50]
    assert "all.mean" in load_weights(d / "model.safetensors") and "all.points" in load_weights(d / "model_l1.safetensors")
    prov = load_npz(d / "provenance.npz")
    assert np.bincount(prov["lineage"]).tolist() == [150, 50] and np.all(prov["origin"] == 0)
    images, _ = store.load_samples("c00", 1, lineage=1)
    assert len(images) == 50

    class Stop(Exception):
        pass

    def stop(row):
        if row["generation"] == 1:
            raise Stop

    with pytest.raises(Stop):
        run(raw, tmp_path / "cut", report=False, on_generation=stop)
    run(raw, tmp_path / "cut", report=False)
    assert _results(tmp_path / "cut") == rows


def test_accumulate_provenance_and_composition_plot(tmp_path):
    from genloop.report.composition import plot_composition

    raw = load_raw(None, GAUSS + ["loop.generations=5", "loop.interaction=[accumulate,replace]"])
    run(raw, tmp_path / "run", report=False)
    store = RunStore(tmp_path / "run")
    rows = [r for r in read_csv(tmp_path / "run" / "metrics.csv") if r["chain"].endswith("accumulate")]
    assert rows[4]["pool_size"] == 200 * 5 and rows[4]["pool_real"] == pytest.approx(0.2)
    assert all(rows[4][f"pool_gen_{k}"] == pytest.approx(0.2) for k in range(4))
    prov = load_npz(store.gen_dir(rows[4]["chain"], 4) / "provenance.npz")
    assert np.bincount(prov["origin"] + 1).tolist() == [200] * 5
    paths = plot_composition(tmp_path / "run")
    assert sorted(p.name for p in paths) == ["composition_c00_interaction=accumulate.pdf",
                                             "composition_c00_interaction=accumulate.png"]
    assert all(p.stat().st_size > 0 for p in paths)


def test_composition_of_many_generations_is_drawn_as_bands_in_seconds(tmp_path, monkeypatch):
    """From MAX_BARS generations on, each source generation is one filled band: drawing an
    accumulate pool of 120 generations (7,260 nonzero segments) stays cheap."""
    import time

    import matplotlib.axes

    from genloop.report import composition

    raw = load_raw(None, GAUSS + ["loop.generations=120", "loop.interaction=accumulate", "store.samples=none",
                                  "store.checkpoints=none", "data.count=60"])
    run(raw, tmp_path / "run", report=False)
    bars = []
    monkeypatch.setattr(matplotlib.axes.Axes, "bar", lambda self, *a, **k: bars.append(1))
    t0 = time.perf_counter()
    paths = composition.plot_composition(tmp_path / "run", formats=("png",))
    assert [p.name for p in paths] == ["composition_c00.png"] and paths[0].stat().st_size > 0
    assert not bars and time.perf_counter() - t0 < 30


def test_curate_with_the_image_oracle_on_digits(tmp_path, tiny_overrides):
    raw = load_raw(None, tiny_overrides + ["generator.name=gaussian", "loop.interaction=curate",
                                           "loop.curate.threshold=0.5", "loop.generations=2",
                                           "metrics.classifier.steps=40"])
    run(raw, tmp_path / "run", report=False)
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    assert 0 < rows[0]["curate_kept_fraction"] < 1 and rows[0]["curate_score_kept"] >= 0.5
    kept = load_npz(RunStore(tmp_path / "run").gen_dir("c00", 0) / "samples.npz")
    assert kept["images"].dtype == np.uint8 and len(kept["images"]) == round(200 * rows[0]["curate_kept_fraction"])
    assert rows[1]["pool_size"] == len(kept["images"]) and 0 <= rows[1]["accuracy"] <= 1
    assert rows[0]["curate_oracle_accuracy"] > 0.9  # the filter: the image oracle, measured on real test digits


def test_detect_learned_and_fresh_end_to_end(tmp_path):
    raw = load_raw(None, GAUSS + ["loop.generations=3", "loop.interaction=[detect,fresh]", "loop.detect.detector=learned"])
    run(raw, tmp_path / "run", report=False)
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    det = [r for r in rows if "detect" in r["chain"]]
    assert 0 <= det[1]["detect_recall"] <= 1 and 0 <= det[1]["detect_false_positive_rate"] <= 1
    fresh = [r for r in rows if "fresh" in r["chain"]]
    assert fresh[0]["pool_size"] == fresh[1]["pool_size"] < 200  # a reserve is held back from generation 0
    assert 0 < fresh[1]["pool_real"] < 0.2
    with pytest.raises(ConfigError, match="loop.curate.top_fraction"):
        run(load_raw(None, GAUSS + ["loop.interaction=curate"]), tmp_path / "c", report=False)
