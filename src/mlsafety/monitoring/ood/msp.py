"""Maximum softmax probability (MSP)."""

from __future__ import annotations

import torch

from mlsafety._validation import check_positive
from mlsafety.monitoring.ood.base import OODDetector
from mlsafety.registry import OOD_DETECTORS


def msp_score(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``-max_k softmax(z / T)_k`` (higher = more anomalous)."""
    return -(logits / temperature).softmax(dim=1).max(dim=1).values


@OOD_DETECTORS.register("msp", inputs="logits")
class MSP(OODDetector):
    """Maximum softmax probability baseline.

    Hendrycks & Gimpel (2017), "A Baseline for Detecting Misclassified and
    Out-of-Distribution Examples in Neural Networks", ICLR.

    .. math:: s(x) = -\\max_k \\operatorname{softmax}(z(x) / T)_k

    Parameters
    ----------
    temperature : float
        Softmax temperature T (1 in the paper).

    Examples
    --------
    >>> detector = MSP().fit(classifier, validation)
    >>> scores = detector.score(images)          # (N,), higher = more anomalous
    """

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = temperature

    def _validate_params(self) -> None:
        check_positive(self.temperature, "temperature", type(self).__name__)

    def _score(self, features: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        return msp_score(logits, self.temperature)
