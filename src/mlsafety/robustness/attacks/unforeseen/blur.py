"""Adversarial blur: a smooth per-pixel blend between the image and a blurred copy."""

from __future__ import annotations

from typing import ClassVar

import torch

from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks.unforeseen._base import State, UnforeseenAttack, gaussian_blur, upsample


@ATTACKS.register("blur", threat_models=("unforeseen",), black_box=False, family="unforeseen")
class Blur(UnforeseenAttack):
    """Adversarial blur (Kaufmann et al. 2023, "Testing Robustness Against Unforeseen
    Adversaries").

    With ``B(x)`` a Gaussian blur (sigma = 1/14 of the image side, at least 1 px), a blend
    weight ``0 <= z <= epsilon`` on a grid of a quarter of the image side is upsampled
    bilinearly and

    .. math:: x' = (1 - \\mathrm{up}(z)) \\odot x + \\mathrm{up}(z) \\odot B(x),
              \\qquad |x' - x| \\le \\epsilon.

    Examples
    --------
    >>> x_adv = Blur(level="medium")(images, labels, classifier)
    """

    levels: ClassVar[dict[str, float]] = {"low": 0.3, "medium": 0.6, "high": 0.9}
    max_epsilon = 1.0
    pixel_bounded = True
    budget_meaning = "largest blend weight of the blurred image"

    def latent_bounds(self, epsilon: float) -> tuple[float, float]:
        return 0.0, epsilon

    def latent_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return (x.shape[0], 1, max(2, x.shape[-2] // 4), max(2, x.shape[-1] // 4))

    def setup(self, x: torch.Tensor, generator: torch.Generator) -> State:
        return {"blurred": gaussian_blur(x, max(1.0, min(x.shape[-2:]) / 14))}

    def render(self, x: torch.Tensor, latent: torch.Tensor, state: State, epsilon: float) -> torch.Tensor:
        weight = upsample(latent, x.shape[-2:])
        return (x + weight * (state["blurred"] - x)).clamp(0.0, 1.0)
