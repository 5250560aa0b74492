"""Adversarial pixelation: a per-block blend between the image and its pixelated version."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F

from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks.unforeseen._base import State, UnforeseenAttack, upsample


def pixelate(x: torch.Tensor, size: int) -> torch.Tensor:
    """Each ``size x size`` block replaced by its mean (the last blocks may be partial)."""
    h, w = x.shape[-2:]
    pooled = F.avg_pool2d(x, size, ceil_mode=True)
    return pooled.repeat_interleave(size, -2).repeat_interleave(size, -1)[..., :h, :w]


@ATTACKS.register("pixel", threat_models=("unforeseen",), black_box=False, family="unforeseen")
class Pixel(UnforeseenAttack):
    """Adversarial pixelation (Kaufmann et al. 2023, "Testing Robustness Against Unforeseen
    Adversaries").

    With ``P(x)`` the image pixelated in blocks of side ``s`` (1/8 of the image, at least 2 px),
    each block's blend weight ``0 <= z <= epsilon`` is optimised:

    .. math:: x' = (1 - z) \\odot x + z \\odot P(x), \\qquad |x' - x| \\le \\epsilon.

    Examples
    --------
    >>> x_adv = Pixel(level="medium")(images, labels, classifier)
    """

    levels: ClassVar[dict[str, float]] = {"low": 0.3, "medium": 0.5, "high": 0.8}
    max_epsilon = 1.0
    pixel_bounded = True
    budget_meaning = "largest blend weight of the pixelated image"

    @staticmethod
    def _block(x: torch.Tensor) -> int:
        return max(2, min(x.shape[-2:]) // 8)

    def latent_bounds(self, epsilon: float) -> tuple[float, float]:
        return 0.0, epsilon

    def latent_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        block = self._block(x)
        return (x.shape[0], 1, math.ceil(x.shape[-2] / block), math.ceil(x.shape[-1] / block))

    def setup(self, x: torch.Tensor, generator: torch.Generator) -> State:
        return {"pixelated": pixelate(x, self._block(x))}

    def render(self, x: torch.Tensor, latent: torch.Tensor, state: State, epsilon: float) -> torch.Tensor:
        block = self._block(x)
        weight = upsample(latent, (latent.shape[-2] * block, latent.shape[-1] * block), "nearest")
        weight = weight[..., :x.shape[-2], :x.shape[-1]]
        return (x + weight * (state["pixelated"] - x)).clamp(0.0, 1.0)
