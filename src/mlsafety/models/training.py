"""A small, seeded training loop that defences (AugMix, adversarial training, ...) plug into."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from rich.progress import Progress

from mlsafety._validation import check_positive
from mlsafety.data.dataset import ImageDataset
from mlsafety.models.classifier import Classifier

LossFunction = Callable[[Classifier, torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss(classifier, images, labels) -> scalar``; images in [0, 1] on the training device."""


def cross_entropy_loss(classifier: Classifier, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Standard training objective: mean cross-entropy of the logits."""
    return F.cross_entropy(classifier(x), y)


@dataclass
class TrainingHistory:
    """Per-epoch training loss, validation accuracy and wall time."""

    train_loss: list[float] = field(default_factory=list)
    validation_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0


@torch.no_grad()
def accuracy(classifier: Classifier, data: ImageDataset) -> float:
    """Top-1 accuracy of ``classifier`` on ``data`` (eval mode, batched)."""
    predictions = classifier.predict(data.images)
    return float((predictions == data.labels.to(predictions.device)).float().mean())


def train_classifier(
    classifier: Classifier,
    train: ImageDataset,
    *,
    epochs: int = 3,
    batch_size: int = 128,
    learning_rate: float = 3e-3,
    weight_decay: float = 5e-4,
    loss_fn: LossFunction = cross_entropy_loss,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    validation: ImageDataset | None = None,
    seed: int = 0,
    progress: bool = True,
) -> TrainingHistory:
    """Train ``classifier.module`` in place with AdamW and a one-cycle learning rate.

    Parameters
    ----------
    loss_fn : the objective; defences pass their own (e.g. AugMix's Jensen-Shannon loss,
        PGD adversarial training's robust loss).
    augment : optional ``augment(images, generator) -> images`` applied to each batch.
    validation : evaluated after every epoch when given.

    Returns
    -------
    TrainingHistory
    """
    check_positive(epochs, "epochs", "train_classifier", integer=True)
    check_positive(batch_size, "batch_size", "train_classifier", integer=True)
    check_positive(learning_rate, "learning_rate", "train_classifier")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    device = classifier.device
    module = classifier.module.to(device)
    if classifier.normalize is not None:
        classifier.normalize.to(device)
    optimizer = torch.optim.AdamW(module.parameters(), lr=learning_rate, weight_decay=weight_decay)
    steps_per_epoch = (len(train) + batch_size - 1) // batch_size
    total_steps = epochs * steps_per_epoch
    if total_steps >= 8:
        scheduler: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=learning_rate, total_steps=total_steps, pct_start=0.25
        )
    else:  # a one-cycle schedule needs a few steps to warm up and anneal; keep the rate constant
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    history = TrainingHistory()
    start = time.perf_counter()
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("training", total=epochs * steps_per_epoch)
        for _ in range(epochs):
            module.train()
            order = torch.randperm(len(train), generator=generator)
            total, count = 0.0, 0
            for index in order.split(batch_size):
                x = train.images[index]
                if augment is not None:
                    x = augment(x, generator)
                x, y = x.to(device), train.labels[index].to(device)
                loss = loss_fn(classifier, x, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total += loss.item() * len(index)
                count += len(index)
                bar.advance(task)
            history.train_loss.append(total / count)
            if validation is not None:
                history.validation_accuracy.append(accuracy(classifier, validation))
    module.eval()
    history.seconds = time.perf_counter() - start
    return history
