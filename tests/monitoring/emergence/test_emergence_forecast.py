"""Forecasting surprise and the curve-model registry."""

from __future__ import annotations

import numpy as np
import pytest

from mlsafety.exceptions import InvalidInputError, NotFittedError
from mlsafety.monitoring.emergence import CURVE_MODELS, Curve, forecast_curve

TRUE = {"linear_log": lambda u: 0.2 + 0.1 * u, "power_law": lambda u: 1.0 + 3.0 * 10 ** (-0.5 * u),
        "sigmoid": lambda u: 0.1 + 0.8 / (1 + np.exp(-3 * (u - 2)))}


@pytest.mark.parametrize("name", CURVE_MODELS.names())
def test_each_family_recovers_its_own_curve(name: str) -> None:
    u = np.linspace(0, 4, 9)
    y = TRUE[name](u)
    model = CURVE_MODELS.create(name).fit(u, y)
    np.testing.assert_allclose(model.predict(u), y, atol=1e-3)
    assert model.n_params <= 4
    with pytest.raises(NotFittedError):
        CURVE_MODELS.create(name).predict(u)


def test_smooth_curve_is_unsurprising_and_a_jump_is_surprising() -> None:
    scales = np.logspace(5, 9, 9)
    smooth = Curve("t", "loglik", scales, -5 + 0.8 * np.log10(scales / 1e5))
    forecast = forecast_curve(smooth, 6)
    assert forecast.model in CURVE_MODELS.names()
    assert max(abs(z) for z in forecast.surprise) < 3 and max(forecast.excess) == 0
    jumped = Curve("t", "acc", scales, [0.01, 0.02, 0.01, 0.02, 0.03, 0.8, 0.85, 0.9, 0.9], bounds=(0.0, 1.0))
    forecast = forecast_curve(jumped, 5)
    assert forecast.surprise[0] > 3 and forecast.excess[0] > 0.3
    with pytest.raises(InvalidInputError, match="n_fit"):
        forecast_curve(jumped, 2)
    with pytest.raises(InvalidInputError, match="n_fit"):
        forecast_curve(jumped, 9)
