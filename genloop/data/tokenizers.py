"""Tokenizers of text data (registry ``TOKENIZERS``, named by ``data.tokenizer``).

A tokenizer is trained once on the real training text (``get_tokenizer``), saved as JSON in
the run folder's data cache and read back from there, so every generation of a run (and a
resumed run) uses the same one.  Ids 0 and 1 are ``<bos>`` and ``<unk>``:

- ``word``  lower-cased words (letters with inner apostrophes), numbers, single
            punctuation marks and the newline, each one token; the
            ``data.vocab_size`` - 2 most frequent with at least ``data.min_count``
            occurrences get ids, the rest are ``<unk>``.  ``decode`` joins words with
            spaces and attaches punctuation to the word before it, so
            ``encode(decode(ids)) == ids``.
- ``char``  every character of the training text (the ``data.vocab_size`` - 2
            most frequent); ``decode(encode(t)) == t`` for text of known characters.
- ``bpe``   byte-level BPE trained with the Hugging Face ``tokenizers`` package
            (``pip install tokenizers``; imported only here): the 256 bytes plus
            merges up to ``data.vocab_size`` tokens (merges of pairs seen at least
            ``data.min_count`` times); ``decode(encode(t)) == t`` for any text.
- ``pretrained``  a pretrained model's own tokenizer, read from ``data.pretrained.path``
            (a folder saved with ``save_pretrained``: its ``tokenizer.json``, or
            whatever ``transformers.AutoTokenizer`` reads), not trained; the
            ``hf-causal-lm`` generator needs it.  Genloop id = the tokenizer's id + 2
            (0 and 1 stay ``<bos>`` and ``<unk>``), so text metrics count the
            model's own tokens; ``data.vocab_size`` does not apply.

``bpe`` and ``pretrained`` keep the whole ``tokenizers`` JSON in the cached file.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import DataConfig, opt
from ..registry import Registry
from . import DataError

log = logging.getLogger(__name__)

TOKENIZERS: Registry = Registry("tokenizer", section=DataConfig, slot="tokenizer")

BOS, UNK = 0, 1
SPECIALS = ["<bos>", "<unk>"]


class Tokenizer:
    """A fixed vocabulary (id -> token string) and the rule that splits text into tokens."""

    name = ""

    def __init__(self, vocab: list[str]) -> None:
        self.vocab = list(vocab)
        self.index = {t: i for i, t in enumerate(self.vocab)}

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def split(self, text: str) -> list[str]:
        raise NotImplementedError

    def join(self, tokens: list[str]) -> str:
        raise NotImplementedError

    def encode(self, text: str) -> np.ndarray:
        get = self.index.get
        return np.array([get(t, UNK) for t in self.split(text)], dtype=np.int32)

    def decode(self, ids) -> str:
        return self.join([self.vocab[int(i)] for i in ids if int(i) != BOS])

    @classmethod
    def train(cls, text: str, vocab_size: int, min_count: int = 1) -> "Tokenizer":
        counts = Counter(cls.split_static(text))
        kept = [t for t, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count]
        return cls(SPECIALS + kept[: max(vocab_size - len(SPECIALS), 0)])

    @staticmethod
    def split_static(text: str) -> list[str]:
        raise NotImplementedError

    @classmethod
    def build(cls, cfg: DataConfig, text: str) -> "Tokenizer":
        """The tokenizer of ``cfg`` for the training text ``text``."""
        return cls.train(text, cfg.vocab_size, cfg.min_count)

    @classmethod
    def cache_key(cls, cfg: DataConfig) -> str:
        """What besides the settings and the training text determines the tokenizer."""
        return ""

    def to_json(self) -> str:
        return json.dumps({"tokenizer": self.name, "vocab": self.vocab}, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict) -> "Tokenizer":
        return cls(d["vocab"])

    @staticmethod
    def from_json(text: str) -> "Tokenizer":
        d = json.loads(text)
        return TOKENIZERS.get(d["tokenizer"]).from_dict(d)


_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*|\d+|\n|[^\sa-z\d]")
_ATTACH = set(".,;:!?)]}'\"")


@TOKENIZERS.register("word")
class WordTokenizer(Tokenizer):
    name = "word"

    @staticmethod
    def split_static(text: str) -> list[str]:
        return _WORD.findall(text.lower())

    def split(self, text: str) -> list[str]:
        return self.split_static(text)

    def join(self, tokens: list[str]) -> str:
        out: list[str] = []
        for t in tokens:
            if not out or t == "\n" or out[-1] == "\n" or (t in _ATTACH and len(t) == 1):
                out.append(t)
            else:
                out.append(" " + t)
        return "".join(out)


@TOKENIZERS.register("char")
class CharTokenizer(Tokenizer):
    name = "char"

    @staticmethod
    def split_static(text: str) -> list[str]:
        return list(text)

    def split(self, text: str) -> list[str]:
        return list(text)

    def join(self, tokens: list[str]) -> str:
        return "".join(tokens)


def _tokenizers():
    """The Hugging Face ``tokenizers`` package (an optional dependency), or a one-line error."""
    try:
        import tokenizers
    except ImportError:
        raise DataError("data.tokenizer: bpe and pretrained need the tokenizers package "
                        "(pip install tokenizers, or pip install 'genloop[hf]')") from None
    return tokenizers


class _Backed(Tokenizer):
    """A tokenizer run by a ``tokenizers.Tokenizer`` (``backend``); genloop id = backend id + ``offset``."""

    offset = 0

    def __init__(self, backend) -> None:
        self.backend = backend
        n = backend.get_vocab_size(with_added_tokens=True)
        inv = {i: t for t, i in backend.get_vocab(with_added_tokens=True).items()}
        super().__init__(SPECIALS[: self.offset] + [inv.get(i, f"<{i}>") for i in range(n)])

    def encode(self, text: str) -> np.ndarray:
        ids = self.backend.encode(text, add_special_tokens=False).ids
        return np.asarray(ids, dtype=np.int64).astype(np.int32) + self.offset

    def decode(self, ids) -> str:
        ids = [int(i) - self.offset for i in ids if int(i) >= self.offset]
        return self.backend.decode(ids, skip_special_tokens=True)

    def to_json(self) -> str:
        return json.dumps({"tokenizer": self.name, "backend": self.backend.to_str()}, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict) -> "Tokenizer":
        return cls(_tokenizers().Tokenizer.from_str(d["backend"]))


@TOKENIZERS.register("bpe")
class BPETokenizer(_Backed):
    """Byte-level BPE (the GPT-2 scheme) trained on the training text; ids 0, 1 are <bos>, <unk>."""

    name = "bpe"

    @classmethod
    def train(cls, text: str, vocab_size: int, min_count: int = 1) -> "Tokenizer":
        tk = _tokenizers()
        if vocab_size < 256 + len(SPECIALS):
            raise DataError(f"data.vocab_size: {vocab_size} is too small for the bpe tokenizer "
                            f"(at least {256 + len(SPECIALS)}: 256 bytes and <bos>, <unk>)")
        backend = tk.Tokenizer(tk.models.BPE())
        backend.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = tk.decoders.ByteLevel()
        trainer = tk.trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_count, special_tokens=SPECIALS,
                                         initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
                                         show_progress=False)
        backend.train_from_iterator(text.split("\n\n"), trainer)
        return cls(backend)


@dataclass
class PretrainedOptions:
    """Options of the ``pretrained`` tokenizer (``data.pretrained.<key>``)."""

    path: Optional[str] = opt(None, "folder of a tokenizer saved with save_pretrained (usually the same as generator.hf-causal-lm.model_path)", old="tokenizer_path")


@TOKENIZERS.register("pretrained", options=PretrainedOptions)
class PretrainedTokenizer(_Backed):
    """A saved Hugging Face tokenizer (``data.pretrained.path``); genloop id = its id + 2."""

    name = "pretrained"
    offset = len(SPECIALS)

    @staticmethod
    def load_backend(path: Optional[str]):
        """The ``tokenizers.Tokenizer`` of a folder saved with ``save_pretrained`` (its
        tokenizer.json; otherwise converted by ``transformers.AutoTokenizer``)."""
        if not path:
            raise DataError("data.pretrained.path: the pretrained tokenizer needs the folder of a saved "
                            "Hugging Face tokenizer (usually the same folder as generator.hf-causal-lm.model_path)")
        from .fetch import resolve_model_path

        root = Path(resolve_model_path(path, "data.pretrained.path")).expanduser()
        if not root.is_dir():
            raise DataError(f"data.pretrained.path: {root} is not a folder (save the model's tokenizer there "
                            "with save_pretrained)")
        tk = _tokenizers()
        if (root / "tokenizer.json").is_file():
            return tk.Tokenizer.from_file(str(root / "tokenizer.json"))
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise DataError(f"data.pretrained.path: {root} has no tokenizer.json; converting its tokenizer needs "
                            "transformers (pip install 'genloop[hf]')") from None
        try:
            auto = AutoTokenizer.from_pretrained(str(root), use_fast=True)
        except (OSError, ValueError) as exc:
            raise DataError(f"data.pretrained.path: {root} holds no readable tokenizer "
                            f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        if not getattr(auto, "is_fast", False):
            raise DataError(f"data.pretrained.path: {root}: no fast tokenizer could be made; save one with "
                            "save_pretrained from a *TokenizerFast")
        return auto.backend_tokenizer

    @classmethod
    def build(cls, cfg: DataConfig, text: str) -> "Tokenizer":
        return cls(cls.load_backend(cfg.group("pretrained").path))

    @classmethod
    def cache_key(cls, cfg: DataConfig) -> str:
        return cls.load_backend(cfg.group("pretrained").path).to_str()


def get_tokenizer(cfg: DataConfig, train_text: str, cache_dir: Optional[Path]) -> Tokenizer:
    """The tokenizer of ``cfg`` trained on ``train_text``, read from / saved to ``cache_dir``
    (keyed by the training text and the tokenizer settings)."""
    from ..runfolder import write_text

    cls = TOKENIZERS.get(cfg.tokenizer)
    key = hashlib.sha256(f"{cfg.tokenizer}|{cfg.vocab_size}|{cfg.min_count}|{cls.cache_key(cfg)}|".encode()
                         + train_text.encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"tokenizer-{cfg.tokenizer}-{key}.json" if cache_dir is not None else None
    if path is not None and path.is_file():
        return Tokenizer.from_json(path.read_text(encoding="utf-8"))
    tok = cls.build(cfg, train_text)
    if path is not None:
        write_text(path, tok.to_json())
        log.info("tokenizer %s: %d tokens, cached in %s", cfg.tokenizer, len(tok), path)
    return tok
