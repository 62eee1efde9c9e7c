"""Real datasets.  Images travel as uint8 arrays (N, C, H, W) with int64 labels;
text travels as token blocks, int32 (N, L), in a ``TokenSet``.

A *data kind* is a class with the interface the loop, the store and the
interaction models use: ``len``, ``subset(index)``, ``concat(sets)`` (static),
``labels`` / ``labelled`` / ``num_classes`` / ``class_counts()``, ``shape``,
``kind`` (a short name), ``arrays()`` (what ``samples.npz`` holds) and
``from_arrays(arrays)`` (a set of the same kind, and the same metadata as
``self``, from stored arrays).  ``ImageSet`` (images and vectors) and
``TokenSet`` (text) are the two kinds; nothing above this layer branches on
which one it has.

A data source is a function ``load(cfg: DataConfig, cache_dir: Path | None) ->
RealData`` registered in ``DATASETS`` under ``data.name``.  Sources with an
official train/test split return it; the others return ``split_holdout`` of
the whole set.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..config import DataConfig
from ..registry import Registry

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A missing, malformed or inconsistent dataset file; the message names it."""


@dataclass
class ImageSet:
    """A set of images: ``images`` uint8 (N, C, H, W); ``labels`` int64 (N,) or None.

    Low-dimensional vector data (for the analytic generators) travels the same
    way as float32 (N, D, 1, 1)."""

    images: np.ndarray
    labels: Optional[np.ndarray] = None
    num_classes: int = 0

    kind = "images"

    def arrays(self) -> dict[str, np.ndarray]:
        """What a run folder's ``samples.npz`` stores: images (and labels when present)."""
        out = {"images": self.images}
        if self.labels is not None:
            out["labels"] = self.labels
        return out

    def from_arrays(self, arrays: dict) -> "ImageSet":
        """A set of this kind from stored ``arrays``, with this set's number of classes."""
        labels = arrays.get("labels")
        return ImageSet(arrays["images"], labels, self.num_classes if labels is not None else 0)

    def __post_init__(self) -> None:
        if self.images.dtype not in (np.uint8, np.float32) or self.images.ndim != 4:
            raise DataError(f"images must be uint8 (or float32 vectors) (N, C, H, W), got {self.images.dtype} {self.images.shape}")
        if self.labels is not None:
            self.labels = np.asarray(self.labels, dtype=np.int64)
            if self.labels.shape != (len(self.images),):
                raise DataError(f"labels shape {self.labels.shape} does not match {len(self.images)} images")
            if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= max(self.num_classes, 1)):
                raise DataError(f"labels outside the class range 0..{self.num_classes - 1}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def labelled(self) -> bool:
        return self.labels is not None and self.num_classes > 0

    def subset(self, index: np.ndarray) -> "ImageSet":
        return ImageSet(self.images[index], None if self.labels is None else self.labels[index], self.num_classes)

    def class_counts(self) -> np.ndarray:
        if not self.labelled:
            return np.zeros(0, dtype=np.int64)
        return np.bincount(self.labels, minlength=self.num_classes)

    @staticmethod
    def concat(sets: list["ImageSet"]) -> "ImageSet":
        sets = [s for s in sets if len(s)]
        if not sets:
            raise DataError("cannot concatenate zero image sets")
        labels = None if any(s.labels is None for s in sets) else np.concatenate([s.labels for s in sets])
        return ImageSet(np.concatenate([s.images for s in sets]), labels, max(s.num_classes for s in sets))


@dataclass
class TokenSet:
    """Text as blocks of token ids: ``tokens`` int32 (N, L), ids in 0..vocab_size-1;
    ``tokenizer`` (not stored with the samples) turns them back into text.  Unlabelled."""

    tokens: np.ndarray
    vocab_size: int
    tokenizer: Any = None
    labels: Optional[np.ndarray] = None
    num_classes: int = 0

    kind = "tokens"

    def __post_init__(self) -> None:
        self.tokens = np.asarray(self.tokens)
        if self.tokens.ndim != 2 or self.tokens.dtype.kind not in "iu":
            raise DataError(f"tokens must be integer (N, L), got {self.tokens.dtype} {self.tokens.shape}")
        self.tokens = self.tokens.astype(np.int32, copy=False)
        if self.tokens.size and (self.tokens.min() < 0 or self.tokens.max() >= self.vocab_size):
            raise DataError(f"token ids outside 0..{self.vocab_size - 1}")
        if self.labels is not None:
            raise DataError("text blocks carry no labels")

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def shape(self) -> tuple[int]:
        return (int(self.tokens.shape[1]),)

    @property
    def labelled(self) -> bool:
        return False

    def class_counts(self) -> np.ndarray:
        return np.zeros(0, dtype=np.int64)

    def subset(self, index: np.ndarray) -> "TokenSet":
        return TokenSet(self.tokens[index], self.vocab_size, self.tokenizer)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"tokens": self.tokens}

    def from_arrays(self, arrays: dict) -> "TokenSet":
        return TokenSet(arrays["tokens"], self.vocab_size, self.tokenizer)

    def like(self, tokens: np.ndarray) -> "TokenSet":
        """Other blocks with this set's vocabulary and tokenizer."""
        return TokenSet(tokens, self.vocab_size, self.tokenizer)

    def texts(self, count: Optional[int] = None) -> list[str]:
        """The first ``count`` blocks (all when None) decoded to text."""
        rows = self.tokens if count is None else self.tokens[:count]
        if self.tokenizer is None:
            return [" ".join(map(str, r)) for r in rows]
        return [self.tokenizer.decode(r) for r in rows]

    @staticmethod
    def concat(sets: list["TokenSet"]) -> "TokenSet":
        full = [s for s in sets if len(s)]
        if not full:
            raise DataError("cannot concatenate zero token sets")
        lengths = {s.shape for s in full}
        if len(lengths) > 1:
            raise DataError(f"cannot concatenate token blocks of different lengths {sorted(lengths)}")
        return TokenSet(np.concatenate([s.tokens for s in full]), max(s.vocab_size for s in full), full[0].tokenizer)


def concat_sets(sets: list) -> Any:
    """Concatenate sets of one data kind (``ImageSet`` or ``TokenSet``)."""
    full = [s for s in sets if len(s)]
    if not full:
        raise DataError("cannot concatenate zero sample sets")
    return type(full[0]).concat(full)


@dataclass
class RealData:
    """The real training set and the held-out real test set.  ``full_train``: the whole real
    training set when ``data.limit`` cut ``train`` short (the domain classifier trains on it).
    ``truth``: the known distribution the data were drawn from (synthetic sources such as
    zipf-markov), else None."""

    train: Any
    test: Any
    full_train: Optional[Any] = None
    truth: Any = None


DATASETS: Registry = Registry("dataset", section=DataConfig, slot="name")


def split_holdout(full: ImageSet, test_fraction: float, seed: int) -> RealData:
    """Stratified (when labelled) random split into train and test."""
    rng = np.random.default_rng(seed)
    n = len(full)
    if full.labelled:
        test_idx = []
        for c in range(full.num_classes):
            idx = np.flatnonzero(full.labels == c)
            rng.shuffle(idx)
            test_idx.append(idx[: int(round(len(idx) * test_fraction))])
        test = np.sort(np.concatenate(test_idx))
    else:
        test = np.sort(rng.permutation(n)[: int(round(n * test_fraction))])
    mask = np.ones(n, dtype=bool)
    mask[test] = False
    return RealData(train=full.subset(np.flatnonzero(mask)), test=full.subset(test))


def load_real(cfg: DataConfig, cache_dir: Optional[Path] = None) -> RealData:
    """Load ``cfg.name`` and apply ``cfg.limit``."""
    loader = DATASETS.get(cfg.name)
    real = loader(cfg, cache_dir)
    if cfg.limit is not None and cfg.limit < len(real.train):
        rng = np.random.default_rng(cfg.split_seed + 1)
        keep = np.sort(rng.permutation(len(real.train))[: cfg.limit])
        real = RealData(real.train.subset(keep), real.test, full_train=real.train, truth=real.truth)
    if cfg.test_limit is not None and cfg.test_limit < len(real.test):
        rng = np.random.default_rng(cfg.split_seed + 2)
        real = RealData(real.train, real.test.subset(np.sort(rng.permutation(len(real.test))[: cfg.test_limit])),
                        full_train=real.full_train, truth=real.truth)
    log.info("data %s: %d train, %d test, shape %s", cfg.name, len(real.train), len(real.test), real.train.shape)
    return real
