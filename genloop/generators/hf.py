"""``hf-causal-lm``: fine-tune a pretrained causal language model from a local folder
(``generator.hf-causal-lm.model_path``, saved with ``save_pretrained``: OPT-125m, GPT-2, ...) with
Hugging Face ``transformers`` (the optional extra ``genloop[hf]``; imported only here,
when the generator is built), as Shumailov et al. (Nature 2024) do.

Tokens.  The run's tokenizer is the model's own: ``data.tokenizer: pretrained`` with
``data.pretrained.path`` (normally the same folder), so a ``TokenSet`` holds the model's
token ids shifted by 2 (genloop's ids 0 and 1 are ``<bos>`` and ``<unk>``; see
``genloop.data.text``).  The generator maps them back (id - 2; genloop's ``<bos>``
becomes the model's ``bos_token_id``, or ``eos_token_id`` when it has none), so the
text metrics count the model's tokens and ``ppl_test`` is the model's own perplexity
on the real test blocks.  ``fit`` checks that the run's tokenizer is the model
folder's tokenizer (the same vocabulary) and one the model's embeddings can hold.

Training.  Every generation starts again from the pretrained weights in
``generator.hf-causal-lm.model_path`` (Shumailov et al. fine-tune the pretrained model each
generation) and trains on the generation's blocks (Shumailov et al.: 64 tokens, lr
2e-5, 5 epochs: ``data.block_size``, ``train.lr``, ``train.epochs``): every block x is
read as ``<bos> x_1 .. x_{L-1}`` and predicts ``x_1 .. x_L`` (cross-entropy over the
tokenizer's ids), AdamW with ``train.lr``, ``train.weight_decay``, warm-up and decay
as the other generators, ``train.batch_size`` blocks per step, each epoch a seeded
permutation of the blocks.  The model is in training mode (its own dropout).  The
training state (weights, AdamW moments, step, torch's random state, recent losses)
is checkpointed every ``train.checkpoint_every`` steps to the chain's training-state
file (safetensors) and a run killed inside a generation resumes there.

Sampling.  ``generators.decoding`` with the ``decode.*`` options, through the
model's key/value cache (each step feeds only the new tokens and computes only the
last position's logits; beams reorder the cache), token for token as
``transformers.generate`` with the same options on the input ``<bos> prompt``.
Shumailov et al.: 5 beams, repetition penalty 3.0, a 64-token real prompt and 64 new
tokens (``decode.beams=5``, ``decode.repetition_penalty=3.0``,
``decode.prompt_tokens=64``, ``decode.keep_prompt=false``); greedy (``decode.top_k=1``)
and sampling with temperature / top-k / top-p work the same.  The log-softmax is over
all the model's rows; the rows beyond the tokenizer (OPT has padding rows) and, with
``generator.hf-causal-lm.suppress_special`` (default), the tokenizer's special tokens (end of text,
chat-template markers) are suppressed as ``generate(suppress_tokens=...)`` does.
Otherwise the model's eos ends a sample, which is padded with its pad token.
The weights are loaded and trained in fp32 (an fp16 folder is converted).
``state_dict`` is the fine-tuned weights (a tied output matrix stored once); ``prepare``
loads the pretrained model for some training data and ``load_state_dict`` puts fine-tuned
weights into it, so chains that differ only in ``decode.*`` or in their interaction model
(``replace`` and ``mix`` at generation 0) fine-tune once (``genloop.loop.sharing``).
"""
from __future__ import annotations

import contextlib
import inspect
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..config import Config, ConfigError, opt
from ..data import TokenSet
from ..data.fetch import resolve_model_path
from ..data.text import BOS, SPECIALS, PretrainedTokenizer
from ..utils import beat
from . import GENERATORS, GenContext
from .decoding import Tokens, context_length, generate_blocks
from .training import train_loop

log = logging.getLogger(__name__)

NAME = "hf-causal-lm"
OFFSET = len(SPECIALS)  # genloop id = model token id + OFFSET


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ConfigError(f"generator.name: {NAME} needs the transformers package "
                          "(pip install transformers, or pip install 'genloop[hf]')") from None
    return transformers


def load_causal_lm(path: Optional[str]):
    """The causal LM saved in folder ``path``, or fetched under the short name ``path``
    (one-line ``ConfigError`` when missing or another kind of model)."""
    if not path:
        raise ConfigError(f"generator.hf-causal-lm.model_path: {NAME} needs the local folder of a causal LM saved with save_pretrained")
    root = Path(resolve_model_path(path, f"generator.{NAME}.model_path")).expanduser()
    if not root.is_dir():
        raise ConfigError(f"generator.hf-causal-lm.model_path: {root} is not a folder; save a causal LM there with "
                          "model.save_pretrained (e.g. OPT-125m or GPT-2, downloaded by you)")
    if not (root / "config.json").is_file():
        raise ConfigError(f"generator.hf-causal-lm.model_path: {root} has no config.json; it is not a model saved with save_pretrained")
    tr = _transformers()
    try:
        config = tr.AutoConfig.from_pretrained(str(root))
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"generator.hf-causal-lm.model_path: {root}/config.json is not a transformers model config "
                          f"({_first_line(exc)})") from None
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    kind = getattr(config, "model_type", None)
    if kind not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ConfigError(f"generator.hf-causal-lm.model_path: {root} holds a {kind!r} model, not a causal language model "
                          "(use one such as opt or gpt2)")
    try:
        major, minor = (int(x) for x in tr.__version__.split(".")[:2])
        key = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"  # fp32 weights, whatever the folder holds
        with _no_progress_bars(tr):  # genloop reports progress itself; no bar redraws in a redirected log
            model = tr.AutoModelForCausalLM.from_pretrained(str(root), **{key: torch.float32})
    except (OSError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"generator.hf-causal-lm.model_path: {root}: the weights cannot be loaded ({_first_line(exc)})") from None
    return model


@contextlib.contextmanager
def _no_progress_bars(tr):
    """transformers' own progress bars ("Loading weights") off while loading, as they were after."""
    logging_ = tr.utils.logging
    was = logging_.is_progress_bar_enabled()
    logging_.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            logging_.enable_progress_bar()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _Cache:
    """The model's key/value cache and how many tokens it holds."""

    def __init__(self, past: Any, length: int) -> None:
        self.past, self.length = past, length


@dataclass
class HFOptions:
    """Options of ``hf-causal-lm`` (``generator.hf-causal-lm.<key>``)."""

    model_path: Optional[str] = opt(None, "hf-causal-lm: a local folder saved with save_pretrained (a causal LM such as OPT-125m or GPT-2), or the short name of a model written by `genloop data fetch` (smollm2)")
    suppress_special: bool = opt(True, "hf-causal-lm: never generate the tokenizer's special tokens (end of text, the chat-template markers of instruct models), as generate(suppress_tokens=...) does; false: they may be generated, and an end-of-sequence token ends a sample, which is then padded")

    def check(self) -> None:
        """It needs a model folder (its files are checked when it runs)."""
        if not self.model_path:
            raise ConfigError(f"generator.{NAME}.model_path: {NAME} needs the local folder of a causal LM saved with "
                              f"save_pretrained (e.g. generator.{NAME}.model_path=models/opt-125m)")

    def check_with(self, config: Config) -> None:
        """It reads text through the model's own tokenizer (``data.tokenizer``)."""
        if config.data.tokenizer != "pretrained":
            raise ConfigError(f"data.tokenizer: {config.data.tokenizer!r} cannot feed {NAME}; use data.tokenizer=pretrained "
                              "with data.pretrained.path set to the model's folder (the model's own tokenizer)")


@GENERATORS.register(NAME, options=HFOptions)
class HFCausalLMGenerator:
    # read only when sampling: chains that differ only in these share trained models (genloop.loop.sharing)
    sampling_keys = ("decode",)

    def __init__(self, ctx: GenContext) -> None:
        self.ctx = ctx
        self.cfg = getattr(ctx, "options", None) or ctx.config.generator.group(NAME)
        self.model = None
        self.train: Optional[TokenSet] = None
        self.vocab = 0  # the tokenizer's ids (<= the model's embedding rows)
        self.bos = 0

    # ------------------------------------------------------------------ model and token ids
    def _load(self, train: TokenSet) -> None:
        tok = train.tokenizer
        if not isinstance(tok, PretrainedTokenizer):
            raise ConfigError(f"data.tokenizer: {NAME} needs data.tokenizer=pretrained with data.pretrained.path "
                              "set to the model's folder (the model's own tokenizer)")
        torch.manual_seed(self.ctx.seed)
        model = load_causal_lm(self.cfg.model_path)
        rows = model.get_input_embeddings().weight.shape[0]
        self.vocab = train.vocab_size - OFFSET
        if self.vocab > rows:
            raise ConfigError(f"data.pretrained.path: its tokenizer has {self.vocab} tokens but the model in "
                              f"{self.cfg.model_path} embeds only {rows}; use the model's own tokenizer")
        theirs = self._folder_vocab()
        if theirs is not None and theirs != tok.backend.get_vocab(with_added_tokens=True):
            raise ConfigError(f"data.pretrained.path: the run's tokenizer differs from the one in generator.hf-causal-lm.model_path "
                              f"({self.cfg.model_path}); set data.pretrained.path to the model's folder")
        c = model.config
        bos = c.bos_token_id if c.bos_token_id is not None else c.eos_token_id
        self.bos = int(bos) if bos is not None and 0 <= int(bos) < rows else 0
        self.model = model.to(self.ctx.device)
        sig = inspect.signature(self.model.forward).parameters
        self._cache_arg = "cache" if "cache" in sig else "past_key_values"  # transformers >= 5 / older
        self._last_only = {"logits_to_keep": 1} if "logits_to_keep" in sig else {}
        self.tokens = self._tokens(tok, rows)

    def _tokens(self, tok: PretrainedTokenizer, rows: int) -> Tokens:
        """Decoding's special ids (genloop ids): the start token is the model's bos; the rows beyond
        the tokenizer and, with ``generator.hf-causal-lm.suppress_special``, the special tokens are never
        generated; otherwise the model's eos ids end a sample and it is padded with its pad id."""
        special = sorted(i for i, t in tok.backend.get_added_tokens_decoder().items() if t.special and i < rows)
        ban = set(range(self.vocab, rows)) | (set(special) if self.cfg.suppress_special else set())
        gc = getattr(self.model, "generation_config", None)
        eos = getattr(gc, "eos_token_id", None) if gc is not None else None
        eos = self.model.config.eos_token_id if eos is None else eos
        eos = [int(e) for e in ([] if eos is None else eos if isinstance(eos, (list, tuple)) else [eos])]
        eos = [e for e in eos if 0 <= e < rows and e not in ban]
        pad = getattr(gc, "pad_token_id", None) if gc is not None else None
        pad = pad if pad is not None else self.model.config.pad_token_id
        pad = int(pad) if pad is not None and 0 <= int(pad) < rows else (eos[0] if eos else self.bos)
        if self.cfg.suppress_special and special:
            log.info("%s: %d special tokens never generated (generator.hf-causal-lm.suppress_special): %s", NAME, len(special),
                     " ".join(tok.backend.id_to_token(i) for i in special[:8]) + (" ..." if len(special) > 8 else ""))
        return Tokens(offset=OFFSET, start=self.bos + OFFSET, suppress=tuple(sorted(i + OFFSET for i in ban)),
                      eos=tuple(e + OFFSET for e in eos), pad=pad + OFFSET)

    def _folder_vocab(self) -> Optional[dict]:
        """The vocabulary of the tokenizer saved in the model folder (None when it has none)."""
        from ..data import DataError

        try:
            return PretrainedTokenizer.load_backend(self.cfg.model_path).get_vocab(with_added_tokens=True)
        except DataError:
            return None

    def to_model(self, ids: torch.Tensor) -> torch.Tensor:
        """Genloop ids -> the model's ids (<bos> and <unk> -> the model's bos)."""
        return torch.where(ids >= OFFSET, ids - OFFSET, torch.full_like(ids, self.bos))

    def inputs(self, blocks: torch.Tensor) -> torch.Tensor:
        """Blocks (B, L) of genloop ids -> model inputs ``<bos> x_1 .. x_{L-1}`` in model ids."""
        bos = torch.full((blocks.shape[0], 1), BOS, dtype=blocks.dtype)
        return self.to_model(torch.cat([bos, blocks[:, :-1]], 1))

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Model logits (..., rows) -> genloop scores (..., vocab + 2): the tokenizer's ids only,
        <bos> and <unk> excluded."""
        pad = torch.full((*logits.shape[:-1], OFFSET), -float("inf"), dtype=torch.float32, device=logits.device)
        return torch.cat([pad, logits[..., : self.vocab].float()], -1)

    # ------------------------------------------------------------------ training state
    def _weights(self) -> dict:
        """The model's tensors, each storage once (a tied output matrix is the input embedding)."""
        out, seen = {}, set()
        for k, v in self.model.state_dict().items():
            ptr = (v.data_ptr(), tuple(v.shape))
            if ptr in seen:
                continue
            seen.add(ptr)
            out[k] = v
        return out

    def _load_weights(self, tensors: dict) -> None:
        missing, _ = self.model.load_state_dict(tensors, strict=False)
        self.model.tie_weights()
        weights = self._weights()
        left = [k for k in missing if k in weights]
        if left:
            raise ValueError(f"training state lacks {len(left)} tensors of the model (e.g. {left[0]})")

    def _fingerprint(self, train: TokenSet) -> str:
        from ..utils import digest

        return digest(train.tokens[:: max(len(train) // 64, 1)], len(train), self.ctx.seed,
                      self.ctx.config.generator.__dict__, self.ctx.config.train.__dict__)

    @staticmethod
    def batch_index(step: int, n: int, bs: int, seed: int) -> np.ndarray:
        """The blocks of optimizer step ``step``: epochs are seeded permutations of the n blocks,
        read ``bs`` at a time (a batch may span two epochs)."""
        start = step * bs
        out = []
        while len(out) < bs:
            epoch, pos = divmod(start + len(out), n)
            perm = np.random.default_rng([seed, 0xB10C, epoch]).permutation(n)
            out.extend(perm[pos: pos + bs - len(out)].tolist())
        return np.asarray(out, dtype=np.int64)

    def prepare(self, train: TokenSet) -> None:
        """The pretrained model and the decoding's token ids for training data ``train`` (what
        ``fit`` starts from, and what a shared fine-tuned state is loaded into)."""
        if not isinstance(train, TokenSet):
            raise ConfigError(f"generator.name: {NAME} models text; data.name must be a text source (e.g. text)")
        self.train = train
        self._load(train)
        limit = getattr(self.model.config, "max_position_embeddings", None) or getattr(self.model.config, "n_positions", None)
        need = context_length(self.ctx.config.decode, self.ctx.shape[0]) + 1
        if limit is not None and need > int(limit):
            raise ConfigError(f"data.block_size: {self.ctx.shape[0]} (+ decode.prompt_tokens when decode.keep_prompt=false, "
                              f"+ <bos>) needs {need} positions; the model has {limit}")

    def fit(self, train: TokenSet) -> dict:
        ctx = self.ctx
        self.prepare(train)
        dev = ctx.device
        x_all = torch.from_numpy(train.tokens.astype(np.int64))
        n = len(x_all)

        seen = [0]  # training tokens read in this run

        def loss(step: int, bs: int) -> torch.Tensor:
            y = x_all[torch.from_numpy(self.batch_index(step, n, bs, ctx.seed))]
            seen[0] += y.numel()
            logits = self.model(input_ids=self.inputs(y).to(dev), use_cache=False).logits
            target = (y - OFFSET).masked_fill(y < OFFSET, -100).to(dev)  # <unk> is not learned
            return F.cross_entropy(logits[..., : self.vocab].reshape(-1, self.vocab).float(), target.reshape(-1),
                                   ignore_index=-100)

        # torch's global random state is the training state's rng (the model's dropout draws from it)
        fit = train_loop(loss, self.model, ctx, n, lambda: self._fingerprint(train), weights=self._weights,
                         load_weights=lambda w: self._load_weights({k: v.to(dev) for k, v in w.items()}))
        secs = fit.get("train_seconds_this_run", 0.0)
        if seen[0]:
            beat("%s train: %d tokens in %.1f s = %.0f tokens/s", ctx.desc or NAME, seen[0], secs, seen[0] / max(secs, 1e-9))
        return fit

    # ------------------------------------------------------------------ scoring and sampling
    @torch.no_grad()
    def log_probs(self, blocks: TokenSet, batch: int = 16) -> np.ndarray:
        """log P of every token of the blocks given its block prefix (over the tokenizer's ids)."""
        self.model.eval()
        x = torch.from_numpy(blocks.tokens.astype(np.int64))
        out = []
        for i in range(0, len(x), batch):
            y = x[i:i + batch]
            logits = self.model(input_ids=self.inputs(y).to(self.ctx.device), use_cache=False).logits
            lp = torch.log_softmax(self.scores(logits), -1)
            out.append(lp.gather(-1, y.to(self.ctx.device).unsqueeze(-1)).squeeze(-1).cpu().double().numpy())
        return np.concatenate(out) if out else np.zeros((0, blocks.shape[0]))

    def step(self, seq: torch.Tensor, cache: Optional[_Cache]) -> tuple[torch.Tensor, _Cache]:
        """The model's next-token logits (B, rows) of ``seq`` (B, T) genloop ids (column j = genloop id
        j + 2, ``self.tokens.offset``); feeds only the tokens not yet in ``cache``."""
        done = cache.length if cache is not None else 0
        new = self.to_model(seq[:, done:]).to(self.ctx.device)
        kwargs = {self._cache_arg: cache.past} if cache is not None else {}
        out = self.model(input_ids=new, use_cache=True, **kwargs, **self._last_only)
        past = out.get("cache") if out.get("cache") is not None else out.get("past_key_values")
        return out.logits[:, -1].float().cpu(), _Cache(past, seq.shape[1])

    def reorder(self, cache: _Cache, rows: torch.Tensor) -> _Cache:
        """Keep rows ``rows`` of the cache (beam search)."""
        rows = rows.to(self.ctx.device)
        past = cache.past
        if hasattr(past, "reorder_cache"):
            past.reorder_cache(rows)
        else:  # a legacy tuple of (key, value) per layer
            past = tuple(tuple(t.index_select(0, rows) for t in layer) for layer in past)
        return _Cache(past, cache.length)

    @torch.no_grad()
    def sample(self, labels: Optional[np.ndarray], n: int) -> TokenSet:
        self.model.eval()
        t0 = time.perf_counter()
        tokens = generate_blocks(self.step, self.reorder, n, self.ctx.shape[0], self.ctx.config.decode,
                                 self.ctx.real_train, self.ctx.seed, self.tokens, desc=self.ctx.desc,
                                 progress=self.ctx.progress)
        secs = time.perf_counter() - t0
        dec = self.ctx.config.decode
        new = n * (self.ctx.shape[0] - (min(dec.prompt_tokens, self.ctx.shape[0]) if dec.keep_prompt else 0))
        if new:
            beat("%s sample: %d new tokens in %.1f s = %.1f new tokens/s", self.ctx.desc or NAME, new, secs,
                 new / max(secs, 1e-9))
        return self.train.like(tokens)

    def state_dict(self) -> dict:
        return {k: v for k, v in self._weights().items()} if self.model is not None else {}

    def load_state_dict(self, tensors: dict) -> None:
        """Fine-tuned weights (``state_dict``) into the model that ``prepare`` loaded."""
        if self.model is None:
            raise RuntimeError(f"{NAME}: call prepare(train) before load_state_dict")
        self._load_weights({k: v.to(self.ctx.device) for k, v in tensors.items()})
