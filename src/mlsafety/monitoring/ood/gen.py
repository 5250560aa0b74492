"""Generalized entropy (GEN)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from mlsafety._validation import check_fraction, check_positive
from mlsafety.monitoring.ood.base import OODDetector
from mlsafety.registry import OOD_DETECTORS


@OOD_DETECTORS.register("gen", inputs="logits")
class GEN(OODDetector):
    """Generalized entropy of the top-M softmax probabilities.

    Liu, Lochman & Zach (2023), "GEN: Pushing the Limits of Softmax-Based
    Out-of-Distribution Detection", CVPR.

    .. math:: s(x) = \\sum_{j=1}^{M} p_{(j)}^{\\gamma} (1 - p_{(j)})^{\\gamma}

    where :math:`p_{(j)}` are the M largest softmax probabilities (higher = more uncertain).

    Parameters
    ----------
    gamma : float in (0, 1)
        Exponent γ (0.1 in the paper).
    top_m : int or None
        M; None uses all classes (the paper uses M = 100 for ImageNet).

    Examples
    --------
    >>> scores = GEN(gamma=0.1).fit(classifier, validation).score(images)
    """

    tunable: ClassVar[dict[str, list[Any]]] = {"gamma": [0.01, 0.05, 0.1, 0.3, 0.5]}

    def __init__(self, gamma: float = 0.1, top_m: int | None = None) -> None:
        self.gamma = gamma
        self.top_m = top_m

    def _validate_params(self) -> None:
        check_fraction(self.gamma, "gamma", type(self).__name__)
        if self.top_m is not None:
            check_positive(self.top_m, "top_m", type(self).__name__, integer=True)

    def _score(self, features: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        p = logits.softmax(dim=1)
        if self.top_m is not None and self.top_m < p.shape[1]:
            p = p.topk(self.top_m, dim=1).values
        return (p.pow(self.gamma) * (1 - p).clamp_min(0).pow(self.gamma)).sum(dim=1)
