"""Curve families for forecasting a metric along log scale (one file each, registered in :data:`CURVE_MODELS`).

Each model is fitted to the first points of a curve as a function of :math:`u = \\log_{10} x`
(``x`` the scale or step) and extrapolated to the next ones; the forecast picks the family with
the smallest held-out error (see :mod:`mlsafety.monitoring.emergence.forecast`).
"""

from __future__ import annotations

from typing import Any

from mlsafety.registry import Registry

CURVE_MODELS: Registry[Any] = Registry("scaling curve model", "mlsafety.monitoring.emergence.curve_models")

from mlsafety.monitoring.emergence.curve_models.base import CurveModel  # noqa: E402

__all__ = ["CURVE_MODELS", "CurveModel"]
