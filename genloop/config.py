"""Typed configuration: one source of defaults, YAML files, dotted overrides, grids.

The whole configuration is a tree of dataclasses (``Config``).  Every field
carries its help text and its allowed values in ``field(metadata=...)``; the
config reference (``docs/config.md``, ``genloop config``) is generated from
them, so the docs and the checks can never disagree.

Loading is strict: an unknown key, a wrong type or an out-of-range value
raises ``ConfigError`` naming the key, the value and what is allowed, before
any work starts.

Grids: a list given where a scalar is expected (``generator.guidance_scale=
[1.0,0.1,1e-10]``), or a list of lists where a list is expected, is a sweep
axis; ``seeds: [0, 1, 2]`` is an axis over ``seed``.  ``expand`` turns a raw
config into one resolved ``Config`` per point of the grid (one *chain* each).
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml


class ConfigError(ValueError):
    """A bad key or value in a configuration; the message names it and the fix."""


def opt(default: Any, help: str, *, choices: Optional[tuple] = None, ge: Optional[float] = None,
        le: Optional[float] = None, gt: Optional[float] = None, lt: Optional[float] = None) -> Any:
    """A config field with its help text and allowed range."""
    meta = {"help": help, "choices": choices, "ge": ge, "le": le, "gt": gt, "lt": lt}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


def section(cls: type, help: str) -> Any:
    return field(default_factory=cls, metadata={"help": help, "section": True})


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
    dim: int = opt(1, "dimension D of low-dimensional vector data (gaussian): float32 (N, D, 1, 1)", ge=1)
    gaussian_mean: float = opt(0.0, "mean of every coordinate of the gaussian source")
    gaussian_std: float = opt(1.0, "standard deviation of every coordinate of the gaussian source", gt=0.0)
    num_classes: int = opt(5, "shapes: number of shape kinds, one class each (circle, square, triangle, cross, ring, star, hexagon, half-disc); data.count images", ge=1, le=8)
    workers: int = opt(0, "folder: threads decoding images when the cache is built (0: one per CPU core)", ge=0)
    bbox_crop: bool = opt(False, "folder, CUB-200-2011: crop each image to the square around its bounding box (bounding_boxes.txt and images.txt next to images/) instead of the centre square")
    bbox_padding: float = opt(0.25, "folder with data.bbox_crop: the square's side is (1 + padding) x the box's longer side (the paper's birds: 0.25)", ge=0.0)
    test_limit: Optional[int] = opt(None, "use at most this many real test items (images or text blocks; None: all)", ge=1)
    tokenizer: str = opt("word", "text: tokenizer trained once on the real training text and cached in the run folder (registry `genloop.data.text.TOKENIZERS`): word (lower-cased words, digits and punctuation, newline kept), char, bpe (byte-level BPE, needs the tokenizers package), or pretrained (a saved Hugging Face tokenizer from data.tokenizer_path, not trained; for generator.name=hf-causal-lm)")
    tokenizer_path: Optional[str] = opt(None, "text, data.tokenizer=pretrained: folder of a tokenizer saved with save_pretrained (usually the same as generator.model_path)")
    block_size: int = opt(64, "text: tokens per block; a text data set is blocks of this many tokens, and every sample is one block", ge=2)
    vocab_size: int = opt(8000, "text: most frequent training tokens kept by the tokenizer (the rest map to <unk>); bpe: tokens in all, at least 258 (256 bytes, <bos>, <unk>); not used by pretrained", ge=2)
    min_count: int = opt(1, "text, word tokenizer: keep only tokens seen at least this often in the training text; bpe: merge only pairs seen at least this often", ge=1)
    words: int = opt(50, "zipf-markov: number of words of the synthetic language (its vocabulary)", ge=2, le=400)
    zipf_exponent: float = opt(1.1, "zipf-markov: exponent s of the Zipf weights 1/rank^s of each context's next-word distribution", gt=0.0)


@dataclass
class GeneratorConfig:
    name: str = opt("ddpm", "generator (registry `genloop.generators`)")
    network: str = opt("mlp", "denoising network (registry `genloop.models`): mlp (flattened small images) or unet")
    width: int = opt(256, "hidden width of the MLP / base channels of the U-Net", ge=1)
    depth: int = opt(4, "residual blocks of the MLP / blocks per resolution of the U-Net", ge=1)
    channel_mult: list[int] = opt([1, 2, 2], "U-Net channel multipliers per resolution")
    conditional: bool = opt(True, "condition on class labels (needs a labelled dataset)")
    label_dropout: float = opt(0.1, "probability of replacing the label by the null label in training (classifier-free guidance)", ge=0.0, le=1.0)
    guidance_scale: float = opt(1.0, "w in eps = (1 + w) eps(x,t,y) - w eps(x,t,null); 0 = plain conditional. s = 1 + w in the other convention", ge=0.0)
    timesteps: int = opt(1000, "T, number of diffusion steps in training", ge=2)
    schedule: str = opt("linear", "noise schedule (registry `genloop.diffusion.SCHEDULES`): linear or cosine")
    beta_start: float = opt(1e-4, "first beta of the linear schedule", gt=0.0, lt=1.0)
    beta_end: float = opt(0.02, "last beta of the linear schedule", gt=0.0, lt=1.0)
    loss: str = opt("mse", "noise-prediction loss", choices=("mse", "l1"))
    loss_weighting: str = opt("none", "per-timestep loss weight: none, or min_snr (Hang et al. 2023, Min-SNR-5: min(SNR_t, 5) / SNR_t for noise prediction)", choices=("none", "min_snr"))
    ema_decay: float = opt(0.999, "decay of the exponential moving average of weights used for sampling (0: no EMA)", ge=0.0, lt=1.0)
    components: int = opt(4, "gmm: mixture components (per class when conditional; capped at the number of points)", ge=1)
    covariance_type: str = opt("full", "gmm: covariance of each component (scikit-learn covariance_type)", choices=("full", "diag", "spherical", "tied"))
    bandwidth: float = opt(0.1, "kde: kernel standard deviation h; a sample is a random training point + h N(0, I) (uint8 images: in [-1, 1] pixel units)", ge=0.0)
    order: int = opt(3, "ngram: n of the interpolated Kneser-Ney model (context of n-1 tokens)", ge=1, le=8)
    heads: int = opt(4, "gpt: attention heads (generator.width must be a multiple)", ge=1)
    dropout: float = opt(0.0, "gpt: dropout of the attention and MLP outputs in training", ge=0.0, lt=1.0)
    model_path: Optional[str] = opt(None, "hf-causal-lm: a local folder saved with save_pretrained (a causal LM such as OPT-125m or GPT-2)")


@dataclass
class SamplerConfig:
    name: str = opt("ddim", "sampler (registry `genloop.diffusion.SAMPLERS`): ddim, ddpm or dpm_solver (DPM-Solver++(2M))")
    steps: int = opt(25, "number of denoising steps (DDIM; DDPM always uses all T)", ge=1)
    eta: float = opt(0.0, "DDIM eta: 0 deterministic, 1 ancestral-like", ge=0.0, le=1.0)
    variance: str = opt("posterior", "DDPM reverse-step variance: posterior (beta~_t) or beta (beta_t)", choices=("posterior", "beta"))
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
    real_fraction: float = opt(0.5, "mix: fraction of each later generation's training set drawn from the real training set (the rest: the previous generation's samples)", ge=0.0, le=1.0)
    fresh_fraction: float = opt(0.1, "fresh: fraction of each later generation's training set that is new real images never used before (from a reserve held back from generation 0)", gt=0.0, lt=1.0)
    fresh_reserve: Optional[float] = opt(None, "fresh: fraction of the real training set held back as the reserve of fresh images (None: just enough that no image is ever reused)", gt=0.0, lt=1.0)
    curate_threshold: float = opt(0.9, "curate: keep a sample when the domain classifier gives its conditioning label at least this probability", ge=0.0, le=1.0)
    curate_top_fraction: Optional[float] = opt(None, "curate: keep this fraction of the samples, the most confident ones, instead of a threshold (needed for unlabelled data)", gt=0.0, le=1.0)
    curate_order: int = opt(2, "curate on text: n of the Kneser-Ney filter model (trained on the real training text) whose lowest-perplexity samples are kept; differs from the text metrics' judge (metrics.judge_order)", ge=1, le=8)
    detector: str = opt("oracle", "detect: oracle (knows provenance, errs at the rates below) or learned (a real-vs-generated logistic classifier trained each generation)", choices=("oracle", "learned"))
    detector_recall: float = opt(0.9, "detect (oracle): probability that a generated image is detected and removed", ge=0.0, le=1.0)
    detector_false_positive_rate: float = opt(0.05, "detect (oracle): probability that a real image is wrongly removed", ge=0.0, le=1.0)
    lineages: Optional[list[dict]] = opt(None, "ecosystem: one mapping of generator overrides per lineage, e.g. [{guidance_scale: 1.0}, {guidance_scale: 0.1}] (None: two lineages with the base generator)")
    shares: Optional[list[float]] = opt(None, "ecosystem: share of the shared pool each lineage contributes, one per lineage, summing to 1 (None: equal)", gt=0.0, le=1.0)


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
    k: int = opt(5, "nearest neighbours k of precision, recall, density and coverage (prdc's nearest_k)", ge=1)
    chunk_size: int = opt(1024, "rows per distance block in precision/recall/density/coverage (memory ~ chunk_size x N floats)", ge=1)
    distance_dtype: str = opt("float64", "precision of the pairwise distances: float64 (same counts as prdc 0.2) or float32 (about 2x faster)", choices=("float64", "float32"))
    kid_subsets: int = opt(100, "KID: number of random subsets averaged", ge=1)
    kid_subset_size: int = opt(1000, "KID: images per subset (capped at the smaller set size)", ge=2)
    inception_weights: Optional[str] = opt(None, "path of pt_inception-2015-12-05-6726825d.pth (or .safetensors); None: $GENLOOP_INCEPTION_WEIGHTS, then the torch hub cache")
    feature_batch_size: int = opt(50, "images per forward pass of the Inception feature extractor", ge=1)
    equal_n: bool = opt(True, "score fd/kid/prdc (and frechet/wasserstein on vectors) of every generation and of the reference at one sample count n = min(real training set, real held-out set, samples): larger sides are subsampled and averaged over metrics.draws draws (the column eval_n says n; variance_ratio: both sides of a row at one N); false: all images, so the reference (held-out vs training set) has other counts than the generations")
    draws: int = opt(5, "with metrics.equal_n: random subsamples averaged when a side has more than n images", ge=1)
    min_samples_warning: int = opt(1000, "log a warning when fd/kid/prdc get fewer samples than this (their estimates are biased or noisy below)", ge=0)
    judge_order: int = opt(3, "text metrics: n of the Kneser-Ney judge trained once on the real training text (ppl_judge)", ge=1, le=8)
    tail_max_count: int = opt(2, "text metrics: the real tail is the tokens seen at most this often in the real training text (tail_survival)", ge=1)
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
    data: DataConfig = section(DataConfig, "the real dataset")
    generator: GeneratorConfig = section(GeneratorConfig, "the generative model trained each generation")
    sampler: SamplerConfig = section(SamplerConfig, "how images are drawn from a trained diffusion model")
    decode: DecodeConfig = section(DecodeConfig, "how text is drawn from a trained language model (ngram, gpt, hf-causal-lm)")
    train: TrainConfig = section(TrainConfig, "how each generation is trained")
    loop: LoopConfig = section(LoopConfig, "the interaction between models and data over generations")
    metrics: MetricsConfig = section(MetricsConfig, "what is measured on each generation's samples")
    store: StoreConfig = section(StoreConfig, "what each generation writes to the run folder")
    sweep: SweepConfig = section(SweepConfig, "how chains are placed on the machine (not part of a chain's identity: changing it does not change any number)")


# --------------------------------------------------------------------------- typing helpers


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_section(tp: Any) -> bool:
    return dataclasses.is_dataclass(tp)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _is_list_type(tp: Any) -> bool:
    return typing.get_origin(_unwrap_optional(tp)[0]) is list


def _type_name(tp: Any) -> str:
    inner, optional = _unwrap_optional(tp)
    if typing.get_origin(inner) is list:
        name = f"list of {_type_name(typing.get_args(inner)[0])}"
    elif typing.get_origin(inner) is dict:
        name = "mapping"
    else:
        name = getattr(inner, "__name__", str(inner))
    return f"{name} or null" if optional else name


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _coerce(path: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against type ``tp``; return it converted (int -> float etc.)."""
    inner, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{path}: null is not allowed (expected {_type_name(tp)})")
    origin = typing.get_origin(inner)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: {value!r} is not a list (expected {_type_name(tp)})")
        (elem,) = typing.get_args(inner)
        return [_coerce(f"{path}[{i}]", v, elem) for i, v in enumerate(value)]
    if origin is dict or inner is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {value!r} is not a mapping")
        return dict(value)
    if inner is Any:
        return value
    if inner is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: {value!r} is not a boolean (use true or false)")
    if inner is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{path}: {value!r} is not an integer")
        return value
    if inner is float:
        if isinstance(value, bool):
            raise ConfigError(f"{path}: {value!r} is not a number")
        if isinstance(value, (int, float)):
            return float(value)
        # YAML 1.1 reads 1e-10 as a string; accept numeric-looking strings only.
        if isinstance(value, str) and _NUMBER.match(value.strip()):
            return float(value)
        raise ConfigError(f"{path}: {value!r} is not a number")
    if inner is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path}: {value!r} is not a string")
    raise ConfigError(f"{path}: unsupported type {tp}")  # pragma: no cover


def _check_range(path: str, value: Any, meta: dict) -> None:
    if value is None:
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{path}: {value!r} is not allowed (choose one of: {', '.join(map(str, choices))})")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and math.isnan(value):
            raise ConfigError(f"{path}: NaN is not allowed")
        for key, ok, word in (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
                              ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<")):
            bound = meta.get(key)
            if bound is not None and not ok(value, bound):
                raise ConfigError(f"{path}: {value!r} is out of range (must be {word} {bound})")


# --------------------------------------------------------------------------- build / dump


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping of keys, got {raw!r}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in raw if k not in fields]
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(f"{key}: unknown key (known keys here: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        path = f"{prefix}.{name}" if prefix else name
        if name not in raw:
            continue
        tp = hints[name]
        if _is_section(tp):
            kwargs[name] = _build(tp, raw[name], path)
        else:
            value = _coerce(path, raw[name], tp)
            if isinstance(value, list):
                for i, v in enumerate(value):
                    _check_range(f"{path}[{i}]", v, f.metadata)
            else:
                _check_range(path, value, f.metadata)
            kwargs[name] = value
    return cls(**kwargs)


def from_dict(raw: dict) -> Config:
    """Build and check a resolved ``Config`` (no grid axes) from a nested dict."""
    cfg = _build(Config, raw, "")
    validate(cfg)
    return cfg


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def dump_yaml(cfg: Any) -> str:
    data = cfg if isinstance(cfg, dict) else to_dict(cfg)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def validate(cfg: Config) -> None:
    """Cross-field checks that a single field's range cannot express."""
    g = cfg.generator
    if g.schedule == "linear" and g.beta_end <= g.beta_start:
        raise ConfigError(f"generator.beta_end: {g.beta_end} must be larger than generator.beta_start ({g.beta_start})")
    if cfg.sampler.name == "ddim" and cfg.sampler.steps > g.timesteps:
        raise ConfigError(f"sampler.steps: {cfg.sampler.steps} exceeds generator.timesteps ({g.timesteps})")
    if cfg.decode.prompt_tokens > cfg.data.block_size:
        raise ConfigError(f"decode.prompt_tokens: {cfg.decode.prompt_tokens} is more than data.block_size "
                          f"({cfg.data.block_size}); a sample is one block, its first prompt_tokens real")
    if (cfg.loop.interaction == "curate" and "text" in cfg.metrics.names
            and cfg.loop.curate_order == cfg.metrics.judge_order):
        raise ConfigError(f"loop.curate_order: {cfg.loop.curate_order} equals metrics.judge_order; the curate filter "
                          "must not be the text metrics' judge (choose another order for one of them)")
    for hook in _VALIDATORS:
        hook(cfg)


_VALIDATORS: list = []


def register_validator(fn):
    """Let a layer above add a cross-field check (e.g. registry names) without an import cycle."""
    _VALIDATORS.append(fn)
    return fn


@register_validator
def _check_lineages(cfg: Config) -> None:
    """``loop.lineages``: each a mapping of GeneratorConfig keys; ``loop.shares``: one per lineage, sum 1."""
    loop = cfg.loop
    if loop.lineages is not None:
        if not loop.lineages:
            raise ConfigError("loop.lineages: an empty list gives no lineage (use null for the default of two)")
        base = to_dict(cfg.generator)
        for i, over in enumerate(loop.lineages):
            _build(GeneratorConfig, {**base, **over}, f"loop.lineages[{i}]")
    if loop.shares is not None:
        n = len(loop.lineages) if loop.lineages is not None else 2
        if len(loop.shares) != n:
            raise ConfigError(f"loop.shares: {loop.shares} has {len(loop.shares)} entries but there are {n} lineages "
                              "(one share per entry of loop.lineages; two when loop.lineages is null)")
        if abs(sum(loop.shares) - 1.0) > 1e-6:
            raise ConfigError(f"loop.shares: {loop.shares} sums to {sum(loop.shares):g}, must sum to 1")


# --------------------------------------------------------------------------- raw dicts, overrides, grids


def defaults() -> dict:
    return to_dict(Config())


def deep_merge(base: dict, update: dict, prefix: str = "") -> dict:
    """Merge ``update`` into a copy of ``base``; keys must already exist in ``base``."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in out:
            raise ConfigError(f"{path}: unknown key (known keys here: {', '.join(out)})")
        if isinstance(out[key], dict) and _is_section_path(path):
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: expected a mapping of keys, got {value!r}")
            out[key] = deep_merge(out[key], value, path)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _field_at(path: str) -> tuple[Any, dict]:
    """Type and metadata of the field at a dotted ``path``."""
    cls: Any = Config
    parts = path.split(".")
    for i, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            where = ".".join(parts[:i]) or "config"
            raise ConfigError(f"{path}: unknown key (known keys in {where}: {', '.join(fields)})")
        tp = _hints(cls)[part]
        if i == len(parts) - 1:
            return tp, dict(fields[part].metadata)
        if not _is_section(tp):
            raise ConfigError(f"{path}: {'.'.join(parts[:i + 1])} is not a section")
        cls = tp
    raise AssertionError  # pragma: no cover


def _is_section_path(path: str) -> bool:
    return _is_section(_field_at(path)[0])


def parse_override(text: str) -> tuple[str, Any]:
    """``"a.b=value"`` -> ``("a.b", parsed value)``; values are read as YAML."""
    if "=" not in text:
        raise ConfigError(f"{text!r}: an override must look like key=value (e.g. loop.generations=3)")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"{text!r}: missing key before '='")
    _field_at(key)  # unknown keys fail here, with the list of known ones
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{key}: cannot read value {raw!r} ({exc.__class__.__name__})") from None
    return key, value


def set_path(raw: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def get_path(raw: dict, key: str) -> Any:
    node = raw
    for part in key.split("."):
        node = node[part]
    return node


def read_yaml(path: Union[str, Path]) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of keys")
    return data


def load_raw(files: Union[None, str, Path, list] = None, overrides: Optional[list[str]] = None,
             base: Optional[dict] = None) -> dict:
    """Defaults <- each YAML file (or dict) in order <- ``key=value`` overrides."""
    raw = defaults() if base is None else copy.deepcopy(base)
    if files is None:
        files = []
    elif isinstance(files, (str, Path, dict)):
        files = [files]
    for f in files:
        raw = deep_merge(raw, f if isinstance(f, dict) else read_yaml(f))
    for text in overrides or []:
        key, value = parse_override(text)
        set_path(raw, key, value)
    # Re-merge to validate the structure of overridden sections too.
    return deep_merge(defaults(), raw)


def grid_axes(raw: dict) -> list[tuple[str, list]]:
    """The sweep axes in ``raw``: (dotted key, values), in config order."""
    axes: list[tuple[str, list]] = []

    def walk(cls: type, node: dict, prefix: str) -> None:
        hints = _hints(cls)
        for f in dataclasses.fields(cls):
            path = f"{prefix}.{f.name}" if prefix else f.name
            tp = hints[f.name]
            value = node.get(f.name)
            if _is_section(tp):
                if isinstance(value, dict):
                    walk(tp, value, path)
                continue
            if path.startswith("sweep.") and isinstance(value, list):
                raise ConfigError(f"{path}: {value!r} is a sweep option, not a grid axis (give one value)")
            if path == "seeds":
                continue
            if isinstance(value, list):
                if _is_list_type(tp):
                    if value and all(isinstance(v, list) for v in value):
                        axes.append((path, value))
                else:
                    axes.append((path, value))

    walk(Config, raw, "")
    seeds = raw.get("seeds")
    if seeds is not None:
        if not isinstance(seeds, list) or not seeds:
            raise ConfigError(f"seeds: {seeds!r} must be a non-empty list of integers")
        axes.append(("seed", list(seeds)))
    for key, values in axes:
        if not values:
            raise ConfigError(f"{key}: an empty list gives no chain to run")
    return axes


@dataclass
class Chain:
    """One point of the grid: a resolved config and the settings that vary."""

    id: str
    config: Config
    varied: dict[str, Any]


def _short(key: str) -> str:
    return key.split(".")[-1]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "-".join(_fmt(v) for v in value)
    return str(value)


def expand(raw: dict) -> list[Chain]:
    """Expand grid axes into chains, each with a checked, resolved ``Config``."""
    axes = grid_axes(raw)
    chains = []
    keys = [k for k, _ in axes]
    for i, combo in enumerate(itertools.product(*[v for _, v in axes])):
        point = copy.deepcopy(raw)
        point["seeds"] = None
        varied = {}
        for key, value in zip(keys, combo):
            set_path(point, key, value)
            varied[key] = value
        cfg = from_dict(point)
        varied = {k: get_path(to_dict(cfg), k) for k in keys}
        label = "_".join(f"{_short(k)}={_fmt(v)}" for k, v in varied.items())
        cid = f"c{i:02d}" + (f"_{label}" if label else "")
        cid = re.sub(r"[^A-Za-z0-9_.=+-]", "", cid)
        chains.append(Chain(id=cid, config=cfg, varied=varied))
    return chains


# Sections that say how a run is stored and placed, not what it computes: a run folder
# may be resumed with other values (see Experiment.prepare).
NON_IDENTITY_SECTIONS = ("store", "sweep")


def identity_diff(a: dict, b: dict) -> list[str]:
    """``diff`` without the keys of ``NON_IDENTITY_SECTIONS`` (they change no number)."""
    return [k for k in diff(a, b) if k.split(".")[0] not in NON_IDENTITY_SECTIONS]


def diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two raw configs."""
    keys = []
    for k in sorted(set(a) | set(b)):
        path = f"{prefix}.{k}" if prefix else k
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += diff(va, vb, path)
        elif va != vb:
            keys.append(path)
    return keys


# --------------------------------------------------------------------------- presets and reference


PRESET_DIR = Path(__file__).parent / "presets"


def preset_path(name: str) -> Path:
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
        raise ConfigError(f"preset {name!r} does not exist (known presets: {known})")
    return path


def presets() -> dict[str, str]:
    """Preset name -> its first comment line (what it is and what it needs)."""
    out = {}
    for p in sorted(PRESET_DIR.glob("*.yaml")):
        first = ""
        for line in p.read_text().splitlines():
            if line.startswith("#"):
                first = line.lstrip("# ").strip()
                break
        out[p.stem] = first
    return out


def reference() -> str:
    """Markdown table of every key, its type, default and help."""
    lines = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]

    def walk(cls: type, prefix: str) -> None:
        hints = _hints(cls)
        inst = cls()
        for f in dataclasses.fields(cls):
            path = f"{prefix}.{f.name}" if prefix else f.name
            tp = hints[f.name]
            if _is_section(tp):
                lines.append(f"| **{path}** | section | | {f.metadata.get('help', '')} |")
                walk(tp, path)
                continue
            help_ = f.metadata.get("help", "")
            bounds = [f"{w} {f.metadata[k]}" for k, w in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")) if f.metadata.get(k) is not None]
            if f.metadata.get("choices"):
                bounds.append("one of " + ", ".join(map(str, f.metadata["choices"])))
            extra = f" ({'; '.join(bounds)})" if bounds else ""
            default = getattr(inst, f.name)
            lines.append(f"| `{path}` | {_type_name(tp)} | `{default!r}` | {help_}{extra} |")

    walk(Config, "")
    return "\n".join(lines) + "\n"
