"""MNTD: Meta Neural Trojan Detection with query tuning."""

from __future__ import annotations

import torch
from torch import nn

from mlsafety.monitoring.backdoor._model_detector import BACKDOOR_MODEL_DETECTORS, QueryMetaDetector


@BACKDOOR_MODEL_DETECTORS.register("mntd")
class MNTD(QueryMetaDetector):
    """Meta Neural Trojan Detection of Xu et al. (2021), *Detecting AI Trojans Using Meta
    Neural Analysis* (IEEE S&P).

    ``n_queries`` query images ``X = {x_1..x_q}`` are fed to a model ``f``; the meta-classifier
    ``META`` (a 2-layer MLP, hidden size ``hidden``) reads the concatenated output
    probabilities ``R(f) = [softmax f(x_1), ..., softmax f(x_q)]``. Queries and META are
    optimised jointly ("query tuning") on shadow models with the binary cross-entropy

        min_{X, META}  sum_i BCE(META(R_X(f_i)), b_i),

    ``b_i = 1`` for a backdoored shadow. The paper's *jumbo learning* draws the backdoored
    shadows from a broad distribution of attacks (random trigger shape, size, position,
    transparency, target and poison rate); :class:`~mlsafety.monitoring.backdoor.zoo.Zoo`
    builds such a distribution over the shipped attack families. Queries are parametrised
    through a sigmoid so they stay images in [0, 1].

    Parameters
    ----------
    n_queries : int
        Number of query images (the paper uses 10).
    hidden : int
        Hidden units of META (the paper uses 20).
    epochs, learning_rate, seed : training of queries and META (Adam).

    Examples
    --------
    >>> mntd = MNTD().fit(shadow_models, labels)
    >>> mntd.score_model(classifier)   # higher = more likely backdoored
    """

    def __init__(self, n_queries: int = 10, hidden: int = 20, epochs: int = 60, learning_rate: float = 1e-2,
                 seed: int | None = 0) -> None:
        super().__init__(n_queries, epochs, learning_rate, seed)
        self.hidden = hidden

    def _features(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=-1).flatten()

    def _meta_classifier(self, n_features: int) -> nn.Module:
        return nn.Sequential(nn.Linear(n_features, self.hidden), nn.ReLU(), nn.Linear(self.hidden, 1))
