"""Sigmoid in log scale."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.optimize import curve_fit

from mlsafety.monitoring.emergence.curve_models import CURVE_MODELS
from mlsafety.monitoring.emergence.curve_models.base import CurveModel


@CURVE_MODELS.register("sigmoid")
class Sigmoid(CurveModel):
    """:math:`y = l + (h - l)\\,/\\,(1 + e^{-k (u - u_0)})` with :math:`u = \\log_{10} x`.

    The S-shaped curve that bounded metrics (accuracies) follow along log scale; used for
    forecasting task performance by, e.g., Ganguli et al. (2022) and Owen (2024), "How predictable
    is language model benchmark performance?". When the metric's ``lower`` / ``upper`` limits are
    known they are fixed (two free parameters), else fitted (four).

    Parameters
    ----------
    lower, upper : float, optional
        Known asymptotes (0 and 1 for an accuracy).
    """

    def __init__(self, lower: float | None = None, upper: float | None = None) -> None:
        self.lower = lower
        self.upper = upper

    def get_params(self) -> dict[str, Any]:
        return {"lower": self.lower, "upper": self.upper}

    def __repr__(self) -> str:
        return f"Sigmoid(lower={self.lower!r}, upper={self.upper!r})"

    @property
    def n_params(self) -> int:  # type: ignore[override]
        return 2 + (self.lower is None) + (self.upper is None)

    def _unpack(self, params: np.ndarray) -> tuple[float, float, float, float]:
        values = list(params)
        u0, k = values[0], values[1]
        low = self.lower if self.lower is not None else values.pop(2)
        high = self.upper if self.upper is not None else values[-1]
        return u0, k, low, high

    def _curve(self, u: np.ndarray, *params: float) -> np.ndarray:
        u0, k, low, high = self._unpack(np.asarray(params))
        return low + (high - low) / (1.0 + np.exp(-np.clip(k * (u - u0), -60, 60)))

    def _fit(self, u: np.ndarray, y: np.ndarray) -> np.ndarray:
        span = float(np.ptp(u)) or 1.0
        extra = [float(y.min())] * (self.lower is None) + [float(y.max())] * (self.upper is None)
        best, best_error = None, np.inf
        for u0 in (u.min(), u.mean(), u.max(), u.max() + span):
            for k in (1.0 / span, 5.0 / span):
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        params, _ = curve_fit(self._curve, u, y, p0=[u0, k, *extra], maxfev=4000)
                except (RuntimeError, ValueError, TypeError):
                    continue
                error = float(np.square(self._curve(u, *params) - y).sum())
                if np.all(np.isfinite(params)) and error < best_error:
                    best, best_error = params, error
        if best is None:
            best = np.array([float(u.mean()), 0.0, *extra])
        return np.asarray(best)

    def _predict(self, u: np.ndarray, params: np.ndarray) -> np.ndarray:
        return self._curve(u, *params)
