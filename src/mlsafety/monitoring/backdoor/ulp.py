"""ULP: Universal Litmus Patterns."""

from __future__ import annotations

import torch
from torch import nn

from mlsafety.monitoring.backdoor._model_detector import BACKDOOR_MODEL_DETECTORS, QueryMetaDetector


@BACKDOOR_MODEL_DETECTORS.register("ulp")
class ULP(QueryMetaDetector):
    """Universal Litmus Patterns of Kolouri et al. (2020), *Universal Litmus Patterns:
    Revealing Backdoor Attacks in CNNs* (CVPR).

    ``M`` input patterns ``{z_m}`` are fed to a model ``f``; a linear classifier ``h`` reads the
    concatenated logits ``g(f) = [f(z_1), ..., f(z_M)]``. Patterns and ``h`` are learned
    jointly on shadow models with a total-variation penalty that keeps the patterns
    image-like:

        min_{z, h}  sum_i CE(h(g(f_i)), c_i) + lambda * sum_m TV(z_m),

    ``c_i`` the shadow's label (clean / poisoned). The paper uses M = 1, 5 or 10 patterns.

    Parameters
    ----------
    n_queries : int
        Number of litmus patterns ``M``.
    tv_weight : float
        ``lambda``, weight of the total variation (mean absolute difference of neighbours).
    epochs, learning_rate, seed : training of patterns and classifier (Adam).
    """

    def __init__(self, n_queries: int = 10, tv_weight: float = 1e-2, epochs: int = 60, learning_rate: float = 1e-2,
                 seed: int | None = 0) -> None:
        super().__init__(n_queries, epochs, learning_rate, seed)
        self.tv_weight = tv_weight

    def _features(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.flatten()

    def _meta_classifier(self, n_features: int) -> nn.Module:
        return nn.Linear(n_features, 1)

    def _regulariser(self, queries: torch.Tensor) -> torch.Tensor:
        horizontal = (queries[..., :, 1:] - queries[..., :, :-1]).abs().mean()
        vertical = (queries[..., 1:, :] - queries[..., :-1, :]).abs().mean()
        return self.tv_weight * (horizontal + vertical)
