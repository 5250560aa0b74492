"""Per-example metrics for re-scoring model outputs (Schaeffer, Miranda & Koyejo 2023).

Schaeffer et al., "Are Emergent Abilities of Large Language Models a Mirage?", NeurIPS 2023: most
claimed emergent abilities appear under metrics that are discontinuous (exact match) or strongly
non-linear in the per-token error rate, and become smooth under continuous ones (token edit
distance, Brier score). Each metric is one file registered in :data:`METRICS` with its direction
(``higher_is_better``), whether it is continuous, its bounds and the columns it needs.
"""

from __future__ import annotations

from typing import Any

from mlsafety.registry import Registry

METRICS: Registry[Any] = Registry("emergence metric", "mlsafety.monitoring.emergence.metrics")

from mlsafety.monitoring.emergence.metrics.base import Metric, levenshtein, rescore, tokenize  # noqa: E402

__all__ = ["METRICS", "Metric", "levenshtein", "rescore", "tokenize"]
