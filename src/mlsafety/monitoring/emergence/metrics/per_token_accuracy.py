"""Per-token accuracy."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlsafety.monitoring.emergence.metrics import METRICS
from mlsafety.monitoring.emergence.metrics.base import Metric, tokenize


@METRICS.register("per_token_accuracy", higher_is_better=True, continuous=True, bounds=(0.0, 1.0))
class PerTokenAccuracy(Metric):
    """Fraction of target positions whose output token is right: :math:`\\frac{1}{L}\\sum_i [o_i = t_i]`.

    Linear in the per-token error rate, unlike exact match (Schaeffer, Miranda & Koyejo 2023).
    Missing output tokens count as wrong; extra ones are ignored (token edit distance counts them).
    """

    def _score(self, outputs: list[str], targets: list[str], tokenizer: str, **extras: Any) -> np.ndarray:
        scores = []
        for output, target in zip(outputs, targets, strict=True):
            out, tgt = tokenize(output, tokenizer), tokenize(target, tokenizer)
            hits = sum(a == b for a, b in zip(out, tgt, strict=False))
            scores.append(hits / len(tgt) if tgt else float(not out))
        return np.array(scores)
