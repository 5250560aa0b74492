"""Predictive entropy."""

from __future__ import annotations

import torch

from mlsafety.monitoring.ood.base import OODDetector
from mlsafety.registry import OOD_DETECTORS


@OOD_DETECTORS.register("entropy", inputs="logits")
class Entropy(OODDetector):
    """Shannon entropy of the softmax.

    Used as an OOD score since Hendrycks & Gimpel (2017) and as the uncertainty measure of
    Lakshminarayanan, Pritzel & Blundell (2017), "Simple and Scalable Predictive Uncertainty
    Estimation using Deep Ensembles", NeurIPS.

    .. math:: s(x) = -\\sum_k p_k(x) \\log p_k(x), \\quad p = \\operatorname{softmax}(z)

    Examples
    --------
    >>> scores = Entropy().fit(classifier, validation).score(images)
    """

    def __init__(self) -> None:
        pass

    def _score(self, features: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        log_p = logits.log_softmax(dim=1)
        return -(log_p.exp() * log_p).sum(dim=1)
