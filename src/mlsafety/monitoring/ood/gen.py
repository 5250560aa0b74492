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
    clip : float or None
        Clamp probabilities to ``[clip, 1 - clip]`` first. None (default) follows the paper;
        pytorch-ood clamps at 1e-7, which caps how much the tiny probabilities of confident
        predictions contribute (``p**0.1`` of 1e-20 is 0.01, of 1e-7 is 0.2).

    Examples
    --------
    >>> scores = GEN(gamma=0.1).fit(classifier, validation).score(images)
    """

    tunable: ClassVar[dict[str, list[Any]]] = {"gamma": [0.01, 0.05, 0.1, 0.3, 0.5]}

    def __init__(self, gamma: float = 0.1, top_m: int | None = None, clip: float | None = None) -> None:
        self.gamma = gamma
        self.top_m = top_m
        self.clip = clip

    def _validate_params(self) -> None:
        check_fraction(self.gamma, "gamma", type(self).__name__)
        if self.top_m is not None:
            check_positive(self.top_m, "top_m", type(self).__name__, integer=True)
        if self.clip is not None:
            check_fraction(self.clip, "clip", type(self).__name__)

    def _score(self, features: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        p = logits.softmax(dim=1)
        if self.clip is not None:
            p = p.clamp(self.clip, 1 - self.clip)
        if self.top_m is not None and self.top_m < p.shape[1]:
            p = p.topk(self.top_m, dim=1).values
        return (p.pow(self.gamma) * (1 - p).clamp_min(0).pow(self.gamma)).sum(dim=1)
