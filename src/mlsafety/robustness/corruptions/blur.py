"""Blur corruptions: defocus, glass, motion, zoom and Gaussian blur.

Hendrycks & Dietterich (2019), "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR.
"""

from __future__ import annotations

import torch

from mlsafety.registry import CORRUPTIONS
from mlsafety.robustness.corruptions import _ops
from mlsafety.robustness.corruptions._base import Corruption


@CORRUPTIONS.register("defocus_blur", group="benchmark", family="blur")
class DefocusBlur(Corruption):
    """Out-of-focus blur: every channel is convolved with an anti-aliased disk of radius ``r``
    (smoothed by a small Gaussian of width ``alias_blur``), border mirrored as OpenCV's
    ``filter2D``. Severity parameters ``(r, alias_blur)``: ImageNet (3, 0.1)-(10, 0.5),
    CIFAR (0.3, 0.4)-(1.5, 0.1). Parameters as in :class:`Corruption`."""

    def _corrupt(self, x: torch.Tensor, params: tuple, generator: torch.Generator) -> torch.Tensor:
        radius, alias_blur = params
        return _ops.filter2d(x, _ops.disk_kernel(float(radius), float(alias_blur)), "mirror")


def glass_shuffle(x: torch.Tensor, max_delta: int, iterations: int, generator: torch.Generator) -> torch.Tensor:
    """ImageNet-C's local pixel shuffle, batched and exact.

    The published loop visits ``(h, w)`` from the bottom-right corner backwards and, for
    each, assigns ``x[h, w] = x[h + dy, w + dx]`` with ``dx, dy`` uniform in
    ``[-max_delta, max_delta)``. (It is written as a swap, but NumPy's view semantics make
    it a copy for colour images; we reproduce that.) Because each position is written once
    per pass and reads either an original value or an already-final one, the final value of
    every pixel is found by following "copied from an earlier-visited position" links, which
    we resolve for all pixels at once by pointer doubling (log of the longest chain rounds).
    """
    n, c, h, w = x.shape
    d = int(max_delta)
    rows = torch.arange(h - d, d, -1, device=x.device)
    cols = torch.arange(w - d, d, -1, device=x.device)
    if len(rows) == 0 or len(cols) == 0:
        return x
    size = h * w
    visited = (rows[:, None] * w + cols[None, :]).flatten()  # in visiting order
    order = torch.full((size,), size + 1, device=x.device, dtype=torch.long)
    order[visited] = torch.arange(len(visited), device=x.device)
    flat = x.reshape(n, c, size)
    for _ in range(int(iterations)):
        offsets = torch.randint(-d, d, (n, len(visited), 2), generator=generator, device=x.device)
        source = visited[None] + offsets[..., 1] * w + offsets[..., 0]
        target = torch.arange(size, device=x.device).repeat(n, 1)
        target[:, visited] = source
        # a link is "live" (keep following) when the source was visited earlier in this pass
        live = torch.zeros(n, size, dtype=torch.bool, device=x.device)
        live[:, visited] = order[source] < order[visited][None]
        while bool(live.any()):
            next_target = target.gather(1, target)
            next_live = live.gather(1, target)
            target = torch.where(live, next_target, target)
            live = live & next_live
        flat = flat.gather(2, target[:, None, :].expand(n, c, size))
    return flat.reshape(n, c, h, w)


@CORRUPTIONS.register("glass_blur", group="benchmark", family="blur")
class GlassBlur(Corruption):
    """Frosted-glass blur: Gaussian blur (``sigma``), 8-bit quantisation, ``iterations``
    passes of local pixel shuffling within ``max_delta`` pixels (see :func:`glass_shuffle`),
    Gaussian blur again. Severity parameters ``(sigma, max_delta, iterations)``: ImageNet
    (0.7, 1, 2)-(1.5, 4, 2), CIFAR (0.05, 1, 1)-(0.4, 1, 2). Parameters as in :class:`Corruption`."""

    def _corrupt(self, x: torch.Tensor, params: tuple, generator: torch.Generator) -> torch.Tensor:
        sigma, max_delta, iterations = params
        x = torch.floor(_ops.gaussian_blur(x, sigma).clamp(0, 1) * 255) / 255
        x = glass_shuffle(x, max_delta, iterations, generator)
        return _ops.gaussian_blur(x, sigma)


@CORRUPTIONS.register("motion_blur", group="benchmark", family="blur")
class MotionBlur(Corruption):
    """Camera-shake blur: a one-sided Gaussian streak of ``2 radius + 1`` taps (width
    ``sigma``) at an angle uniform in [-45, 45] degrees per image, reimplementing
    ImageMagick's motion blur that ImageNet-C calls through Wand. Severity parameters
    ``(radius, sigma)``: ImageNet (10, 3)-(20, 15), CIFAR (6, 1)-(9, 2.5). Parameters as in
    :class:`Corruption`."""

    def _corrupt(self, x: torch.Tensor, params: tuple, generator: torch.Generator) -> torch.Tensor:
        radius, sigma = params
        angle = torch.rand(len(x), generator=generator, device=x.device) * 90 - 45
        return _ops.motion_blur(x, int(radius), float(sigma), angle)


@CORRUPTIONS.register("zoom_blur", group="benchmark", family="blur")
class ZoomBlur(Corruption):
    """Blur of a fast zoom towards the camera: the mean of the image and its central
    enlargements by each zoom factor of the severity (ImageNet 1.00-1.10 in steps of 0.01 up
    to 1.00-1.30 in steps of 0.03). Deterministic. Parameters as in :class:`Corruption`."""

    def _corrupt(self, x: torch.Tensor, params: tuple, generator: torch.Generator) -> torch.Tensor:
        out = x.clone()
        for zoom in params:
            out = out + _ops.clipped_zoom(x, float(zoom))
        return out / (len(params) + 1)


@CORRUPTIONS.register("gaussian_blur", group="holdout", family="blur")
class GaussianBlur(Corruption):
    """Gaussian blur of standard deviation ``sigma`` (ImageNet 1-6, CIFAR 0.4-1), edge
    replicated, as ``skimage.filters.gaussian``; a held-out corruption. Parameters as in
    :class:`Corruption`."""

    group = "holdout"

    def _corrupt(self, x: torch.Tensor, params: float, generator: torch.Generator) -> torch.Tensor:
        return _ops.gaussian_blur(x, float(params))
