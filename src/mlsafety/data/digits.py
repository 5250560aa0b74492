"""scikit-learn's embedded handwritten digits (8x8, 1797 images), resized on request."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits as _sklearn_digits

from mlsafety.data.dataset import ImageDataset


def load_digits(size: int = 28) -> ImageDataset:
    """Load the UCI handwritten digits shipped with scikit-learn as 1 x size x size images.

    The 8x8 images (values 0..16) are scaled to [0, 1] and resized bilinearly (with
    anti-aliasing when shrinking) so they can stand in for MNIST-like inputs.
    """
    bunch = _sklearn_digits()
    images = torch.from_numpy(bunch.images).float().unsqueeze(1) / 16.0
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                               antialias=size < 8).clamp_(0, 1)
    labels = torch.from_numpy(bunch.target).long()
    return ImageDataset(images, labels, [str(i) for i in range(10)], f"digits-{size}px")
