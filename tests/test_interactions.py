"""A shared base test that every registered interaction model passes, plus the
paper's ``replace`` specifics."""
import numpy as np
import pytest

from genloop.config import from_dict, load_raw
from genloop.data import ImageSet, RealData
from genloop.loop import INTERACTIONS, History
from genloop.loop.interactions import REAL, class_balanced_labels


def _real(n=300, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    rng.shuffle(labels)
    imgs = rng.integers(0, 256, (n, 1, 4, 4), dtype=np.uint8)
    test = ImageSet(imgs[:30].copy(), labels[:30].copy(), classes)
    return RealData(ImageSet(imgs, labels, classes), test)


def _fake_history(real, generations):
    """Each generation's 'samples': real images shifted by g, same labels, tagged by value."""
    def load(g):
        tr = real.train
        return ImageSet(np.full_like(tr.images, g + 1), tr.labels.copy(), tr.num_classes)
    return History(real, load)


@pytest.mark.parametrize("name", INTERACTIONS.names())
class TestEveryInteraction:
    def _make(self, name, extra=()):
        cfg = from_dict(load_raw(None, ["loop.generations=4", *extra]))
        real = _real()
        return INTERACTIONS.get(name)(cfg, real), real

    def test_generation_zero_trains_on_real_data(self, name):
        inter, real = self._make(name)
        pool = inter.training_set(0, _fake_history(real, 0), np.random.default_rng(0))
        assert np.all(pool.origin == REAL)
        assert len(pool) == len(real.train)

    def test_later_pools_are_valid_and_reproducible(self, name):
        inter, real = self._make(name)
        hist = _fake_history(real, 3)
        for g in (1, 2, 3):
            a = inter.training_set(g, hist, np.random.default_rng([0, g]))
            b = inter.training_set(g, hist, np.random.default_rng([0, g]))
            assert len(a) > 0 and a.data.images.dtype == np.uint8
            assert np.array_equal(a.data.images, b.data.images) and np.array_equal(a.origin, b.origin)
            assert a.origin.max() < g  # nothing from the future
            comp = a.composition()
            assert comp["pool_size"] == len(a)

    def test_sample_labels_have_the_real_class_counts(self, name):
        inter, real = self._make(name)
        labels, n = inter.sample_labels(1, np.random.default_rng(0))
        assert n == len(real.train)
        assert np.array_equal(np.bincount(labels, minlength=3), real.train.class_counts())


def test_replace_trains_only_on_previous_generation_with_same_size_and_counts():
    cfg = from_dict(load_raw(None, ["loop.interaction=replace"]))
    real = _real()
    inter = INTERACTIONS.get("replace")(cfg, real)
    hist = _fake_history(real, 3)
    pool = inter.training_set(3, hist, np.random.default_rng(0))
    assert np.all(pool.origin == 2) and np.all(pool.data.images == 3)
    assert len(pool) == len(real.train)
    assert np.array_equal(pool.data.class_counts(), real.train.class_counts())


def test_class_balanced_labels_proportional_when_n_differs():
    real = _real(n=300, classes=3)
    labels = class_balanced_labels(real.train, 100, np.random.default_rng(0))
    counts = np.bincount(labels, minlength=3)
    assert counts.sum() == 100 and counts.max() - counts.min() <= 1
