"""Adversarial polka dots: opaque discs whose colours and radii are optimised."""

from __future__ import annotations

from typing import ClassVar

import torch

from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks.unforeseen._base import State, UnforeseenAttack


@ATTACKS.register("polkadot", threat_models=("unforeseen",), black_box=False, family="unforeseen")
class Polkadot(UnforeseenAttack):
    """Adversarial polka dots (Kaufmann et al. 2023, "Testing Robustness Against Unforeseen
    Adversaries").

    Eight opaque discs at random centres; the latent ``z`` in [0, 1] holds each disc's colour
    (one value per channel) and radius ``r = epsilon * min(H, W) * z_r``. The discs have a soft
    (one pixel) edge so that the radius is differentiable:

    .. math:: x' = x + D \\odot (z_D - x), \\qquad
              D(p) = \\sigma\\big(2 (r - \\lVert p - c\\rVert)\\big),

    so ``epsilon`` is the largest radius as a fraction of the image side (a geometric, not a
    pixel, bound).

    Examples
    --------
    >>> x_adv = Polkadot(level="medium")(images, labels, classifier)
    """

    levels: ClassVar[dict[str, float]] = {"low": 0.05, "medium": 0.08, "high": 0.12}
    max_epsilon = 0.5
    budget_meaning = "largest disc radius, as a fraction of the image side"
    n_dots = 8

    def latent_bounds(self, epsilon: float) -> tuple[float, float]:
        return 0.0, 1.0

    def latent_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return (x.shape[0], self.n_dots, x.shape[1] + 1)

    def setup(self, x: torch.Tensor, generator: torch.Generator) -> State:
        n, _, h, w = x.shape
        centres = torch.rand(n, self.n_dots, 2, generator=generator, device=x.device)
        rows = torch.arange(h, device=x.device, dtype=x.dtype).view(1, 1, h, 1)
        cols = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, 1, w)
        distance = ((rows - centres[..., 0, None, None] * (h - 1)) ** 2
                    + (cols - centres[..., 1, None, None] * (w - 1)) ** 2).sqrt()
        return {"distance": distance[:, :, None]}

    def render(self, x: torch.Tensor, latent: torch.Tensor, state: State, epsilon: float) -> torch.Tensor:
        radius = epsilon * min(x.shape[-2:]) * latent[..., -1]
        discs = torch.sigmoid(2 * (radius[..., None, None, None] - state["distance"]))
        cover = discs.sum(1)
        paint = (discs * latent[..., :-1, None, None]).sum(1) / cover.clamp(min=1e-6)
        return (x + cover.clamp(max=1) * (paint - x)).clamp(0.0, 1.0)
