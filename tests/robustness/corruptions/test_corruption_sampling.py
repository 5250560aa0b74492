"""The random draws behind the corruptions match their distributions: the table-inversion
Poisson sampler of shot noise (chi-square against scipy.stats.poisson, on and off the rate
grid), the glass-blur displacements (uniform on [-d, d)) and the Bernoulli positions of
impulse noise (geometric gaps: binomial counts, independent neighbours, fair salt/pepper)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlsafety.registry import CORRUPTIONS
from mlsafety.robustness.corruptions.blur import glass_offsets
from mlsafety.robustness.corruptions.noise import bernoulli_positions, sample_poisson

stats = pytest.importorskip("scipy.stats")


def _chi_square_p(samples: np.ndarray, pmf: np.ndarray) -> float:
    observed = np.bincount(samples.astype(int), minlength=len(pmf))[: len(pmf)]
    expected = pmf * len(samples)
    keep = expected > 5
    # pool the tails so that every draw is counted
    observed = np.append(observed[keep], len(samples) - observed[keep].sum())
    expected = np.append(expected[keep], len(samples) - expected[keep].sum())
    keep = expected > 0
    statistic = ((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    return float(stats.chi2.sf(statistic, keep.sum() - 1))


@pytest.mark.parametrize(("max_rate", "rate"), [(12.0, 0.0), (12.0, 0.02), (12.0, 12 * 77 / 255), (12.0, 3.3),
                                                (12.0, 12.0), (500.0, 0.37), (500.0, 250.3), (500.0, 500.0)])
def test_poisson_draws_follow_the_poisson_law(max_rate: float, rate: float) -> None:
    generator = torch.Generator().manual_seed(0)
    draws = sample_poisson(torch.full((200_000,), rate), generator, max_rate, max_rate / 255).numpy()
    assert np.all(draws == np.round(draws)) and draws.min() >= 0
    if rate == 0:
        assert draws.max() == 0
        return
    pmf = stats.poisson.pmf(np.arange(int(rate + 12 * np.sqrt(rate) + 20)), rate)
    assert _chi_square_p(draws, pmf) > 1e-3
    assert abs(draws.mean() - rate) < 5 * np.sqrt(rate / len(draws))


def test_poisson_sampler_rejects_a_wrong_law() -> None:
    """The test above can fail: a Poisson law with a rate 1% off is rejected."""
    generator = torch.Generator().manual_seed(0)
    draws = sample_poisson(torch.full((200_000,), 50.0), generator, 100.0, 100 / 255).numpy()
    assert _chi_square_p(draws, stats.poisson.pmf(np.arange(200), 50.5)) < 1e-3


def test_poisson_sampler_keeps_shape_and_seed() -> None:
    rate = torch.rand(2, 3, 5, 7) * 12
    first = sample_poisson(rate, torch.Generator().manual_seed(3), 12.0, 12 / 255)
    second = sample_poisson(rate, torch.Generator().manual_seed(3), 12.0, 12 / 255)
    assert first.shape == rate.shape and torch.equal(first, second)


@pytest.mark.parametrize("max_delta", [1, 2, 3, 4])
def test_glass_offsets_are_uniform_on_the_published_range(max_delta: int) -> None:
    offsets = glass_offsets(4, 25_000, max_delta, torch.Generator().manual_seed(1), "cpu")
    assert offsets.shape == (4, 25_000, 2)
    values = offsets.flatten().long().numpy() + max_delta
    assert values.min() == 0 and values.max() == 2 * max_delta - 1
    span = 2 * max_delta
    assert _chi_square_p(values, np.full(span, 1 / span)) > 1e-3


@pytest.mark.parametrize("probability", [0.01, 0.09, 0.27])
def test_impulse_positions_are_a_bernoulli_process(probability: float) -> None:
    n = 400_000
    generator = torch.Generator().manual_seed(int(probability * 100))
    positions = bernoulli_positions(n, probability, generator, "cpu")
    assert positions.dtype == torch.long and bool((positions.diff() > 0).all())
    assert int(positions[0]) >= 0 and int(positions[-1]) < n
    # the count is Binomial(n, p): within 5 standard deviations
    assert abs(len(positions) - n * probability) < 5 * (n * probability * (1 - probability)) ** 0.5
    hit = torch.zeros(n, dtype=torch.bool)
    hit[positions] = True
    # both halves of every pair hit with probability p^2 (independence), at the start and end alike
    pairs = hit.view(-1, 2).all(1).double().mean().item()
    assert abs(pairs - probability**2) < 5 * (probability**2 / (n / 2)) ** 0.5
    assert abs(hit[: n // 2].double().mean().item() - hit[n // 2:].double().mean().item()) < 0.01
    # the gaps follow the geometric law (chi-square)
    gaps = positions.diff().numpy() - 1
    pmf = stats.geom.pmf(np.arange(gaps.max() + 1) + 1, probability)
    assert _chi_square_p(gaps, pmf) > 1e-4


def test_impulse_noise_salt_and_pepper_are_balanced() -> None:
    x = torch.full((4, 3, 64, 64), 0.5)
    out = CORRUPTIONS.get("impulse_noise")(severity=5, seed=3, resolution="imagenet")(x)
    changed = out != 0.5
    assert abs(changed.double().mean().item() - 0.27) < 0.01
    salt = (out[changed] == 1).double().mean().item()
    assert abs(salt - 0.5) < 0.02 and bool(((out[changed] == 0) | (out[changed] == 1)).all())
