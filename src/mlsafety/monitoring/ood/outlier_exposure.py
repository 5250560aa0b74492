"""Outlier Exposure: fine-tune a classifier to be uncertain on auxiliary outliers.

Hendrycks, Mazeika & Dietterich (2019), "Deep Anomaly Detection with Outlier Exposure",
ICLR. The training objective adds, to the usual cross-entropy on in-distribution data, the
cross-entropy from the softmax to the uniform distribution on a batch of outliers:

.. math::

    \\mathcal{L} = \\mathbb{E}_{(x, y) \\sim D_{in}}[-\\log p_y(x)]
        + \\lambda \\, \\mathbb{E}_{x' \\sim D_{out}^{OE}}\\Big[-\\frac{1}{K}\\sum_{k=1}^K \\log p_k(x')\\Big]

with :math:`\\lambda = 0.5` for vision in the paper. Detection afterwards uses a post-hoc
score (MSP in the paper). The auxiliary outliers must be disjoint from the OOD sets used
for evaluation (:func:`mlsafety.data.ood.auxiliary_outliers` is).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mlsafety._validation import check_images, check_positive, make_generator
from mlsafety.data.dataset import ImageDataset
from mlsafety.exceptions import ShapeError
from mlsafety.models.classifier import Classifier
from mlsafety.models.training import TrainingHistory, train_classifier


def uniform_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean over samples of the cross-entropy from the softmax to the uniform distribution,
    ``-(1/K) Σ_k log softmax(z)_k`` (zero gradient only at uniform predictions)."""
    return -logits.log_softmax(dim=1).mean(dim=1).mean()


class OutlierExposureLoss:
    """A ``loss_fn(classifier, x, y)`` for :func:`mlsafety.models.train_classifier`.

    Each call draws a batch of ``outlier_batch_ratio * len(x)`` outliers (seeded) and
    returns ``CE(x, y) + weight * uniform_cross_entropy(outliers)``. In- and out-batches go
    through the model in one forward pass, so batch-norm statistics see both, as in the
    paper's reference implementation.

    Parameters
    ----------
    outliers : ImageDataset or Tensor (M, C, H, W)
        Auxiliary outliers in [0, 1], same shape as the training images.
    weight : float
        :math:`\\lambda`, the weight of the outlier term (0.5 in the paper).
    outlier_batch_ratio : float
        Outliers per in-distribution sample in each batch (2 in the paper).
    seed : int
        Seeds the outlier sampling.
    """

    def __init__(self, outliers: ImageDataset | torch.Tensor, weight: float = 0.5,
                 outlier_batch_ratio: float = 1.0, seed: int = 0) -> None:
        images = outliers.images if isinstance(outliers, ImageDataset) else outliers
        self.outliers = check_images(images, "outliers")
        self.weight = check_positive(weight, "weight", "OutlierExposureLoss")
        self.outlier_batch_ratio = check_positive(outlier_batch_ratio, "outlier_batch_ratio", "OutlierExposureLoss")
        self.seed = seed
        self._generator = make_generator(seed)

    def __call__(self, classifier: Classifier, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if tuple(self.outliers.shape[1:]) != tuple(x.shape[1:]):
            raise ShapeError(
                f"outliers have shape {tuple(self.outliers.shape[1:])} but training images have "
                f"{tuple(x.shape[1:])}; build them with auxiliary_outliers(train.image_shape)."
            )
        n_out = max(1, round(self.outlier_batch_ratio * len(x)))
        index = torch.randint(0, len(self.outliers), (n_out,), generator=self._generator)
        batch = torch.cat([x, self.outliers[index].to(x.device)])
        logits = classifier(batch)
        return F.cross_entropy(logits[: len(x)], y) + self.weight * uniform_cross_entropy(logits[len(x):])


def outlier_exposure_finetune(
    classifier: Classifier,
    train: ImageDataset,
    outliers: ImageDataset | torch.Tensor,
    *,
    epochs: int = 1,
    learning_rate: float = 1e-3,
    weight: float = 0.5,
    outlier_batch_ratio: float = 1.0,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = False,
) -> TrainingHistory:
    """Fine-tune ``classifier`` in place with :class:`OutlierExposureLoss` (a short schedule
    at a low learning rate, as the paper's fine-tuning variant)."""
    loss = OutlierExposureLoss(outliers, weight=weight, outlier_batch_ratio=outlier_batch_ratio, seed=seed)
    return train_classifier(classifier, train, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                            loss_fn=loss, seed=seed, progress=progress)
