"""Maximum logit."""

from __future__ import annotations

import torch

from mlsafety.monitoring.ood.base import OODDetector
from mlsafety.registry import OOD_DETECTORS


@OOD_DETECTORS.register("max_logit", inputs="logits")
class MaxLogit(OODDetector):
    """Negative maximum unnormalised logit.

    Hendrycks, Basart, Mazeika, Zou, Kwon, Mostajabi, Steinhardt & Song (2022), "Scaling
    Out-of-Distribution Detection for Real-World Settings", ICML.

    .. math:: s(x) = -\\max_k z_k(x)

    Examples
    --------
    >>> scores = MaxLogit().fit(classifier, validation).score(images)
    """

    def __init__(self) -> None:
        pass

    def _score(self, features: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        return -logits.max(dim=1).values
