"""Power law with an offset."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import curve_fit

from mlsafety.monitoring.emergence.curve_models import CURVE_MODELS
from mlsafety.monitoring.emergence.curve_models.base import CurveModel


def _power(u: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a + b * np.power(10.0, np.clip(c * u, -50, 50))


@CURVE_MODELS.register("power_law")
class PowerLaw(CurveModel):
    """:math:`y = a + b\\,x^{c}` (:math:`x = 10^u`), the scaling-law form of Kaplan et al. (2020),
    "Scaling Laws for Neural Language Models" (with :math:`a` the irreducible level).

    Fitted with ``scipy.optimize.curve_fit``; the exponent is searched from several starts.
    """

    n_params = 3

    def _fit(self, u: np.ndarray, y: np.ndarray) -> np.ndarray:
        # centre u so that the exponent's scale does not depend on the units of x
        self.centre_ = float(u.mean())
        v = u - self.centre_
        best, best_error = None, np.inf
        for c0 in (-1.0, -0.3, 0.3, 1.0):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    params, _ = curve_fit(_power, v, y, p0=(float(y.mean()), float(np.ptp(y) or 1.0) * np.sign(c0),
                                                            c0), maxfev=4000)
            except (RuntimeError, ValueError):
                continue
            error = float(np.square(_power(v, *params) - y).sum())
            if np.all(np.isfinite(params)) and error < best_error:
                best, best_error = params, error
        if best is None:  # degenerate data: a constant
            best = np.array([float(y.mean()), 0.0, 0.0])
        return np.asarray(best)

    def _predict(self, u: np.ndarray, params: np.ndarray) -> np.ndarray:
        return _power(u - self.centre_, *params)
