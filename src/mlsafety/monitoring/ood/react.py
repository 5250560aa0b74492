"""ReAct: rectified activations, then the energy score."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from mlsafety._validation import check_positive
from mlsafety.exceptions import parameter_error
from mlsafety.monitoring.ood.base import OODDetector, energy_score
from mlsafety.registry import OOD_DETECTORS


@OOD_DETECTORS.register("react", inputs="features")
class ReAct(OODDetector):
    """Clip penultimate activations at a percentile of their training values, then score
    the recomputed logits with the energy.

    Sun, Guo & Li (2021), "ReAct: Out-of-distribution Detection With Rectified
    Activations", NeurIPS.

    .. math:: s(x) = -T \\log \\sum_k \\exp\\big( (W \\min(f(x), c) + b)_k / T \\big)

    where :math:`c` is the ``percentile``-th percentile of all training activations.

    Parameters
    ----------
    percentile : float in (0, 100]
        90 in the paper.
    temperature : float
        Energy temperature T.

    Examples
    --------
    >>> scores = ReAct(percentile=90).fit(classifier, train).score(images)
    """

    uses_features = True
    needs_head = True
    tunable: ClassVar[dict[str, list[Any]]] = {"percentile": [80.0, 85.0, 90.0, 95.0, 99.0]}

    def __init__(self, percentile: float = 90.0, temperature: float = 1.0) -> None:
        self.percentile = percentile
        self.temperature = temperature

    def _validate_params(self) -> None:
        if not isinstance(self.percentile, int | float) or not 0 < self.percentile <= 100:
            raise parameter_error("percentile", type(self).__name__, "a number in (0, 100]", self.percentile)
        check_positive(self.temperature, "temperature", type(self).__name__)

    def _fit(self, features, logits, labels, head) -> None:  # type: ignore[no-untyped-def]
        self.weight_, self.bias_ = head
        values = features.flatten().double()
        if values.numel() > 16_000_000:  # torch.quantile's input limit; a strided subsample suffices
            values = values[:: values.numel() // 16_000_000 + 1]
        self.threshold_clip_ = float(torch.quantile(values, self.percentile / 100.0))

    def _score(self, features: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        clipped = features.clamp(max=self.threshold_clip_)  # type: ignore[union-attr]
        recomputed = clipped @ self.weight_.to(clipped).T + self.bias_.to(clipped)
        return energy_score(recomputed, self.temperature)
