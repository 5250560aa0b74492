"""GradNorm in closed form for the last layer."""

from __future__ import annotations

import torch

from mlsafety._validation import check_positive
from mlsafety.monitoring.ood.base import OODDetector
from mlsafety.registry import OOD_DETECTORS


def gradnorm_score(features: torch.Tensor, logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``-||∂ KL(u || softmax(z/T)) / ∂W||_1`` for the head ``z = W f + b``, per sample.

    The gradient of ``-(1/K) Σ_k log softmax(z/T)_k`` with respect to ``z`` is
    ``(softmax(z/T) - 1/K) / T``, and that with respect to ``W`` is its outer product with
    ``f``, whose L1 norm factorises: ``(Σ_k |p_k - 1/K| / T) (Σ_d |f_d|)``. One
    matrix-free expression replaces a backward pass per sample.
    """
    p = (logits.double() / temperature).softmax(dim=1)
    logit_gradient = (p - 1.0 / p.shape[1]).abs().sum(dim=1) / temperature
    return -(logit_gradient * features.double().abs().sum(dim=1))


@OOD_DETECTORS.register("gradnorm", inputs="features")
class GradNorm(OODDetector):
    """L1 norm of the gradient of the KL divergence to the uniform distribution, taken with
    respect to the weights of the last layer.

    Huang, Geng & Li (2021), "On the Importance of Gradients for Detecting Distributional
    Shifts in the Wild", NeurIPS.

    .. math::

        s(x) = -\\Big\\lVert \\frac{\\partial D_{KL}(u \\,\\|\\, \\mathrm{softmax}(z/T))}{\\partial W}\\Big\\rVert_1
             = -\\Big(\\frac{1}{T}\\sum_k \\big|p_k - \\tfrac{1}{K}\\big|\\Big)\\Big(\\sum_d |f_d|\\Big)

    In-distribution inputs get larger gradients, hence the minus sign. The closed form
    holds when the features are the head's input (the default of :class:`Classifier`).

    Parameters
    ----------
    temperature : float
        T (1 in the paper).

    Examples
    --------
    >>> scores = GradNorm().fit(classifier, train).score(images)
    """

    uses_features = True

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = temperature

    def _validate_params(self) -> None:
        check_positive(self.temperature, "temperature", type(self).__name__)

    def _score(self, features: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        return gradnorm_score(features, logits, self.temperature).float()  # type: ignore[arg-type]
