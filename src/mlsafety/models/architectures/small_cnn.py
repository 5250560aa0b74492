"""A small convolutional network for 28-32 px images."""

from __future__ import annotations

import torch
from torch import nn

from mlsafety.registry import ARCHITECTURES


@ARCHITECTURES.register("small_cnn")
class SmallCNN(nn.Module):
    """Three conv-BN-ReLU stages (32-64-128 channels), global average pooling, a 128-wide
    hidden layer and a linear head.

    Small enough to train to about 91% Fashion-MNIST test accuracy in a few CPU minutes;
    the 128-d input of the head serves as the penultimate feature for OOD detectors.

    Parameters
    ----------
    in_channels : 1 for grayscale, 3 for RGB.
    n_classes : number of outputs.
    width : channels of the first stage (doubled at each later stage).
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 10, width: int = 32) -> None:
        super().__init__()

        def stage(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            )

        self.features = nn.Sequential(
            stage(in_channels, width), nn.MaxPool2d(2),
            stage(width, 2 * width), nn.MaxPool2d(2),
            stage(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.hidden = nn.Sequential(nn.Linear(4 * width, 128), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(128, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.hidden(self.features(x)))
