"""Target log-likelihood."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlsafety.monitoring.emergence.metrics import METRICS
from mlsafety.monitoring.emergence.metrics.base import Metric


@METRICS.register("target_log_likelihood", higher_is_better=True, continuous=True, bounds=(None, 0.0))
class TargetLogLikelihood(Metric):
    """Summed log-probability of the target tokens under the model, :math:`\\sum_i \\log p(t_i | t_{<i}, x)`.

    Needs the ``target_logprob`` column (teacher-forced). The most continuous of the metrics: it
    moves with every change in the per-token probabilities (Schaeffer, Miranda & Koyejo 2023).
    """

    requires = ("target_logprob",)

    def _score(self, outputs: list[str], targets: list[str], tokenizer: str, **extras: Any) -> np.ndarray:
        return np.asarray(extras["target_logprob"], dtype=float)
