"""The ``categorical`` source, generator and metric, checked against the exact results
(docs/safe-synthetic.md):

- replace: E[D(model g)] = (1 - 1/n)^g D(q_0), D(q) = 1 - sum q_k^2, q_0 the real training
  set's frequencies (n of them; averaged over real draws too: (1 - 1/n)^(g+1) D(p));
- an outcome of probability p is lost in one generation with probability (1 - p)^n;
- accumulate: E[D(model g)] = D(q_0) prod_{t=1..g} (1 - 1/(n (t+1)^2)), bounded below by
  D(q_0) (1 - (pi^2/6 - 1)/n).

Means over seeds are compared with 5 standard errors (fixed seeds: deterministic).
"""
import csv
import dataclasses
import math

import numpy as np
import pytest

from genloop import run
from genloop.config import ConfigError
from genloop.data import RealData, TokenSet, load_real
from genloop.data.categorical import OFFSET, Categorical, gini_simpson, tokenizer
from genloop.generators import GenContext, build_generator
from genloop.loading import from_dict, load_raw
from genloop.loop import run_in_memory
from genloop.metrics import METRICS, MetricContext


def _cfg(*overrides):
    return from_dict(load_raw(None, ["data.name=categorical", "generator.name=categorical", "device=cpu",
                                     "metrics.names=[categorical]", *overrides]))


def _real(outcomes, k):
    tok = tokenizer(k)
    t = (np.asarray(outcomes) + OFFSET).astype(np.int32)[:, None]
    return RealData(TokenSet(t, len(tok), tok), TokenSet(t[:10], len(tok), tok), truth=Categorical(np.full(k, 1 / k)))


def _within(values, expected, k=5.0):
    m, se = np.mean(values), np.std(values, ddof=1) / math.sqrt(len(values))
    return abs(m - expected) <= k * se, f"mean {m:.5g} vs expected {expected:.5g} ({k} SE = {k * se:.3g})"


def _chains(interaction, seeds, generations, n=20, k=6):
    """model_gini_simpson (seeds, generations) of simulated chains, and each seed's D(q_0)."""
    out, d0 = np.zeros((len(seeds), generations)), np.zeros(len(seeds))
    base = _cfg(f"loop.interaction={interaction}", f"loop.generations={generations}")
    for i, s in enumerate(seeds):
        real = _real(np.random.default_rng([s, 5]).integers(0, k, n), k)
        d0[i] = gini_simpson(real.truth.frequencies(real.train.tokens))
        rows = run_in_memory(dataclasses.replace(base, seed=s), real)
        out[i] = [r["model_gini_simpson"] for r in rows]
    return out, d0


def test_replace_diversity_shrinks_by_one_minus_one_over_n_per_generation():
    n, g = 20, 6
    d, d0 = _chains("replace", range(300), g, n)
    for t in range(g):
        ok, msg = _within(d[:, t] / d0, (1 - 1 / n) ** t)
        assert ok, f"generation {t}: {msg}"
    assert d[:, -1].mean() < 0.8 * d0.mean()  # it does shrink (not a test that cannot fail)


def test_accumulate_diversity_follows_its_product_and_stays_bounded():
    n, g = 20, 12
    d, d0 = _chains("accumulate", range(300), g, n)
    for t in range(g):
        ok, msg = _within(d[:, t] / d0, math.prod(1 - 1 / (n * (s + 1) ** 2) for s in range(1, t + 1)))
        assert ok, f"generation {t}: {msg}"
    bound = 1 - (math.pi ** 2 / 6 - 1) / n  # the infinite product's lower bound
    assert (d[:, -1] / d0).mean() > bound - 5 * (d[:, -1] / d0).std() / math.sqrt(300)
    assert (d[:, -1] / d0).mean() > (1 - 1 / n) ** g + 0.2  # far above replace


def test_replace_k6_n1000_t100_gives_0754():
    """The issue's number: K = 6 uniform, n = 1000, 100 fits: E[1 - sum p^2] = (1 - 1/n)^100 5/6 = 0.754.
    The ML refit is the generator's multinomial draw; vectorised here over 4,000 chains."""
    k, n, t, chains = 6, 1000, 100, 4000
    rng = np.random.default_rng(0)
    q = np.full((chains, k), 1 / k)
    for _ in range(t):
        q = rng.multinomial(n, q) / n  # each chain refits its K probabilities from n draws
    expected = (1 - 1 / n) ** t * (1 - 1 / k)
    assert abs(expected - 0.754) < 5e-4
    ok, msg = _within(1 - (q ** 2).sum(1), expected)
    assert ok, msg


def test_generator_loses_an_outcome_with_probability_one_minus_p_to_the_n():
    n, seeds = 1000, 2000
    outcomes = np.r_[np.zeros(3, int), np.ones(n - 3, int)]  # p = 0.003
    real = _real(outcomes, 2)
    cfg = _cfg("data.categorical.categories=2")
    lost = 0
    for s in range(seeds):
        gen = build_generator(GenContext(config=cfg, shape=real.train.shape, num_classes=0, device=None, seed=s))
        gen.fit(real.train)
        lost += int(not np.any(gen.sample(None, n).tokens == OFFSET))
    p = (1 - 0.003) ** n  # 0.0496
    se = math.sqrt(p * (1 - p) / seeds)
    assert abs(lost / seeds - p) <= 5 * se, (lost / seeds, p)


def test_generator_is_the_ml_fit_and_repeatable():
    real = _real([0, 0, 1, 2, 2, 2], 4)
    cfg = _cfg("data.categorical.categories=4")
    ctx = GenContext(config=cfg, shape=real.train.shape, num_classes=0, device=None, seed=3)
    gen = build_generator(ctx)
    gen.fit(real.train)
    assert np.allclose(gen.probs(4, OFFSET), [2 / 6, 1 / 6, 3 / 6, 0])
    a, b = gen.sample(None, 50), build_generator(ctx)
    b.fit(real.train)
    assert np.array_equal(a.tokens, b.sample(None, 50).tokens)
    assert set(np.unique(a.tokens)) <= {OFFSET, OFFSET + 1, OFFSET + 2}


def test_metric_columns_against_hand_values():
    cfg = _cfg("data.categorical.categories=4")
    real = _real([0, 1, 2, 3], 4)
    m = METRICS.get("categorical")(MetricContext(config=cfg, real=real, device=None))
    fake = real.train.like((np.array([0, 0, 1, 1]) + OFFSET)[:, None])
    cols = m(fake)
    assert cols["gini_simpson"] == pytest.approx(0.5)
    assert cols["outcomes_lost"] == 2
    assert cols["tv_truth"] == pytest.approx(0.5)
    assert cols["kl_q_truth"] == pytest.approx(math.log(2))


def test_source_is_repeatable_and_follows_its_probabilities():
    cfg = _cfg("data.count=20000", "data.categorical.categories=3", "data.categorical.probs=[0.5,0.3,0.2]")
    a, b = load_real(cfg.data), load_real(cfg.data)
    assert np.array_equal(a.train.tokens, b.train.tokens)
    f = a.truth.frequencies(a.train.tokens)
    assert np.allclose(f, [0.5, 0.3, 0.2], atol=5 * math.sqrt(0.25 / len(a.train)))


@pytest.mark.parametrize("bad, key", [(["data.categorical.probs=[0.5,0.6]", "data.categorical.categories=2"], "data.categorical.probs"),
                                      (["data.categorical.probs=[0.5,0.5]"], "data.categorical.probs"),
                                      (["data.categorical.valid=[7]"], "data.categorical.valid")])
def test_bad_source_options_are_one_line_errors(bad, key, tmp_path):
    with pytest.raises(ConfigError, match=key):
        run(None, tmp_path / "r", ["data.name=categorical", "generator.name=categorical", *bad], report=False)
    assert not (tmp_path / "r").exists()


def test_categorical_metric_needs_the_categorical_source(tmp_path):
    with pytest.raises(ConfigError, match="metrics.names: categorical"):
        run(None, tmp_path / "r", ["data.name=gaussian", "generator.name=gaussian", "metrics.names=[categorical]"],
            report=False)


def test_cli_run_end_to_end(tmp_path):
    run(None, tmp_path, ["data.name=categorical", "data.count=250", "generator.name=categorical",
                         "metrics.names=[categorical]", "loop.generations=3", "loop.interaction=[replace,accumulate]",
                         "device=cpu", "generator.guidance_scale=1"], report=False)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert len(rows) == 6 and all(0 < float(r["gini_simpson"]) < 5 / 6 + 0.05 for r in rows)
