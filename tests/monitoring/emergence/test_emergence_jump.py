"""Jumps: planted steps found within one step, no flag on dense smooth sigmoids, honest intervals."""

from __future__ import annotations

import numpy as np
import pytest

from mlsafety.exceptions import InvalidParameterError
from mlsafety.monitoring.emergence import Curve, FlagRule, bootstrap_step, changepoints, evaluate_step, find_jumps


@pytest.mark.parametrize("seed", range(6))
def test_planted_jump_is_found_at_its_location(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 30))
    location = int(rng.integers(2, n - 1))
    base = np.where(np.arange(n) >= location, 0.8, 0.1)
    per_example = (rng.random((n, 150)) < base[:, None]).astype(float)
    curve = Curve.from_examples("t", "acc", np.logspace(6, 9, n), per_example)
    jumps = [j for j in find_jumps(curve, FlagRule(n_resamples=300)) if j.flagged]
    assert len(jumps) == 1
    assert abs(jumps[0].index - location) <= 1
    low, high = jumps[0].interval
    assert low < 0.7 < high and low > 0.4  # the planted step (0.7) inside, far from 0
    # aggregate-only version of the same curve: located the same way, no interval
    aggregate = Curve("t", "acc", curve.scales, curve.values)
    assert abs(find_jumps(aggregate)[0].index - location) <= 1 and find_jumps(aggregate)[0].interval is None


@pytest.mark.parametrize(("width", "n"), [(0.5, 40), (1.0, 60), (2.0, 100)])
def test_dense_smooth_sigmoid_is_not_flagged(width: float, n: int) -> None:
    u = np.linspace(-5, 5, n)
    values = 1 / (1 + np.exp(-u / width))
    curve = Curve("t", "acc", 10 ** (6 + u / 5 + 1), values)
    assert not any(j.flagged for j in find_jumps(curve, n_changepoints=3))


def test_noise_only_curve_is_not_flagged_with_examples() -> None:
    rng = np.random.default_rng(1)
    per_example = (rng.random((10, 100)) < 0.3).astype(float)
    curve = Curve.from_examples("t", "acc", np.arange(1, 11), per_example)
    assert not any(j.flagged for j in find_jumps(curve))


def test_lower_is_better_and_direction() -> None:
    loss = Curve("t", "loss", [1, 2, 3, 4, 5, 6], [5.0, 4.9, 4.8, 1.0, 0.9, 0.8], higher_is_better=False)
    jump = find_jumps(loss)[0]
    assert jump.flagged and jump.index == 3 and jump.size == pytest.approx(-3.8)
    worse = Curve("t", "acc", [1, 2, 3, 4, 5, 6], [0.9, 0.9, 0.9, 0.1, 0.1, 0.1])
    assert not any(j.flagged for j in find_jumps(worse))  # a drop is not a capability jump


def test_bootstrap_interval_and_parameters() -> None:
    rng = np.random.default_rng(0)
    per_example = rng.normal(0, 1, (3, 400)) + np.array([0.0, 0.0, 0.5])[:, None]
    low, high = bootstrap_step(per_example, 2, n_resamples=500)
    assert low < 0.5 < high and high - low < 0.5
    assert changepoints(np.r_[np.zeros(5), np.ones(5)]) == [5]
    assert changepoints(np.r_[np.zeros(5), np.ones(5)], method="kernel") == [5]
    with pytest.raises(InvalidParameterError):
        FlagRule(min_fraction=0)
    with pytest.raises(InvalidParameterError):
        evaluate_step(Curve("t", "m", [1, 2, 3], [0, 1, 2]), 5)
