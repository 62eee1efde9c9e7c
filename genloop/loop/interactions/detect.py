"""``detect``: a detector removes what it flags from the real set plus the newest samples;
its learned detector (cross-fitted logistic regression) and the solver live here too."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...config import opt
from ...data import ImageSet
from ...data.vectors import as_vectors
from .base import INTERACTIONS, History, Interaction, Pool


@dataclass
class DetectOptions:
    """Options of ``detect`` (``loop.detect.<key>``)."""

    detector: str = opt("oracle", "oracle (knows provenance, errs at the rates below) or learned (a real-vs-generated logistic classifier trained each generation)", choices=("oracle", "learned"))
    recall: float = opt(0.9, "oracle: probability that a generated image is detected and removed", ge=0.0, le=1.0, old="detector_recall")
    false_positive_rate: float = opt(0.05, "oracle: probability that a real image is wrongly removed", ge=0.0, le=1.0, old="detector_false_positive_rate")


@INTERACTIONS.register("detect", options=DetectOptions)
class Detect(Interaction):
    """Candidates = real training set + previous generation's samples; a detector
    (oracle with given error rates, or a learned classifier) removes what it flags."""

    def next_pool(self, generation: int, history: History, rng: np.random.Generator) -> Pool:
        o: DetectOptions = self.config.loop.group("detect")
        cand = Pool.concat([Pool.real(self.real.train), history.samples(generation - 1)])
        synth = cand.origin >= 0
        if o.detector == "oracle":
            u = rng.random(len(cand))
            flagged = np.where(synth, u < o.recall, u < o.false_positive_rate)
        else:
            flagged = learned_detector(cand.data, synth, rng)
        keep = np.flatnonzero(~flagged)
        if not len(keep):
            raise ValueError(f"detect: the detector removed every candidate at generation {generation} "
                             f"(loop.detect.recall={o.recall}, loop.detect.false_positive_rate={o.false_positive_rate})")
        pool = cand.subset(keep)
        pool.stats = {"detect_recall": float(flagged[synth].mean()) if synth.any() else float("nan"),
                      "detect_false_positive_rate": float(flagged[~synth].mean()) if (~synth).any() else float("nan"),
                      "detect_removed": float(flagged.sum())}
        return pool


def _image_features(data: ImageSet) -> np.ndarray:
    """Pixels in [-1, 1] (vectors as they are), flattened; squares appended when D <= 256."""
    x = as_vectors(data.images, signed=True)
    return np.concatenate([x, x * x], 1) if x.shape[1] <= 256 else x


TEXT_FEATURES = 256  # hashed n-gram buckets of the learned text detector


def _text_features(data) -> np.ndarray:
    """Per block, the frequencies of its 1-, 2- and 3-grams hashed into 256 buckets
    (a fixed multiplicative hash of the token ids), plus the block's share of distinct tokens."""
    t = data.tokens.astype(np.int64)
    n, length = t.shape
    x = np.zeros((n, TEXT_FEATURES + 1))
    rows = np.arange(n)
    for order in (1, 2, 3):
        if length < order:
            continue
        h = np.zeros((n, length - order + 1), dtype=np.int64)
        for j in range(order):
            h = h * 1_000_003 + t[:, j:length - order + 1 + j] + 1
        b = (h * 2_654_435_761 + order) % TEXT_FEATURES
        np.add.at(x, (np.repeat(rows, b.shape[1]), b.reshape(-1)), 1.0 / b.shape[1])
    x[:, -1] = [len(np.unique(r)) / length for r in t]
    return x


# Features of the learned real-vs-generated detector, by data kind.
DETECTOR_FEATURES: dict[str, Callable] = {"images": _image_features, "tokens": _text_features}


def detector_features(data) -> np.ndarray:
    return DETECTOR_FEATURES[data.kind](data)


def learned_detector(data: ImageSet, synthetic: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cross-fitted real-vs-generated logistic regression: the candidates are split
    into two random halves, a model trained on each half flags the other half.
    Returns the flags (True: judged synthetic) of every candidate."""
    x = detector_features(data)
    y = synthetic.astype(np.float64)
    fold = np.zeros(len(x), dtype=bool)
    fold[rng.permutation(len(x))[: len(x) // 2]] = True
    flagged = np.zeros(len(x), dtype=bool)
    for train_mask in (fold, ~fold):
        test_mask = ~train_mask
        xt, yt = x[train_mask], y[train_mask]
        if len(np.unique(yt)) < 2:  # one kind only in this half: nothing to learn, flag by majority
            flagged[test_mask] = bool(yt.mean() > 0.5) if len(yt) else False
            continue
        mu, sd = xt.mean(0), xt.std(0) + 1e-8
        w, b = fit_logistic((xt - mu) / sd, yt)
        flagged[test_mask] = ((x[test_mask] - mu) / sd) @ w + b > 0
    return flagged


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float = 1.0, iters: int = 50) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression (scikit-learn's objective with C = ``c``:
    sum of log-losses + ||w||^2 / (2c), intercept not penalised).  Newton's method
    (a D x D solve per step, a few steps) for D <= 300 features; scikit-learn's
    L-BFGS above that."""
    n, d = x.shape
    if d > 300:
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=c, max_iter=1000).fit(x, y.astype(np.int64))
        return clf.coef_[0].astype(np.float64), float(clf.intercept_[0])
    xa = np.concatenate([x, np.ones((n, 1))], 1)
    theta = np.zeros(d + 1)
    reg = np.full(d + 1, 1.0 / c)
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(xa @ theta, -30, 30)))
        grad = xa.T @ (p - y) + reg * theta
        hess = (xa * (p * (1 - p))[:, None]).T @ xa + np.diag(reg) + 1e-10 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    return theta[:-1], float(theta[-1])
