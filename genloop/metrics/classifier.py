"""The paper's metrics for small grey images: a classifier trained on real data
scores the generated images.

For samples ``x_i`` generated conditioned on label ``y_i`` and classifier
probabilities ``p(c | x_i)``:

- ``accuracy``      = mean_i [argmax_c p(c | x_i) == y_i]
- ``cross_entropy`` = mean_i -log p(y_i | x_i)                (nats; log_softmax of the logits in float64, exact)
- ``entropy``       = mean_i -sum_c p(c | x_i) log p(c | x_i)  (predictive entropy, nats)
- ``acc_class_k``   = accuracy over the samples conditioned on class k
- ``pred_frac_k``   = fraction of all samples predicted as class k (histogram)

Unconditional samples (no labels) get only ``entropy`` and ``pred_frac_k``;
an unlabelled dataset skips the metric (logged).

The reference row applies the same metrics to the real test set.
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from ..data import ImageSet
from . import METRICS, MetricContext
from .domain_classifier import DomainClassifier, fit_classifier  # noqa: F401  (where they were first)

log = logging.getLogger(__name__)


def class_accuracy_column(k: int) -> str:
    """The column of the accuracy on the samples conditioned on class ``k`` (what the report's
    per-class panels read)."""
    return f"acc_class_{k}"


def classifier_scores(log_probs: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, float]:
    """Metrics from log-probabilities ``log_probs`` float64 (N, K) (``log_softmax`` of the
    logits: cross-entropy is exact, not capped by rounding the probabilities) and
    conditioning ``labels`` int (N,)."""
    probs = np.exp(log_probs)
    pred = log_probs.argmax(1)
    correct = pred == labels
    out = {
        "accuracy": float(correct.mean()),
        "cross_entropy": float(-log_probs[np.arange(len(labels)), labels].mean()),
        "entropy": float(-(probs * log_probs).sum(1).mean()),
    }
    for k in range(num_classes):
        sel = labels == k
        out[class_accuracy_column(k)] = float(correct[sel].mean()) if sel.any() else float("nan")
    hist = np.bincount(pred, minlength=num_classes) / max(len(pred), 1)
    for k in range(num_classes):
        out[f"pred_frac_{k}"] = float(hist[k])
    return out


def unlabelled_scores(log_probs: np.ndarray, num_classes: int) -> dict[str, float]:
    """Label-free scores of log-probabilities ``log_probs`` float64 (N, K): predictive entropy and
    the predicted-class histogram (its spread shows mode collapse without labels)."""
    hist = np.bincount(log_probs.argmax(1), minlength=num_classes) / max(len(log_probs), 1)
    out = {"entropy": float(-(np.exp(log_probs) * log_probs).sum(1).mean())}
    out.update({f"pred_frac_{k}": float(hist[k]) for k in range(num_classes)})
    return out


@METRICS.register("classifier")
class ClassifierMetric:
    """Accuracy, cross-entropy, entropy, per-class accuracy and predicted-class histogram."""

    def __init__(self, ctx: MetricContext) -> None:
        self.test = ctx.real.test
        self.num_classes = ctx.real.train.num_classes
        self.clf = None
        if not ctx.real.train.labelled:
            log.warning("metrics: skipping the classifier metric: dataset %r has no labels", ctx.config.data.name)
            return
        self.clf = ctx.classifier()
        self._warned = False

    def _score(self, s: ImageSet) -> dict[str, float]:
        if self.clf is None:
            return {}
        # log_softmax in float64: exact cross-entropy however confident the classifier is
        # (-log(p + 1e-12) on float32 probabilities capped it at 27.6 nats).
        log_probs = torch.log_softmax(self.clf.logits(s.images).double(), 1).numpy()
        if s.labels is None:
            # Unconditional samples: no conditioning label, so only label-free scores.
            if not self._warned:
                log.warning("metrics: samples carry no labels (unconditional generator): "
                            "classifier accuracy, cross-entropy and per-class accuracy are skipped")
                self._warned = True
            return unlabelled_scores(log_probs, self.num_classes)
        return classifier_scores(log_probs, s.labels, self.num_classes)

    def reference(self) -> dict[str, float]:
        """The same metrics on the real test set."""
        return self._score(self.test)

    def __call__(self, fake: ImageSet) -> dict[str, float]:
        return self._score(fake)
