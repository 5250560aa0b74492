"""Adversarial whirlpools: local swirls whose strengths are optimised."""

from __future__ import annotations

from typing import ClassVar

import torch

from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks.unforeseen._base import State, UnforeseenAttack, identity_grid, warp


@ATTACKS.register("whirlpool", threat_models=("unforeseen",), black_box=False, family="unforeseen")
class Whirlpool(UnforeseenAttack):
    """Adversarial whirlpools (Kaufmann et al. 2023, "Testing Robustness Against Unforeseen
    Adversaries").

    Four swirls at random centres ``c_k`` with radius ``R`` = 1/4 of the image; swirl ``k``
    rotates the point ``p`` about ``c_k`` by ``phi_k(p) = z_k exp(-|p - c_k|^2 / R^2)`` with
    strength ``0 <= z_k <= epsilon`` (radians); the displacements add up and the image is
    resampled bilinearly:

    .. math:: x'(p) = x\\Big(p + \\sum_k (\\mathrm{Rot}_{\\phi_k(p)} - I)(p - c_k)\\Big).

    Examples
    --------
    >>> x_adv = Whirlpool(level="medium")(images, labels, classifier)
    """

    levels: ClassVar[dict[str, float]] = {"low": 0.25, "medium": 0.5, "high": 1.0}
    max_epsilon = 3.1416
    budget_meaning = "largest swirl angle at a centre, in radians"
    n_whirlpools = 4
    radius = 0.5  # in grid_sample units (the image spans 2)

    def latent_bounds(self, epsilon: float) -> tuple[float, float]:
        return 0.0, epsilon

    def latent_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return (x.shape[0], self.n_whirlpools)

    def setup(self, x: torch.Tensor, generator: torch.Generator) -> State:
        n, _, h, w = x.shape
        centres = torch.rand(n, self.n_whirlpools, 2, generator=generator, device=x.device).to(x.dtype) * 1.6 - 0.8
        grid = identity_grid(n, h, w, x.device, x.dtype)
        offsets = grid[:, None] - centres[:, :, None, None]  # (N, K, H, W, 2)
        falloff = torch.exp(-(offsets ** 2).sum(-1) / self.radius ** 2)
        return {"grid": grid, "offsets": offsets, "falloff": falloff}

    def render(self, x: torch.Tensor, latent: torch.Tensor, state: State, epsilon: float) -> torch.Tensor:
        angle = latent[..., None, None] * state["falloff"]  # (N, K, H, W)
        cos, sin = torch.cos(angle), torch.sin(angle)
        u, v = state["offsets"][..., 0], state["offsets"][..., 1]
        displacement = torch.stack(((cos - 1) * u - sin * v, sin * u + (cos - 1) * v), -1).sum(1)
        return warp(x, state["grid"] + displacement).clamp(0.0, 1.0)
