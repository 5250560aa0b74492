"""Noise corruptions: Gaussian, shot (Poisson), impulse (salt and pepper) and speckle noise.

Hendrycks & Dietterich (2019), "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR. Noise is drawn independently per pixel and channel.
"""

from __future__ import annotations

import torch

from mlsafety.registry import CORRUPTIONS
from mlsafety.robustness.corruptions._base import Corruption


@CORRUPTIONS.register("gaussian_noise", group="benchmark", family="noise")
class GaussianNoise(Corruption):
    """Additive Gaussian noise: :math:`x' = \\mathrm{clip}(x + \\varepsilon)`,
    :math:`\\varepsilon \\sim N(0, c^2)`, with ``c`` the severity's standard deviation
    (ImageNet 0.08-0.38, CIFAR 0.04-0.10). Parameters as in :class:`Corruption`.

    Examples
    --------
    >>> noisy = GaussianNoise(severity=3, seed=0)(images)
    """

    def _corrupt(self, x: torch.Tensor, params: float, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x + noise * params


@CORRUPTIONS.register("shot_noise", group="benchmark", family="noise")
class ShotNoise(Corruption):
    """Poisson (shot) noise of photon counting: :math:`x' = \\mathrm{Poisson}(c\\,x) / c`,
    with ``c`` the photon count of a white pixel (ImageNet 60-3, CIFAR 500-50).
    Parameters as in :class:`Corruption`."""

    def _corrupt(self, x: torch.Tensor, params: float, generator: torch.Generator) -> torch.Tensor:
        return torch.poisson(x * params, generator=generator) / params


@CORRUPTIONS.register("impulse_noise", group="benchmark", family="noise")
class ImpulseNoise(Corruption):
    """Salt-and-pepper noise (``skimage.util.random_noise(mode='s&p')``): each value is
    replaced with probability ``c`` (ImageNet 0.03-0.27, CIFAR 0.01-0.07), by 1 or 0 with
    equal chance. Parameters as in :class:`Corruption`."""

    def _corrupt(self, x: torch.Tensor, params: float, generator: torch.Generator) -> torch.Tensor:
        flipped = torch.rand(x.shape, generator=generator, device=x.device) < params
        salt = torch.rand(x.shape, generator=generator, device=x.device) < 0.5
        return torch.where(flipped, salt.to(x.dtype), x)


@CORRUPTIONS.register("speckle_noise", group="holdout", family="noise")
class SpeckleNoise(Corruption):
    """Multiplicative (speckle) noise: :math:`x' = x + x\\,\\varepsilon`,
    :math:`\\varepsilon \\sim N(0, c^2)` (ImageNet 0.15-0.6, CIFAR 0.06-0.2); a held-out
    corruption. Parameters as in :class:`Corruption`."""

    group = "holdout"

    def _corrupt(self, x: torch.Tensor, params: float, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x + x * noise * params
