"""Adversarial glitch: horizontal bands blended with horizontally shifted copies of themselves."""

from __future__ import annotations

from typing import ClassVar

import torch

from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks.unforeseen._base import State, UnforeseenAttack


@ATTACKS.register("glitch", threat_models=("unforeseen",), black_box=False, family="unforeseen")
class Glitch(UnforeseenAttack):
    """Adversarial glitch (Kaufmann et al. 2023, "Testing Robustness Against Unforeseen
    Adversaries").

    The image is cut into horizontal bands of 2 rows; each band has a random horizontal shift
    (up to 1/4 of the width, wrapping around) and each band and channel a blend weight
    ``0 <= z <= epsilon``:

    .. math:: x'_{b,c} = (1 - z_{b,c})\\, x_{b,c} + z_{b,c}\\, \\mathrm{shift}_b(x_{b,c}),
              \\qquad |x' - x| \\le \\epsilon.

    Examples
    --------
    >>> x_adv = Glitch(level="medium")(images, labels, classifier)
    """

    levels: ClassVar[dict[str, float]] = {"low": 0.2, "medium": 0.35, "high": 0.5}
    max_epsilon = 1.0
    pixel_bounded = True
    budget_meaning = "largest blend weight of the shifted bands"
    band_height = 2

    def latent_bounds(self, epsilon: float) -> tuple[float, float]:
        return 0.0, epsilon

    def latent_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return (x.shape[0], x.shape[1], -(-x.shape[-2] // self.band_height), 1)

    def setup(self, x: torch.Tensor, generator: torch.Generator) -> State:
        n, c, h, w = x.shape
        bands = -(-h // self.band_height)
        reach = max(1, w // 4)
        shifts = torch.randint(-reach, reach + 1, (n, bands), generator=generator, device=x.device)
        shifts = shifts.repeat_interleave(self.band_height, 1)[:, :h]
        columns = torch.arange(w, device=x.device)
        index = (columns[None, None] - shifts[..., None]) % w
        shifted = x.gather(-1, index[:, None].expand(n, c, h, w))
        return {"shifted": shifted}

    def render(self, x: torch.Tensor, latent: torch.Tensor, state: State, epsilon: float) -> torch.Tensor:
        weight = latent.repeat_interleave(self.band_height, -2)[..., :x.shape[-2], :]
        return (x + weight * (state["shifted"] - x)).clamp(0.0, 1.0)
