"""``classifier`` features: the penultimate layer of the domain classifier.

The classifier is trained once on the real training set (``ctx.classifier()``,
cached in ``ctx.cache_dir``), so it needs a labelled dataset.  Its features
suit the small grey images of the paper far better than Inception's.
"""
from __future__ import annotations

import numpy as np
import torch

from ...utils import digest
from . import EXTRACTORS, FeatureExtractor


class ClassifierFeatures(FeatureExtractor):
    name = "classifier"
    batch_size = 1024  # DomainClassifier.features batches by 1,024

    def __init__(self, clf) -> None:
        self.clf = clf
        state = clf.net.state_dict()
        # The key identifies the trained weights, so a retrained classifier never reuses stale features.
        self.key = "classifier-v1-" + digest(*[state[k].detach().cpu().numpy() for k in sorted(state)], sorted(state))

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.check(images)
        return np.asarray(self.clf.features(images), dtype=np.float32)


@EXTRACTORS.register("classifier")
def classifier(ctx) -> ClassifierFeatures:
    return ClassifierFeatures(ctx.classifier())
