"""Brier score of the target."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlsafety.monitoring.emergence.metrics import METRICS
from mlsafety.monitoring.emergence.metrics.base import Metric


@METRICS.register("brier", higher_is_better=False, continuous=True, bounds=(0.0, 1.0))
class Brier(Metric):
    """Brier score of the correct answer, :math:`(1 - p_{target})^2` (lower is better).

    Brier (1950); the continuous replacement for multiple-choice grade in Schaeffer, Miranda &
    Koyejo (2023). Needs ``target_prob`` (the probability of the correct choice). This is the
    binary (correct vs not) form: the full multi-class score also needs the other choices'
    probabilities.
    """

    requires = ("target_prob",)

    def _score(self, outputs: list[str], targets: list[str], tokenizer: str, **extras: Any) -> np.ndarray:
        probability = np.asarray(extras["target_prob"], dtype=float)
        return (1.0 - np.clip(probability, 0.0, 1.0)) ** 2
