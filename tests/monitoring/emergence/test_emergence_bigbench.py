"""BIG-bench linearity and breakthroughness (Srivastava et al. 2022, Appendix B)."""

from __future__ import annotations

import numpy as np
import pytest

from mlsafety.monitoring.emergence import breakthroughness, linearity, overall_improvement


def test_equal_steps_and_single_step() -> None:
    steady = np.arange(6, dtype=float)  # 5 equal steps
    assert linearity(steady) == pytest.approx(np.sqrt(5))
    assert breakthroughness(steady) == pytest.approx(5)
    step = np.array([0, 0.01, 0.0, 0.01, 1.0, 1.0])
    assert linearity(step) == pytest.approx(1.0, abs=0.05)
    assert breakthroughness(step) > 50 * breakthroughness(steady) / 5
    assert overall_improvement(steady[::-1]) == -5
    assert linearity(np.ones(4)) == 0 and breakthroughness(np.ones(4)) == 0
