"""Procedural fractal pictures (iterated function systems), PixMix's mixing set without downloads.

Barnsley (1988), "Fractals Everywhere" (iterated function systems and the chaos game);
Kataoka et al. (2020), "Pre-training without Natural Images" (FractalDB: random IFS
fractals as training pictures); Hendrycks et al. (2022), "PixMix: Dreamlike Pictures
Comprehensively Improve Safety Measures" (fractals as the mixing set).

An IFS is a set of contractive affine maps :math:`f_i(p) = A_i p + b_i` chosen with
probabilities :math:`\\propto |\\det A_i|`; the chaos game iterates a random map from any
start point, and the visited points fill the attractor. All fractals of a batch and many
walkers per fractal run in parallel.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from mlsafety._validation import check_positive, make_generator


def random_ifs(n: int, n_maps: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random contractive IFS: matrices (n, n_maps, 2, 2), offsets (n, n_maps, 2), map probabilities.

    Each matrix is ``R(theta) diag(s1, s2) R(phi)`` with singular values in [0.25, 0.85]
    (so every map contracts) and random reflections; offsets are uniform in [-1, 1].
    """
    shape = (n, n_maps)
    theta = torch.rand(shape, generator=generator) * 2 * math.pi
    phi = torch.rand(shape, generator=generator) * 2 * math.pi
    singular = torch.rand(*shape, 2, generator=generator) * 0.6 + 0.25
    flip = torch.where(torch.rand(*shape, generator=generator) < 0.5, -1.0, 1.0)

    def rotation(angle: torch.Tensor) -> torch.Tensor:
        c, s = torch.cos(angle), torch.sin(angle)
        return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)

    scale = torch.diag_embed(singular * torch.stack([flip, torch.ones_like(flip)], -1))
    matrices = rotation(theta) @ scale @ rotation(phi)
    offsets = torch.rand(*shape, 2, generator=generator) * 2 - 1
    weights = torch.linalg.det(matrices).abs() + 1e-3
    return matrices, offsets, weights / weights.sum(-1, keepdim=True)


def render_fractals(n: int, size: int, *, channels: int = 3, n_walkers: int = 512, n_steps: int = 40,
                    seed: int = 0) -> torch.Tensor:
    """``n`` random fractal pictures (n, channels, size, size) in [0, 1] on a black background.

    Every map of a fractal gets a random colour; a pixel's colour is the mean colour of the
    maps that last moved the points landing there, and its brightness grows with the
    logarithm of the point density. Gray pictures (``channels=1``) use the BT.601 luma.
    """
    check_positive(n, "n", "render_fractals", integer=True)
    check_positive(size, "size", "render_fractals", integer=True)
    generator = make_generator(seed)
    n_maps = torch.randint(2, 5, (n,), generator=generator)
    matrices, offsets, probabilities = random_ifs(n, 4, generator)
    # fractals with fewer maps: zero the probability of the unused ones
    used = torch.arange(4)[None] < n_maps[:, None]
    probabilities = probabilities * used
    probabilities = probabilities / probabilities.sum(-1, keepdim=True)
    colours = torch.rand(n, 4, 3, generator=generator) * 0.8 + 0.2
    points = torch.rand(n, n_walkers, 2, generator=generator) * 2 - 1
    cumulative = probabilities.cumsum(-1)
    history, history_maps = [], []
    burn_in = 12
    for step in range(n_steps):
        draw = torch.rand(n, n_walkers, 1, generator=generator)
        choice = (draw > cumulative[:, None, :]).sum(-1).clamp(max=3)  # (n, walkers)
        a = matrices.gather(1, choice[..., None, None].expand(n, n_walkers, 2, 2))
        b = offsets.gather(1, choice[..., None].expand(n, n_walkers, 2))
        points = (a @ points[..., None]).squeeze(-1) + b
        if step >= burn_in:
            history.append(points)
            history_maps.append(choice)
    cloud = torch.cat(history, 1)  # (n, P, 2)
    maps = torch.cat(history_maps, 1)
    low = torch.quantile(cloud, 0.005, dim=1, keepdim=True)
    high = torch.quantile(cloud, 0.995, dim=1, keepdim=True)
    extent = (high - low).amax(-1, keepdim=True).clamp_min(1e-6)
    centre = (high + low) / 2
    unit = (cloud - centre) / extent * 0.92 + 0.5  # keep the aspect ratio, small margin
    pixel = (unit * size).floor().long()
    inside = ((pixel >= 0) & (pixel < size)).all(-1)
    flat = (pixel[..., 1].clamp(0, size - 1) * size + pixel[..., 0].clamp(0, size - 1))
    weight = inside.float()
    density = torch.zeros(n, size * size).scatter_add_(1, flat, weight)
    colour_sum = torch.zeros(n, size * size, 3)
    point_colour = colours.gather(1, maps[..., None].expand(*maps.shape, 3)) * weight[..., None]
    colour_sum.scatter_add_(1, flat[..., None].expand(*flat.shape, 3), point_colour)
    colour = colour_sum / density.clamp_min(1)[..., None]
    brightness = torch.log1p(density) / torch.log1p(density.amax(1, keepdim=True)).clamp_min(1e-6)
    pictures = (colour * brightness[..., None]).view(n, size, size, 3).permute(0, 3, 1, 2).clamp(0, 1)
    if channels == 1:
        luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (pictures * luma).sum(1, keepdim=True)
    if channels != 3:
        luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (pictures * luma).sum(1, keepdim=True).expand(n, channels, size, size).contiguous()
    return pictures


@lru_cache(maxsize=8)
def fractal_bank(n: int, size: int, channels: int, seed: int) -> torch.Tensor:
    """Cached :func:`render_fractals` (a mixing set is rendered once per process)."""
    return render_fractals(n, size, channels=channels, seed=seed)
