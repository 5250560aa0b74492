"""Noise corruptions: Gaussian, shot (Poisson), impulse (salt and pepper) and speckle noise.

Hendrycks & Dietterich (2019), "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR. Noise is drawn independently per pixel and channel.
"""

from __future__ import annotations

import math
from functools import lru_cache

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
        return torch.add(x, noise, alpha=params, out=noise)  # one pass, into the noise's memory


@CORRUPTIONS.register("shot_noise", group="benchmark", family="noise")
class ShotNoise(Corruption):
    """Poisson (shot) noise of photon counting: :math:`x' = \\mathrm{Poisson}(c\\,x) / c`,
    with ``c`` the photon count of a white pixel (ImageNet 60-3, CIFAR 500-50).
    Parameters as in :class:`Corruption`."""

    chunk_elements = 1 << 19
    bounded = True

    def _corrupt(self, x: torch.Tensor, params: float, generator: torch.Generator) -> torch.Tensor:
        # grid step c / 255: images decoded from 8 bits land on grid rates exactly
        return sample_poisson(x, generator, float(params), float(params) / 255, scale=1 / params,
                              rate_scale=float(params), limit=1.0)


@CORRUPTIONS.register("impulse_noise", group="benchmark", family="noise")
class ImpulseNoise(Corruption):
    """Salt-and-pepper noise (``skimage.util.random_noise(mode='s&p')``): each value is
    replaced with probability ``c`` (ImageNet 0.03-0.27, CIFAR 0.01-0.07), by 1 or 0 with
    equal chance. Parameters as in :class:`Corruption`.

    Only the replaced values are drawn: the gaps between them in the flattened batch are
    independent geometric variables (:func:`bernoulli_positions`), which is the same
    Bernoulli process as one uniform per value at about ``c`` of its random draws.
    """

    def _corrupt(self, x: torch.Tensor, params: float, generator: torch.Generator) -> torch.Tensor:
        out = x.clone()
        positions = bernoulli_positions(out.numel(), float(params), generator, x.device)
        # salt (1) or pepper (0): a fair coin per replaced value
        salt = torch.randint(0, 2, positions.shape, generator=generator, device=x.device, dtype=out.dtype)
        out.view(-1).index_put_((positions,), salt)
        return out


def bernoulli_positions(n: int, probability: float, generator: torch.Generator,
                        device: torch.device | str) -> torch.Tensor:
    """Indices (int64, increasing) of the successes among ``n`` independent Bernoulli(``p``)
    trials, drawn as cumulative sums of geometric gaps ``floor(log U / log(1 - p))`` (Devroye
    1986, *Non-Uniform Random Variate Generation*, X.2): about ``n p`` draws instead of ``n``."""
    if probability <= 0 or n == 0:
        return torch.empty(0, dtype=torch.long, device=device)
    if probability >= 1:
        return torch.arange(n, device=device)
    scale = 1 / math.log1p(-probability)
    pieces, end = [], -1  # index of the last success so far
    while True:
        mean = (n - 1 - end) * probability
        count = int(mean + 6 * math.sqrt(mean + 1) + 16)
        # float64 uniforms in (0, 1]: gaps are exact far beyond any image size
        uniform = torch.rand(count, generator=generator, device=device, dtype=torch.float64).neg_().add_(1)
        gaps = uniform.log_().mul_(scale).floor_().long().add_(1)
        positions = gaps.cumsum_(0).add_(end)
        pieces.append(positions)
        end = int(positions[-1])
        if end >= n:
            break
    positions = torch.cat(pieces) if len(pieces) > 1 else pieces[0]
    return positions[: int(torch.searchsorted(positions, n))]


@CORRUPTIONS.register("speckle_noise", group="holdout", family="noise")
class SpeckleNoise(Corruption):
    """Multiplicative (speckle) noise: :math:`x' = x + x\\,\\varepsilon`,
    :math:`\\varepsilon \\sim N(0, c^2)` (ImageNet 0.15-0.6, CIFAR 0.06-0.2); a held-out
    corruption. Parameters as in :class:`Corruption`."""

    group = "holdout"

    def _corrupt(self, x: torch.Tensor, params: float, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return torch.addcmul(x, x, noise, value=params, out=noise)  # x + c x noise in one pass


@lru_cache(maxsize=32)
def _poisson_tables(max_rate: float, step: float, scale: float, limit: float,
                    device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int]:
    """Inversion tables of Poisson(g * step), g = 0 .. ceil(max_rate / step): the CDF (float32,
    rounded down, flattened row by row), a guide table of ``levels`` cells per row (the flat
    index of the smallest count whose CDF reaches the cell's start) and, per cell, the count
    times ``scale`` (at most ``limit``) where every float32 uniform of the cell inverts to the
    guide's count (-1 where the cell holds a CDF step and the count must be searched)."""
    grid = torch.arange(math.ceil(max_rate / step) + 1, dtype=torch.float64) * step
    length = math.ceil(max_rate + 12 * math.sqrt(max_rate) + 20)  # the tail beyond is under 1e-20
    k = torch.arange(length, dtype=torch.float64)
    log_pmf = -grid[:, None] + k * torch.log(grid[:, None].clamp_min(1e-300)) - torch.lgamma(k + 1)
    log_pmf[0] = -math.inf
    log_pmf[0, 0] = 0.0
    cdf = log_pmf.exp().cumsum(1)
    cdf[:, -1] = 1.0
    # rounded towards -inf, a float32 table decides ``u <= F`` exactly for every float32 ``u``
    down = cdf.float()
    down = torch.where(down.double() > cdf, torch.nextafter(down, torch.tensor(-1.0)), down)
    # a power of two, so that a uniform's cell is the top bits of its 24-bit integer
    levels = 1 << (4 * length - 1).bit_length()
    if levels > 2**24:
        raise ValueError(f"max_rate = {max_rate} is too large for the 24-bit inversion tables.")
    starts = (torch.arange(levels, dtype=torch.float32) / levels).expand(len(grid), levels).contiguous()
    count = torch.searchsorted(down, starts)
    # the largest float32 uniform (a multiple of 2^-24) in the cell is (j + 1) / levels - 2^-24
    last = (torch.arange(1, levels + 1, dtype=torch.float64) / levels - 2.0**-24)
    settled = down.gather(1, count).double() >= last
    value = torch.where(settled, (count.float() * float(scale)).clamp_(max=limit), torch.tensor(-1.0))
    guide = count + torch.arange(len(grid))[:, None] * length  # flat index into the CDF table
    return (down.flatten().to(device), guide.int().flatten().to(device), value.flatten().to(device), length,
            levels)


SNAP = 1e-4
"""Rates within this many grid steps of a grid point are taken as on it (a change of rate of
at most ``1e-4 step``, which moves the count distribution by at most that in total variation)."""


def sample_poisson(rate: torch.Tensor, generator: torch.Generator, max_rate: float, step: float,
                   scale: float = 1.0, rate_scale: float = 1.0, limit: float = math.inf) -> torch.Tensor:
    """Poisson draws for the rates ``rate * rate_scale`` in ``[0, max_rate]``, batched, returned
    as float32 ``min(count * scale, limit)``.

    Rates are split as ``rate = g * step + delta``, ``0 <= delta < step``, and the count is
    the sum of independent Poisson(``g * step``) and Poisson(``delta``) draws (superposition).
    The first is inverted from a cached CDF table with a guide table (Chen & Asau 1974), one
    float32 uniform per value (exact at that uniform's 2^-24 resolution; its 24 bits are cut
    from 64-bit integer draws, two per draw, which costs the generator less): the uniform's cell
    in the guide table gives the (scaled) count at once unless a CDF step falls inside the
    cell (a few percent of draws), where the count is searched upwards from the guide. The
    second counts the arrivals of a unit-rate process before ``delta`` and is skipped where
    ``delta`` is under :data:`SNAP` steps. Several times as fast as ``torch.poisson`` on the CPU.
    """
    cdf, guide, value, length, levels = _poisson_tables(max_rate, step, float(scale), float(limit),
                                                        str(rate.device))
    rows = len(guide) // levels
    if len(guide) > 2**24:
        raise ValueError(f"max_rate / step = {max_rate / step:.0f} grid rows is too many; use a larger step.")
    # few full-size temporaries, updated in place: on the CPU each fresh one costs page faults
    delta = (rate.reshape(-1) * (rate_scale / step)).clamp_(0, rows - 1)
    row = (delta + SNAP).int()  # truncation is the floor of these non-negative values
    delta.sub_(row)  # in grid steps, >= -SNAP
    # 24 uniform bits from each 32-bit half of a 64-bit draw (random_ gives [0, 2^63): the top
    # bit is 0, every other is a fair coin); the uniform is ``bits * 2^-24``, as torch.rand's
    words = torch.empty((len(row) + 1) // 2, dtype=torch.int64, device=rate.device).random_(generator=generator)
    bits = words.view(torch.int32)[: len(row)].bitwise_and_(0xFFFFFF)
    # the uniform's cell: its top bits (levels is a power of two), in the rate's row
    cell = torch.bitwise_right_shift(bits, 24 - (levels.bit_length() - 1)).add_(row, alpha=levels)
    # index_select: several times faster than indexing with a tensor on the CPU
    counts = value.index_select(0, cell)
    pending = (counts < 0).nonzero().squeeze(1)
    if pending.numel():
        # the guide gives a lower bound; walk up while F(k) < u
        index = guide.index_select(0, cell.index_select(0, pending))
        below = bits.index_select(0, pending).float().mul_(2.0**-24)
        walking = torch.arange(len(pending), device=rate.device)
        while walking.numel():
            walking = walking[cdf[index[walking]] < below[walking]]
            index[walking] += 1
        found = index.sub_(row.index_select(0, pending) * length).float().mul_(float(scale)).clamp_(max=limit)
        counts.index_copy_(0, pending, found)
    # images decoded from 8 bits have every rate on the grid: one read-only pass says so, where
    # a comparison and ``nonzero`` would each write a full-size tensor
    if delta.numel() and float(delta.max()) > SNAP:
        pending = (delta > SNAP).nonzero().squeeze(1)
        remaining = delta[pending].mul_(step)
        while pending.numel():
            remaining += torch.rand(len(pending), generator=generator, device=rate.device).log_()
            arrived = remaining >= 0
            pending, remaining = pending[arrived], remaining[arrived]
            counts[pending] = (counts[pending] + scale).clamp_(max=limit)
    return counts.view(rate.shape)
