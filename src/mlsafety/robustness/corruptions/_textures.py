"""Procedural textures of the weather corruptions, made once and cropped per image.

ImageNet-C's frost crops a random window out of one of a few fixed photographs. We do the
same with a fixed bank of procedural frost textures: built once per image size and device
from a fixed seed (so every call, seed and device sees the same bank), a little larger than
the image, and cropped at a random offset (flipped upside down at random) per image.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from mlsafety.robustness.corruptions import _ops

FROST_STATISTICS = (
    ((0.305, 0.585, 0.650), (0.106, 0.065, 0.060)),
    ((0.787, 0.805, 0.841), (0.084, 0.087, 0.089)),
    ((0.787, 0.805, 0.841), (0.084, 0.087, 0.089)),
    ((0.540, 0.599, 0.648), (0.112, 0.112, 0.117)),
    ((0.441, 0.484, 0.528), (0.174, 0.170, 0.163)),
)
"""Mean and standard deviation (R, G, B) of the five frost photographs ImageNet-C draws
from, measured on the photographs; texture ``k`` of the bank is given those of photograph ``k``."""

FROST_BANK_SEED = 20190506
"""Seed of the frost bank (fixed: the bank is part of the corruption, like the photographs)."""

FROST_BANK_MARGIN = 0.5
"""The bank's textures exceed the image by this fraction per side (the room for random crops)."""


def _ridged_noise(n: int, height: int, width: int, cells: tuple[int, int], top_side: int,
                  generator: torch.Generator) -> torch.Tensor:
    """Ridged multi-octave value noise (n, 1, height, width), standardised per texture.

    Bright thin veins where smooth (bicubic) noise crosses its median, as in ice-crystal
    edges; octave ``o`` has ``2^o`` times the coarsest ``cells`` and weight ``0.6^o``, up to
    ``top_side`` cells.
    """
    texture = torch.zeros(n, 1, height, width)
    amplitude, total, factor = 1.0, 0.0, 1
    while max(cells) * factor <= top_side:
        rows, cols = cells[0] * factor, cells[1] * factor
        noise = torch.rand(n, 1, rows + 1, cols + 1, generator=generator)
        smooth = F.interpolate(noise, size=(height, width), mode="bicubic", align_corners=True)
        texture += amplitude * (1 - (2 * smooth - 1).abs()).clamp(0, 1) ** 4
        total += amplitude
        amplitude *= 0.6
        factor *= 2
    texture /= total
    return (texture - texture.mean(dim=(2, 3), keepdim=True)) / texture.std(dim=(2, 3), keepdim=True).clamp_min(1e-6)


@lru_cache(maxsize=4)
def frost_bank(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The frost textures for (height, width) images: RGB (K, 3, Hb, Wb) and luma (K, 1, Hb, Wb).

    ``Hb = height + round(FROST_BANK_MARGIN * height)`` (likewise ``Wb``). The coarsest octave
    spans about a quarter of the image side, as the photographs' crystals do at ImageNet-C's
    crop size; texture ``k`` has the colour statistics of photograph ``k``. Built on the CPU
    from :data:`FROST_BANK_SEED` and copied to ``device``, so it is the same on every device.
    """
    bank_h = height + round(FROST_BANK_MARGIN * height)
    bank_w = width + round(FROST_BANK_MARGIN * width)
    generator = torch.Generator().manual_seed(FROST_BANK_SEED)
    # 4 cells across the image's longer side, as many per pixel across the bank
    cell = max(height, width) / 4
    cells = (max(2, round(bank_h / cell)), max(2, round(bank_w / cell)))
    k = len(FROST_STATISTICS)
    texture = _ridged_noise(k, bank_h, bank_w, cells, max(bank_h, bank_w), generator)
    stats = torch.tensor(FROST_STATISTICS)  # (K, 2, 3)
    rgb = (stats[:, 0].view(k, 3, 1, 1) + stats[:, 1].view(k, 3, 1, 1) * texture).clamp(0, 1)
    return rgb.to(device), _ops.to_gray(rgb).to(device)


def crop_bank(bank: torch.Tensor, n: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """Per image, a random (height, width) window of a random texture of ``bank`` (K, C, Hb, Wb),
    upside down with probability 1/2: (n, C, height, width), contiguous.

    Every output row is a contiguous run of ``width`` values of the bank, so the crop is one
    row gather from the (overlapping) view of all such runs, with no per-image loop.
    """
    k, c, bank_h, bank_w = bank.shape
    draws = torch.rand(n, 4, generator=generator, device=bank.device, dtype=torch.float64)
    bounds = torch.tensor([k, bank_h - height + 1, bank_w - width + 1, 2], device=bank.device)
    texture, top, left, flip = (draws * bounds).long().unbind(1)
    rows = torch.arange(height, device=bank.device)
    rows = torch.where(flip.bool()[:, None], height - 1 - rows, rows) + top[:, None]  # (n, height)
    channels = torch.arange(c, device=bank.device)
    plane = (texture[:, None] * c + channels[None]) * bank_h  # (n, C): first row of each plane
    starts = ((plane[:, :, None] + rows[:, None, :]) * bank_w + left[:, None, None]).flatten()
    runs = bank.reshape(-1).unfold(0, width, 1)
    return runs.index_select(0, starts).view(n, c, height, width)
