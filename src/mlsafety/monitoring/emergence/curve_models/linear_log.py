"""Linear in log scale."""

from __future__ import annotations

import numpy as np

from mlsafety.monitoring.emergence.curve_models import CURVE_MODELS
from mlsafety.monitoring.emergence.curve_models.base import CurveModel


@CURVE_MODELS.register("linear_log")
class LinearLog(CurveModel):
    """:math:`y = a + b \\log_{10} x`: the "smooth, predictable" baseline (a straight line on a log axis).

    Ganguli et al. (2022), "Predictability and Surprise in Large Generative Models", FAccT: many
    aggregate metrics improve roughly linearly in log scale while specific capabilities jump.
    """

    n_params = 2

    def _fit(self, u: np.ndarray, y: np.ndarray) -> np.ndarray:
        design = np.stack([np.ones_like(u), u], 1)
        return np.linalg.lstsq(design, y, rcond=None)[0]

    def _predict(self, u: np.ndarray, params: np.ndarray) -> np.ndarray:
        return params[0] + params[1] * u
