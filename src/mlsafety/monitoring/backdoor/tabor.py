"""TABOR: trigger reverse-engineering with regularisers that reject implausible triggers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from mlsafety._validation import check_positive
from mlsafety.monitoring.backdoor.neural_cleanse import NeuralCleanse

if TYPE_CHECKING:
    from mlsafety.models.classifier import Classifier


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Sum of absolute differences between neighbouring pixels, per image: (K, C, H, W) -> (K,)."""
    horizontal = (images[..., :, 1:] - images[..., :, :-1]).abs().flatten(1).sum(1)
    vertical = (images[..., 1:, :] - images[..., :-1, :]).abs().flatten(1).sum(1)
    return horizontal + vertical


class TABOR(NeuralCleanse):
    """TABOR of Guo et al. (2019), *TABOR: A Highly Accurate Approach to Inspecting and
    Restoring Trojan Backdoors in AI Systems* (arXiv:1908.01763; IEEE ICDM 2020).

    Neural Cleanse's search (``x' = (1 - m_k) * x + m_k * p_k``, adaptive ``lambda_k``, all
    classes batched) with TABOR's regularisers, which steer the optimiser away from the
    "adversarial" triggers that make clean models look backdoored (scattered, blocking,
    overlaying the object, or not sufficient on their own)::

        min  CE(f(x'), k) + lambda_k * (|m_k|_1 + outside_weight * |(1 - m_k) * p_k|_1 / C)
             + smoothness_weight * (TV(m_k) + TV(m_k * p_k))
             + overlay_weight * CE(f((1 - m_k) * x), y(x))
             + essential_weight * CE(f(m_k * p_k), k)

    ``TV`` is the total variation (the paper's smoothness term), ``y(x)`` the model's own
    prediction on the clean image: cutting the trigger region out must not change it (the
    trigger must not overlay the object), and the trigger alone must carry the target
    (the essential-feature term). The verdict is Neural Cleanse's MAD anomaly index of the
    mask norms (the paper also proposes a trigger-quality score; not implemented here).
    Implemented from the paper's description; weights are scaled for images in [0, 1].

    Parameters
    ----------
    outside_weight, smoothness_weight, overlay_weight, essential_weight : float
        Weights of the four regularisers (>= 0).
    **kwargs
        Neural Cleanse's parameters (steps, batch_size, learning_rate, init_cost, ...).

    Examples
    --------
    >>> tabor = TABOR(steps=120).fit(classifier, clean_validation)
    >>> tabor.anomaly_index_, tabor.suspected_target_
    """

    def __init__(self, steps: int = 300, batch_size: int = 16, learning_rate: float = 0.1, init_cost: float = 1e-2,
                 cost_multiplier: float = 1.5, patience: int = 5, target_success: float = 0.99,
                 n_samples: int = 1000, threshold: float = 2.0, seed: int | None = 0, outside_weight: float = 0.1,
                 smoothness_weight: float = 1e-3, overlay_weight: float = 0.1, essential_weight: float = 0.1) -> None:
        super().__init__(steps, batch_size, learning_rate, init_cost, cost_multiplier, patience, target_success,
                         n_samples, threshold, seed)
        self.outside_weight = outside_weight
        self.smoothness_weight = smoothness_weight
        self.overlay_weight = overlay_weight
        self.essential_weight = essential_weight

    def _validate(self) -> None:
        super()._validate()
        for name in ("outside_weight", "smoothness_weight", "overlay_weight", "essential_weight"):
            check_positive(getattr(self, name), name, type(self).__name__, allow_zero=True)

    def _penalty(self, classifier: Classifier, x: torch.Tensor, mask: torch.Tensor, pattern: torch.Tensor,
                 cost: torch.Tensor) -> torch.Tensor:
        n_classes, batch = mask.shape[0], x.shape[0]
        channels = pattern.shape[1]
        trigger = mask * pattern
        outside = ((1 - mask) * pattern).flatten(1).sum(1) / channels
        smooth = total_variation(mask) + total_variation(trigger)
        with torch.no_grad():
            own = classifier.forward(x).argmax(-1)
        # one forward pass for the cut-out images (K * B) and the triggers alone (K)
        cut = (1 - mask[:, None]) * x[None]
        out = classifier.forward(torch.cat([cut.flatten(0, 1), trigger]))
        overlay = F.cross_entropy(out[: n_classes * batch], own.repeat(n_classes), reduction="none")
        essential = F.cross_entropy(out[n_classes * batch:], torch.arange(n_classes, device=out.device),
                                    reduction="none")
        return (cost * self.outside_weight * outside + self.smoothness_weight * smooth
                + self.overlay_weight * overlay.view(n_classes, batch).mean(1) + self.essential_weight * essential)
