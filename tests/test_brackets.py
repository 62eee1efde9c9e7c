"""The ``brackets`` language: exact membership, the grammar's exact distribution (its
log-probabilities sum to 1 over the language; sampled lengths follow the exact length
distribution), the ``brackets`` metric, and n-gram / verify runs on it."""
import csv
import itertools
import math

import numpy as np
import pytest

from genloop import run
from genloop.config import ConfigError
from genloop.data.brackets import CLOSE, END, OPEN, Brackets
from genloop.loading import from_dict, load_raw
from genloop.data import load_real
from genloop.metrics import METRICS, MetricContext

CODE = {"(": OPEN, ")": CLOSE, ".": END, "?": 1}


def _blocks(*strings):
    return np.array([[CODE[c] for c in s] for s in strings], dtype=np.int32)


def test_membership_against_hand_cases():
    b = Brackets(0.45, 6, 1)
    cases = {"(())..": True, "()()..": True, "()....": True, "......": False,  # min 1 pair: empty is out
             "())(..": False, "((((((": False, "(()...": False, "().(..": False, "(?)...": False, ")(....": False}
    got = b.is_valid(_blocks(*cases))
    assert list(got) == list(cases.values())
    assert list(b.lengths(_blocks("(())..", "((((((" ))) == [4, 6]
    assert list(b.depths(_blocks("(())..", "()()..", "......"))) == [2, 1, 0]
    assert Brackets(0.45, 6, 0).is_valid(_blocks("......"))[0]


@pytest.mark.parametrize("min_pairs", [0, 1, 2])
def test_exact_probabilities_sum_to_one_over_the_language(min_pairs):
    block = 9  # strings of at most 8 characters
    b = Brackets(0.4, block, min_pairs)
    strings = ["".join(s) for n in range(0, block) for s in itertools.product("()", repeat=n)]
    blocks = _blocks(*[s + "." * (block - len(s)) for s in strings])
    valid = b.is_valid(blocks)
    lp = b.log_probs(blocks).sum(1)
    assert np.all(np.isfinite(lp) == valid)  # probability exactly where the language is
    assert math.isclose(np.exp(lp[valid]).sum(), 1.0, rel_tol=1e-9)
    catalan = [1, 1, 2, 5, 14]
    assert valid.sum() == sum(catalan[min_pairs:])


def test_sampled_lengths_follow_the_exact_length_distribution():
    b = Brackets(0.45, 24, 1)
    n = 20000
    t = b.sample(n, np.random.default_rng(0))
    assert b.is_valid(t).all()
    hist = np.bincount(b.lengths(t), minlength=24) / n
    p = b.length_probs()
    se = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(hist - p) <= 5 * se + 1e-12), np.c_[hist, p][:12]


def test_metric_against_hand_values():
    cfg = from_dict(load_raw(None, ["data.name=brackets", "data.block_size=6", "data.count=200",
                                    "metrics.names=[brackets]"]))
    real = load_real(cfg.data)
    m = METRICS.get("brackets")(MetricContext(config=cfg, real=real, device=None))
    cols = m(real.train.like(_blocks("(())..", "(())..", "()....", "())(..")))
    assert cols["valid_share"] == 0.75 and cols["distinct_valid"] == 2
    assert cols["length_mean"] == pytest.approx(10 / 3) and cols["depth_mean"] == pytest.approx(5 / 3)
    p = real.truth.length_probs()  # valid lengths: 4, 4, 2
    assert cols["length_tv"] == pytest.approx(0.5 * (abs(1 / 3 - p[2]) + abs(2 / 3 - p[4])))
    assert m.reference()["valid_share"] == 1.0


def test_ngram_and_verify_run_on_the_language(tmp_path):
    base = ["data.name=brackets", "data.count=600", "data.block_size=16", "metrics.names=[brackets,text]",
            "loop.generations=2", "device=cpu", "generator.guidance_scale=1", "generator.order=3"]
    run(None, tmp_path / "ngram", base + ["generator.name=ngram"], report=False)
    rows = list(csv.DictReader(open(tmp_path / "ngram" / "metrics.csv")))
    assert all(0.2 < float(r["valid_share"]) < 1.0 for r in rows)  # an n-gram writes some invalid strings
    assert all(math.isfinite(float(r["kl_truth"])) for r in rows)  # KL to the grammar, exact log-probs
    run(None, tmp_path / "verify", base + ["generator.name=ngram", "loop.interaction=verify"], report=False)
    rows = list(csv.DictReader(open(tmp_path / "verify" / "metrics.csv")))
    assert float(rows[0]["verify_valid_kept"]) == 1.0 and float(rows[0]["verify_accepted"]) < 480


def test_bad_brackets_options_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="data.brackets.p"):
        from_dict(load_raw(None, ["data.name=brackets", "data.brackets.p=0.5"]))
    with pytest.raises(ConfigError, match="data.brackets.min_pairs: 9"):
        from_dict(load_raw(None, ["data.name=brackets", "data.block_size=8", "data.brackets.min_pairs=9"]))
    with pytest.raises(ConfigError, match="metrics.names: brackets"):
        from_dict(load_raw(None, ["data.name=categorical", "metrics.names=[brackets]"]))
