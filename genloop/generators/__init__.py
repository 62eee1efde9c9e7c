"""Generators: anything with ``fit(train)`` and ``sample(labels, n)``.

A generator class is registered in ``GENERATORS`` under ``generator.name`` (with its
options dataclass, ``generator.<name>.<key>``) and constructed as ``cls(ctx: GenContext)``;
``ctx.options`` is its options object.  ``fit`` trains it on an ``ImageSet``;
``sample(labels, n)`` returns an ``ImageSet`` of ``n`` images (conditioned on
``labels`` when given, else unconditional); ``state_dict()`` returns the
tensors to save as the generation's checkpoint (safetensors).  ``fit`` and
``sample`` work on one data kind (``ImageSet`` or ``TokenSet``); a language
model also has ``log_probs(blocks) -> (N, L)`` (log-probability of each token
given its block prefix), which the text metrics use (perplexity on real text).

What a generator needs of the loop it declares with a class method
``needs(config) -> Needs``: the data's class labels (``GenContext.num_classes``), and a
validation set with a score of samples against it (``GenContext.validation``,
``GenContext.select_score``).  The loop gives each generator what it declares and
nothing else; it never asks which generator it runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

import numpy as np
import torch

from ..config import Config, GeneratorConfig
from ..data import ImageSet
from ..registry import Registry

GENERATORS: Registry = Registry("generator", section=GeneratorConfig, slot="name")


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class GenContext:
    """What a generator gets: the config, the data geometry, the number of classes
    (0 unless its ``needs`` asks for labels), a device, a seed, where to keep its
    resumable training state, a progress-bar switch, and, when its ``needs`` asks for
    validation, ``select_score(real, fake) -> float``, lower is better, on uint8 image
    arrays, and ``validation``, the images it compares samples with: the loop passes
    the metrics' validation score and the real test split, so validation images are
    never taken out of the generation's training set."""

    config: Config
    shape: tuple[int, int, int]
    num_classes: int
    device: torch.device
    seed: int
    state_path: Optional[Path] = None
    progress: bool = False
    desc: str = ""
    select_score: Optional[Callable[[np.ndarray, np.ndarray], float]] = None
    validation: Optional[ImageSet] = None
    real_train: Any = None  # the real training set (text generators draw their prompts from it)
    options: Any = None  # the generator's own options (``generator.<name>``; from the config when not given)

    def __post_init__(self) -> None:
        if self.options is None and hasattr(getattr(self.config, "generator", None), "options"):
            self.options = self.config.generator.options()


@dataclass(frozen=True)
class Needs:
    """What a generator asks of the loop: ``labels``, the data's classes (else
    ``GenContext.num_classes`` is 0); ``validation``, the real held-out set and a score
    (lower is better) of samples against it, computed on the feature extractor
    ``features`` (None: ``metrics.features``)."""

    labels: bool = False
    validation: bool = False
    features: Optional[str] = None


def needs_of(config: Config) -> Needs:
    """What ``config``'s generator needs (its class's ``needs(config)``).  A generator class
    without ``needs`` gets the labels when ``generator.conditional`` is on."""
    needs = getattr(GENERATORS.get(config.generator.name), "needs", None)
    if needs is None:
        return Needs(labels=bool(getattr(config.generator, "conditional", False)))
    return needs(config)


class Generator(Protocol):
    def fit(self, train: ImageSet) -> dict: ...

    def sample(self, labels: Optional[np.ndarray], n: int) -> ImageSet: ...

    def state_dict(self) -> dict: ...


def build_generator(ctx: GenContext) -> Generator:
    """The generator named by ``generator.name``, given its options (``ctx.options``)."""
    return GENERATORS.get(ctx.config.generator.name)(ctx)
