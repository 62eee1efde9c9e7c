"""Feature extractors: registry, pixels, classifier, and the FID Inception-v3 (with random weights)."""
import numpy as np
import pytest
import torch

from genloop.loading import from_dict, load_raw
from genloop.data import RealData, load_real
from genloop.metrics import MetricContext
from genloop.metrics.features import EXTRACTORS, FeatureExtractor, extractor_for, features_of
from genloop.metrics.features import inception as inc
from genloop.runfolder import save_weights


def make_ctx(overrides=(), real=None, cache_dir=None):
    cfg = from_dict(load_raw(None, list(overrides)))
    if real is None:
        real = load_real(cfg.data)
    return MetricContext(config=cfg, real=real, device=torch.device("cpu"), cache_dir=cache_dir)


def random_inception_state(seed=0):
    """A state dict with the published file's key names and shapes, random values that keep activations alive."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, t in inc.FIDInceptionV3().state_dict().items():
        if not t.is_floating_point():
            state[key] = t.clone()
        elif key.endswith("conv.weight") or key == "fc.weight":
            fan_in = t[0].numel()
            state[key] = torch.randn(t.shape, generator=gen) * (2.0 / fan_in) ** 0.5
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(t.shape, generator=gen)
        elif key.endswith("bn.weight"):
            state[key] = 1.0 + 0.1 * torch.randn(t.shape, generator=gen)
        else:  # biases and running means
            state[key] = 0.1 * torch.randn(t.shape, generator=gen)
    return state


@pytest.fixture
def one_thread():
    """Tiny Inception batches run faster on one thread, and much faster on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / "pt_inception-random.pth"
    torch.save(random_inception_state(), path)
    return path


def test_registry_names_and_duplicates():
    assert {"inception", "classifier", "pixels"} <= set(EXTRACTORS.names())
    with pytest.raises(ValueError, match="already registered"):
        EXTRACTORS.register("pixels")(lambda ctx: None)


def test_pixels_features():
    ctx = make_ctx()
    ex = EXTRACTORS.get("pixels")(ctx)
    assert isinstance(ex, FeatureExtractor) and ex.name == "pixels"
    imgs = np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4) * 5
    f = ex(imgs)
    assert f.dtype == np.float32 and f.shape == (2, 48)
    np.testing.assert_allclose(f, imgs.reshape(2, -1) / 255.0, rtol=1e-6)
    vectors = np.random.default_rng(0).standard_normal((5, 3, 1, 1)).astype(np.float32)
    np.testing.assert_array_equal(ex(vectors), vectors.reshape(5, 3))


def test_classifier_features():
    ctx = make_ctx(["metrics.classifier.steps=20", "metrics.classifier.width=32"])
    ex = extractor_for(ctx, "classifier")
    assert extractor_for(ctx, "classifier") is ex  # built once per context
    f = ex(ctx.real.test.images[:50])
    assert f.dtype == np.float32 and f.shape == (50, 32)
    np.testing.assert_allclose(f, ctx.classifier().features(ctx.real.test.images[:50]), rtol=1e-6)


def test_inception_architecture_matches_published_layout():
    net = inc.FIDInceptionV3()
    state = net.state_dict()
    # torchvision's Inception-v3 without the aux head, 1008 classes: 94 conv+BN layers.
    assert sum(p.numel() for p in net.parameters()) == 23_850_960
    assert sum(k.endswith("conv.weight") for k in state) == 94
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert state["Mixed_6b.branch7x7_2.conv.weight"].shape == (128, 128, 1, 7)
    assert state["Mixed_7c.branch_pool.conv.weight"].shape == (192, 2048, 1, 1)
    assert state["fc.weight"].shape == (1008, 2048)
    assert not any(k.startswith("AuxLogits") for k in state)


def test_inception_loads_weights_from_env_var(weights_file, monkeypatch, one_thread):
    monkeypatch.setenv(inc.ENV_VAR, str(weights_file))
    ctx = make_ctx(["metrics.features=inception", "metrics.inception.batch_size=2"])
    ex = EXTRACTORS.get("inception")(ctx)
    assert ex.batch_size == 2 and ex.dim == 2048
    saved = torch.load(weights_file, map_location="cpu", weights_only=True)
    assert torch.equal(ex.net.state_dict()["fc.weight"], saved["fc.weight"])
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (2, 1, 16, 16), dtype=np.uint8)
    f = ex(grey)
    assert f.dtype == np.float32 and f.shape == (2, 2048)
    assert np.isfinite(f).all() and f.std() > 0
    # Grey images are repeated to three channels.
    np.testing.assert_allclose(ex(np.repeat(grey, 3, axis=1)), f, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="uint8"):
        ex(grey.astype(np.float32))


def test_inception_from_hub_cache_as_safetensors(tmp_path, monkeypatch):
    monkeypatch.delenv(inc.ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    target = tmp_path / "hub" / "checkpoints" / (inc.WEIGHTS_NAME[:-4] + ".safetensors")
    save_weights(target, random_inception_state(1))
    assert inc.find_weights() == target
    net, path = inc.load_inception()
    assert path == target and not net.training


def test_missing_weights_error_says_what_and_where(tmp_path, monkeypatch):
    monkeypatch.delenv(inc.ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(inc.InceptionWeightsError) as err:
        inc.find_weights()
    msg = str(err.value)
    assert inc.WEIGHTS_URL in msg
    assert str(tmp_path / "hub" / "checkpoints" / inc.WEIGHTS_NAME) in msg
    assert "metrics.inception.weights" in msg and inc.ENV_VAR in msg
    with pytest.raises(inc.InceptionWeightsError, match="does not exist"):
        inc.find_weights(tmp_path / "nope.pth")
    monkeypatch.setenv(inc.ENV_VAR, str(tmp_path / "missing.pth"))
    with pytest.raises(inc.InceptionWeightsError, match="no such file"):
        inc.find_weights()


class NotATensor:
    pass


def test_wrong_or_unsafe_weight_files_are_rejected(tmp_path):
    bad = tmp_path / "bad.pth"
    state = random_inception_state()
    del state["Mixed_7c.branch_pool.conv.weight"]
    torch.save(state, bad)
    with pytest.raises(inc.InceptionWeightsError, match="1 missing"):
        inc.load_inception(bad)
    pickled = tmp_path / "object.pth"
    torch.save({"x": NotATensor()}, pickled)
    with pytest.raises(inc.InceptionWeightsError, match="weights-only"):
        inc.load_inception(pickled)


def test_features_of_memoises_and_caches_on_disk(tmp_path):
    ctx = make_ctx(cache_dir=tmp_path)
    ex = extractor_for(ctx, "pixels")
    imgs = ctx.real.train.images[:100]
    a = features_of(ctx, ex, imgs, persist=True)
    files = list(tmp_path.glob("features-pixels-*.npz"))
    assert len(files) == 1
    # A fresh context (a later run) loads the file instead of extracting again.
    ctx2 = make_ctx(cache_dir=tmp_path)

    class Exploding(type(ex)):
        def __call__(self, images):
            raise AssertionError("features were recomputed")

    b = features_of(ctx2, Exploding(), imgs, persist=True)
    np.testing.assert_array_equal(a, b)
    assert features_of(ctx2, Exploding(), imgs) is b  # in-memory memo
