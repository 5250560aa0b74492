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

    chunk_elements = 1 << 17

    def _corrupt(self, x: torch.Tensor, params: tuple, generator: torch.Generator) -> torch.Tensor:
        radius, alias_blur = params
        return _ops.filter2d(x, _ops.disk_kernel(float(radius), float(alias_blur)), "mirror")


def glass_offsets(n: int, count: int, max_delta: int, generator: torch.Generator,
                  device: torch.device | str) -> torch.Tensor:
    """The displacements ``(dx, dy)`` of one shuffling pass, shape (n, count, 2), int16, each
    uniform on the integers of ``[-max_delta, max_delta)`` (the published ``np.random.randint``
    range).

    The generator's cost is per draw, so each 64-bit draw is cut into four 16-bit fields
    (reinterpreted, not shifted): their low bits are exactly uniform when ``2 max_delta`` is a
    power of two; other spans use ``floor(field * span / 2^32)`` of 32-bit fields, biased by
    under ``span / 2^32``.
    """
    span = 2 * int(max_delta)
    total = n * count * 2
    if span & (span - 1) == 0:
        draws = torch.randint(-(2**63), 2**63 - 1, (-(-total // 4),), generator=generator, device=device,
                              dtype=torch.int64)
        values = draws.view(torch.int16)[:total] & (span - 1)
    else:
        draws = torch.randint(-(2**63), 2**63 - 1, (-(-total // 2),), generator=generator, device=device,
                              dtype=torch.int64)
        fields = draws.view(torch.int32)[:total].long() & 0xFFFFFFFF
        values = ((fields * span) >> 32).short()
    return (values - int(max_delta)).view(n, count, 2)


def glass_shuffle(x: torch.Tensor, max_delta: int, iterations: int, generator: torch.Generator) -> torch.Tensor:
    """ImageNet-C's local pixel shuffle, batched and exact.

    The published loop visits ``(h, w)`` from the bottom-right corner backwards and, for
    each, assigns ``x[h, w] = x[h + dy, w + dx]`` with ``dx, dy`` uniform in
    ``[-max_delta, max_delta)`` (:func:`glass_offsets`). (It is written as a swap, but NumPy's
    view semantics make it a copy for colour images; we reproduce that.) Because each
    position is written once per pass and reads either an original value or an already-final
    one, the final value of every pixel is found by following "copied from an earlier-visited
    position" links, which we resolve for all pixels at once by pointer jumping over the
    still-unresolved links only (log of the longest chain rounds).
    """
    n, c, h, w = x.shape
    d = int(max_delta)
    rows = torch.arange(h - d, d, -1, device=x.device)
    cols = torch.arange(w - d, d, -1, device=x.device)
    if len(rows) == 0 or len(cols) == 0:
        return x
    size = h * w
    visited = (rows[:, None] * w + cols[None, :]).flatten()  # pixel of each slot, in visiting order
    count = len(visited)
    # slot[pixel] = its place in the visiting order (count + 1 for pixels never visited)
    slot = torch.full((size,), count + 1, device=x.device, dtype=torch.long)
    slot[visited] = torch.arange(count, device=x.device)
    slot_offset = torch.arange(n, device=x.device)[:, None] * count
    flat = x.reshape(n, c, size)
    for _ in range(int(iterations)):
        offsets = glass_offsets(n, count, d, generator, x.device).long()
        source = offsets[..., 1].mul_(w).add_(offsets[..., 0]).add_(visited)  # (n, count) pixels read
        source_slot = slot[source]
        # a link is live (keep following) when its source was visited earlier in this pass
        live = (source_slot < torch.arange(count, device=x.device)).flatten()
        pointer = source_slot.add_(slot_offset).flatten()
        source = source.flatten()
        pending = live.nonzero().squeeze(1)
        while pending.numel():
            # synchronous pointer jumping over the unresolved links only
            hop = pointer[pending]
            source[pending] = source[hop]
            pointer[pending] = pointer[hop]
            still = live[hop]
            live[pending] = still
            pending = pending[still]
        out = flat.clone()
        out[..., visited] = flat.gather(2, source.view(n, 1, count).expand(n, c, count))
        flat = out
    return flat.reshape(n, c, h, w)


@CORRUPTIONS.register("glass_blur", group="benchmark", family="blur")
class GlassBlur(Corruption):
    """Frosted-glass blur: Gaussian blur (``sigma``), 8-bit quantisation, ``iterations``
    passes of local pixel shuffling within ``max_delta`` pixels (see :func:`glass_shuffle`),
    Gaussian blur again. Severity parameters ``(sigma, max_delta, iterations)``: ImageNet
    (0.7, 1, 2)-(1.5, 4, 2), CIFAR (0.05, 1, 1)-(0.4, 1, 2). Parameters as in :class:`Corruption`."""

    chunk_elements = 1 << 18

    def _corrupt(self, x: torch.Tensor, params: tuple, generator: torch.Generator) -> torch.Tensor:
        sigma, max_delta, iterations = params
        x = _ops.gaussian_blur(x, sigma).clamp_(0, 1).mul_(255).floor_().div_(255)
        x = glass_shuffle(x, max_delta, iterations, generator)
        return _ops.gaussian_blur(x, sigma)


@CORRUPTIONS.register("motion_blur", group="benchmark", family="blur")
class MotionBlur(Corruption):
    """Camera-shake blur: a one-sided Gaussian streak of ``2 radius + 1`` taps (width
    ``sigma``) at an angle uniform in [-45, 45] degrees per image, reimplementing
    ImageMagick's motion blur that ImageNet-C calls through Wand. Severity parameters
    ``(radius, sigma)``: ImageNet (10, 3)-(20, 15), CIFAR (6, 1)-(9, 2.5). Parameters as in
    :class:`Corruption`."""

    chunk_elements = 1 << 18

    def _corrupt(self, x: torch.Tensor, params: tuple, generator: torch.Generator) -> torch.Tensor:
        radius, sigma = params
        angle = torch.rand(len(x), generator=generator, device=x.device) * 90 - 45
        return _ops.motion_blur(x, int(radius), float(sigma), angle)


@CORRUPTIONS.register("zoom_blur", group="benchmark", family="blur")
class ZoomBlur(Corruption):
    """Blur of a fast zoom towards the camera: the mean of the image and its central
    enlargements by each zoom factor of the severity (ImageNet 1.00-1.10 in steps of 0.01 up
    to 1.00-1.30 in steps of 0.03). Deterministic. Parameters as in :class:`Corruption`."""

    chunk_elements = 1 << 19

    def _corrupt(self, x: torch.Tensor, params: tuple, generator: torch.Generator) -> torch.Tensor:
        out = x.clone()
        for zoom in params:
            out += _ops.clipped_zoom(x, float(zoom))
        return out.mul_(1 / (len(params) + 1))


@CORRUPTIONS.register("gaussian_blur", group="holdout", family="blur")
class GaussianBlur(Corruption):
    """Gaussian blur of standard deviation ``sigma`` (ImageNet 1-6, CIFAR 0.4-1), edge
    replicated, as ``skimage.filters.gaussian``; a held-out corruption. Parameters as in
    :class:`Corruption`."""

    group = "holdout"

    def _corrupt(self, x: torch.Tensor, params: float, generator: torch.Generator) -> torch.Tensor:
        return _ops.gaussian_blur(x, float(params))
