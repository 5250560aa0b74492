"""Energy score."""

from __future__ import annotations

import torch

from mlsafety._validation import check_positive
from mlsafety.monitoring.ood.base import OODDetector, energy_score
from mlsafety.registry import OOD_DETECTORS


@OOD_DETECTORS.register("energy", inputs="logits")
class Energy(OODDetector):
    """Free energy of the logits.

    Liu, Wang, Owens & Li (2020), "Energy-based Out-of-distribution Detection", NeurIPS.

    .. math:: s(x) = E(x; T) = -T \\log \\sum_k e^{z_k(x) / T}

    Parameters
    ----------
    temperature : float
        T (1 in the paper).

    Examples
    --------
    >>> scores = Energy().fit(classifier, validation).score(images)
    """

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = temperature

    def _validate_params(self) -> None:
        check_positive(self.temperature, "temperature", type(self).__name__)

    def _score(self, features: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        return energy_score(logits, self.temperature)
