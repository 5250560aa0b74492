"""ASH: activation shaping, then the energy score."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from mlsafety._validation import check_in, check_positive
from mlsafety.exceptions import parameter_error
from mlsafety.monitoring.ood.base import OODDetector, energy_score
from mlsafety.registry import OOD_DETECTORS


def ash_shape(features: torch.Tensor, percentile: float, variant: str = "s") -> torch.Tensor:
    """Keep each sample's top ``(100 - percentile)%`` activations and prune the rest.

    ``"p"`` keeps them as they are; ``"b"`` replaces each by ``s1 / k`` (the mean that keeps
    the sum); ``"s"`` multiplies them by ``exp(s1 / s2)``, where ``s1`` and ``s2`` are the
    sample's activation sums before and after pruning.
    """
    width = features.shape[1]
    keep = max(1, width - round(width * percentile / 100.0))
    values, index = features.topk(keep, dim=1)
    total = features.sum(dim=1, keepdim=True)
    if variant == "b":
        values = (total / keep).expand_as(values)
    elif variant == "s":
        values = values * torch.exp(total / values.sum(dim=1, keepdim=True))
    return torch.zeros_like(features).scatter_(1, index, values)


@OOD_DETECTORS.register("ash", inputs="features")
class ASH(OODDetector):
    """Activation shaping of the penultimate features, then the energy of the recomputed logits.

    Djurisic, Bozanic, Ashok & Liu (2023), "Extremely Simple Activation Shaping for
    Out-of-Distribution Detection", ICLR.

    .. math::

        s(x) = -\\log \\sum_k \\exp\\big( (W\\, \\mathrm{ASH}(f(x)) + b)_k \\big),\\quad
        \\mathrm{ASH\\text{-}S}(f) = \\mathrm{prune}_p(f)\\, e^{\\,s_1 / s_2}

    The paper shapes the last convolutional feature maps; here the shaping acts on the
    penultimate vector that the head consumes (the same place as ReAct), so the method
    needs no access to the model's internals. It needs no statistics: ``fit`` only stores
    the head.

    Parameters
    ----------
    percentile : float in (0, 100)
        Fraction of activations pruned per sample, in percent (65-90 in the paper).
    variant : {"s", "p", "b"}
        ASH-S (scale), ASH-P (prune), ASH-B (binarise).

    Examples
    --------
    >>> scores = ASH(percentile=90, variant="s").fit(classifier, train).score(images)
    """

    uses_features = True
    needs_head = True
    tunable: ClassVar[dict[str, list[Any]]] = {"percentile": [50.0, 65.0, 80.0, 90.0, 95.0]}

    def __init__(self, percentile: float = 90.0, variant: str = "s", temperature: float = 1.0) -> None:
        self.percentile = percentile
        self.variant = variant
        self.temperature = temperature

    def _validate_params(self) -> None:
        if not isinstance(self.percentile, int | float) or not 0 < self.percentile < 100:
            raise parameter_error("percentile", type(self).__name__, "a number in (0, 100)", self.percentile)
        check_in(self.variant, {"s", "p", "b"}, "variant", type(self).__name__)
        check_positive(self.temperature, "temperature", type(self).__name__)

    def _fit(self, features, logits, labels, head) -> None:  # type: ignore[no-untyped-def]
        self.weight_, self.bias_ = head

    def _score(self, features: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        shaped = ash_shape(features.double(), self.percentile, self.variant)  # type: ignore[union-attr]
        recomputed = shaped @ self.weight_.double().to(shaped.device).T + self.bias_.double().to(shaped.device)
        return energy_score(recomputed, self.temperature).float()
