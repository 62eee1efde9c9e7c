"""The gpt generator: causal attention, KV-cache generation equal to full recomputation,
decoding through the cache (beams included), training resumed mid-generation."""
import math

import numpy as np
import pytest
import torch

from genloop import run
from genloop.config import DecodeConfig
from genloop.loading import from_dict, load_raw
from genloop.data.text import BOS
from genloop.generators.decoding import generate
from genloop.generators import gpt as gpt_gen
from genloop.loop import TIME_COLUMNS, run_in_memory
from genloop.models.gpt import GPT, KVCache
from genloop.runfolder import RunStore, load_npz, read_csv

TINY = ["data.name=zipf-markov", "data.zipf-markov.words=12", "data.count=100", "data.block_size=12", "generator.name=gpt",
        "generator.width=32", "generator.depth=2", "generator.heads=4", "train.steps=30", "train.batch_size=16",
        "train.warmup_steps=5", "train.lr=3e-3", "train.checkpoint_every=10", "metrics.names=[text]",
        "loop.generations=2"]


@pytest.fixture(autouse=True)
def _one_thread():
    """These models are tiny: one thread is fastest, and on a shared, busy CPU two spinning
    threads per process make every small operation many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _net(seed=0):
    torch.manual_seed(seed)
    return GPT(vocab=20, length=16, width=32, depth=2, heads=4).eval()


def test_attention_is_causal():
    net = _net()
    x = torch.randint(1, 20, (2, 10))
    y = x.clone()
    y[:, 6:] = torch.randint(1, 20, (2, 4))
    with torch.no_grad():
        a, b = net(x), net(y)
    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-6) and not torch.allclose(a[:, 6:], b[:, 6:])


def test_kv_cache_equals_full_recomputation():
    net = _net()
    x = torch.cat([torch.full((3, 1), BOS), torch.randint(1, 20, (3, 13))], 1)
    with torch.no_grad():
        full = net(x)
        cache = KVCache()
        parts = [net(x[:, :5], cache)]  # a prompt, then one token at a time, then two at once
        for t in range(5, 12):
            parts.append(net(x[:, t:t + 1], cache))
        parts.append(net(x[:, 12:14], cache))
    assert cache.length == 14
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)
    with pytest.raises(ValueError, match="positions"):
        net(torch.zeros((1, 17), dtype=torch.long))


def test_cached_generation_equals_generation_by_recomputation():
    net = _net(1)
    gen_cfg = type("C", (), {})()

    class Holder:
        pass

    h = Holder()
    h.net, h.ctx = net, type("Ctx", (), {"device": torch.device("cpu")})()
    cached = lambda seq, state: gpt_gen.GPTGenerator.step(h, seq, state)  # noqa: E731
    recompute = lambda seq, state: (net(seq)[:, -1], None)  # noqa: E731
    prompts = torch.randint(2, 20, (4, 3))
    for dec in (DecodeConfig(), DecodeConfig(top_k=5, temperature=0.7, repetition_penalty=1.3),
                DecodeConfig(beams=3)):
        with torch.no_grad():
            a = generate(cached, lambda c, r: c.select(r), prompts, 12, dec, torch.Generator().manual_seed(0))
            b = generate(recompute, lambda c, r: c, prompts, 12, dec, torch.Generator().manual_seed(0))
        assert torch.equal(a, b) and torch.equal(a[:, :3], prompts)
    assert gen_cfg is not None


def test_gpt_learns_and_generates_text():
    rows = run_in_memory(from_dict(load_raw(None, TINY + ["train.steps=120", "loop.generations=1"])))
    r = rows[0]
    assert r["train_loss"] < math.log(13) - 0.2  # below a uniform guess over the 13 ids it may emit
    assert math.isfinite(r["ppl_test"]) and math.isfinite(r["kl_truth"]) and r["distinct_1"] > 0


def test_flops_per_token_by_hand():
    net = GPT(vocab=10, length=8, width=4, depth=1, heads=2)
    # Linear weights: qkv 4x12, proj 4x4, fc 4x16, out 16x4 = 48 + 16 + 64 + 64 = 192; tied output 10x4 = 40.
    assert net.flops_per_token(8) == 6 * (192 + 40) + 12 * 1 * 8 * 4


class _Stop(BaseException):
    """Stands for the process being killed mid-run: a BaseException, so the runner does not retry it."""


def _results(path):
    return [{k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items() if k not in TIME_COLUMNS}
            for r in read_csv(path / "metrics.csv")]


def test_gpt_resumes_inside_a_generation_from_its_training_checkpoint(tmp_path, monkeypatch):
    raw = load_raw(None, TINY + ["loop.generations=1"])
    run(raw, tmp_path / "full", report=False)
    original = torch.optim.AdamW.step
    calls = {"n": 0}

    def crash(self, *a, **k):
        out = original(self, *a, **k)
        calls["n"] += 1
        if calls["n"] == 24:
            raise _Stop  # killed after the checkpoint at step 20
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", crash)
    with pytest.raises(_Stop):
        run(raw, tmp_path / "cut", report=False)
    store = RunStore(tmp_path / "cut")
    assert store.train_state_path("c00").exists() and not store.is_done("c00", 0)
    monkeypatch.setattr(torch.optim.AdamW, "step", original)
    run(raw, tmp_path / "cut", report=False)
    assert _results(tmp_path / "cut") == _results(tmp_path / "full")
    a = load_npz(RunStore(tmp_path / "full").gen_dir("c00", 0) / "samples.npz")["tokens"]
    assert np.array_equal(a, load_npz(store.gen_dir("c00", 0) / "samples.npz")["tokens"])


def test_ecosystem_of_an_ngram_and_a_gpt_lineage():
    rows = run_in_memory(from_dict(load_raw(None, TINY + ["loop.interaction=ecosystem",
                                                          "loop.ecosystem.lineages=[{name: ngram, order: 2}, {name: gpt}]"])))
    assert len(rows) == 2 and {"ppl_test_l0", "ppl_test_l1", "distinct_2"} <= set(rows[1])
    assert rows[1]["pool_lineage_0"] == pytest.approx(0.5, abs=0.02)
