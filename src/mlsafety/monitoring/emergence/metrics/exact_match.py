"""Exact string match."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlsafety.monitoring.emergence.metrics import METRICS
from mlsafety.monitoring.emergence.metrics.base import Metric


@METRICS.register("exact_match", higher_is_better=True, continuous=False, bounds=(0.0, 1.0))
class ExactMatch(Metric):
    """1 if the output equals the target (surrounding whitespace ignored), else 0.

    Discontinuous: with per-token accuracy :math:`p` on an :math:`L`-token target it behaves
    like :math:`p^L`, which turns smooth per-token progress into an apparent jump
    (Schaeffer, Miranda & Koyejo 2023, "Are Emergent Abilities of Large Language Models a Mirage?").
    """

    def _score(self, outputs: list[str], targets: list[str], tokenizer: str, **extras: Any) -> np.ndarray:
        return np.array([o.strip() == t.strip() for o, t in zip(outputs, targets, strict=True)], dtype=float)
