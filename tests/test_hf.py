"""Byte-level BPE and pretrained tokenizers (the ``tokenizers`` package) and the
``hf-causal-lm`` generator on a tiny randomly initialised GPT-2 built here (no download):
round trips, the key/value cache equal to recomputation, fine-tuning and sampling in the
loop, resume inside a generation, the one-line errors, the paper-shumailov preset."""
import logging
import math

import numpy as np
import pytest
import torch

pytest.importorskip("tokenizers")

from genloop.config import ConfigError, DataConfig, DecodeConfig  # noqa: E402
from genloop.loading import expand, from_dict, load_raw
from genloop.reference import preset_path
from genloop.data import DataError  # noqa: E402
from genloop.data.text import BOS, BPETokenizer, PretrainedTokenizer, Tokenizer, get_tokenizer  # noqa: E402
from genloop.generators.decoding import generate  # noqa: E402

CORPUS = ("The quick brown fox jumps over the lazy dog. A stitch in time saves nine.\n"
          "To be, or not to be: that is the question. All the world's a stage.\n\n") * 20


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- bpe


def test_bpe_round_trip_specials_and_cache(tmp_path):
    tok = BPETokenizer.train(CORPUS, 320)
    assert tok.vocab[:2] == ["<bos>", "<unk>"] and len(tok) <= 320
    for text in (CORPUS[:200], "Unseen: zebra ÄÖü 東京 🙂\ttabs  and\n\nblank lines", ""):
        ids = tok.encode(text)
        assert ids.dtype == np.int32 and (len(ids) == 0 or ids.min() >= 2)
        assert tok.decode(ids) == text  # byte-level: every text round-trips
        assert tok.decode(np.concatenate([[BOS], ids])) == text
    assert len(tok.encode("the question")) < len("the question")  # merges learnt from the corpus
    cfg = DataConfig(tokenizer="bpe", vocab_size=320)
    a = get_tokenizer(cfg, CORPUS, tmp_path)
    (cached,) = tmp_path.glob("tokenizer-bpe-*.json")
    b = Tokenizer.from_json(cached.read_text(encoding="utf-8"))  # read back from the run folder
    assert isinstance(b, BPETokenizer) and np.array_equal(a.encode(CORPUS), b.encode(CORPUS))
    with pytest.raises(DataError, match="data.vocab_size: 100 .*at least 258"):
        BPETokenizer.train(CORPUS, 100)


def test_bpe_text_source_end_to_end(tmp_path):
    from genloop.loop import run_in_memory

    (tmp_path / "c.txt").write_text(CORPUS, encoding="utf-8")
    rows = run_in_memory(from_dict(load_raw(None, [f"data.root={tmp_path / 'c.txt'}", "data.name=text", "data.tokenizer=bpe",
                                                   "data.vocab_size=300", "data.block_size=16", "generator.name=ngram",
                                                   "generator.order=2", "metrics.names=[text]", "loop.generations=2"])))
    assert len(rows) == 2 and math.isfinite(rows[1]["ppl_test"]) and rows[1]["vocab"] > 10


# --------------------------------------------------------------------------- tiny pretrained model

transformers = pytest.importorskip("transformers")


def _tiny_model(folder, seed=0, positions=64, corpus=CORPUS, pad=4):
    """A GPT-2 with random weights and a byte-level BPE tokenizer, saved with save_pretrained."""
    from tokenizers import Tokenizer as Backend, decoders, models, pre_tokenizers, trainers

    backend = Backend(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator([corpus], trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|endoftext|>",
                                                eos_token="<|endoftext|>")
    v = backend.get_vocab_size()
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(vocab_size=v + pad, n_positions=positions, n_embd=32, n_layer=2, n_head=2,
                                  bos_token_id=0, eos_token_id=0)  # padding rows, as OPT has
    transformers.GPT2LMHeadModel(cfg).save_pretrained(str(folder))
    fast.save_pretrained(str(folder))
    return v


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    folder = root / "tiny-gpt2"
    vocab = _tiny_model(folder)
    (root / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    return {"model": folder, "vocab": vocab, "corpus": root / "corpus.txt"}


def _args(tiny, *extra):
    return [f"data.root={tiny['corpus']}", "data.name=text", "data.tokenizer=pretrained",
            f"data.pretrained.path={tiny['model']}", "data.block_size=12", "generator.name=hf-causal-lm",
            f"generator.model_path={tiny['model']}", "train.steps=12", "train.batch_size=8", "train.lr=1e-3",
            "train.warmup_steps=0", "train.checkpoint_every=5", "decode.batch_size=64", "metrics.names=[text]",
            "loop.generations=2", *extra]


def _pretrained(path) -> DataConfig:
    cfg = DataConfig(tokenizer="pretrained")
    cfg.group("pretrained").path = str(path)  # data.pretrained.path
    return cfg


def test_pretrained_tokenizer_is_the_models_own_shifted_by_two(tiny):
    tok = PretrainedTokenizer.build(_pretrained(tiny["model"]), "")
    auto = transformers.AutoTokenizer.from_pretrained(str(tiny["model"]))
    text = "To be, or not to be: that is the question."
    assert len(tok) == tiny["vocab"] + 2
    assert np.array_equal(tok.encode(text), np.asarray(auto(text)["input_ids"]) + 2)
    assert tok.decode(tok.encode(text)) == text
    with pytest.raises(DataError, match="data.pretrained.path: .*not a folder"):
        PretrainedTokenizer.build(_pretrained(tiny["model"] / "no"), "")


def _generator(tiny, *extra):
    from genloop.data import load_real
    from genloop.generators import GenContext, build_generator

    cfg = from_dict(load_raw(None, _args(tiny, *extra)))
    real = load_real(cfg.data)
    ctx = GenContext(config=cfg, shape=real.train.shape, num_classes=0, device=torch.device("cpu"), seed=0,
                     real_train=real.train)
    return build_generator(ctx), real


def test_cached_generation_equals_recomputation_and_log_probs(tiny):
    gen, real = _generator(tiny)
    gen._load(real.train)
    gen.model.eval()

    def recompute(seq, state):
        with torch.no_grad():
            return gen.model(input_ids=gen.to_model(seq), use_cache=False).logits[:, -1], None

    prompts = torch.from_numpy(real.train.tokens[:3, :4].astype(np.int64))
    with torch.no_grad():
        for dec in (DecodeConfig(), DecodeConfig(top_k=5, temperature=0.7, repetition_penalty=3.0),
                    DecodeConfig(beams=3, repetition_penalty=3.0)):
            a = generate(gen.step, gen.reorder, prompts, 12, dec, torch.Generator().manual_seed(0), gen.tokens)
            b = generate(recompute, lambda c, r: c, prompts, 12, dec, torch.Generator().manual_seed(0), gen.tokens)
            assert torch.equal(a, b) and torch.equal(a[:, :4], prompts)
            assert int(a.min()) >= 2 and int(a.max()) < tiny["vocab"] + 2  # no padding row, no special token
            assert not torch.isin(a[:, 4:], torch.tensor(gen.tokens.suppress)).any()
    lp = gen.log_probs(real.test)
    assert lp.shape == real.test.tokens.shape and np.all(lp < 0)
    x = torch.from_numpy(real.test.tokens[:2].astype(np.int64))  # by hand: softmax over the tokenizer's ids
    logits = gen.model(input_ids=gen.inputs(x)).logits[..., : tiny["vocab"]].double()
    ref = torch.log_softmax(logits, -1).gather(-1, (x - 2).unsqueeze(-1)).squeeze(-1)
    assert np.allclose(lp[:2], ref.detach().numpy(), atol=1e-5)


def test_fine_tunes_and_samples_in_the_loop_the_shumailov_way(tiny, caplog):
    from genloop.loop import run_in_memory

    caplog.set_level(logging.INFO, logger="genloop.heartbeat")
    rows = run_in_memory(from_dict(load_raw(None, _args(tiny, "decode.beams=2", "decode.repetition_penalty=3.0",
                                                              "decode.prompt_tokens=12", "decode.keep_prompt=false",
                                                              "train.steps=30", "train.lr=3e-3"))))
    assert len(rows) == 2
    # the random model's perplexity on the real test text is about the vocabulary size (300);
    # fine-tuned on the (very repetitive) corpus it falls far below
    assert rows[0]["ppl_test"] < tiny["vocab"] / 5
    assert all(math.isfinite(r["ppl_test"]) and r["distinct_1"] > 0 for r in rows)
    # the rates are reported: 30 steps x 8 blocks x 12 tokens trained, every block's 12 new tokens decoded
    rates = [r.getMessage() for r in caplog.records if "tokens/s" in r.getMessage()]
    assert sum(" train: 2880 tokens in " in m for m in rates) == 2, rates
    n = rows[0]["pool_size"]
    assert sum(f" sample: {int(n) * 12} new tokens in " in m for m in rates) == 2, rates


def test_resumes_inside_a_generation(tiny, tmp_path, monkeypatch):
    from genloop import run
    from genloop.runfolder import RunStore, load_npz

    raw = load_raw(None, _args(tiny, "loop.generations=1"))
    run(raw, tmp_path / "full", report=False)
    original = torch.optim.AdamW.step
    calls = {"n": 0}

    class Stop(BaseException):
        """Stands for the process being killed mid-run: a BaseException, so the runner does not retry it."""

    def crash(self, *a, **k):
        out = original(self, *a, **k)
        calls["n"] += 1
        if calls["n"] == 7:
            raise Stop  # killed after the checkpoint at step 5
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", crash)
    with pytest.raises(Stop):
        run(raw, tmp_path / "cut", report=False)
    store = RunStore(tmp_path / "cut")
    assert store.train_state_path("c00").exists() and not store.is_done("c00", 0)
    monkeypatch.setattr(torch.optim.AdamW, "step", original)
    run(raw, tmp_path / "cut", report=False)
    a = load_npz(RunStore(tmp_path / "full").gen_dir("c00", 0) / "samples.npz")["tokens"]
    assert np.array_equal(a, load_npz(store.gen_dir("c00", 0) / "samples.npz")["tokens"])
    from genloop.runfolder import read_csv

    ppl = [r["ppl_test"] for r in read_csv(tmp_path / "full" / "metrics.csv")]
    assert ppl == [r["ppl_test"] for r in read_csv(tmp_path / "cut" / "metrics.csv")]


def test_replace_and_mix_share_generation_0_with_identical_numbers(tiny, tmp_path):
    """Generation 0 of both interactions fine-tunes on the same real blocks: trained once, loaded
    by the other chain, the same numbers as training it twice (--no-share)."""
    from genloop import run
    from genloop.runfolder import read_csv

    raw = load_raw(None, _args(tiny, "loop.interaction=[replace,mix]", "loop.mix.real_fraction=0.5",
                               "decode.beams=2", "decode.repetition_penalty=3.0"))
    started = []
    run(raw, tmp_path / "shared", report=False, on_start=lambda exp, changed: started.append(exp))
    assert started[0].shared.loaded == 1 and started[0].shared.saved == 1  # generation 0 only
    run(raw, tmp_path / "apart", report=False, on_start=lambda exp, changed: setattr(exp, "share_models", False))

    from genloop.loop import TIME_COLUMNS

    def numbers(folder):
        return [{k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in r.items() if k not in TIME_COLUMNS}
                for r in read_csv(folder / "metrics.csv")]

    rows = numbers(tmp_path / "shared")
    assert rows == numbers(tmp_path / "apart")
    by = {(r["loop.interaction"], int(r["generation"])): r for r in rows}
    assert by[("replace", 0)]["ppl_test"] == by[("mix", 0)]["ppl_test"]
    assert by[("replace", 1)]["ppl_test"] != by[("mix", 1)]["ppl_test"]  # later generations train apart
    assert not list((tmp_path / "shared" / "cache" / "models").glob("*.safetensors"))


def test_one_line_errors(tiny, tmp_path):
    from genloop.generators.hf import load_causal_lm

    for path, msg in ((tmp_path / "missing", "is not a folder"), (tmp_path, "has no config.json")):
        with pytest.raises(ConfigError, match=f"generator.hf-causal-lm.model_path: .*{msg}"):
            load_causal_lm(str(path))
    vit = tmp_path / "vit"
    transformers.ViTConfig().save_pretrained(str(vit))
    with pytest.raises(ConfigError, match="'vit' model, not a causal language model") as e:
        load_causal_lm(str(vit))
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="data.tokenizer: 'word' cannot feed hf-causal-lm"):
        from_dict(load_raw(None, _args(tiny, "data.tokenizer=word")))
    with pytest.raises(ConfigError, match="generator.hf-causal-lm.model_path: hf-causal-lm needs"):
        from_dict(load_raw(None, _args(tiny, "generator.model_path=null")))
    short = tmp_path / "short"
    _tiny_model(short, positions=8)  # the same tokenizer, 8 positions: a block of 12 needs 13 with <bos>
    gen, real = _generator(tiny, f"generator.model_path={short}")
    with pytest.raises(ConfigError, match="needs 13 positions; the model has 8"):
        gen.fit(real.train)
    other = tmp_path / "other"
    _tiny_model(other, corpus="Completely different words, zebras and quartz.\n" * 30, pad=50)
    gen, real = _generator(tiny, f"generator.model_path={other}")
    with pytest.raises(ConfigError, match="the run's tokenizer differs from the one in generator.hf-causal-lm.model_path"):
        gen.fit(real.train)


def test_paper_shumailov_preset_validates_and_fails_in_one_line_without_its_files(tiny, tmp_path, monkeypatch, capsys):
    from genloop.cli import main

    chains = expand(load_raw(preset_path("paper-shumailov")))
    assert [ch.config.loop.interaction for ch in chains] == ["replace", "mix"]
    c = chains[0].config
    assert (c.generator.name, c.data.block_size, c.train.lr, c.train.epochs) == ("hf-causal-lm", 64, 2e-5, 5)
    assert (c.decode.beams, c.decode.repetition_penalty, c.decode.prompt_tokens, c.decode.keep_prompt) == (5, 3.0, 64, False)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "-p", "paper-shumailov", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("genloop: error: data.root:") and "\n" not in err
    (tmp_path / "data" / "wikitext-2-raw").mkdir(parents=True)
    for split in ("train", "valid", "test"):
        (tmp_path / "data" / "wikitext-2-raw" / f"wiki.{split}.raw").write_text(CORPUS, encoding="utf-8")
    assert main(["run", "-p", "paper-shumailov", "--out", str(tmp_path / "run2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("genloop: error: data.pretrained.path: models/opt-125m is not a folder") and "\n" not in err
    (tmp_path / "models" / "opt-125m").mkdir(parents=True)  # the tokenizer but no model: fails when training starts
    (tmp_path / "models" / "opt-125m" / "tokenizer.json").write_bytes((tiny["model"] / "tokenizer.json").read_bytes())
    assert main(["run", "-p", "paper-shumailov", "--out", str(tmp_path / "run3"), "--no-progress", "metrics.names=[]",
                 "loop.generations=1", "loop.interaction=replace"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("genloop: error: generator.hf-causal-lm.model_path: models/opt-125m has no config.json") and "\n" not in err


# --------------------------------------------------------------------------- decoding = transformers.generate


def _random_lm(kind, v=64, seed=0):
    torch.manual_seed(seed)
    if kind == "llama":
        cfg = transformers.LlamaConfig(vocab_size=v, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                       bos_token_id=1, eos_token_id=2, pad_token_id=2)
        return transformers.LlamaForCausalLM(cfg).eval()
    cfg = transformers.GPT2Config(vocab_size=v, n_positions=128, n_embd=32, n_layer=2, n_head=2, bos_token_id=1,
                                  eos_token_id=2)
    return transformers.GPT2LMHeadModel(cfg).eval()


class _Stepper:
    """A model driven as genloop drives it (ids shifted by 2, key/value cache, only the last logits)."""

    def __init__(self, model):
        self.model = model

    def step(self, seq, cache):
        done = cache[1] if cache else 0
        kw = {"cache": cache[0]} if cache else {}
        out = self.model(input_ids=seq[:, done:] - 2, use_cache=True, logits_to_keep=1, **kw)
        return out.logits[:, -1].float(), (out.get("cache") or out.get("past_key_values"), seq.shape[1])

    @staticmethod
    def reorder(cache, rows):
        cache[0].reorder_cache(rows)
        return cache


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_decoding_is_token_for_token_transformers_generate(kind):
    from genloop.generators.decoding import Tokens

    model = _random_lm(kind)
    st = _Stepper(model)
    prompts = torch.randint(3, 64, (5, 8), generator=torch.Generator().manual_seed(0))
    inp = torch.cat([torch.full((5, 1), 1), prompts], 1)  # the model's bos first, as genloop feeds it
    modes = (("beam", DecodeConfig(beams=5, repetition_penalty=3.0), dict(num_beams=5, repetition_penalty=3.0, do_sample=False)),
             ("greedy", DecodeConfig(top_k=1, repetition_penalty=1.5), dict(do_sample=False, repetition_penalty=1.5)),
             ("sample", DecodeConfig(temperature=0.8, top_k=20, top_p=0.9, repetition_penalty=1.3),
              dict(do_sample=True, temperature=0.8, top_k=20, top_p=0.9, repetition_penalty=1.3)))
    ended = 0
    for eos in (True, False):  # eos may end a sequence / eos suppressed
        tokens = Tokens(offset=2, start=1 + 2, suppress=() if eos else (2 + 2,), eos=(4,) if eos else (), pad=4)
        for name, dec, kw in modes:
            kw = dict(kw) if eos else dict(kw, suppress_tokens=[2])
            with torch.no_grad():
                ours = generate(st.step, st.reorder, prompts + 2, 8 + 20, dec, torch.Generator().manual_seed(5), tokens) - 2
                torch.manual_seed(5)
                ref = model.generate(input_ids=inp, attention_mask=torch.ones_like(inp), max_new_tokens=20,
                                     pad_token_id=2, eos_token_id=2, **kw)[:, 1:]
            ref = torch.cat([ref, torch.full((5, 28 - ref.shape[1]), 2)], 1)  # generate's batch stops early: pad
            assert torch.equal(ours, ref), (kind, name, eos)
            ended += int((ours[:, 8:] == 2).any(1).sum()) if eos else 0
            if not eos:
                assert not (ours[:, 8:] == 2).any()
    assert ended > 0  # some sequences did finish with eos (the finished-hypothesis path is exercised)


def test_repetition_penalty_in_beam_search_acts_on_log_probs_worked_example():
    """Logits [0, 0, 5, 3, 0], token 2 already in the sequence, penalty 3: beam search (log-softmax,
    then l -> 3 l) keeps token 2 first; the penalty on the logits (sampling / greedy) ranks token 3 first."""
    from genloop.generators.decoding import Tokens, adjust_logits, beam_log_probs, beam_search

    logits = torch.tensor([[0.0, 0.0, 5.0, 3.0, 0.0]])
    seq = torch.tensor([[2]])
    tokens = Tokens(start=2, suppress=())
    lse = math.log(3 + math.exp(5) + math.exp(3))  # 5.14458...
    lp = beam_log_probs(logits, seq, DecodeConfig(beams=5, repetition_penalty=3.0), tokens)[0]
    assert lp[2].item() == pytest.approx(3 * (5 - lse), abs=1e-6)  # -0.43373
    assert lp[3].item() == pytest.approx(3 - lse, abs=1e-6)  # -2.14458, not penalised
    assert lp[0].item() == pytest.approx(-lse, abs=1e-6)
    best = beam_search(lambda s, st: (logits.expand(s.shape[0], -1), st), lambda s, i: s, seq, 1,
                       DecodeConfig(beams=5, repetition_penalty=3.0), tokens)
    assert best.tolist() == [[2, 2]]
    x = adjust_logits(logits, seq, DecodeConfig(repetition_penalty=3.0), tokens)[0]
    assert x[2].item() == pytest.approx(5 / 3) and int(x.argmax()) == 3


def test_prompts_are_every_block_once_in_a_seeded_order():
    from genloop.data import TokenSet
    from genloop.generators.decoding import pick_prompts

    real = TokenSet((np.arange(30 * 4).reshape(30, 4) + 2).astype(np.int32), 130)
    a = pick_prompts(real, 30, 2, np.random.default_rng(1))
    assert sorted(a[:, 0].tolist()) == sorted(real.tokens[:, 0].tolist())  # each block once
    assert not np.array_equal(a, real.tokens[:, :2])  # in a random order ...
    assert np.array_equal(a, pick_prompts(real, 30, 2, np.random.default_rng(1)))  # ... fixed by the seed
    few = pick_prompts(real, 12, 2, np.random.default_rng(2))
    assert len({tuple(r) for r in few}) == 12  # fewer samples than blocks: no repeats
    many = pick_prompts(real, 67, 2, np.random.default_rng(3))
    counts = np.unique(many[:, 0], return_counts=True)[1]
    assert len(counts) == 30 and set(counts.tolist()) <= {2, 3}  # more samples than blocks: 2 or 3 uses each


def test_beam_search_refuses_sampling_options():
    for key in ("decode.temperature=0.7", "decode.top_k=5", "decode.top_p=0.9"):
        with pytest.raises(ConfigError, match=f"{key.split('=')[0]}: .* does not apply to beam search"):
            from_dict(load_raw(None, ["decode.beams=5", key]))


def _smollm2():
    from genloop.data.fetch import model_folder

    folder = model_folder("smollm2")
    if not (folder / "config.json").is_file():
        pytest.skip(f"SmolLM2 not fetched ({folder}); run `genloop data fetch smollm2`")
    return folder


@pytest.mark.slow
def test_smollm2_decoding_equals_generate_on_real_prompts():
    """SmolLM2-135M-Instruct, 20 real Shakespeare blocks of 64 tokens as prompts, 64 new tokens: beam
    search (5 beams, penalty 3.0) and greedy are token for token transformers.generate (special tokens
    suppressed in both)."""
    folder = _smollm2()
    from genloop.data import load_real
    from genloop.generators import GenContext, build_generator

    cfg = from_dict(load_raw(None, ["data.name=shakespeare", "data.tokenizer=pretrained", "data.pretrained.path=smollm2",
                                    "data.block_size=64", "generator.name=hf-causal-lm", "generator.model_path=smollm2",
                                    "decode.prompt_tokens=64", "decode.keep_prompt=false"]))
    real = load_real(cfg.data)
    gen = build_generator(GenContext(config=cfg, shape=real.train.shape, num_classes=0, device=torch.device("cpu"),
                                     seed=0, real_train=real.train))
    gen._load(real.train)
    gen.model.eval()
    prompts = torch.from_numpy(real.train.tokens[:: max(len(real.train) // 20, 1)][:20, :64].astype(np.int64))
    assert len(prompts) == 20
    inp = torch.cat([torch.full((20, 1), gen.bos), prompts - 2], 1)
    sup = [i - 2 for i in gen.tokens.suppress]
    for dec, kw in ((DecodeConfig(beams=5, repetition_penalty=3.0), dict(num_beams=5, repetition_penalty=3.0)),
                    (DecodeConfig(top_k=1), dict(num_beams=1))):
        for i in range(0, 20, 10):
            with torch.no_grad():
                ours = generate(gen.step, gen.reorder, prompts[i:i + 10], 128, dec, torch.Generator().manual_seed(0),
                                gen.tokens)[:, 64:] - 2
                ref = gen.model.generate(input_ids=inp[i:i + 10], attention_mask=torch.ones_like(inp[i:i + 10]),
                                         do_sample=False, max_new_tokens=64, suppress_tokens=sup, **kw)[:, 65:]
            assert torch.equal(ours, ref), (dec, i)


def test_loading_a_model_draws_no_progress_bar_and_leaves_the_setting(tiny, capfd):
    """transformers' "Loading weights" bar would write carriage returns into a redirected log."""
    from genloop.generators.hf import load_causal_lm

    logging_ = transformers.utils.logging
    logging_.enable_progress_bar()
    capfd.readouterr()
    load_causal_lm(str(tiny["model"]))
    out, err = capfd.readouterr()
    assert "Loading weights" not in out + err and "\r" not in out + err
    assert logging_.is_progress_bar_enabled()
