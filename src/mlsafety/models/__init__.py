"""Models: the Classifier wrapper, default architectures, training and safe loading."""

from mlsafety.models.architectures import build_architecture
from mlsafety.models.classifier import Classifier, Normalize
from mlsafety.models.default import (
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    cache_dir,
    default_checkpoint,
    load_default_classifier,
)
from mlsafety.models.loading import load_classifier, save_checkpoint
from mlsafety.models.training import (
    TrainingHistory,
    accuracy,
    cross_entropy_loss,
    train_classifier,
)

__all__ = [
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "Classifier",
    "Normalize",
    "TrainingHistory",
    "accuracy",
    "build_architecture",
    "cache_dir",
    "cross_entropy_loss",
    "default_checkpoint",
    "load_classifier",
    "load_default_classifier",
    "save_checkpoint",
    "train_classifier",
]
