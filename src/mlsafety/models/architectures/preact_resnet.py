"""A small pre-activation ResNet (He et al., 2016, "Identity Mappings in Deep Residual Networks")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mlsafety.registry import ARCHITECTURES


class PreActBlock(nn.Module):
    """BN-ReLU-conv-BN-ReLU-conv with an identity (or 1x1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = (
            nn.Conv2d(c_in, c_out, 1, stride, bias=False) if stride != 1 or c_in != c_out else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


@ARCHITECTURES.register("preact_resnet")
class PreActResNet(nn.Module):
    """Pre-activation ResNet with three stages of ``blocks_per_stage`` blocks
    (widths ``width``, 2x, 4x; strides 1, 2, 2), global average pooling and a linear head.

    ``blocks_per_stage=1`` gives an 8-layer network that trains on a CPU in minutes.
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 10, width: int = 16,
                 blocks_per_stage: int = 1) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        layers: list[nn.Module] = []
        c_in = width
        for stage, c_out in enumerate((width, 2 * width, 4 * width)):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(PreActBlock(c_in, c_out, stride))
                c_in = c_out
        self.blocks = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(c_in)
        self.classifier = nn.Linear(c_in, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.blocks(self.stem(x))))
        return self.classifier(F.adaptive_avg_pool2d(out, 1).flatten(1))
