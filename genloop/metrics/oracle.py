"""The image oracle: a classifier of labelled real images that decides whether an image
shows a given class, built to be independent of the metrics' judge
(``domain_classifier.py``).  ``verify`` uses its decision as the truth for images;
``curate`` uses its probabilities as the filter's score.

How it differs from the judge:

- **Data.**  The judge trains on every real training image (``RealData.full_train``).
  The oracle trains on the *oracle half* of the real test set (a class-stratified half
  drawn with the fixed seed ``ORACLE_SPLIT_SEED``), images the judge never sees; its error
  rates are measured on the other half, the *check half*, which neither of them trains on.
- **Features.**  The judge learns its features from pixels (a CNN or an MLP).  The
  oracle sees no pixel values: only histograms of gradient orientations (HOG-like: 9
  unsigned orientation bins per cell of a 4 x 4 grid, weighted by gradient magnitude,
  L2-normalised over blocks of 2 x 2 cells, square-rooted), a fixed hand-made map.
- **Model.**  Multinomial logistic regression (scikit-learn, L2, C = ``ORACLE_C``) on
  the standardised features, a convex fit with one optimum: no seed, no initial weights.

Its decision for an image x and a label y: accept when y is the oracle's most probable
class and its probability is at least a threshold (0: the most probable class).  Its
quality (``error_rates``): ``accuracy`` on the check half, ``false_reject`` (check
images with their own label rejected) and ``false_accept`` (check images with each
wrong label accepted, averaged over all wrong labels).  The shared part of the two is
only the task and the real distribution; where they err on the same image it is
because the image is ambiguous, not because one copies the other.
"""
from __future__ import annotations

import logging

import numpy as np

from ..data import ImageSet, RealData
from ..utils import digest

log = logging.getLogger(__name__)

ORACLE_SPLIT_SEED = 20240  # the oracle / check halves of the test set (fixed: one truth for every run seed)
ORACLE_C = 0.1             # L2 strength of the logistic regression (best of 0.1, 1, 10 on the 8x8 digits)
WEAK_ACCURACY = 0.8       # below this accuracy on the check half a warning is logged
_BINS, _CELLS = 9, 4

_cache: dict[str, "Oracle"] = {}


def gradient_features(images: np.ndarray) -> np.ndarray:
    """HOG-like features of uint8 images (N, C, H, W) -> float64 (N, 9 * 4 * (4 - 1)^2):
    per cell of a 4 x 4 grid, a histogram of unsigned gradient orientations (9 bins,
    linear interpolation between bins) weighted by the gradient magnitude; each 2 x 2 block
    of cells L2-normalised; square roots."""
    x = images.astype(np.float64).mean(1) / 255.0
    n, h, w = x.shape
    if h < _CELLS or w < _CELLS:
        raise ValueError(f"oracle: images of {h}x{w} pixels are too small for a {_CELLS}x{_CELLS} cell grid")
    gy, gx = np.gradient(x, axis=(1, 2))
    mag = np.hypot(gx, gy)
    pos = np.mod(np.arctan2(gy, gx), np.pi) / np.pi * _BINS
    lo = np.floor(pos).astype(np.int64) % _BINS
    frac = pos - np.floor(pos)
    rows = np.minimum(np.arange(h) * _CELLS // h, _CELLS - 1)
    cols = np.minimum(np.arange(w) * _CELLS // w, _CELLS - 1)
    cell = (rows[:, None] * _CELLS + cols[None, :]).reshape(-1)           # pixel -> cell
    hist = np.zeros((n, _CELLS * _CELLS * _BINS))
    base = np.arange(n)[:, None] * hist.shape[1]
    for b, weight in ((lo, 1.0 - frac), ((lo + 1) % _BINS, frac)):
        idx = base + (cell[None, :] * _BINS + b.reshape(n, -1))
        hist.reshape(-1)[:] += np.bincount(idx.reshape(-1), (mag * weight).reshape(-1), minlength=hist.size)
    hist = hist.reshape(n, _CELLS, _CELLS, _BINS)
    blocks = [hist[:, i:i + 2, j:j + 2].reshape(n, -1) for i in range(_CELLS - 1) for j in range(_CELLS - 1)]
    out = [b / np.sqrt((b ** 2).sum(1, keepdims=True) + 1e-6) for b in blocks]
    return np.sqrt(np.concatenate(out, 1))


def oracle_split(test: ImageSet) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the oracle half and the check half of the labelled real test set: each
    class's images shuffled with ``ORACLE_SPLIT_SEED``, the first ceil(n_c / 2) to the oracle."""
    rng = np.random.default_rng(ORACLE_SPLIT_SEED)
    fit, check = [], []
    for c in range(test.num_classes):
        idx = np.flatnonzero(test.labels == c)
        rng.shuffle(idx)
        half = (len(idx) + 1) // 2
        fit.append(idx[:half])
        check.append(idx[half:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(check))


class Oracle:
    """Logistic regression on ``gradient_features`` (module docstring)."""

    def __init__(self, train: ImageSet) -> None:
        from sklearn.linear_model import LogisticRegression

        self.num_classes = train.num_classes
        f = gradient_features(train.images)
        self.mean, self.scale = f.mean(0), f.std(0) + 1e-6
        self.classes = np.unique(train.labels)
        self.model = None
        if len(self.classes) > 1:
            self.model = LogisticRegression(C=ORACLE_C, max_iter=2000).fit((f - self.mean) / self.scale, train.labels)
        self.rates: dict[str, float] = {}

    def probs(self, images: np.ndarray) -> np.ndarray:
        """p(class | image), float64 (N, num_classes); classes absent from its training set get 0."""
        out = np.zeros((len(images), self.num_classes))
        if not len(images):
            return out
        if self.model is None:
            out[:, self.classes[0]] = 1.0
            return out
        f = (gradient_features(images) - self.mean) / self.scale
        out[:, self.classes] = self.model.predict_proba(f)
        return out

    def accepts(self, images: np.ndarray, labels: np.ndarray, threshold: float = 0.0) -> np.ndarray:
        """bool (N,): the oracle's most probable class is ``labels`` with probability >= ``threshold``."""
        p = self.probs(images)
        if not len(p):
            return np.zeros(0, bool)
        p_y = p[np.arange(len(p)), labels]
        return (p.argmax(1) == labels) & (p_y >= threshold)

    def error_rates(self, check: ImageSet, threshold: float = 0.0) -> dict[str, float]:
        """Accuracy, false-reject and false-accept rates on labelled real images ``check``
        (false accept: each image with each wrong label, averaged)."""
        if not len(check):
            return {"accuracy": float("nan"), "false_reject": float("nan"), "false_accept": float("nan")}
        p = self.probs(check.images)
        k = self.num_classes
        accept = (p == p.max(1, keepdims=True)) & (p >= threshold)             # (N, K): label j accepted
        own = accept[np.arange(len(p)), check.labels]
        wrong = (accept.sum(1) - own) / max(k - 1, 1)
        return {"accuracy": float((p.argmax(1) == check.labels).mean()), "false_reject": float(1.0 - own.mean()),
                "false_accept": float(wrong.mean())}


def image_oracle(real: RealData, threshold: float = 0.0) -> tuple[Oracle, dict[str, float]]:
    """The oracle of ``real``'s labelled images, trained on the oracle half of the test set,
    and its error rates at ``threshold`` measured on the check half; each built once per
    process and test set.  A ``ValueError`` saying what is missing when the data cannot have one."""
    test = real.test
    if test.kind != "images" or test.images.dtype != np.uint8 or len(test.shape) != 3:
        raise ValueError("it judges uint8 images")
    if not (real.train.labelled and test.labelled):
        raise ValueError("it judges whether an image shows its label, and these images have no labels")
    key = digest(test.images, test.labels, test.num_classes, ORACLE_SPLIT_SEED, ORACLE_C, "oracle-v1")
    fit, check = oracle_split(test)
    if key not in _cache:
        _cache[key] = Oracle(test.subset(fit))
    oracle = _cache[key]
    rates_key = f"{threshold:.6g}"
    if rates_key not in oracle.rates:
        rates = oracle.error_rates(test.subset(check), threshold)
        oracle.rates[rates_key] = rates
        log.info("image oracle (logistic regression on gradient histograms of %d real test images, checked on the "
                 "%d others): accuracy %.4f, false reject %.4f, false accept %.4f", len(fit), len(check),
                 rates["accuracy"], rates["false_reject"], rates["false_accept"])
        if rates["accuracy"] < WEAK_ACCURACY:
            log.warning("image oracle: right on only %.2f of the %d real check images, so its decisions are a poor "
                        "truth for these data (it is built for centred digit-like images)", rates["accuracy"], len(check))
    return oracle, oracle.rates[rates_key]
