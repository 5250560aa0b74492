"""Adversarial snow: streaks stamped on a grid whose brightness is optimised."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F

from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks.unforeseen._base import State, UnforeseenAttack


def streak_kernel(size: int, angle: float, device: torch.device) -> torch.Tensor:
    """An antialiased line of length ``size`` through the kernel centre at ``angle``, peak 1."""
    grid = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    v, u = torch.meshgrid(grid, grid, indexing="ij")
    distance = (u * math.sin(angle) - v * math.cos(angle)).abs()
    kernel = torch.exp(-0.5 * (distance / 0.5) ** 2)
    return kernel / kernel.max()


@ATTACKS.register("snow", threat_models=("unforeseen",), black_box=False, family="unforeseen")
class Snow(UnforeseenAttack):
    """Adversarial snow (Kang et al. 2019; Kaufmann et al. 2023, "Testing Robustness Against
    Unforeseen Adversaries").

    Three layers of snowflakes, each a grid of one flake per cell (cell side ``g`` = 1/7 of the
    image) drawn as a streak of length ``g + 1`` at the layer's random angle: the latent ``z`` holds each
    flake's brightness, ``0 <= z <= epsilon``. The snow map ``s = min(sum_l z_l * k_l, epsilon)``
    (``*`` a strided transposed convolution that stamps the streak ``k_l`` at each cell, with a
    random offset per layer) whitens the image:

    .. math:: x' = x + s \\odot (1 - x), \\qquad |x' - x| \\le \\epsilon.

    Examples
    --------
    >>> x_adv = Snow(level="medium")(images, labels, classifier)
    """

    levels: ClassVar[dict[str, float]] = {"low": 0.05, "medium": 0.1, "high": 0.2}
    max_epsilon = 1.0
    pixel_bounded = True
    budget_meaning = "largest flake brightness"
    n_layers = 3

    @staticmethod
    def _cell(x: torch.Tensor) -> int:
        return max(2, min(x.shape[-2:]) // 7)

    def latent_bounds(self, epsilon: float) -> tuple[float, float]:
        return 0.0, epsilon

    def latent_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        cell = self._cell(x)
        return (x.shape[0], self.n_layers, math.ceil(x.shape[-2] / cell) + 1, math.ceil(x.shape[-1] / cell) + 1)

    def setup(self, x: torch.Tensor, generator: torch.Generator) -> State:
        cell = self._cell(x)
        size = cell + 1 + cell % 2
        angles = (torch.rand(self.n_layers, generator=generator, device=x.device) * 0.5 + 0.25) * math.pi
        kernels = torch.stack([streak_kernel(size, float(a), x.device) for a in angles])[:, None].to(x.dtype)
        offsets = torch.randint(0, cell, (self.n_layers, 2), generator=generator, device=x.device).tolist()
        return {"kernels": kernels, "cell": cell, "offsets": offsets}

    def render(self, x: torch.Tensor, latent: torch.Tensor, state: State, epsilon: float) -> torch.Tensor:
        h, w = x.shape[-2:]
        stamped = F.conv_transpose2d(latent, state["kernels"], stride=state["cell"], groups=self.n_layers)
        layers = [stamped[:, i:i + 1, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(state["offsets"])]
        snow = torch.clamp(sum(layers), max=epsilon)
        return (x + snow * (1 - x)).clamp(0.0, 1.0)
