"""The embedded default data: Fashion-MNIST with a fixed, seeded validation split.

The default model is trained on ``train`` only; ``validation`` (5,000 images held out
from the official training set with seed 0) tunes temperatures and detector
hyperparameters; ``test`` (the official 10,000 test images) is what the audit evaluates.
"""

from __future__ import annotations

from functools import lru_cache

from mlsafety.data.dataset import ImageDataset
from mlsafety.data.fashion_mnist import load_fashion_mnist

VALIDATION_SIZE = 5000
SPLIT_SEED = 0


@lru_cache(maxsize=1)
def default_splits() -> dict[str, ImageDataset]:
    """``{"train", "validation", "test"}`` splits of Fashion-MNIST (cached in memory)."""
    full_train = load_fashion_mnist("train")
    fraction = VALIDATION_SIZE / len(full_train)
    train, validation = full_train.split([1 - fraction, fraction], seed=SPLIT_SEED)
    train.name, validation.name = "fashion-mnist-train", "fashion-mnist-validation"
    return {"train": train, "validation": validation, "test": load_fashion_mnist("test")}
