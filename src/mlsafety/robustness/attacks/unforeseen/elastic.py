"""Adversarial elastic deformation: a smooth flow field optimised on a coarse grid."""

from __future__ import annotations

from typing import ClassVar

import torch

from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks.unforeseen._base import State, UnforeseenAttack, identity_grid, upsample, warp


@ATTACKS.register("elastic", threat_models=("unforeseen",), black_box=False, family="unforeseen")
class Elastic(UnforeseenAttack):
    """Adversarial elastic deformation (Xiao et al. 2018, "Spatially Transformed Adversarial
    Examples"; Kang et al. 2019; Kaufmann et al. 2023, "Testing Robustness Against Unforeseen
    Adversaries").

    A flow field ``z`` on a grid of about a quarter of the image side (``|z| <= epsilon``) is
    upsampled bilinearly to a smooth per-pixel displacement and the image is resampled along it:

    .. math:: x'(p) = x\\big(p + W \\cdot \\mathrm{up}(z)(p)\\big)

    (bilinear sampling, border padding), so ``epsilon`` is the largest displacement as a
    fraction of the image side.

    Examples
    --------
    >>> x_adv = Elastic(level="medium")(images, labels, classifier)
    """

    levels: ClassVar[dict[str, float]] = {"low": 0.03, "medium": 0.06, "high": 0.1}
    max_epsilon = 0.5
    budget_meaning = "largest displacement, as a fraction of the image side"

    def latent_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return (x.shape[0], 2, max(2, x.shape[-2] // 4), max(2, x.shape[-1] // 4))

    def render(self, x: torch.Tensor, latent: torch.Tensor, state: State, epsilon: float) -> torch.Tensor:
        n, _, h, w = x.shape
        # grid_sample coordinates span 2 units across the image, so a fraction f of the side is 2 f
        flow = 2 * upsample(latent, (h, w)).permute(0, 2, 3, 1)
        return warp(x, identity_grid(n, h, w, x.device, x.dtype) + flow).clamp(0.0, 1.0)
