"""KID: the unbiased cubic-kernel MMD^2 estimator, checked against torch-fidelity's, re-derived here."""
import numpy as np
import pytest
import torch

from genloop.metrics.kid import kid, mmd2_unbiased


def fidelity_kid(features_1, features_2, subsets, subset_size, seed):
    """torch-fidelity's estimator re-derived in numpy: same subsets (RandomState(seed), first
    set then second set), kernel (x.y/d + 1)^3, unbiased MMD^2 with the diagonals dropped."""
    n1, n2 = len(features_1), len(features_2)
    rng = np.random.RandomState(seed)
    mmds = np.zeros(subsets)
    for i in range(subsets):
        x = features_1[rng.choice(n1, subset_size, replace=False)]
        y = features_2[rng.choice(n2, subset_size, replace=False)]
        d = x.shape[1]
        k_xx = (x @ x.T / d + 1) ** 3
        k_yy = (y @ y.T / d + 1) ** 3
        k_xy = (x @ y.T / d + 1) ** 3
        m = subset_size
        sum_xx = k_xx.sum() - np.trace(k_xx)
        sum_yy = k_yy.sum() - np.trace(k_yy)
        mmds[i] = (sum_xx + sum_yy) / (m * (m - 1)) - 2 * k_xy.sum() / (m * m)
    return mmds.mean(), mmds.std()


def test_matches_torch_fidelity_estimator_on_same_subsets(rng):
    real = rng.standard_normal((400, 32))
    fake = 1.1 * rng.standard_normal((300, 32)) + 0.1
    mean, std = kid(real, fake, subsets=20, subset_size=100, seed=7)
    ref_mean, ref_std = fidelity_kid(real, fake, 20, 100, 7)
    assert mean == pytest.approx(ref_mean, rel=1e-10)
    assert std == pytest.approx(ref_std, rel=1e-8)
    assert mean > 0


def test_subset_size_is_capped_at_the_smaller_set(rng):
    real = rng.standard_normal((80, 16))
    fake = rng.standard_normal((50, 16)) + 0.5
    mean, _ = kid(real, fake, subsets=5, subset_size=1000, seed=0)
    assert mean == pytest.approx(fidelity_kid(real, fake, 5, 50, 0)[0], rel=1e-10)


def test_mmd_is_the_pairwise_definition(rng):
    # MMD^2_u = mean_{i!=j} k(x_i,x_j) + mean_{i!=j} k(y_i,y_j) - 2 mean_{i,j} k(x_i,y_j), by loops.
    x = rng.standard_normal((6, 3))
    y = rng.standard_normal((6, 3)) + 1

    def k(a, b):
        return (a @ b / 3 + 1) ** 3

    m = 6
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert mmd2_unbiased(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_same_distribution_near_zero_different_positive(rng):
    real = rng.standard_normal((1000, 16))
    same = rng.standard_normal((1000, 16))
    mean_same, std_same = kid(real, same, subsets=10, subset_size=300)
    mean_diff, _ = kid(real, same * 1.5 + 0.3, subsets=10, subset_size=300)
    assert abs(mean_same) < 3 * std_same + 1e-3
    assert mean_diff > 10 * max(abs(mean_same), 1e-4)


def test_deterministic_and_seeded(rng):
    real = rng.standard_normal((120, 8)).astype(np.float32)
    fake = rng.standard_normal((120, 8)).astype(np.float32)
    a = kid(real, fake, subsets=4, subset_size=60, seed=3)
    assert a == kid(torch.from_numpy(real), torch.from_numpy(fake), subsets=4, subset_size=60, seed=3)
    assert a != kid(real, fake, subsets=4, subset_size=60, seed=4)


def test_bad_inputs(rng):
    with pytest.raises(ValueError, match="at least 2"):
        kid(rng.standard_normal((1, 4)), rng.standard_normal((5, 4)))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        kid(rng.standard_normal((5, 4)), rng.standard_normal((5, 3)))


def test_subsets_that_cannot_differ_give_nan_std_and_one_warning(rng, caplog):
    """359 vs 359 points with subset_size 1000: every subset is the whole of both sets
    (std was 2.5e-16 before); kid_std is NaN and one line says there is 1 distinct subset pair."""
    import logging
    import math

    import genloop.metrics.kid as kid_mod

    kid_mod._warned.clear()
    real = rng.standard_normal((359, 8))
    fake = rng.standard_normal((359, 8)) + 0.2
    with caplog.at_level(logging.WARNING, logger="genloop.metrics.kid"):
        mean, std = kid(real, fake, subsets=100, subset_size=1000)
        kid(real, fake, subsets=100, subset_size=1000)   # warned once per set of sizes
    assert math.isnan(std)
    assert mean == pytest.approx(mmd2_unbiased(torch.from_numpy(real), torch.from_numpy(fake)), rel=1e-12)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "1 distinct subset pair" in lines[0] and "kid_std is NaN" in lines[0]
    # One side larger than the subset: the subsets differ and the spread is a number.
    _, std = kid(real, rng.standard_normal((400, 8)), subsets=10, subset_size=1000)
    assert std > 0 and not math.isnan(std)


def test_few_distinct_subsets_are_counted(rng, caplog):
    import logging

    import genloop.metrics.kid as kid_mod

    assert kid_mod.distinct_subset_pairs(5, 4, 4, cap=100) == 5        # C(5,4) * C(4,4)
    assert kid_mod.distinct_subset_pairs(6, 6, 4, cap=1000) == 225     # 15 * 15
    assert kid_mod.distinct_subset_pairs(10_000, 10_000, 1000, cap=100) == 101
    kid_mod._warned.clear()
    with caplog.at_level(logging.WARNING, logger="genloop.metrics.kid"):
        kid(rng.standard_normal((5, 3)), rng.standard_normal((4, 3)), subsets=20, subset_size=4)
    assert "only 5 distinct subset pairs for 20 subsets" in caplog.text


def test_reference_and_generation_kid_std_resample_both_sides_alike(monkeypatch):
    """The reference row's kid_std and a generation's measure the same spread: the other side
    (test set or samples) is cut to n and both sides are subsampled in every row.  With a
    perfect generator (other real digits) the two stds agree on average over seeds; when the
    reference put the whole test set into every subset its std was about 0.77 of a generation's."""
    import logging

    import torch

    import genloop
    import genloop.metrics.image_metrics as im
    from genloop.data import ImageSet, RealData, load_real
    from genloop.loading import from_dict, load_raw
    from genloop.metrics import MetricContext, build_metrics

    genloop.load_builtins()
    cfg = from_dict(load_raw(None, ["data.name=digits", "metrics.names=[kid]", "metrics.features=pixels",
                                    "metrics.kid_subsets=50"]))
    d = load_real(cfg.data)
    x = ImageSet.concat([d.train, d.test])
    calls = []
    real_kid = im.kid
    monkeypatch.setattr(im, "kid", lambda r, f, **kw: calls.append((len(r), len(f), kw["subset_size"])) or real_kid(r, f, **kw))
    refs, gens = [], []
    logging.disable(logging.WARNING)
    try:
        for s in range(12):
            p = np.random.default_rng(s).permutation(len(x))
            real = RealData(x.subset(p[:800]), x.subset(p[800:1000]))
            metric = build_metrics(MetricContext(config=cfg, real=real, device=torch.device("cpu"), seed=s))[0][1]
            refs.append(metric.reference()["kid_std_pixels"])
            gens.append(metric(x.subset(p[1000:]))["kid_std_pixels"])
    finally:
        logging.disable(logging.NOTSET)
    assert calls[0] == calls[1] == (800, 200, 100)  # same pools and subset size; the 200 vary (subsets of 100)
    assert 0.85 < np.mean(refs) / np.mean(gens) < 1.18
