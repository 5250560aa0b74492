"""The embedded default model: a SmallCNN trained on Fashion-MNIST, shipped as safetensors.

Reproduce the shipped checkpoint with::

    mlsafety train --architecture small_cnn --epochs 4 --seed 0 \
        --out src/mlsafety/models/weights/fashion_mnist_small_cnn.safetensors
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from mlsafety.models.classifier import Classifier
from mlsafety.models.loading import load_classifier

DEFAULT_CHECKPOINT_NAME = "fashion_mnist_small_cnn.safetensors"
# Per-channel statistics of the Fashion-MNIST training images.
FASHION_MNIST_MEAN = [0.2860]
FASHION_MNIST_STD = [0.3530]


def cache_dir() -> Path:
    """Where mlsafety caches models and derived data: ``$MLSAFETY_CACHE`` or ~/.cache/mlsafety."""
    root = os.environ.get("MLSAFETY_CACHE") or Path.home() / ".cache" / "mlsafety"
    return Path(root)


def default_checkpoint() -> Path:
    """The checkpoint shipped inside the package."""
    return Path(str(resources.files("mlsafety.models") / "weights" / DEFAULT_CHECKPOINT_NAME))


def load_default_classifier(device: str | None = None) -> Classifier:
    """The default Fashion-MNIST classifier (eval mode)."""
    return load_classifier(default_checkpoint(), device=device)
