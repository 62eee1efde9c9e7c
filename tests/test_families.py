"""Shared base tests: every registered generator, network, dataset source, metric and
feature extractor meets its family's contract (samplers: ``TestEverySampler`` in
test_diffusion.py; interaction models: ``TestEveryInteraction`` in test_interactions.py).

Each class is parametrized over its registry's names at collection time, after
``genloop.builtins`` registered every built-in, so a new entry is tested the moment it
registers.  An entry that needs more than the defaults (files, text data, vectors) gets
them from the small tables below; a new entry that needs something else fails here
until it is added to them.  Sizes are tiny: the whole file runs in seconds.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import genloop.builtins  # noqa: F401  (every built-in registered before collection)
from genloop.data import DATASETS, load_real
from genloop.generators import GENERATORS, GenContext, build_generator
from genloop.loading import from_dict, load_raw
from genloop.metrics import METRICS, MetricContext
from genloop.metrics.features import EXTRACTORS
from genloop.models import NETWORKS, build_network
from genloop.runfolder import save_weights

CPU = torch.device("cpu")

# Tiny data of each kind: images (8x8 digits, labelled), vectors (unlabelled float32), tokens.
DATA = {
    "images": ["data.name=digits", "data.limit=80", "data.test_limit=40"],
    "vectors": ["data.name=gaussian", "data.count=80", "data.dim=2"],
    "tokens": ["data.name=zipf-markov", "data.count=40", "data.block_size=8", "data.words=20"],
    "categorical": ["data.name=categorical", "data.count=80"],
    "brackets": ["data.name=brackets", "data.count=80", "data.block_size=12"],
}
TINY = ["train.steps=3", "train.batch_size=16", "train.warmup_steps=1", "train.checkpoint_every=0",
        "generator.width=16", "generator.depth=1", "generator.heads=2", "generator.timesteps=20", "sampler.steps=2",
        "metrics.classifier.steps=10", "metrics.kid_subsets=3", "metrics.kid_subset_size=10", "metrics.draws=1",
        "metrics.features=pixels", "metrics.min_samples_warning=0", "decode.batch_size=16"]



def _hf_data(tmp_path) -> list:
    """hf-causal-lm: a tiny random GPT-2 and its tokenizer saved with save_pretrained (test_hf)."""
    pytest.importorskip("transformers")
    from test_hf import CORPUS, _tiny_model

    _tiny_model(tmp_path / "tiny-gpt2")
    (tmp_path / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    return ["data.name=text", f"data.root={tmp_path / 'corpus.txt'}", "data.tokenizer=pretrained",
            f"data.tokenizer_path={tmp_path / 'tiny-gpt2'}", "data.block_size=12",
            f"generator.model_path={tmp_path / 'tiny-gpt2'}"]


# Entries whose data are not images: a kind of DATA, or a set-up giving the overrides.
GENERATOR_DATA = {"ngram": "tokens", "gpt": "tokens", "hf-causal-lm": _hf_data, "categorical": "categorical"}
METRIC_DATA = {"text": "tokens", "categorical": "categorical", "brackets": "brackets", "frechet": "vectors", "wasserstein": "vectors", "variance_ratio": "vectors"}


def config(kind: str, *more: str):
    return from_dict(load_raw(None, DATA[kind] + TINY + list(more)))


def same(a: dict, b: dict) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


# --------------------------------------------------------------------------- generators


@pytest.mark.parametrize("name", GENERATORS.names())
class TestEveryGenerator:
    def make(self, name, real, cfg, tmp_path, seed=3):
        labelled = real.train.labelled and cfg.generator.conditional
        ctx = GenContext(config=cfg, shape=real.train.shape, num_classes=real.train.num_classes if labelled else 0,
                         device=CPU, seed=seed, state_path=tmp_path / f"state-{seed}", real_train=real.train)
        return build_generator(ctx)

    def test_fit_sample_state_and_repeatable(self, name, tmp_path):
        setup = GENERATOR_DATA.get(name, "images")
        data = DATA[setup] if isinstance(setup, str) else setup(tmp_path)
        cfg = from_dict(load_raw(None, data + TINY + [f"generator.name={name}"]))
        real = load_real(cfg.data)
        n = 10
        labels = real.train.labels[:n] if real.train.labelled else None
        outs = []
        for run in range(2):  # the same seed twice: the same samples
            gen = self.make(name, real, cfg, tmp_path / str(run))
            fit = gen.fit(real.train)
            assert isinstance(fit, dict)
            s = gen.sample(labels, n)
            assert type(s) is type(real.train) and len(s) == n and s.shape == real.train.shape
            if labels is not None:
                assert np.array_equal(s.labels, labels)
            state = gen.state_dict()
            assert isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
            outs.append(s.arrays())
        assert outs[0].keys() == outs[1].keys()
        assert all(np.array_equal(outs[0][k], outs[1][k]) for k in outs[0])


# --------------------------------------------------------------------------- networks


@pytest.mark.parametrize("name", NETWORKS.names())
class TestEveryNetwork:
    @pytest.mark.parametrize("shape", [(1, 8, 8), (3, 16, 16)])
    def test_predicts_noise_of_the_input_shape(self, name, shape):
        cfg = config("images", f"generator.network={name}")
        torch.manual_seed(0)
        net = build_network(name, shape, 10, cfg.generator).eval()
        x = torch.randn(4, *shape)
        t = torch.tensor([0, 5, 10, 19])
        y = torch.tensor([0, 3, 9, 10])  # 10: the null label of classifier-free guidance
        with torch.no_grad():
            out = net(x, t, y)
            again = net(x, t, y)
        assert out.shape == x.shape and out.dtype == torch.float32 and torch.isfinite(out).all()
        assert torch.equal(out, again)


# --------------------------------------------------------------------------- dataset sources


def _folder(root):
    from PIL import Image

    for c, cls in enumerate(("ant", "bee")):
        (root / cls).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(np.full((12, 10, 3), 40 * c + 10 * i, dtype=np.uint8)).save(root / cls / f"{i}.png")
    return ["data.image_size=8"]


def _npz(root):
    root.mkdir()
    rng = np.random.default_rng(0)
    np.savez(root / "d.npz", images=rng.integers(0, 256, (20, 1, 8, 8), dtype=np.uint8), labels=np.arange(20) % 2)
    return [f"data.root={root / 'd.npz'}"]


def _mnist(root):
    from test_data_sources import make_mnist

    make_mnist(root, n_train=20, n_test=8)
    return []


def _text(root):
    root.mkdir()
    (root / "a.txt").write_text("\n\n".join(f"paragraph {i} has some words in it ." for i in range(30)))
    return [f"data.root={root / 'a.txt'}", "data.block_size=8"]


# Sources that need files (or sizes) beyond the defaults: root -> extra overrides.
SOURCE_SETUP = {
    "folder": _folder, "npz": _npz, "mnist": _mnist, "text": _text,
    "shapes": lambda root: ["data.count=20", "data.num_classes=2", "data.image_size=8"],
    "gaussian": lambda root: ["data.count=30", "data.dim=3"],
    "zipf-markov": lambda root: ["data.count=30", "data.block_size=8", "data.words=10"],
    "shakespeare": lambda root: ["data.limit=20", "data.test_limit=10", "data.block_size=16"],
}


@pytest.mark.parametrize("name", DATASETS.names())
class TestEveryDataset:
    def test_loads_a_repeatable_split_of_one_kind(self, name, tmp_path):
        root = tmp_path / "root"
        extra = SOURCE_SETUP.get(name, lambda r: [])(root)
        if not any(o.startswith("data.root=") for o in extra) and root.exists():
            extra = [f"data.root={root}"] + extra
        cfg = from_dict(load_raw(None, [f"data.name={name}"] + extra))
        real = load_real(cfg.data, tmp_path / "cache")
        again = load_real(cfg.data, tmp_path / "cache")
        assert len(real.train) > 0 and len(real.test) > 0
        assert type(real.train) is type(real.test) and real.train.kind == real.test.kind
        assert real.train.shape == real.test.shape
        for a, b in ((real.train, again.train), (real.test, again.test)):
            arrays, other = a.arrays(), b.arrays()
            assert arrays.keys() == other.keys() and all(np.array_equal(arrays[k], other[k]) for k in arrays)
            back = a.from_arrays(arrays)  # what a run folder's samples.npz gives back
            assert type(back) is type(a) and len(back) == len(a)


# --------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("name", METRICS.names())
class TestEveryMetric:
    def test_scores_the_real_test_set_with_numbers_repeatably(self, name, tmp_path):
        cfg = config(METRIC_DATA.get(name, "images"), f"metrics.names=[{name}]")
        real = load_real(cfg.data)
        ctx = MetricContext(config=cfg, real=real, device=CPU, cache_dir=tmp_path, seed=0)
        metric = METRICS.get(name)(ctx)

        def score():
            return metric(real.test, model=None) if getattr(metric, "uses_model", False) else metric(real.test)

        row = score()
        assert isinstance(row, dict) and row
        for key, value in row.items():
            assert isinstance(key, str) and isinstance(value, (int, float)) and not isinstance(value, bool), (key, value)
        assert any(math.isfinite(v) for v in row.values())
        assert same(row, score())


# --------------------------------------------------------------------------- feature extractors


def _inception_weights(tmp_path):
    from test_metrics_features import random_inception_state

    path = tmp_path / "inception.safetensors"
    save_weights(path, random_inception_state())
    return [f"metrics.inception_weights={path}", "metrics.feature_batch_size=2"]


EXTRACTOR_SETUP = {"inception": _inception_weights}


@pytest.mark.parametrize("name", EXTRACTORS.names())
class TestEveryExtractor:
    def test_float32_rows_repeatably(self, name, tmp_path):
        cfg = config("images", f"metrics.features={name}", *EXTRACTOR_SETUP.get(name, lambda p: [])(tmp_path))
        real = load_real(cfg.data)
        ctx = MetricContext(config=cfg, real=real, device=CPU, cache_dir=tmp_path, seed=0)
        ex = EXTRACTORS.get(name)(ctx)
        assert ex.name == name and ex.key
        images = real.test.images[:3]
        feats = ex(images)
        assert isinstance(feats, np.ndarray) and feats.dtype == np.float32 and feats.ndim == 2
        assert len(feats) == 3 and np.isfinite(feats).all()
        if ex.dim is not None:
            assert feats.shape[1] == ex.dim
        assert np.array_equal(feats, ex(images))
        with pytest.raises(ValueError):
            ex(images[0])  # not (N, C, H, W)
