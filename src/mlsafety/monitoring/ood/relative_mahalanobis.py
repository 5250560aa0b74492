"""Relative Mahalanobis distance."""

from __future__ import annotations

import torch

from mlsafety.monitoring.ood.base import OODDetector
from mlsafety.monitoring.ood.mahalanobis import class_means_and_precision, squared_mahalanobis
from mlsafety.registry import OOD_DETECTORS


@OOD_DETECTORS.register("relative_mahalanobis", inputs="features")
class RelativeMahalanobis(OODDetector):
    """Class-conditional Mahalanobis distance minus that of one background Gaussian.

    Ren, Fort, Liu, Roy, Padhy & Lakshminarayanan (2021), "A Simple Fix to Mahalanobis
    Distance for Improving Near-OOD Detection", arXiv:2106.09022.

    .. math::

        s(x) = \\min_k \\big[ MD_k(f(x)) - MD_0(f(x)) \\big]

    where :math:`MD_k` uses the class means and shared covariance of :class:`Mahalanobis`
    and :math:`MD_0` the mean and covariance of all training features.

    Examples
    --------
    >>> scores = RelativeMahalanobis().fit(classifier, train).score(images)
    """

    uses_features = True
    needs_labels = True

    def __init__(self) -> None:
        pass

    def _fit(self, features, logits, labels, head) -> None:  # type: ignore[no-untyped-def]
        self.means_, self.precision_, self.present_ = class_means_and_precision(features, labels, logits.shape[1])
        zeros = torch.zeros(features.shape[0], dtype=torch.long, device=features.device)
        self.background_mean_, self.background_precision_, _ = class_means_and_precision(features, zeros, 1)

    def _score(self, features: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        class_distances = squared_mahalanobis(features, self.means_, self.precision_)  # type: ignore[arg-type]
        background = squared_mahalanobis(features, self.background_mean_,  # type: ignore[arg-type]
                                         self.background_precision_)
        relative = class_distances - background
        relative[:, ~self.present_] = float("inf")
        return relative.min(dim=1).values.float().to(logits.device)
