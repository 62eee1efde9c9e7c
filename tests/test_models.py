"""Denoisers and domain classifiers: shapes, a few-step overfit on a handful of images,
and the classifier training on every real training image whatever data.limit is."""
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genloop.config import Config
from genloop.data import ImageSet, RealData, load_real
from genloop.metrics import MetricContext
from genloop.metrics.classifier import DomainClassifier, fit_classifier
from genloop.models import build_network
from genloop.models.classifier import CNNClassifier, MLPClassifier, build_classifier


def _cfg(**kw):
    base = dict(width=16, channel_mult=[1, 2], depth=1)
    base.update(kw)
    return types.SimpleNamespace(**base)


@pytest.mark.parametrize("name", ["unet", "unet_lite"])
@pytest.mark.parametrize("side", [14, 28])
def test_unet_shapes(name, side):
    net = build_network(name, (1, side, side), 10, _cfg())
    x = torch.randn(3, 1, side, side)
    out = net(x, torch.tensor([0, 5, 9]), torch.tensor([1, 10, 3]))  # 10 = the null label
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert net(x, torch.tensor([0, 5, 9]), None).shape == x.shape


def test_unet_lite_three_levels_and_colour():
    net = build_network("unet_lite", (3, 16, 16), 0, _cfg(channel_mult=[1, 2, 2], depth=2))
    x = torch.randn(2, 3, 16, 16)
    assert net(x, torch.tensor([1, 2]), None).shape == x.shape


def test_unet_lite_overfits_a_handful_of_images():
    """A few hundred steps on 4 fixed (x_t, t, y) triples drive the noise-prediction loss far down."""
    torch.manual_seed(0)
    net = build_network("unet_lite", (1, 14, 14), 10, _cfg())
    x = torch.randn(4, 1, 14, 14)
    t = torch.tensor([10, 200, 500, 900])
    y = torch.tensor([0, 1, 2, 3])
    target = torch.randn(4, 1, 14, 14)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    first = None
    for _ in range(150):
        loss = F.mse_loss(net(x, t, y), target)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.1 * first


def test_classifier_choice_by_image_side():
    assert isinstance(build_classifier((1, 8, 8), 10, 256), MLPClassifier)
    assert isinstance(build_classifier((1, 14, 14), 10, 256), CNNClassifier)
    assert isinstance(build_classifier((1, 28, 28), 10, 256), CNNClassifier)


@pytest.mark.parametrize("side", [14, 28])
def test_cnn_classifier_shapes(side):
    net = build_classifier((1, side, side), 10, 256).eval()
    x = torch.randn(5, 1, side, side)
    assert net(x).shape == (5, 10)
    assert net.features(x).shape == (5, 128)


def test_cnn_classifier_overfits_a_handful_of_images():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 1, 14, 14), dtype=np.uint8)
    labels = np.arange(8) % 4
    net = build_classifier((1, 14, 14), 4, 128)
    ccfg = types.SimpleNamespace(steps=150, batch_size=8, lr=None)
    fit_classifier(net, ImageSet(images, labels, 4), ccfg, torch.device("cpu"), seed=0)
    with torch.no_grad():
        pred = net(torch.from_numpy(images).float() / 127.5 - 1).argmax(1).numpy()
    assert (pred == labels).mean() >= 0.875


def test_classifier_trains_on_all_real_training_images_whatever_the_limit(tmp_path):
    cfg = Config()
    cfg.data.limit = 100
    cfg.metrics.classifier.steps = 5
    real = load_real(cfg.data)
    assert len(real.train) == 100 and real.full_train is not None and len(real.full_train) > 1000
    seen = {}
    import genloop.metrics.domain_classifier as mc

    orig = mc.fit_classifier

    def spy(net, train, ccfg, device, seed):
        seen["n"] = len(train)
        return orig(net, train, ccfg, device, seed)

    mc.fit_classifier = spy
    try:
        DomainClassifier.trained(MetricContext(config=cfg, real=real, device=torch.device("cpu")))
    finally:
        mc.fit_classifier = orig
    assert seen["n"] == len(real.full_train)
    # without a limit there is no separate full set: the training set is all of it
    assert load_real(Config().data).full_train is None
    assert isinstance(RealData(real.train, real.test).full_train, type(None))


def test_min_snr_weights_by_hand():
    """generator.loss_weighting=min_snr: w_t = min(SNR_t, 5) / SNR_t, SNR_t = abar_t / (1 - abar_t)."""
    from genloop.generators import GenContext, build_generator

    cfg = Config()
    cfg.generator.ddpm.timesteps = 100
    cfg.generator.mlp.width = 32
    cfg.generator.mlp.depth = 1
    cfg.generator.ddpm.loss_weighting = "min_snr"
    gen = build_generator(GenContext(config=cfg, shape=(1, 8, 8), num_classes=10, device=torch.device("cpu"), seed=0))
    ab = gen.schedule.alpha_bar
    for t in (0, 10, 50, 99):
        snr = float(ab[t] / (1 - ab[t]))
        assert float(gen._weights[t]) == pytest.approx(min(snr, 5.0) / snr, rel=1e-6)
    assert float(gen._weights[0]) < 0.01 and float(gen._weights[99]) == pytest.approx(1.0)
    cfg.generator.ddpm.loss_weighting = "none"
    assert build_generator(GenContext(config=cfg, shape=(1, 8, 8), num_classes=10, device=torch.device("cpu"),
                                      seed=0))._weights is None
