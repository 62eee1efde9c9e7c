"""The Gaussian under ``mix`` with real share r: the fitted variance and the mean's drift
follow the exact recursion of genloop.theory (docs/safe-synthetic.md) generation by
generation, over 100 seeds, for the same real set and for fresh real draws; their limit is
the exact fixed point, above the first-order (n-1) r / (1 + (n-1) r) that ignores the
drift (100 seeds resolve the recursion, not that 0.04 gap: the chains' spread is ~0.26).  Means over seeds are compared with 5 standard errors (fixed seeds: deterministic)."""
import dataclasses
import math

import numpy as np
import pytest

from genloop.data import ImageSet, RealData
from genloop.loading import from_dict, load_raw
from genloop.loop import run_in_memory
from genloop.theory import (gaussian_mix_first_order, gaussian_mix_fixed_point, gaussian_mix_moments,
                            gini_simpson_accumulate, gini_simpson_replace)

N, R, G, SEEDS = 100, 0.1, 30, 100


def _fits(fresh):
    """(seeds, G) fitted variance and squared mean (in the units of gaussian_mix_moments)."""
    extra = ["loop.real_draws=fresh", f"loop.train_size={N}"] if fresh else []
    cfg = from_dict(load_raw(None, ["generator.name=gaussian", "generator.conditional=false", "device=cpu",
                                    "metrics.names=[]", "loop.interaction=mix", f"loop.real_fraction={R}",
                                    f"loop.generations={G}", *extra]))
    total = N + (round(R * N) * (G - 1) if fresh else 0)  # fresh: a reserve for every later generation
    v, m = np.zeros((SEEDS, G)), np.zeros((SEEDS, G))
    for s in range(SEEDS):
        rng = np.random.default_rng([s, 77])
        x = rng.standard_normal((total, 1, 1, 1)).astype(np.float32)
        real = RealData(ImageSet(x), ImageSet(x[:10]))
        out = []
        run_in_memory(dataclasses.replace(cfg, seed=s), real, metrics=False,
                      on_generation=lambda res: out.append(res.generators[0].state_dict()))
        mean = np.array([float(st["all.mean"][0]) for st in out])
        var = np.array([float(st["all.cov"][0, 0]) for st in out])
        if fresh:
            v[s], m[s] = var, mean ** 2
        else:
            x64 = x.astype(np.float64).ravel()
            v[s], m[s] = var / x64.var(), (mean - x64.mean()) ** 2 / x64.var()
    return v, m


def _close(values, expected, what):
    mean, se = values.mean(), values.std(ddof=1) / math.sqrt(len(values))
    assert abs(mean - expected) <= 5 * se, f"{what}: {mean:.4f} vs exact {expected:.4f} (5 SE = {5 * se:.4f})"


@pytest.mark.parametrize("fresh", [False, True], ids=["same-real-set", "fresh-real-draws"])
def test_mix_follows_the_exact_recursion_and_its_fixed_point(fresh):
    v, m = _fits(fresh)
    ev, em = gaussian_mix_moments(N, R, G, fresh=fresh)
    for g in (1, 2, 5, 10, G - 1):
        _close(v[:, g], ev[g], f"variance, generation {g}")
        _close(m[:, g], em[g], f"squared mean drift, generation {g}")
    fixed_v, fixed_m = gaussian_mix_fixed_point(N, R, fresh)
    assert abs(ev[-1] - fixed_v) < 1e-3  # converged by generation G - 1
    _close(v[:, G // 2:].mean(1), fixed_v, "variance over the last generations")


def test_fixed_points_against_hand_values():
    assert gaussian_mix_first_order(100, 0.1) == pytest.approx(0.908257, abs=1e-6)
    assert gaussian_mix_first_order(100, 0.1) < gaussian_mix_fixed_point(100, 0.1)[0] - 0.04
    v_same, m_same = gaussian_mix_fixed_point(100, 0.1, fresh=False)
    v_fresh, m_fresh = gaussian_mix_fixed_point(100, 0.1, fresh=True)
    assert v_same == pytest.approx(0.950206, abs=1e-6) and v_fresh == pytest.approx(0.949749, abs=1e-6)
    # fresh, closed form: V = c r / (1 - c a), c = (n-1)/n + a / (n (1 + a)); M = (r + a V) / (n r (1 + a))
    n, r, a = 100, 0.1, 0.9
    c = (n - 1) / n + a / (n * (1 + a))
    assert v_fresh == pytest.approx(c * r / (1 - c * a), rel=1e-12)
    assert m_fresh == pytest.approx((r + a * v_fresh) / (n * r * (1 + a)), rel=1e-12)
    assert gaussian_mix_fixed_point(100, 1.0, fresh=True)[0] == pytest.approx(0.99)  # all real: one ML fit
    assert gini_simpson_replace(5 / 6, 1000, 101)[100] == pytest.approx(0.754, abs=5e-4)
    assert gini_simpson_accumulate(1.0, 20, 3)[2] == pytest.approx((1 - 1 / 80) * (1 - 1 / 180))
