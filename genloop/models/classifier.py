"""Domain classifiers: the scorer of the paper's small-image metrics.

``MLPClassifier`` for small images (the 8x8 digits), ``CNNClassifier`` for
larger ones (28x28 MNIST, colour images).  Both expose ``features(x)`` (the
penultimate layer, used as a feature extractor) and ``head``.
"""
from __future__ import annotations

import torch
from torch import nn


class MLPClassifier(nn.Module):
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
    def __init__(self, shape: tuple[int, int, int], num_classes: int, width: int = 64) -> None:
        super().__init__()
        c = shape[0]
        w = max(width // 4, 8)

        def block(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.GELU())

        self.body = nn.Sequential(
            block(c, w), nn.MaxPool2d(2), block(w, 2 * w), nn.MaxPool2d(2), block(2 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, width), nn.GELU(),
        )
        self.head = nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_classifier(shape: tuple[int, int, int], num_classes: int, width: int) -> nn.Module:
    """An MLP for images of at most 1,024 values, a small CNN beyond."""
    if shape[0] * shape[1] * shape[2] <= 1024:
        return MLPClassifier(shape, num_classes, width)
    return CNNClassifier(shape, num_classes, width)
