"""Temperature scaling (Guo et al., 2017)."""

from __future__ import annotations

import math

import torch

from mlsafety._validation import check_positive
from mlsafety.monitoring.calibration.base import LogitScalingCalibrator, minimise_lbfgs
from mlsafety.registry import CALIBRATORS


@CALIBRATORS.register("temperature_scaling", binary=False)
class TemperatureScaling(LogitScalingCalibrator):
    """Divide all logits by one scalar temperature fitted by NLL on validation data.

    Guo, Pleiss, Sun & Weinberger (2017), "On calibration of modern neural networks":

    .. math:: \\hat p = \\mathrm{softmax}(z / T), \\qquad
              T^* = \\arg\\min_{T > 0} -\\frac{1}{N}\\sum_i \\log \\mathrm{softmax}(z_i / T)_{y_i}

    The NLL is minimised over ``log T`` (so that T stays positive) with L-BFGS on the
    logits themselves, not on probabilities. Dividing by T > 0 never changes the argmax, so
    accuracy is unchanged.

    Parameters
    ----------
    max_iter : int
        L-BFGS iterations.
    initial_temperature : float
        Starting point of the search.

    Attributes
    ----------
    temperature_ : float
        The fitted temperature T (> 1 softens over-confident predictions).
    nll_ : float
        Validation NLL at ``temperature_``.

    Examples
    --------
    >>> scaler = TemperatureScaling().fit(validation_logits, validation_labels)
    >>> probabilities = scaler.transform(test_logits)    # (N, K)
    """

    temperature_: float | None = None
    nll_: float | None = None

    def __init__(self, max_iter: int = 100, initial_temperature: float = 1.0) -> None:
        self.max_iter = max_iter
        self.initial_temperature = initial_temperature

    def _fit(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        check_positive(self.max_iter, "max_iter", "TemperatureScaling", integer=True)
        check_positive(self.initial_temperature, "initial_temperature", "TemperatureScaling")
        z = logits.double()
        log_t = torch.tensor(math.log(self.initial_temperature), dtype=torch.float64, device=z.device,
                             requires_grad=True)
        self.nll_ = minimise_lbfgs(
            [log_t], lambda: torch.nn.functional.cross_entropy(z / log_t.exp(), labels), self.max_iter)
        self.temperature_ = float(log_t.detach().exp())

    def _calibrated_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return logits / self.temperature_
