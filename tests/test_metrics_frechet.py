"""Fréchet distance: the eigenvalue route against the scipy ``sqrtm`` formula of pytorch-fid."""
import numpy as np
import pytest
from scipy import linalg

from genloop.metrics.frechet import feature_stats, frechet_distance, frechet_distance_features, trace_sqrt_product


def sqrtm_frechet(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """The formula of pytorch-fid / TTUR, re-derived: a general matrix square root of the product,
    an eps*I offset when it is not finite, and the tiny imaginary part dropped."""
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        assert np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3)
        covmean = covmean.real
    return diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def _sets(rng, n_real, n_fake, d):
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    real = rng.standard_normal((n_real, d)) @ mix + 0.3
    fake = 1.2 * rng.standard_normal((n_fake, d)) @ (mix + 0.1 * rng.standard_normal((d, d)) / np.sqrt(d))
    return real, fake


@pytest.mark.parametrize("n_real,n_fake,d", [(600, 500, 32), (2000, 1500, 128), (40, 60, 96), (100, 80, 256)])
def test_matches_sqrtm_formula(rng, n_real, n_fake, d):
    # The last two cases have fewer samples than dimensions: singular covariances.
    real, fake = _sets(rng, n_real, n_fake, d)
    mu_r, s_r = feature_stats(real)
    mu_f, s_f = feature_stats(fake)
    ours = frechet_distance(mu_r, s_r, mu_f, s_f)
    ref = sqrtm_frechet(mu_r, s_r, mu_f, s_f)
    assert ours == pytest.approx(ref, rel=1e-6)


def test_matches_sqrtm_formula_on_ill_conditioned_full_rank(rng):
    # Eigenvalues spanning 12 decades: Cholesky succeeds but the matrix is nearly singular.
    d = 64
    q1, _ = np.linalg.qr(rng.standard_normal((d, d)))
    q2, _ = np.linalg.qr(rng.standard_normal((d, d)))
    s1 = (q1 * np.logspace(-12, 0, d)) @ q1.T
    s2 = (q2 * np.logspace(-10, 1, d)) @ q2.T
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    mu = np.zeros(d)
    assert frechet_distance(mu, s1, mu + 0.01, s2) == pytest.approx(sqrtm_frechet(mu, s1, mu + 0.01, s2), rel=1e-6)


def test_feature_stats_is_numpy_mean_and_cov(rng):
    x = rng.standard_normal((50, 7)).astype(np.float32)
    mu, sigma = feature_stats(x)
    assert mu.dtype == np.float64 and sigma.shape == (7, 7)
    np.testing.assert_allclose(mu, x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64), rowvar=False), rtol=1e-10, atol=1e-14)


def test_identical_sets_give_zero(rng):
    for n, d in ((500, 16), (30, 64)):  # full-rank and singular
        x = rng.standard_normal((n, d))
        mu, sigma = feature_stats(x)
        assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8 * np.trace(sigma))


def test_closed_form_for_diagonal_gaussians():
    # FD between N(m1, diag a) and N(m2, diag b) = ||m1 - m2||^2 + sum (sqrt a - sqrt b)^2.
    a = np.array([1.0, 4.0, 0.25, 9.0])
    b = np.array([4.0, 1.0, 0.0, 9.0])  # one zero variance: singular
    m1 = np.array([0.0, 1.0, 2.0, 3.0])
    m2 = np.array([1.0, 1.0, 0.0, 3.0])
    expected = 1.0 + 4.0 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_trace_sqrt_product_is_symmetric_and_matches_eigvals(rng):
    _, s1 = feature_stats(rng.standard_normal((200, 20)))
    _, s2 = feature_stats(rng.standard_normal((200, 20)) * 2)
    ev = np.linalg.eigvals(s1 @ s2)
    expected = np.sqrt(np.clip(ev.real, 0, None)).sum()
    assert trace_sqrt_product(s1, s2) == pytest.approx(expected, rel=1e-10)
    assert trace_sqrt_product(s2, s1) == pytest.approx(expected, rel=1e-10)


def test_far_apart_means_dominate(rng):
    x = rng.standard_normal((300, 8))
    assert frechet_distance_features(x, x + 100.0) == pytest.approx(8 * 100.0 ** 2, rel=1e-9)


def test_bad_inputs():
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="non-finite"):
        frechet_distance(np.zeros(2), np.eye(2) * np.nan, np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="at least 2"):
        feature_stats(np.zeros((1, 3)))
