"""Adversarial kaleidoscope: translucent squares whose colours are optimised."""

from __future__ import annotations

from typing import ClassVar

import torch

from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks.unforeseen._base import State, UnforeseenAttack


def square_masks(x: torch.Tensor, n_shapes: int, side: int, generator: torch.Generator) -> torch.Tensor:
    """Binary masks (N, S, 1, H, W) of ``n_shapes`` axis-aligned squares at random places."""
    n, _, h, w = x.shape
    top = torch.randint(0, h - side + 1, (n, n_shapes, 1, 1), generator=generator, device=x.device)
    left = torch.randint(0, w - side + 1, (n, n_shapes, 1, 1), generator=generator, device=x.device)
    rows = torch.arange(h, device=x.device).view(1, 1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, 1, w)
    inside = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
    return inside[:, :, None].to(x.dtype)


def composite(x: torch.Tensor, masks: torch.Tensor, colours: torch.Tensor, opacity: float | torch.Tensor,
              ) -> torch.Tensor:
    """Paint shapes of ``colours`` (N, S, C) through ``masks`` (N, S, 1, H, W) at ``opacity``;
    where shapes overlap their colours are averaged."""
    cover = masks.sum(1)
    paint = (masks * colours[..., None, None]).sum(1) / cover.clamp(min=1)
    return x + opacity * cover.clamp(max=1) * (paint - x)


@ATTACKS.register("kaleidoscope", threat_models=("unforeseen",), black_box=False, family="unforeseen")
class Kaleidoscope(UnforeseenAttack):
    """Adversarial kaleidoscope (Kaufmann et al. 2023, "Testing Robustness Against Unforeseen
    Adversaries").

    Six squares of side 1/6 of the image at random places are painted over the image with
    opacity ``epsilon``; their colours ``z`` in [0, 1] (one per square and channel) are the
    latent:

    .. math:: x' = x + \\epsilon\\, M \\odot (z_M - x), \\qquad |x' - x| \\le \\epsilon

    with ``M`` the union of the squares and ``z_M`` the colour under each pixel.

    Examples
    --------
    >>> x_adv = Kaleidoscope(level="medium")(images, labels, classifier)
    """

    levels: ClassVar[dict[str, float]] = {"low": 0.3, "medium": 0.5, "high": 0.7}
    max_epsilon = 1.0
    pixel_bounded = True
    budget_meaning = "opacity of the squares"
    n_shapes = 6

    def latent_bounds(self, epsilon: float) -> tuple[float, float]:
        return 0.0, 1.0

    def latent_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return (x.shape[0], self.n_shapes, x.shape[1])

    def setup(self, x: torch.Tensor, generator: torch.Generator) -> State:
        side = max(2, min(x.shape[-2:]) // 6)
        return {"masks": square_masks(x, self.n_shapes, side, generator)}

    def render(self, x: torch.Tensor, latent: torch.Tensor, state: State, epsilon: float) -> torch.Tensor:
        return composite(x, state["masks"], latent, epsilon).clamp(0.0, 1.0)
