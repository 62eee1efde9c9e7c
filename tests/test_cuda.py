"""The CUDA paths, checked against fp32 and against the CPU: the ``ddpm`` generator with
bf16 autocast and channels-last (training losses and samples), every sampler on the GPU,
``hf-causal-lm`` on the GPU, and the Inception features on the GPU.

Every test here is marked ``cuda`` and skipped where torch sees no CUDA device
(``tests/conftest.py``); ``benchmarks/gpu_check.py`` runs them (``pytest -m cuda``).
Tolerances: bf16 keeps 8 bits of mantissa (relative rounding 2^-9 per operation) and
cuDNN convolutions run in TF32 by default (10 bits), so GPU numbers are compared with
relative tolerances of a few percent (bf16) or below one percent (fp32), and samples
against the spread between two independent samples of the same model.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.cuda

CUDA = torch.device("cuda")
CPU = torch.device("cpu")

# paper-mnist's network and schedule (28x28, T = 400, conditional U-Net), narrower and
# with a short DDIM sampler so that each test takes seconds.
MNIST_SHAPED = ["data.name=digits", "data.image_size=28", "data.root=null", "generator.ddpm.guidance_scale=1.0",
                "generator.unet.width=16", "train.epochs=null", "train.steps=20", "train.batch_size=32",
                "train.checkpoint_every=0", "sampler.name=ddim", "sampler.steps=10", "sampler.ddim.eta=0.0",
                "sampler.clip_x0=true", "sampler.batch_size=64"]


def _config(*extra):
    from genloop.loading import from_dict, load_raw
    from genloop.reference import preset_path

    return from_dict(load_raw(preset_path("paper-mnist"), [*MNIST_SHAPED, *extra]))


@pytest.fixture(scope="module")
def digits28():
    from genloop.data import load_real

    return load_real(_config().data)


def _diffusion(device, precision, seed=0):
    from genloop.generators import GenContext
    from genloop.generators.diffusion import DiffusionGenerator

    cfg = _config(f"train.precision={precision}", f"device={device.type}")
    return DiffusionGenerator(GenContext(config=cfg, shape=(1, 28, 28), num_classes=10, device=device, seed=seed))


def _independent_spread(gen, labels) -> float:
    """Mean absolute pixel difference between two samples of ``gen`` drawn from different noise."""
    a = gen._draw(labels, len(labels), torch.Generator().manual_seed(1), bar=False)
    b = gen._draw(labels, len(labels), torch.Generator().manual_seed(2), bar=False)
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _pixel_diff(a, b) -> float:
    return float(np.abs(a.images.astype(np.int16) - b.images.astype(np.int16)).mean())


def test_diffusion_bf16_channels_last_training_agrees_with_fp32_and_cpu(digits28):
    bf16 = _diffusion(CUDA, "bf16" if torch.cuda.is_bf16_supported() else "fp32")
    fp32 = _diffusion(CUDA, "fp32")
    cpu = _diffusion(CPU, "fp32")
    # the CUDA paths are switched on: channels-last U-Net, bf16 autocast only when asked for
    assert bf16.memory_format is torch.channels_last and fp32.memory_format is torch.channels_last
    conv = next(p for p in bf16.net.parameters() if p.ndim == 4)
    assert conv.is_cuda and conv.is_contiguous(memory_format=torch.channels_last)
    assert fp32.amp is None and cpu.amp is None and cpu.memory_format is torch.contiguous_format
    if torch.cuda.is_bf16_supported():
        assert bf16.amp is torch.bfloat16
    # same seed: same initial weights, batches, timesteps and noise; only the arithmetic differs
    losses = {name: g.fit(digits28.train)["train_loss"] for name, g in (("bf16", bf16), ("fp32", fp32), ("cpu", cpu))}
    assert all(np.isfinite(v) and 0.01 < v < 5 for v in losses.values()), losses
    assert losses["fp32"] == pytest.approx(losses["cpu"], rel=0.01), losses
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.03), losses
    assert all(p.dtype == torch.float32 for p in bf16.net.parameters())  # autocast keeps fp32 master weights


def test_diffusion_bf16_samples_agree_with_fp32_and_cpu_from_the_same_weights(digits28):
    trained = _diffusion(CUDA, "fp32")
    trained.fit(digits28.train)
    weights = trained.state_dict()
    gens = {}
    for name, device, precision in (("bf16", CUDA, "bf16" if torch.cuda.is_bf16_supported() else "fp32"),
                                    ("fp32", CUDA, "fp32"), ("cpu", CPU, "fp32")):
        gens[name] = _diffusion(device, precision)
        gens[name].load_state_dict(weights)
    labels = np.arange(64) % 10
    out = {name: g.sample(labels, 64) for name, g in gens.items()}
    for s in out.values():
        assert s.images.shape == (64, 1, 28, 28) and s.images.dtype == np.uint8
        assert np.array_equal(s.labels, labels)
    spread = _independent_spread(gens["fp32"], labels)
    assert spread > 5.0  # two noises give different images, so the comparisons below can fail
    assert _pixel_diff(out["fp32"], out["cpu"]) < 0.1 * spread
    assert _pixel_diff(out["bf16"], out["fp32"]) < 0.25 * spread


@pytest.mark.parametrize("name", ["ddim", "ddpm", "dpm_solver"])
def test_every_sampler_runs_on_the_gpu_and_agrees_with_the_cpu(name):
    from genloop.diffusion import SAMPLERS, make_schedule, sample_loop
    from genloop.models import build_network

    assert name in SAMPLERS.names()
    cfg = _config("generator.ddpm.timesteps=50").generator  # DDPM takes every step: 50 keep the CPU's side short
    schedule = make_schedule(cfg.schedule, cfg.ddpm.timesteps, cfg.options("schedule"))
    torch.manual_seed(0)
    net_cpu = build_network("unet", (1, 28, 28), 10, cfg.unet).eval()
    net_gpu = copy.deepcopy(net_cpu).to(CUDA)
    y = torch.arange(8) % 10
    outs = {}
    for label, dev, net in (("cpu", CPU, net_cpu), ("cuda", CUDA, net_gpu)):
        sampler = SAMPLERS.get(name)(schedule, steps=10, eta=0.0 if name != "ddpm" else 1.0, clip_x0=True,
                                     variance="beta")
        outs[label] = sample_loop(net, sampler, (8, 1, 28, 28), y.to(dev), 10, 1.0,
                                     torch.Generator().manual_seed(3), dev)
    assert outs["cuda"].device.type == "cuda" and outs["cuda"].dtype == torch.float32
    assert torch.isfinite(outs["cuda"]).all()
    err = (outs["cuda"].cpu() - outs["cpu"]).abs().mean().item()
    assert err < 0.02 * outs["cpu"].abs().mean().item() + 1e-4, err


# --------------------------------------------------------------------------- hf-causal-lm

CORPUS = ("The quick brown fox jumps over the lazy dog. A stitch in time saves nine.\n"
          "To be, or not to be: that is the question. All the world's a stage.\n\n") * 20


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A GPT-2 with random weights and no dropout, and a byte-level BPE tokenizer, saved with save_pretrained."""
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    root = tmp_path_factory.mktemp("hf-cuda")
    folder = root / "tiny-gpt2"
    backend = tokenizers.Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator([CORPUS], trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|endoftext|>",
                                                eos_token="<|endoftext|>")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=backend.get_vocab_size() + 4, n_positions=64, n_embd=32, n_layer=2,
                                  n_head=2, bos_token_id=0, eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0,
                                  attn_pdrop=0.0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(str(folder))
    fast.save_pretrained(str(folder))
    (root / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    return folder, root / "corpus.txt"


def _lm(tiny_lm, device, *extra):
    from genloop.data import load_real
    from genloop.generators import GenContext, build_generator
    from genloop.loading import from_dict, load_raw

    folder, corpus = tiny_lm
    cfg = from_dict(load_raw(None, [f"data.root={corpus}", "data.name=text", "data.tokenizer=pretrained",
                                    f"data.tokenizer_path={folder}", "data.block_size=12",
                                    "generator.name=hf-causal-lm", f"generator.model_path={folder}", "train.steps=6",
                                    "train.batch_size=8", "train.lr=1e-3", "train.warmup_steps=0",
                                    "train.checkpoint_every=0", "decode.batch_size=16", "metrics.names=[text]",
                                    f"device={device.type}", *extra]))
    real = load_real(cfg.data)
    ctx = GenContext(config=cfg, shape=real.train.shape, num_classes=0, device=device, seed=0, real_train=real.train)
    return build_generator(ctx), real


def test_hf_causal_lm_trains_scores_and_decodes_on_the_gpu_as_on_the_cpu(tiny_lm):
    gpu, real = _lm(tiny_lm, CUDA)
    cpu, _ = _lm(tiny_lm, CPU)
    loss_gpu = gpu.fit(real.train)["train_loss"]
    loss_cpu = cpu.fit(real.train)["train_loss"]
    assert all(p.is_cuda for p in gpu.model.parameters())
    assert np.isfinite(loss_gpu) and loss_gpu == pytest.approx(loss_cpu, rel=1e-3)
    lp_gpu, lp_cpu = gpu.log_probs(real.test), cpu.log_probs(real.test)
    assert lp_gpu.shape == lp_cpu.shape and np.isfinite(lp_gpu).all()
    assert np.abs(lp_gpu - lp_cpu).max() < 1e-2
    for extra in ([], ["decode.beams=3", "decode.repetition_penalty=3.0"]):
        gen, _ = _lm(tiny_lm, CUDA, *extra)
        gen.fit(real.train)
        out = gen.sample(None, 10)
        assert out.tokens.shape == (10, 12)
        assert out.tokens.min() >= 2 and out.tokens.max() < real.train.vocab_size  # the tokenizer's ids only


# --------------------------------------------------------------------------- inception features


def test_inception_features_on_the_gpu_agree_with_the_cpu():
    from genloop.metrics.features.inception import FEATURE_DIM, FIDInceptionV3, InceptionFeatures

    torch.manual_seed(0)
    net = FIDInceptionV3().eval()
    cpu = InceptionFeatures(copy.deepcopy(net), CPU, batch_size=4)
    gpu = InceptionFeatures(net, CUDA, batch_size=4)
    assert next(gpu.net.parameters()).is_cuda
    rng = np.random.default_rng(0)
    for images in (rng.integers(0, 256, (6, 1, 28, 28), dtype=np.uint8),
                   rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)):
        a, b = cpu(images), gpu(images)
        assert b.shape == (len(images), FEATURE_DIM) and b.dtype == np.float32 and np.isfinite(b).all()
        assert np.linalg.norm(a) > 0
        assert np.linalg.norm(b - a) / np.linalg.norm(a) < 1e-2
