"""Vector scaling (Guo et al., 2017)."""

from __future__ import annotations

import torch

from mlsafety._validation import check_positive
from mlsafety.monitoring.calibration.base import LogitScalingCalibrator, minimise_lbfgs
from mlsafety.registry import CALIBRATORS


@CALIBRATORS.register("vector_scaling", binary=False)
class VectorScaling(LogitScalingCalibrator):
    """Scale and shift each class's logit separately, fitted by NLL on validation data.

    Guo, Pleiss, Sun & Weinberger (2017), "On calibration of modern neural networks"
    (a diagonal special case of matrix scaling):

    .. math:: \\hat p = \\mathrm{softmax}(w \\odot z + b), \\qquad w, b \\in \\mathbb{R}^K

    minimising the validation NLL plus ``bias_penalty * ||b||^2 / K`` with L-BFGS from the
    identity map (w = 1, b = 0). Unlike temperature scaling it can change the argmax.

    Parameters
    ----------
    max_iter : int
        L-BFGS iterations.
    bias_penalty : float
        L2 penalty on the biases; keeps classes absent from the validation split finite.

    Attributes
    ----------
    weight_, bias_ : Tensor (K,)
        The fitted per-class scale and shift.
    """

    weight_: torch.Tensor | None = None
    bias_: torch.Tensor | None = None

    def __init__(self, max_iter: int = 200, bias_penalty: float = 1e-3) -> None:
        self.max_iter = max_iter
        self.bias_penalty = bias_penalty

    def _fit(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        check_positive(self.max_iter, "max_iter", "VectorScaling", integer=True)
        check_positive(self.bias_penalty, "bias_penalty", "VectorScaling", allow_zero=True)
        z = logits.double()
        k = z.shape[1]
        weight = torch.ones(k, dtype=torch.float64, device=z.device, requires_grad=True)
        bias = torch.zeros(k, dtype=torch.float64, device=z.device, requires_grad=True)

        def loss() -> torch.Tensor:
            nll = torch.nn.functional.cross_entropy(z * weight + bias, labels)
            return nll + self.bias_penalty * bias.square().sum() / k

        minimise_lbfgs([weight, bias], loss, self.max_iter)
        self.weight_, self.bias_ = weight.detach(), bias.detach()

    def _calibrated_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return logits * self.weight_.to(logits.device) + self.bias_.to(logits.device)
