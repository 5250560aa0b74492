"""Token edit distance."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlsafety.monitoring.emergence.metrics import METRICS
from mlsafety.monitoring.emergence.metrics.base import Metric, levenshtein, tokenize


@METRICS.register("token_edit_distance", higher_is_better=False, continuous=True, bounds=(0.0, None))
class TokenEditDistance(Metric):
    """Levenshtein distance between the output and target token sequences (lower is better).

    Schaeffer, Miranda & Koyejo (2023) re-score BIG-bench arithmetic with it: it is roughly
    linear in the target length times the per-token error rate, so the "emergent" jump of
    exact match becomes smooth.
    """

    def _score(self, outputs: list[str], targets: list[str], tokenizer: str, **extras: Any) -> np.ndarray:
        return np.array([levenshtein(tokenize(o, tokenizer), tokenize(t, tokenizer))
                         for o, t in zip(outputs, targets, strict=True)], dtype=float)
