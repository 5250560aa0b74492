"""Calibration: recalibrators fitted on validation logits, reliability diagrams, and
calibration under distribution shift.

Every recalibrator is registered in :data:`mlsafety.registry.CALIBRATORS` from its own
file and follows one API: ``fit(logits, labels) -> self`` on a validation split, then
``transform(logits) -> probabilities (N, K)``. The metrics live in
:mod:`mlsafety.metrics.calibration`.
"""

from mlsafety.monitoring.calibration.base import Calibrator, LogitScalingCalibrator
from mlsafety.monitoring.calibration.histogram_binning import HistogramBinning
from mlsafety.monitoring.calibration.isotonic_regression import IsotonicRegression
from mlsafety.monitoring.calibration.matrix_scaling import MatrixScaling
from mlsafety.monitoring.calibration.platt_scaling import PlattScaling
from mlsafety.monitoring.calibration.temperature_scaling import TemperatureScaling
from mlsafety.monitoring.calibration.vector_scaling import VectorScaling

__all__ = [
    "Calibrator",
    "HistogramBinning",
    "IsotonicRegression",
    "LogitScalingCalibrator",
    "MatrixScaling",
    "PlattScaling",
    "TemperatureScaling",
    "VectorScaling",
]
