"""Adversarial fog: a multi-octave opacity map that blends the image towards white."""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks.unforeseen._base import State, UnforeseenAttack, upsample


@ATTACKS.register("fog", threat_models=("unforeseen",), black_box=False, family="unforeseen")
class Fog(UnforeseenAttack):
    """Adversarial fog (Kang et al. 2019; Kaufmann et al. 2023, "Testing Robustness Against
    Unforeseen Adversaries").

    Fog is fractal (1/f) noise; here its octaves are the latent: grids ``z_k`` of 2, 4, 8, ...
    cells, each upsampled bilinearly and weighted by ``decay^k``, sum to an opacity map
    ``m = sum_k w_k up(z_k)`` with ``sum_k w_k = 1`` and ``0 <= z_k <= epsilon``, and

    .. math:: x' = x + m \\odot (1 - x)

    so ``epsilon`` is the largest fog opacity and ``|x' - x| <= epsilon`` pixel-wise.

    Examples
    --------
    >>> x_adv = Fog(level="high")(images, labels, classifier)
    """

    levels: ClassVar[dict[str, float]] = {"low": 0.05, "medium": 0.1, "high": 0.2}
    max_epsilon = 1.0
    pixel_bounded = True
    budget_meaning = "largest fog opacity"
    decay = 0.6

    @staticmethod
    def _octaves(x: torch.Tensor) -> int:
        return max(1, min(4, int(math.log2(min(x.shape[-2:]))) - 1))

    def latent_bounds(self, epsilon: float) -> tuple[float, float]:
        return 0.0, epsilon

    def latent_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        octaves = self._octaves(x)
        return (x.shape[0], octaves, 2 ** octaves, 2 ** octaves)

    def render(self, x: torch.Tensor, latent: torch.Tensor, state: State, epsilon: float) -> torch.Tensor:
        octaves = latent.shape[1]
        weights = [self.decay ** k for k in range(octaves)]
        total = sum(weights)
        opacity = sum(weights[k] / total * upsample(latent[:, k:k + 1, :2 ** (k + 1), :2 ** (k + 1)], x.shape[-2:])
                      for k in range(octaves))
        return (x + opacity * (1 - x)).clamp(0.0, 1.0)
