"""Adversarial wood grain: concentric rings whose radii are bent by an optimised noise field."""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks.unforeseen._base import State, UnforeseenAttack, upsample


@ATTACKS.register("wood", threat_models=("unforeseen",), black_box=False, family="unforeseen")
class Wood(UnforeseenAttack):
    """Adversarial wood grain (Kaufmann et al. 2023, "Testing Robustness Against Unforeseen
    Adversaries").

    Rings around a random centre, ``n_rings = 5`` across the image, are bent by a latent noise
    grid ``z`` in [-1, 1] (4 x 4, upsampled bilinearly) and added with amplitude ``epsilon``:

    .. math:: x' = \\mathrm{clip}_{[0,1]}\\Big(x + \\epsilon \\sin\\big(2\\pi (n_{rings}\\, r(p)
              + \\mathrm{up}(z)(p))\\big)\\Big), \\qquad |x' - x| \\le \\epsilon

    with ``r`` the distance to the centre as a fraction of the image side.

    Examples
    --------
    >>> x_adv = Wood(level="medium")(images, labels, classifier)
    """

    levels: ClassVar[dict[str, float]] = {"low": 0.05, "medium": 0.1, "high": 0.2}
    max_epsilon = 1.0
    pixel_bounded = True
    budget_meaning = "amplitude of the grain"
    n_rings = 5
    grid = 4

    def latent_bounds(self, epsilon: float) -> tuple[float, float]:
        return -1.0, 1.0

    def latent_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return (x.shape[0], 1, self.grid, self.grid)

    def setup(self, x: torch.Tensor, generator: torch.Generator) -> State:
        n, _, h, w = x.shape
        centre = torch.rand(n, 2, generator=generator, device=x.device)
        rows = torch.linspace(0, 1, h, device=x.device, dtype=x.dtype).view(1, h, 1)
        cols = torch.linspace(0, 1, w, device=x.device, dtype=x.dtype).view(1, 1, w)
        radius = ((rows - centre[:, 0, None, None]) ** 2 + (cols - centre[:, 1, None, None]) ** 2).sqrt()
        return {"radius": radius[:, None]}

    def render(self, x: torch.Tensor, latent: torch.Tensor, state: State, epsilon: float) -> torch.Tensor:
        phase = self.n_rings * state["radius"] + upsample(latent, x.shape[-2:])
        return (x + epsilon * torch.sin(2 * math.pi * phase)).clamp(0.0, 1.0)
