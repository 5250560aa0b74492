"""Adversarial Gabor noise: sparse impulses convolved with an oriented Gabor kernel."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F

from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks.unforeseen._base import State, UnforeseenAttack


def gabor_kernels(size: int, angles: torch.Tensor, sigma: float, wavelength: float) -> torch.Tensor:
    """Gabor kernels (N, 1, size, size) ``exp(-(u^2+v^2)/2 sigma^2) cos(2 pi u'/lambda)``, peak 1."""
    grid = torch.arange(size, device=angles.device, dtype=torch.float32) - (size - 1) / 2
    v, u = torch.meshgrid(grid, grid, indexing="ij")
    rotated = u[None] * torch.cos(angles)[:, None, None] + v[None] * torch.sin(angles)[:, None, None]
    envelope = torch.exp(-(u ** 2 + v ** 2) / (2 * sigma ** 2))
    return (envelope[None] * torch.cos(2 * math.pi * rotated / wavelength))[:, None]


@ATTACKS.register("gabor", threat_models=("unforeseen",), black_box=False, family="unforeseen")
class Gabor(UnforeseenAttack):
    """Adversarial Gabor noise (Co et al. 2019, "Procedural Noise Adversarial Examples";
    Kang et al. 2019; Kaufmann et al. 2023, "Testing Robustness Against Unforeseen Adversaries").

    Sparse convolution noise: a latent impulse field ``z`` (``|z| <= epsilon``, non-zero on a
    random 10% of the pixels) convolved with a Gabor kernel ``G`` of random orientation per
    image, squashed so that the pixel change stays within the budget:

    .. math:: x' = \\mathrm{clip}_{[0,1]}\\big(x + \\epsilon \\tanh((z * G)/\\epsilon)\\big),
              \\qquad |x' - x| \\le \\epsilon.

    The kernel side is about half the image (at most 23 px); the same noise is added to every
    channel.

    Examples
    --------
    >>> x_adv = Gabor(level="medium")(images, labels, classifier)
    """

    levels: ClassVar[dict[str, float]] = {"low": 0.05, "medium": 0.1, "high": 0.2}
    max_epsilon = 1.0
    pixel_bounded = True
    budget_meaning = "largest pixel change of the Gabor noise"
    density = 0.1

    def latent_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return (x.shape[0], 1, x.shape[-2], x.shape[-1])

    def setup(self, x: torch.Tensor, generator: torch.Generator) -> State:
        size = min(23, (min(x.shape[-2:]) // 2) | 1)
        angles = torch.rand(x.shape[0], generator=generator, device=x.device) * math.pi
        kernels = gabor_kernels(size, angles, sigma=size / 6, wavelength=size / 3).to(x.dtype)
        mask = (torch.rand(self.latent_shape(x), generator=generator, device=x.device) < self.density).to(x.dtype)
        return {"kernels": kernels, "mask": mask}

    def render(self, x: torch.Tensor, latent: torch.Tensor, state: State, epsilon: float) -> torch.Tensor:
        n = x.shape[0]
        kernels = state["kernels"]
        pad = kernels.shape[-1] // 2
        impulses = (latent * state["mask"]).view(1, n, *x.shape[-2:])
        noise = F.conv2d(F.pad(impulses, (pad, pad, pad, pad)), kernels, groups=n).view(n, 1, *x.shape[-2:])
        return (x + epsilon * torch.tanh(noise / epsilon)).clamp(0.0, 1.0)
