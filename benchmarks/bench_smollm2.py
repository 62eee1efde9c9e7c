"""SmolLM2-135M-Instruct (``genloop data fetch smollm2``) on the embedded Shakespeare, in the model's
own tokens, through genloop's own code paths (``HFCausalLMGenerator.fit`` and the shared decoding):

- training tokens/s (blocks of 64 tokens, ``--batch`` blocks per step, fp32, AdamW);
- decoding new tokens/s of genloop and of ``transformers.generate`` on the same ``--prompts``
  64-token real prompts, 64 new tokens, 5 beams, repetition penalty 3.0, special tokens
  suppressed in both, timed one after the other in the same process, their ratio, and whether
  the two outputs are token for token equal;
- from the rates, the blocks per generation that keep one generation of the
  ``paper-shumailov-cpu`` settings (``--epochs``) within ``--budget`` seconds.

    python benchmarks/bench_smollm2.py [--steps 4 --batch 8 --prompts 8 --threads 2 --epochs 1]

Needs ``pip install 'genloop[hf]'`` and ``genloop data fetch smollm2`` once.  Figures: see FIGURES
(from a run; the command line and the machine's load are stated there).
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its OpenMP threads

import numpy as np
import torch

FIGURES = """
python benchmarks/bench_smollm2.py --steps 4 --batch 8 --prompts 8 --threads 2 --epochs 5
(genloop 0.1.0 at 125f9f2, the idle 2-core machine, nothing else running: load average 0.2 at start;
 torch 2.13.0+cpu, transformers 5.25.0)
  data: Shakespeare in SmolLM2's tokens: 18,390 train / 4,593 test blocks of 64 (5.2 s)
  model: 134.5 M parameters, folder loaded in 4.2 s; 17 ids suppressed in decoding
  training: 4 steps of 8 x 64 tokens in 15.9 s = 129 tokens/s (load average 0.7)
  decoding: 8 prompts x 64 new tokens, 5 beams, repetition penalty 3.0, special tokens suppressed
    genloop:                  18.3 s =  27.9 new tokens/s (load average 1.0)
    transformers.generate:    22.4 s =  22.9 new tokens/s (load average 1.1)
    genloop / generate speed ratio: 1.22; token for token equal: True
    a continuation: 'HAMLET:\nNo, no, they do but jest, poison in jest; no offence' -> " at all.\n\nMORALIS:\nThere's a
      difference between words and actions.\n\nHAMLET:\nIt's not about words, it's about action.\n\nMORALIS:\n..."
  sizing at these rates: a block costs 5 x 64 / 129 + 64 / 27.9 = 4.77 s, so 125 training blocks fit 600 s per
    generation (training + decoding only; evaluation and metrics come on top)
Earlier, with the machine heavily loaded by other jobs (load average 17.6-19.3), the same script with
--steps 2 --threads 1 gave 3 training tokens/s and a ratio of 1.19: under load the rates mean nothing,
the ratio still says genloop's decoding is not slower than generate's.
"""


def load_avg() -> str:
    try:
        return "load average %.1f" % os.getloadavg()[0]
    except OSError:
        return "load average unknown"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4, help="training steps timed")
    ap.add_argument("--batch", type=int, default=8, help="blocks of 64 tokens per training step")
    ap.add_argument("--prompts", type=int, default=8, help="prompts continued by beam search (by each of the two)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=float, default=1.0, help="epochs per generation for the sizing estimate")
    ap.add_argument("--budget", type=float, default=600.0, help="seconds per generation for the sizing estimate")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import transformers

    from genloop.data import load_real
    from genloop.generators import GenContext
    from genloop.generators.decoding import generate
    from genloop.generators.hf import HFCausalLMGenerator
    from genloop.loading import from_dict, load_raw

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} threads; "
          f"at start: {load_avg()}")
    cfg = from_dict(load_raw(None, [
        "data.name=shakespeare", "data.tokenizer=pretrained", "data.pretrained.path=smollm2", "data.block_size=64",
        "generator.name=hf-causal-lm", "generator.hf-causal-lm.model_path=smollm2", f"train.steps={args.steps}",
        f"train.batch_size={args.batch}", "train.lr=2e-5", "train.warmup_steps=0", "train.checkpoint_every=0",
        "decode.beams=5", "decode.repetition_penalty=3.0", "decode.prompt_tokens=64", "decode.keep_prompt=false"]))
    t = time.perf_counter()
    real = load_real(cfg.data)
    print(f"data: Shakespeare in SmolLM2's tokens: {len(real.train):,} train / {len(real.test):,} test blocks of 64 "
          f"({time.perf_counter() - t:.1f} s)")
    ctx = GenContext(config=cfg, shape=(64,), num_classes=0, device=torch.device("cpu"), seed=0, real_train=real.train)
    gen = HFCausalLMGenerator(ctx)
    t = time.perf_counter()
    gen._load(real.train)
    t_load = time.perf_counter() - t
    n_params = sum(p.numel() for p in gen.model.parameters())
    print(f"model: {n_params / 1e6:.1f} M parameters, folder loaded in {t_load:.1f} s; "
          f"{len(gen.tokens.suppress)} ids suppressed in decoding")
    gen.model = None
    sub = real.train.like(real.train.tokens[: args.steps * args.batch])
    info = gen.fit(sub)  # loads again, then trains args.steps steps
    train_tok_s = args.steps * args.batch * 64 / info["train_seconds_this_run"]
    print(f"training: {args.steps} steps of {args.batch} x 64 tokens in {info['train_seconds_this_run']:.1f} s = "
          f"{train_tok_s:.0f} tokens/s ({load_avg()})")

    gen.model.eval()
    rng = np.random.default_rng(0)
    idx = rng.choice(len(real.train), args.prompts, replace=False)
    prompts = torch.from_numpy(real.train.tokens[idx, :64].astype(np.int64))
    inp = torch.cat([torch.full((args.prompts, 1), gen.bos), prompts - 2], 1)
    sup = [i - 2 for i in gen.tokens.suppress]
    with torch.no_grad():
        t = time.perf_counter()
        ours = generate(gen.step, gen.reorder, prompts, 128, cfg.decode, torch.Generator().manual_seed(0),
                        gen.tokens)[:, 64:] - 2
        t_ours = time.perf_counter() - t
        load_ours = load_avg()
        t = time.perf_counter()
        ref = gen.model.generate(input_ids=inp, attention_mask=torch.ones_like(inp), do_sample=False, num_beams=5,
                                 repetition_penalty=3.0, max_new_tokens=64, suppress_tokens=sup)[:, 65:]
        t_ref = time.perf_counter() - t
        load_ref = load_avg()
    new = args.prompts * 64
    print(f"decoding: {args.prompts} prompts x 64 new tokens, 5 beams, repetition penalty 3.0, special tokens suppressed")
    print(f"  genloop:               {t_ours:7.1f} s = {new / t_ours:5.1f} new tokens/s ({load_ours})")
    print(f"  transformers.generate: {t_ref:7.1f} s = {new / t_ref:5.1f} new tokens/s ({load_ref})")
    print(f"  genloop / generate speed ratio: {t_ref / t_ours:.2f}; token for token equal: {torch.equal(ours, ref)}")
    tok = real.train.tokenizer
    print(f"  a continuation: {tok.decode(prompts[0].numpy())[-60:]!r} -> {tok.decode(ours[0].numpy() + 2)[:160]!r}")
    dec_tok_s = new / t_ours
    per_block = args.epochs * 64 / train_tok_s + 64 / dec_tok_s
    print(f"sizing at these rates: a block costs {args.epochs:g} x 64 / {train_tok_s:.0f} + 64 / {dec_tok_s:.1f} = "
          f"{per_block:.2f} s, so {int(args.budget / per_block)} training blocks fit {args.budget:.0f} s per generation "
          f"(training + decoding only; evaluation and metrics come on top)")


if __name__ == "__main__":
    import genloop

    genloop.load_builtins()  # this script calls genloop.loading and the runner directly
    main()
