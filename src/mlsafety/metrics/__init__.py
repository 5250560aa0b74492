"""Metrics as pure functions on tensors/arrays (one module per family: ood, calibration, ...)."""

from mlsafety.metrics.bootstrap import bootstrap_interval

__all__ = ["bootstrap_interval"]
