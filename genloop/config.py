"""Typed configuration: the sections of a config and their shared keys.

The whole configuration is a tree of dataclasses (``Config``).  Every field
carries its help text and its allowed values in ``field(metadata=...)`` (``opt``);
the config reference (``docs/reference.md``, ``genloop config --reference``) is
generated from them, so the docs and the checks can never disagree.

This module holds the keys shared by every component of a family (``data.name``,
``generator.name``, ``loop.generations`` ...).  A component's own keys live next
to its code, in a small options dataclass it registers with itself
(``@DATASETS.register("gaussian", options=GaussianOptions)``): in its family's section
(a ``ComponentSection``) they are a group of their own (``data.gaussian.dim``,
``generator.mlp.width``, ``loop.curate.threshold``, ``metrics.kid.subset_size``), handed to the
component when it is built (``genloop.groups``).  The flat keys of earlier versions are
read as aliases (``genloop.migrate``).  Built-in components are registered by
``genloop.builtins`` before any configuration is resolved.

Loading (YAML files, dotted overrides, coercion, grids) is in ``genloop.loading``;
presets and the reference table in ``genloop.reference``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .groups import (ComponentSection, ConfigError, active_names, add_group, add_shared_group, as_kwargs,  # noqa: F401
                     groups_of, legacy_owners, note_once, old_name, opt, section)


# --------------------------------------------------------------------------- sections


@dataclass(eq=False)
class DataConfig(ComponentSection):
    """``data.name`` picks the source, ``data.tokenizer`` the tokenizer of text sources; each one's
    own options are ``data.<name>.<key>`` (``data.gaussian.dim``, ``data.pretrained.path``)."""

    key = "data"
    slots = ("name", "tokenizer")

    name: str = opt("digits", "dataset source (registry `genloop.data`): digits, mnist, folder, npz, shapes, gaussian; text: shakespeare, text, zipf-markov")
    root: Optional[str] = opt(None, "folder or file holding the dataset (mnist, folder, npz, text)")
    image_size: Optional[int] = opt(None, "resize images to this side length (None: native size; folder 64, shapes 32)", ge=4)
    test_fraction: float = opt(0.2, "fraction of the real images held out as the real test set", gt=0.0, lt=1.0)
    limit: Optional[int] = opt(None, "use at most this many real training images (None: all)", ge=1)
    skip_bad: bool = opt(False, "skip images that cannot be decoded (counted and logged) instead of failing")
    split_seed: int = opt(0, "seed of the train/test split (fixed, independent of the run seed)", ge=0)
    count: int = opt(1000, "points or images drawn by synthetic sources (gaussian, shapes) before the train/test split", ge=2)
    test_limit: Optional[int] = opt(None, "use at most this many real test items (images or text blocks; None: all)", ge=1)
    tokenizer: str = opt("word", "text: tokenizer trained once on the real training text and cached in the run folder (registry `genloop.data.tokenizers.TOKENIZERS`): word (lower-cased words, digits and punctuation, newline kept), char, bpe (byte-level BPE, needs the tokenizers package), or pretrained (a saved Hugging Face tokenizer from data.pretrained.path, not trained; for generator.name=hf-causal-lm)")
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
    dependent_slots = ("network", "schedule")

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


@dataclass(eq=False)
class LoopConfig(ComponentSection):
    """``loop.interaction`` picks the interaction model; ``loop.<interaction>`` holds its options
    (``loop.curate.threshold``), ``loop.schedule`` the synthetic-fraction schedule several read."""

    key = "loop"
    slots = ("interaction",)

    interaction: str = opt("replace", "interaction model (registry `genloop.loop.INTERACTIONS`)")
    generations: int = opt(10, "number of models trained in a chain (generation 0 trains on real data)", ge=1)
    sample_count: Optional[int] = opt(None, "images sampled per generation (None: as many as the real training set)", ge=1)


@dataclass
class ClassifierConfig:
    steps: int = opt(1500, "training steps of the domain classifier", ge=1)
    batch_size: int = opt(128, "its batch size", ge=1)
    lr: Optional[float] = opt(None, "its peak learning rate (None: 1e-3 for the MLP, 3e-3 for the CNN)", gt=0.0)
    width: int = opt(256, "hidden width of its MLP (images of side < 12); its CNN: width/16 base channels, width/2 features", ge=1)


@dataclass(eq=False)
class MetricsConfig(ComponentSection):
    """``metrics.names`` picks the metrics and ``metrics.features`` their feature extractor; each
    one's options are ``metrics.<name>.<key>`` (``metrics.kid.subset_size``,
    ``metrics.inception.weights``); ``metrics.onset`` the collapse-onset band."""

    key = "metrics"
    slots = ("names", "features")

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


# --------------------------------------------------------------------------- the old way


def add_options(section_cls: type, options_cls: type, owner: str) -> None:
    """Gone: options are no longer added to a section's flat keys.  One line says what to do."""
    raise TypeError(f"{owner}: add_options({section_cls.__name__}, {options_cls.__name__}) is gone; register the "
                    f"options with the component (@REGISTRY.register(name, options={options_cls.__name__})), or, "
                    f"when several components read them, as a group of their own (add_shared_group("
                    f"{section_cls.__name__}, name, {options_cls.__name__}, owner)); users write <section>.<name>.<key>")


# The loading machinery used to live here; these names still import from genloop.config.
_MOVED = {
    "genloop.loading": ("from_dict", "to_dict", "dump_yaml", "defaults", "deep_merge", "parse_override", "set_path",
                        "get_path", "read_yaml", "load_raw", "_build"),
    "genloop.validation": ("validate", "register_validator"),
    "genloop.chains": ("grid_axes", "Chain", "expand", "NON_IDENTITY_SECTIONS", "identity_diff", "diff"),
    "genloop.reference": ("PRESET_DIR", "preset_path", "presets", "reference"),
}


def __getattr__(name: str) -> Any:
    for module, names in _MOVED.items():
        if name in names:
            import importlib

            return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'genloop.config' has no attribute {name!r}")
