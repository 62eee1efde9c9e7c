import numpy as np
import pytest
import torch

import genloop

genloop.load_builtins()  # every component registered, as the entry points do before any config is resolved

torch.set_num_threads(2)

# A config that exercises the whole loop in seconds.
TINY = [
    "loop.generations=2",
    "loop.sample_count=200",
    "train.steps=20",
    "train.batch_size=64",
    "train.warmup_steps=5",
    "train.checkpoint_every=10",
    "generator.mlp.width=64",
    "generator.mlp.depth=2",
    "generator.ddpm.timesteps=100",
    "sampler.steps=5",
    "metrics.classifier.steps=150",
]


@pytest.fixture
def tiny_overrides():
    return list(TINY)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped where torch sees no CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
