"""Train a backdoored model (a test subject for detectors and defences)."""

from __future__ import annotations

from typing import Any

import torch

from mlsafety.data.dataset import ImageDataset
from mlsafety.models.classifier import Classifier
from mlsafety.models.training import TrainingHistory, train_classifier
from mlsafety.monitoring.backdoor._attack import BackdoorAttack, poison_dataset


def train_backdoored_classifier(
    classifier: Classifier,
    train: ImageDataset,
    attack: BackdoorAttack,
    *,
    poison_rate: float | None = None,
    **train_kwargs: Any,
) -> tuple[TrainingHistory, ImageDataset, torch.Tensor]:
    """Poison ``train`` with ``attack`` and train ``classifier`` on it in place.

    Parameters
    ----------
    classifier : Classifier
        The model to train (its module is modified in place, as by ``train_classifier``).
    train : ImageDataset
        Clean training data.
    attack : BackdoorAttack
        Trigger and target mapping; ``attack.poison_rate`` unless ``poison_rate`` is given.
    **train_kwargs
        Passed to :func:`mlsafety.models.training.train_classifier` (epochs, seed, ...).

    Returns
    -------
    history : TrainingHistory
    poisoned : ImageDataset
        The poisoned training set the model saw.
    indices : Tensor (n_poison,)
        Indices of the poisoned samples in ``poisoned``.
    """
    poisoned, indices = poison_dataset(train, attack, poison_rate)
    history = train_classifier(classifier, poisoned, **train_kwargs)
    return history, poisoned, indices
