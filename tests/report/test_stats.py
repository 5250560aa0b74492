"""Wilson intervals: a hand-computed case, the edges, and bad input."""

from __future__ import annotations

import math

import pytest

from mlsafety.exceptions import InvalidParameterError
from mlsafety.report import accuracy_with_interval, wilson_interval


def test_hand_computed_case() -> None:
    # p = 0.8, n = 10, z = 1.959964: centre (0.8 + z^2/20) / (1 + z^2/10) = 0.71669,
    # half-width z * sqrt(0.016 + z^2/400) / (1 + z^2/10) = 0.22660
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.49016, abs=1e-4)
    assert high == pytest.approx(0.94332, abs=1e-4)


def test_edges_stay_in_unit_interval_and_are_not_degenerate() -> None:
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and 0.1 < high < 0.2  # the Wald interval would be [0, 0]
    low, high = wilson_interval(20, 20)
    assert high == 1.0 and 0.8 < low < 0.9


def test_narrows_with_more_trials_and_widens_with_confidence() -> None:
    width = [math.fsum((-a, b)) for a, b in (wilson_interval(50, 100), wilson_interval(500, 1000))]
    assert width[1] < width[0] / 2
    low90, high90 = wilson_interval(50, 100, confidence=0.9)
    low99, high99 = wilson_interval(50, 100, confidence=0.99)
    assert low99 < low90 and high99 > high90


@pytest.mark.parametrize(("k", "n", "confidence"), [(1, 0, 0.95), (-1, 5, 0.95), (6, 5, 0.95), (1, 5, 1.0)])
def test_bad_input_is_refused(k: int, n: int, confidence: float) -> None:
    with pytest.raises(InvalidParameterError):
        wilson_interval(k, n, confidence)


def test_text_form() -> None:
    assert accuracy_with_interval(8, 10) == "80.0% [49.0, 94.3%]"
