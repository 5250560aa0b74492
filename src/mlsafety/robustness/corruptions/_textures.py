"""Procedural textures of the weather corruptions, made once and cropped per image.

ImageNet-C's frost crops a random window out of one of a few fixed photographs. We do the
same with a fixed bank of procedural frost textures: built once per image size and device
from a fixed seed (so every call, seed and device sees the same bank), a little larger than
the image, and cropped at a random offset (flipped upside down at random) per image.

Fog's diamond-square plasma fractal is here too, computed level by level on contiguous grids.
Hendrycks & Dietterich (2019), "Benchmarking Neural Network Robustness to Common Corruptions
and Perturbations", ICLR.
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


def _roll_sum(a: torch.Tensor, b: torch.Tensor, shift: int, dim: int) -> torch.Tensor:
    """``a + torch.roll(b, shift, dim)`` for shift +-1 (contiguous, without materialising the roll)."""
    size = a.shape[dim]
    if size == 1:
        return a + b
    out = torch.empty(a.shape, dtype=a.dtype, device=a.device)
    if shift == -1:  # out[i] = a[i] + b[i + 1], wrapping at the end
        torch.add(a.narrow(dim, 0, size - 1), b.narrow(dim, 1, size - 1), out=out.narrow(dim, 0, size - 1))
        torch.add(a.narrow(dim, size - 1, 1), b.narrow(dim, 0, 1), out=out.narrow(dim, size - 1, 1))
    else:  # out[i] = a[i] + b[i - 1], wrapping at the start
        torch.add(a.narrow(dim, 1, size - 1), b.narrow(dim, 0, size - 1), out=out.narrow(dim, 1, size - 1))
        torch.add(a.narrow(dim, 0, 1), b.narrow(dim, size - 1, 1), out=out.narrow(dim, 0, 1))
    return out


def plasma_fractal(n: int, size: int, wibble_decay: float, generator: torch.Generator,
                   device: torch.device | str, crop: tuple[int, int] | None = None) -> torch.Tensor:
    """Diamond-square height maps (n, size, size) in [0, 1], as ImageNet-C's fog uses.

    ``size`` must be a power of two. At each level the new midpoints are the mean of their
    four neighbours (wrapping around) plus uniform noise of amplitude ``wibble**2`` (the
    published code's quirk, kept), and ``wibble`` starts at 100 and is divided by
    ``wibble_decay`` per level. The maps are normalised by their own minimum and maximum;
    with ``crop = (h, w)`` only the top-left (h, w) window is returned (and normalised).

    Each level works on contiguous grids (its corners, centres and the two sets of edge
    midpoints, each (n, m, m)) and interleaves them into the next level's corners. The
    noise of a level is drawn at once in the order of the published code's three draws, so
    on the CPU the maps are those of the one-array implementation, bit for bit (the sums are
    formed in the same order, in float64).
    """
    corners = torch.zeros(n, 1, 1, device=device, dtype=torch.float64)
    height, width = (size, size) if crop is None else crop
    step, wibble = size, 100.0
    while step >= 2:
        m = size // step
        noise = torch.rand(3, n, m, m, generator=generator, device=device, dtype=torch.float64)
        noise.mul_(2).sub_(1).mul_(wibble * wibble)
        square = _roll_sum(corners, corners, -1, 1)
        square = _roll_sum(square, square, -1, 2)
        centres = square.div_(4).add_(noise[0])
        # edge midpoints: the centres below and above (left and right) and the corners
        # either side, summed in the published order
        down = _roll_sum(centres, centres, 1, 1).add_(corners)
        down = _roll_sum(down, corners, -1, 2).div_(4).add_(noise[1])  # at (i step, j step + half)
        right = _roll_sum(centres, centres, 1, 2).add_(corners)
        right = _roll_sum(right, corners, -1, 1).div_(4).add_(noise[2])  # at (i step + half, j step)
        grids = ((0, 0, corners), (0, 1, down), (1, 0, right), (1, 1, centres))
        if step == 2:
            # the last level is not interleaved in float64: each grid is normalised straight
            # into its pixels of the float32 output
            low = torch.stack([g.amin(dim=(1, 2)) for _, _, g in grids]).amin(0).view(n, 1, 1)
            high = torch.stack([g.amax(dim=(1, 2)) for _, _, g in grids]).amax(0).view(n, 1, 1)
            spread = (high - low).clamp_min(1e-12)
            out = torch.empty(n, height, width, device=device)
            for dy, dx, grid in grids:
                rows, cols = (height - dy + 1) // 2, (width - dx + 1) // 2
                torch.div(grid[:, :rows, :cols] - low, spread, out=out[:, dy::2, dx::2])
            return out
        even_rows = torch.stack([corners, down], -1).view(n, m, 2 * m)
        odd_rows = torch.stack([right, centres], -1).view(n, m, 2 * m)
        corners = torch.stack([even_rows, odd_rows], 2).view(n, 2 * m, 2 * m)
        step //= 2
        wibble /= wibble_decay
    return torch.zeros(n, height, width, device=device)  # size 1: a constant map
