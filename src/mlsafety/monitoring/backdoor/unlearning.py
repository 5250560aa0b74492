"""Unlearning: fine-tune on clean images stamped with the reversed trigger, keeping true labels."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch

from mlsafety._validation import check_fraction, check_is_fitted, check_positive
from mlsafety.base import ParamsMixin
from mlsafety.exceptions import ShapeError
from mlsafety.models.training import train_classifier

if TYPE_CHECKING:
    from mlsafety.data.dataset import ImageDataset
    from mlsafety.models.classifier import Classifier
    from mlsafety.monitoring.backdoor.neural_cleanse import NeuralCleanse


class TriggerUnlearning(ParamsMixin):
    """Unlearning with the reversed trigger, the mitigation of Wang et al. (2019), *Neural
    Cleanse: Identifying and Mitigating Backdoor Attacks in Neural Networks* (IEEE S&P),
    Section VI-C.

    The model is fine-tuned on clean data in which a fraction ``stamp_fraction`` of every
    batch carries the reversed trigger ``x' = (1 - m) * x + m * p`` but keeps its **true**
    label, so the shortcut from trigger to target is unlearned (the paper stamps 20% and
    trains one epoch).

    Parameters
    ----------
    stamp_fraction : float in (0, 1)
        Share of each batch that carries the trigger.
    epochs : int
    batch_size : int
        Small batches give more updates from the small clean set a defender has.
    learning_rate : float
    seed : int
    """

    def __init__(self, stamp_fraction: float = 0.2, epochs: int = 1, batch_size: int = 32,
                 learning_rate: float = 1e-3, seed: int = 0) -> None:
        self.stamp_fraction = stamp_fraction
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.seed = seed

    def apply(self, classifier: Classifier, clean: ImageDataset, mask: torch.Tensor,
              pattern: torch.Tensor) -> Classifier:
        """Return an unlearned copy of ``classifier`` (the original is not modified).

        ``mask`` is (1, H, W) and ``pattern`` (C, H, W), e.g. ``nc.masks_[t]`` and
        ``nc.patterns_[t]`` for the suspected target ``t``.
        """
        owner = type(self).__name__
        fraction = check_fraction(self.stamp_fraction, "stamp_fraction", owner)
        check_positive(self.epochs, "epochs", owner, integer=True)
        check_positive(self.batch_size, "batch_size", owner, integer=True)
        check_positive(self.learning_rate, "learning_rate", owner)
        shape = tuple(clean.image_shape)
        if tuple(mask.shape) != (1, *shape[1:]) or tuple(pattern.shape) != shape:
            raise ShapeError(f"`mask` must be (1, H, W) and `pattern` (C, H, W) for images {shape}; "
                             f"got {tuple(mask.shape)} and {tuple(pattern.shape)}.")
        mask, pattern = mask.detach().float().clamp(0, 1), pattern.detach().float().clamp(0, 1)

        def stamp(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
            chosen = (torch.rand(x.shape[0], generator=generator) < fraction).view(-1, 1, 1, 1).to(x.dtype)
            stamped = (1 - mask) * x + mask * pattern
            return chosen * stamped + (1 - chosen) * x

        unlearned = copy.deepcopy(classifier)
        train_classifier(unlearned, clean, epochs=self.epochs, batch_size=self.batch_size,
                         learning_rate=self.learning_rate, augment=stamp,
                         weight_decay=0.0, seed=self.seed, progress=False)
        unlearned.module.train(classifier.module.training)
        return unlearned

    def apply_from(self, classifier: Classifier, clean: ImageDataset, cleanse: NeuralCleanse,
                   target: int | None = None) -> Classifier:
        """Unlearn the trigger Neural Cleanse reversed for ``target`` (default: its suspected target,
        or the class with the smallest trigger when none is flagged)."""
        check_is_fitted(cleanse, "masks_")
        target = cleanse.suspected_target_ if target is None else target
        if target is None:
            target = int(cleanse.l1_norms_.argmin())
        return self.apply(classifier, clean, cleanse.masks_[target], cleanse.patterns_[target])
