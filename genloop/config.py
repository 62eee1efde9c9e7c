"""Typed configuration: the shared keys of every section, and how components add theirs.

The whole configuration is a tree of dataclasses (``Config``).  Every field
carries its help text and its allowed values in ``field(metadata=...)`` (``opt``);
the config reference (``docs/reference.md``, ``genloop config --reference``) is
generated from them, so the docs and the checks can never disagree.

This module holds the keys shared by every component of a family (``data.name``,
``generator.name``, ``loop.generations`` ...).  A component's own keys live next
to its code, in a small options dataclass it registers with itself
(``@GENERATORS.register("gmm", options=GMMOptions)``).  In a ``ComponentSection``
(``generator``) each component's options are a group of their own
(``generator.gmm.components``, ``generator.mlp.width``), built from its dataclass and
handed to the component when it is built; the dataclass may check itself (``check()``,
``check_with(config)``).  The other families still add their components' fields to
their section (``add_options``: ``data.dim``).  The flat keys of earlier versions are
read as aliases (``genloop.migrate``).  Built-in components are registered by
``genloop.builtins`` before any configuration is resolved.

Loading (YAML files, dotted overrides, coercion, grids) is in ``genloop.loading``;
presets and the reference table in ``genloop.reference``.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import typing
from dataclasses import dataclass, field
from typing import Any, Optional


class ConfigError(ValueError):
    """A bad key or value in a configuration; the message names it and the fix."""


def opt(default: Any, help: str, *, choices: Optional[tuple] = None, ge: Optional[float] = None,
        le: Optional[float] = None, gt: Optional[float] = None, lt: Optional[float] = None,
        old: Optional[str] = None, overrides: Optional[str] = None) -> Any:
    """A config field with its help text and allowed range.

    ``old``: the key's name in the flat layout of earlier versions, when it differs from the
    field's name (``generator.guidance_scale`` is now ``generator.ddpm.guidance_scale``: same
    name, no ``old`` needed).  ``overrides``: the field holds overrides of that section
    (``loop.lineages`` overrides ``generator`` keys)."""
    meta = {"help": help, "choices": choices, "ge": ge, "le": le, "gt": gt, "lt": lt}
    if old is not None:
        meta["old"] = old
    if overrides is not None:
        meta["overrides"] = overrides
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


def section(cls: type, help: str) -> Any:
    return field(default_factory=cls, metadata={"help": help, "section": True})


# --------------------------------------------------------------------------- component options

log = logging.getLogger(__name__)

# section class -> component name -> (its options dataclass, the slot field that names it)
_GROUPS: dict[type, dict[str, tuple[type, str]]] = {}
_NOTED: set = set()


def note_once(key: str, text: str) -> None:
    """Log ``text`` (a deprecation note) once per ``key`` in this process."""
    if key not in _NOTED:
        _NOTED.add(key)
        log.warning("%s", text)


def old_name(f: dataclasses.Field) -> str:
    """The flat key an option had before options were grouped by component (its own name unless
    ``opt(..., old=...)`` says otherwise)."""
    return f.metadata.get("old") or f.name


def add_group(section_cls: type, slot: str, name: str, options_cls: type, owner: str) -> None:
    """Register ``options_cls`` as the options of component ``name``, named by the field ``slot``
    of ``section_cls``: its keys are written ``<section>.<name>.<key>``."""
    if not dataclasses.is_dataclass(options_cls):
        raise TypeError(f"{owner}: options must be a dataclass of opt(...) fields, got {options_cls!r}")
    fields = {f.name for f in dataclasses.fields(section_cls)}
    groups = _GROUPS.setdefault(section_cls, {})
    if name in fields or name in groups:
        raise ValueError(f"{owner}: {name!r} is already a key of {section_cls.__name__}; register it under another name")
    groups[name] = (options_cls, slot)


def as_kwargs(options: Any) -> dict:
    """An options object as keyword arguments (field name -> value); {} for None."""
    return {} if options is None else {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}


def groups_of(section_cls: type) -> dict[str, tuple[type, str]]:
    """Component name -> (options dataclass, slot) registered for ``section_cls``, sorted by name."""
    return dict(sorted(_GROUPS.get(section_cls, {}).items()))


def active_names(section_cls: type, node: Any) -> list[str]:
    """The components a section (object or raw mapping) uses: the component of its first slot, and
    the components of the other slots its options' ``uses`` names (ddpm uses network and schedule).
    A list in a slot (a grid) counts every value."""
    get = node.get if isinstance(node, dict) else (lambda k, d=None: getattr(node, k, d))
    slots = getattr(section_cls, "slots", ())
    if not slots:
        return []

    def values(slot: str) -> list:
        v = get(slot)
        return [x for x in (v if isinstance(v, list) else [v]) if isinstance(x, str)]

    groups = groups_of(section_cls)
    out = values(slots[0])
    for primary in list(out):
        uses = getattr(groups.get(primary, (None,))[0], "uses", ())
        out += [v for slot in slots[1:] if slot in uses for v in values(slot)]
    return list(dict.fromkeys(out))


def legacy_owners(section_cls: type) -> dict[str, list[tuple[str, str]]]:
    """Flat key of the old layout -> [(component, field)] of the groups that own it now."""
    out: dict[str, list[tuple[str, str]]] = {}
    for comp, (ocls, _) in groups_of(section_cls).items():
        for f in dataclasses.fields(ocls):
            out.setdefault(old_name(f), []).append((comp, f.name))
    return out


@dataclasses.dataclass
class _NoOptions:
    pass


class ComponentSection:
    """A config section whose ``slots`` fields name components, each component's options a group
    ``<section>.<component>`` of its own (an instance of the options dataclass it registered).

    ``section.group("mlp")`` (or ``section.mlp``) is a group; ``section.options()`` the options of
    the component named by the first slot.  Reading a flat key of the old layout
    (``section.guidance_scale``) still works for code written before, with a note."""

    key = ""  # the section's key in the config (generator)
    slots: tuple = ()

    def __post_init__(self) -> None:
        self.__dict__["_groups"] = {n: o() for n, (o, _) in groups_of(type(self)).items()}

    def group(self, name: str) -> Any:
        groups = self.__dict__.setdefault("_groups", {})
        if name not in groups:
            entry = groups_of(type(self)).get(name)
            if entry is None:
                raise KeyError(f"{type(self).__name__}: no options registered for {name!r}")
            groups[name] = entry[0]()
        return groups[name]

    def set_group(self, name: str, value: Any) -> None:
        self.__dict__.setdefault("_groups", {})[name] = value

    def groups(self) -> dict[str, Any]:
        for name in groups_of(type(self)):
            self.group(name)
        return dict(sorted(self.__dict__["_groups"].items()))

    def options(self, slot: Optional[str] = None) -> Any:
        """The options of the component named by ``slot`` (the first slot by default); None when it
        registered none."""
        name = getattr(self, slot or self.slots[0])
        return self.group(name) if name in groups_of(type(self)) else None

    def active(self) -> list[str]:
        return active_names(type(self), self)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        groups = self.__dict__.get("_groups", {})
        flat = [c for c in self.active() if any(old_name(f) == name for f in dataclasses.fields(groups_of(type(self)).get(c, (_NoOptions,))[0]))]
        if (name in groups or name in groups_of(type(self))) and not flat:
            return self.group(name)
        for comp in flat:  # a flat key of the old layout, read by code written before
            opts = self.group(comp)
            for f in dataclasses.fields(opts):
                if old_name(f) == name:
                    section = getattr(type(self), "key", type(self).__name__)
                    note_once(f"read {section}.{name}", f"{section}.{name} is read from {section}.{comp}.{f.name}; "
                              f"components now receive their options (ctx.options) or read {section}.{comp}.{f.name}")
                    return getattr(opts, f.name)
        raise AttributeError(f"{type(self).__name__} has no key {name!r}")

    def __eq__(self, other: Any) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return (all(getattr(self, f.name) == getattr(other, f.name) for f in dataclasses.fields(self))
                and self.groups() == other.groups())


# --------------------------------------------------------------------------- sections


@dataclass
class DataConfig:
    name: str = opt("digits", "dataset source (registry `genloop.data`): digits, mnist, folder, npz, shapes, gaussian; text: shakespeare, text, zipf-markov")
    root: Optional[str] = opt(None, "folder or file holding the dataset (mnist, folder, npz, text)")
    image_size: Optional[int] = opt(None, "resize images to this side length (None: native size; folder 64, shapes 32)", ge=4)
    test_fraction: float = opt(0.2, "fraction of the real images held out as the real test set", gt=0.0, lt=1.0)
    limit: Optional[int] = opt(None, "use at most this many real training images (None: all)", ge=1)
    skip_bad: bool = opt(False, "skip images that cannot be decoded (counted and logged) instead of failing")
    split_seed: int = opt(0, "seed of the train/test split (fixed, independent of the run seed)", ge=0)
    count: int = opt(1000, "points or images drawn by synthetic sources (gaussian, shapes) before the train/test split", ge=2)
    test_limit: Optional[int] = opt(None, "use at most this many real test items (images or text blocks; None: all)", ge=1)
    tokenizer: str = opt("word", "text: tokenizer trained once on the real training text and cached in the run folder (registry `genloop.data.tokenizers.TOKENIZERS`): word (lower-cased words, digits and punctuation, newline kept), char, bpe (byte-level BPE, needs the tokenizers package), or pretrained (a saved Hugging Face tokenizer from data.tokenizer_path, not trained; for generator.name=hf-causal-lm)")
    block_size: int = opt(64, "text: tokens per block; a text data set is blocks of this many tokens, and every sample is one block", ge=2)
    vocab_size: int = opt(8000, "text: most frequent training tokens kept by the tokenizer (the rest map to <unk>); bpe: tokens in all, at least 258 (256 bytes, <bos>, <unk>); not used by pretrained", ge=2)
    min_count: int = opt(1, "text, word tokenizer: keep only tokens seen at least this often in the training text; bpe: merge only pairs seen at least this often", ge=1)


@dataclass(eq=False)
class GeneratorConfig(ComponentSection):
    """``generator.name`` picks the generator; ``generator.<component>`` holds each component's
    options (``generator.ddpm.guidance_scale``, ``generator.mlp.width``, ``generator.gpt.width``).
    ``generator.network`` and ``generator.schedule`` pick the denoising network and the noise
    schedule of the generators that use them (ddpm)."""

    key = "generator"
    slots = ("name", "network", "schedule")

    name: str = opt("ddpm", "generator (registry `genloop.generators`); its options: generator.<name>.<key>")
    network: str = opt("mlp", "denoising network of a diffusion generator (registry `genloop.models`): mlp (flattened small images), unet or unet_lite; its options: generator.<network>.<key>")
    schedule: str = opt("linear", "noise schedule of a diffusion generator (registry `genloop.diffusion.SCHEDULES`): linear or cosine; its options: generator.<schedule>.<key>")
    conditional: bool = opt(True, "condition on class labels (needs a labelled dataset)")


@dataclass(eq=False)
class SamplerConfig(ComponentSection):
    """``sampler.name`` picks the sampler; ``sampler.<name>`` holds its own options (``sampler.ddim.eta``)."""

    key = "sampler"
    slots = ("name",)

    name: str = opt("ddim", "sampler (registry `genloop.diffusion.SAMPLERS`): ddim, ddpm or dpm_solver (DPM-Solver++(2M)); its options: sampler.<name>.<key>")
    steps: int = opt(25, "number of denoising steps (DDIM; DDPM always uses all T)", ge=1)
    clip_x0: bool = opt(True, "clip the predicted x_0 to [-1, 1] at every step (improved-diffusion's clip_denoised)")
    batch_size: int = opt(2048, "images denoised at once", ge=1)


@dataclass
class DecodeConfig:
    temperature: float = opt(1.0, "text: divide the log-probabilities by this before sampling (1: the model's own distribution)", gt=0.0)
    top_k: int = opt(0, "text: sample only among the k most probable tokens (0: all)", ge=0)
    top_p: float = opt(1.0, "text: nucleus sampling, the smallest set of tokens with this much probability (1: all)", gt=0.0, le=1.0)
    repetition_penalty: float = opt(1.0, "text: CTRL repetition penalty on tokens already in the sequence (1: off; Shumailov et al. 3.0)", ge=1.0)
    beams: int = opt(1, "text: beam search with this many beams instead of sampling (1: sample)", ge=1)
    prompt_tokens: int = opt(0, "text: start each sample with the first this-many tokens of a random real training block; the model writes the rest (0: unprompted; Shumailov et al.: 64 with decode.keep_prompt=false)", ge=0)
    keep_prompt: bool = opt(True, "text: the prompt is the start of the sample block (true), or only context: the model writes a whole new block after it and the sample is the new tokens (false, as Shumailov et al.: 64-token real prompt, 64 new tokens)")
    batch_size: int = opt(256, "text: sequences generated at once", ge=1)


@dataclass
class TrainConfig:
    steps: int = opt(800, "optimizer steps per generation", ge=1)
    epochs: Optional[float] = opt(None, "train for this many passes over the training set instead of train.steps", gt=0.0)
    batch_size: int = opt(128, "training batch size", ge=1)
    lr: float = opt(2e-3, "peak learning rate (AdamW)", gt=0.0)
    weight_decay: float = opt(0.0, "AdamW weight decay", ge=0.0)
    warmup_steps: int = opt(50, "linear learning-rate warm-up steps", ge=0)
    lr_decay: str = opt("cosine", "learning-rate decay after warm-up", choices=("cosine", "linear", "none"))
    grad_clip: float = opt(1.0, "clip the gradient norm at this value (0: off)", ge=0.0)
    hflip: bool = opt(False, "augment with random horizontal flips (for natural images, not digits)")
    checkpoint_every: int = opt(200, "save the full training state every N steps (0: only at the end)", ge=0)
    select_every: int = opt(0, "keep the EMA weights with the best validation KID, measured every N steps and at the end, instead of the last ones (0: keep the last; the paper's flowers/birds code measures every epoch)", ge=0)
    select_samples: int = opt(500, "with train.select_every: images of the real test split used as the validation set (never taken from the generation's training set; at most the whole split); as many are sampled for each KID", ge=2)
    select_steps: Optional[int] = opt(None, "with train.select_every: sampler steps of the validation samples (None: sampler.steps; the Keras DDIM example uses 5)", ge=1)
    select_features: Optional[str] = opt(None, "with train.select_every: features of the validation KID (None: metrics.features)")
    precision: str = opt("auto", "arithmetic of the diffusion network on CUDA: fp32, or bf16 autocast (auto: bf16 on GPUs that support it, else fp32; always fp32 on CPU, where bf16 is ~400x slower)", choices=("auto", "fp32", "bf16"))


@dataclass
class LoopConfig:
    interaction: str = opt("replace", "interaction model (registry `genloop.loop.INTERACTIONS`)")
    generations: int = opt(10, "number of models trained in a chain (generation 0 trains on real data)", ge=1)
    sample_count: Optional[int] = opt(None, "images sampled per generation (None: as many as the real training set)", ge=1)


@dataclass
class ClassifierConfig:
    steps: int = opt(1500, "training steps of the domain classifier", ge=1)
    batch_size: int = opt(128, "its batch size", ge=1)
    lr: Optional[float] = opt(None, "its peak learning rate (None: 1e-3 for the MLP, 3e-3 for the CNN)", gt=0.0)
    width: int = opt(256, "hidden width of its MLP (images of side < 12); its CNN: width/16 base channels, width/2 features", ge=1)


@dataclass
class MetricsConfig:
    names: list[str] = opt(["classifier"], "metrics computed per generation (registry `genloop.metrics.METRICS`)")
    features: str = opt("classifier", "feature extractor for fd/kid/prdc (registry `genloop.metrics.EXTRACTORS`): inception, classifier, pixels")
    equal_n: bool = opt(True, "score fd/kid/prdc (and frechet/wasserstein on vectors) of every generation and of the reference at one sample count n = min(real training set, real held-out set, samples): larger sides are subsampled and averaged over metrics.draws draws (the column eval_n says n; variance_ratio: both sides of a row at one N); false: all images, so the reference (held-out vs training set) has other counts than the generations")
    draws: int = opt(5, "with metrics.equal_n: random subsamples averaged when a side has more than n images", ge=1)
    min_samples_warning: int = opt(1000, "log a warning when fd/kid/prdc get fewer samples than this (their estimates are biased or noisy below)", ge=0)
    classifier: ClassifierConfig = section(ClassifierConfig, "the domain classifier trained once on the real training set")


@dataclass
class StoreConfig:
    samples: str = opt("every", "which generations keep their samples (samples.npz, provenance.npz, grid.png) in the run folder: every, last (the final generation's; a resume that needs an older generation's samples recomputes it), none (metrics only)", choices=("every", "last", "none"))
    checkpoints: str = opt("every", "which generations keep their model (model.safetensors): every, last (the final generation's), none", choices=("every", "last", "none"))


@dataclass
class SweepConfig:
    gpus_per_chain: Optional[float] = opt(None, "GPUs each chain gets (fractions pack chains on one GPU, e.g. 0.25 = 4 per GPU); local workers get disjoint CUDA_VISIBLE_DEVICES, Ray tasks request num_gpus; None: 1 when CUDA devices exist and device is not cpu, else 0 (--gpus-per-chain)", ge=0.0)


@dataclass
class Config:
    name: str = opt("experiment", "a name for the experiment, shown in the report")
    seed: int = opt(0, "random seed of a chain (training, sampling, interaction)", ge=0)
    seeds: Optional[list[int]] = opt(None, "repeat every chain for each of these seeds (overrides `seed`)")
    device: str = opt("auto", "torch device: auto (cuda if present), cpu, cuda", choices=("auto", "cpu", "cuda"))
    plugins: list[str] = opt([], "modules imported before the config is checked, in this process and in every worker, so that the components they register can be named (e.g. [mypkg.mymodel]; also `genloop run --plugin`); installed packages register through the `genloop.plugins` entry-point group")
    tracking: list[str] = opt([], "experiment trackers that follow the run, one run per chain: any of mlflow, wandb, tensorboard (registry `genloop.tracking.TRACKERS`; each an optional extra, e.g. pip install 'genloop[mlflow]'); they write under RUN/tracking and work offline (see docs/tracking.md); a tracker that fails is switched off with one warning, never stopping the run; not part of a chain's identity")
    data: DataConfig = section(DataConfig, "the real dataset")
    generator: GeneratorConfig = section(GeneratorConfig, "the generative model trained each generation")
    sampler: SamplerConfig = section(SamplerConfig, "how images are drawn from a trained diffusion model")
    decode: DecodeConfig = section(DecodeConfig, "how text is drawn from a trained language model (ngram, gpt, hf-causal-lm)")
    train: TrainConfig = section(TrainConfig, "how each generation is trained")
    loop: LoopConfig = section(LoopConfig, "the interaction between models and data over generations")
    metrics: MetricsConfig = section(MetricsConfig, "what is measured on each generation's samples")
    store: StoreConfig = section(StoreConfig, "what each generation writes to the run folder")
    sweep: SweepConfig = section(SweepConfig, "how chains are placed on the machine (not part of a chain's identity: changing it does not change any number)")


# --------------------------------------------------------------------------- component options


# section class -> option name -> (options class, owners registered with it)
_OPTION_OWNERS: dict[type, dict[str, tuple[type, list[str]]]] = {}


def _copy_field(f: dataclasses.Field) -> dataclasses.Field:
    if f.default_factory is not dataclasses.MISSING:
        return field(default_factory=f.default_factory, metadata=f.metadata)
    return field(default=f.default, metadata=f.metadata)


def add_options(section_cls: type, options_cls: type, owner: str) -> None:
    """Add the fields of the dataclass ``options_cls`` (a component's options) to the config
    section ``section_cls``, keeping their help and bounds.

    The section's own (shared) keys come first, then the options of each component in
    the order of their owners' names (so the order does not depend on import order), then
    the section's subsections.
    ``owner`` names the component (``generator 'gmm'``) in errors.  One options class may
    serve several components (its fields are added once); a field name already taken by a
    shared key or another component's options is an error."""
    if not dataclasses.is_dataclass(options_cls):
        raise TypeError(f"{owner}: options must be a dataclass of opt(...) fields, got {options_cls!r}")
    if issubclass(section_cls, ComponentSection):
        raise ValueError(f"{owner}: {section_cls.__name__} keeps each component's options in a group of their own; "
                         f"register {options_cls.__name__} with the component (@REGISTRY.register(name, "
                         f"options={options_cls.__name__})) and read them as {section_cls.key}.<name>.<key>")
    have = {f.name: f for f in dataclasses.fields(section_cls)}
    owners = _OPTION_OWNERS.setdefault(section_cls, {})
    new = []
    for f in dataclasses.fields(options_cls):
        if f.name in have:
            prev = owners.get(f.name)
            if prev is not None and prev[0] is options_cls:
                prev[1].append(owner)
                continue
            by = f"{prev[1][0]}'s option" if prev else "a shared key"
            raise ValueError(f"{owner}: option {f.name!r} of {options_cls.__name__} is already {by} "
                             f"in {section_cls.__name__}; give it another name")
        new.append(f)
    if not new:
        return
    hints = {**typing.get_type_hints(section_cls), **typing.get_type_hints(options_cls)}
    for f in new:
        owners[f.name] = (options_cls, [owner])
        have[f.name] = f
    shared = [n for n in have if n not in owners and not have[n].metadata.get("section")]
    by_owner = sorted((n for n in have if n in owners), key=lambda n: owners[n][1][0])  # stable: keeps field order
    subsections = [n for n in have if have[n].metadata.get("section")]
    spec = [(n, hints[n], _copy_field(have[n])) for n in shared + by_owner + subsections]
    made = dataclasses.make_dataclass(section_cls.__name__, spec)
    for attr in ("__init__", "__repr__", "__eq__", "__match_args__", "__dataclass_fields__"):
        setattr(section_cls, attr, made.__dict__[attr])
    section_cls.__annotations__ = {n: tp for n, tp, _ in spec}


def option_owners(section_cls: type) -> dict[str, list[str]]:
    """Option name -> the components that registered it, for ``section_cls``."""
    return {k: list(v[1]) for k, v in _OPTION_OWNERS.get(section_cls, {}).items()}


# The loading machinery used to live here; these names still import from genloop.config.
_MOVED = {
    "genloop.loading": ("from_dict", "to_dict", "dump_yaml", "validate", "register_validator", "defaults",
                        "deep_merge", "parse_override", "set_path", "get_path", "read_yaml", "load_raw",
                        "grid_axes", "Chain", "expand", "NON_IDENTITY_SECTIONS", "identity_diff", "diff", "_build"),
    "genloop.reference": ("PRESET_DIR", "preset_path", "presets", "reference"),
}


def __getattr__(name: str) -> Any:
    for module, names in _MOVED.items():
        if name in names:
            import importlib

            return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'genloop.config' has no attribute {name!r}")
