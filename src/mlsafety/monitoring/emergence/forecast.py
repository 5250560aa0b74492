"""Forecasting surprise: fit early points, predict later ones with an interval, measure the miss.

Ganguli et al. (2022), "Predictability and Surprise in Large Generative Models", FAccT: aggregate
loss is predictable from smaller models, specific capabilities are not. Here a curve family
(:data:`~mlsafety.monitoring.emergence.curve_models.CURVE_MODELS`: linear in log scale, power law,
sigmoid in log scale) is fitted to the first ``n_fit`` points as a function of
:math:`u = \\log_{10} x` (:math:`\\log_{10}(x + 1)` when a scale is 0, e.g. step 0). The family is
chosen by held-out error: each is fitted without the last of the ``n_fit`` points and scored on it.
The chosen family is refitted on all ``n_fit`` points and extrapolated; the interval at horizon
:math:`h` (points beyond the fit) is :math:`\\hat y \\pm z_{(1+c)/2}\\,\\sigma\\sqrt{h}` with
:math:`\\sigma^2` = (held-out error)² + (residual mean square). The surprise of an observed value is
:math:`(y - \\hat y)/(\\sigma \\sqrt h)`, and ``excess`` is how far it lies outside the interval
(0 inside, in the metric's units).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from mlsafety.exceptions import InvalidInputError, parameter_error
from mlsafety.monitoring.emergence.curve_models import CURVE_MODELS
from mlsafety.monitoring.emergence.schema import Curve


@dataclass
class Forecast:
    """The forecast of a curve's points ``n_fit`` onward from its first ``n_fit`` points."""

    task: str
    metric: str
    n_fit: int
    model: str
    heldout_errors: dict[str, float]
    scales: list[float]
    predicted: list[float]
    lower: list[float]
    upper: list[float]
    observed: list[float]
    surprise: list[float]
    excess: list[float]
    sigma: float
    fitted_curve: dict[str, list[float]] = field(default_factory=dict)

    @property
    def max_surprise(self) -> float:
        return float(max(self.surprise, key=abs)) if self.surprise else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "max_surprise": self.max_surprise}


def log_scale(scales: np.ndarray) -> np.ndarray:
    """:math:`\\log_{10} x`, or :math:`\\log_{10}(x + 1)` when any scale is 0 (training step 0)."""
    scales = np.asarray(scales, dtype=float)
    return np.log10(scales + 1.0) if np.any(scales <= 0) else np.log10(scales)


def _make(name: str, curve: Curve) -> Any:
    if name == "sigmoid":
        lower, upper = curve.bounds
        if lower is not None and upper is not None:
            if not curve.higher_is_better:
                lower, upper = upper, lower
            return CURVE_MODELS.create(name, lower=lower, upper=upper)
    return CURVE_MODELS.create(name)


def forecast_curve(curve: Curve, n_fit: int, models: tuple[str, ...] = ("linear_log", "power_law", "sigmoid"),
                   confidence: float = 0.95) -> Forecast:
    """Fit ``curve``'s first ``n_fit`` points, forecast the rest, and score the observed values.

    Parameters
    ----------
    curve : Curve
        The curve (at least ``n_fit + 1`` points).
    n_fit : int
        Points used for fitting (>= 3: two to fit the smallest family, one held out).
    models : tuple of str
        Candidate families (registry names); those with more parameters than ``n_fit - 1`` are skipped.
    confidence : float
        Coverage of the interval.

    Raises
    ------
    InvalidInputError
        If ``n_fit`` leaves nothing to forecast or too few points to fit.
    """
    n = curve.scales.size
    if not isinstance(n_fit, int) or not 3 <= n_fit < n:
        raise InvalidInputError(f"`n_fit` for {curve.label} must be an integer in [3, {n - 1}] (3 points to fit "
                                f"and hold one out, at least one left to forecast); got {n_fit!r}.")
    if not 0 < confidence < 1:
        raise parameter_error("confidence", "forecast_curve", "in (0, 1)", confidence)
    u, y = log_scale(curve.scales), curve.values
    errors: dict[str, float] = {}
    for name in models:
        model = _make(name, curve)
        if model.n_params > n_fit - 1:
            continue
        model.fit(u[: n_fit - 1], y[: n_fit - 1])
        errors[name] = float(abs(model.predict(u[n_fit - 1: n_fit])[0] - y[n_fit - 1]))
    if not errors:
        raise InvalidInputError(f"no curve family in {list(models)} can be fitted to {n_fit - 1} points of "
                                f"{curve.label}; use more points or include 'linear_log'.")
    chosen = min(errors, key=lambda k: (errors[k], CURVE_MODELS.get(k).__name__))
    model = _make(chosen, curve).fit(u[:n_fit], y[:n_fit])
    residual = y[:n_fit] - model.predict(u[:n_fit])
    dof = max(n_fit - model.n_params, 1)
    sigma = float(np.sqrt(errors[chosen] ** 2 + np.square(residual).sum() / dof))
    sigma = max(sigma, 1e-12)
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    horizon = np.arange(1, n - n_fit + 1)
    predicted = model.predict(u[n_fit:])
    width = z * sigma * np.sqrt(horizon)
    lower, upper = predicted - width, predicted + width
    observed = y[n_fit:]
    surprise = (observed - predicted) / (sigma * np.sqrt(horizon))
    excess = np.where(observed > upper, observed - upper, np.where(observed < lower, lower - observed, 0.0))
    grid = np.linspace(u[0], u[-1], 80)
    fitted = {"u": grid.tolist(), "y": model.predict(grid).tolist()}
    return Forecast(curve.task, curve.metric, n_fit, chosen, errors, curve.scales[n_fit:].tolist(),
                    predicted.tolist(), lower.tolist(), upper.tolist(), observed.tolist(), surprise.tolist(),
                    excess.tolist(), sigma, fitted)
