"""LAT reading vector (Zou et al. 2023)."""

from __future__ import annotations

import torch

from mlsafety._validation import check_positive
from mlsafety.monitoring.honesty.probes.base import PROBES, Probe


@PROBES.register("lat", supervised=False)
class LATProbe(Probe):
    """Linear Artificial Tomography: the first principal component of paired differences.

    Zou et al. (2023), "Representation Engineering: A Top-Down Approach to AI Transparency". Random
    pairs of training statements are formed, their (standardised) hidden-state differences
    :math:`d_k = z_{i_k} - z_{j_k}` collected, and the reading vector is the first principal
    component :math:`v` of :math:`\\{d_k\\}`; the score is :math:`s(x) = v^\\top z`.

    The direction is found without labels. Labels, when given to ``fit``, only orient it (true
    statements score higher) and set the threshold at the midpoint of the class means; without
    labels the threshold is the median training score.

    Parameters
    ----------
    n_pairs : int
        Number of random pairs.
    seed : int
        Seed of the pairing.
    """

    supervised = False
    _state = ("direction_",)

    def __init__(self, n_pairs: int = 1000, seed: int = 0) -> None:
        self.n_pairs = n_pairs
        self.seed = seed

    def _validate_params(self) -> None:
        check_positive(self.n_pairs, "n_pairs", type(self).__name__, integer=True)

    def _fit(self, z: torch.Tensor, y: torch.Tensor | None) -> None:
        generator = torch.Generator().manual_seed(int(self.seed))
        first = torch.randint(len(z), (self.n_pairs,), generator=generator)
        second = torch.randint(len(z), (self.n_pairs,), generator=generator)
        differences = z[first] - z[second]
        # the differences are symmetric around zero in expectation; centre anyway, as PCA does
        differences = differences - differences.mean(0)
        _, _, vh = torch.linalg.svd(differences, full_matrices=False)
        direction = vh[0]
        scores = z @ direction
        if y is not None and scores[y == 1].mean() < scores[y == 0].mean():
            direction, scores = -direction, -scores
        self.direction_ = direction
        self._set_threshold_midpoint(scores, y)

    def _score(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.direction_
