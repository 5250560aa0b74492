"""Matrix scaling with off-diagonal and intercept regularisation (Guo et al., 2017; Kull et al., 2019)."""

from __future__ import annotations

import torch

from mlsafety._validation import check_positive
from mlsafety.monitoring.calibration.base import LogitScalingCalibrator, minimise_lbfgs
from mlsafety.registry import CALIBRATORS


@CALIBRATORS.register("matrix_scaling", binary=False)
class MatrixScaling(LogitScalingCalibrator):
    """A full linear map of the logits, fitted by regularised NLL on validation data.

    Guo, Pleiss, Sun & Weinberger (2017), "On calibration of modern neural networks";
    regularised as in the ODIR variant of Kull, Perello-Nieto, Kängsepp, Silva Filho, Song
    & Flach (2019), "Beyond temperature scaling: obtaining well-calibrated multiclass
    probabilities with Dirichlet calibration":

    .. math:: \\hat p = \\mathrm{softmax}(W z + b), \\quad
              \\mathcal{L} = \\mathrm{NLL} + \\frac{\\lambda}{K(K-1)} \\sum_{i \\ne j} W_{ij}^2
              + \\frac{\\mu}{K} \\sum_j b_j^2

    With K^2 + K parameters, unregularised matrix scaling over-fits small validation sets
    (Guo et al. report it as the worst method on many classes); the penalties pull it
    towards vector scaling. Optimised with L-BFGS from the identity map.

    Parameters
    ----------
    max_iter : int
        L-BFGS iterations.
    off_diagonal_penalty : float
        λ, the penalty on off-diagonal weights.
    bias_penalty : float
        μ, the penalty on the intercepts.

    Attributes
    ----------
    weight_ : Tensor (K, K)
    bias_ : Tensor (K,)
    """

    weight_: torch.Tensor | None = None
    bias_: torch.Tensor | None = None

    def __init__(self, max_iter: int = 150, off_diagonal_penalty: float = 1e-2,
                 bias_penalty: float = 1e-2) -> None:
        self.max_iter = max_iter
        self.off_diagonal_penalty = off_diagonal_penalty
        self.bias_penalty = bias_penalty

    def _fit(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        check_positive(self.max_iter, "max_iter", "MatrixScaling", integer=True)
        check_positive(self.off_diagonal_penalty, "off_diagonal_penalty", "MatrixScaling", allow_zero=True)
        check_positive(self.bias_penalty, "bias_penalty", "MatrixScaling", allow_zero=True)
        z = logits.double()
        k = z.shape[1]
        weight = torch.eye(k, dtype=torch.float64, device=z.device).requires_grad_(True)
        bias = torch.zeros(k, dtype=torch.float64, device=z.device, requires_grad=True)
        off_diagonal = 1.0 - torch.eye(k, dtype=torch.float64, device=z.device)

        def loss() -> torch.Tensor:
            nll = torch.nn.functional.cross_entropy(z @ weight.T + bias, labels)
            penalty = (self.off_diagonal_penalty * (weight * off_diagonal).square().sum() / (k * (k - 1))
                       + self.bias_penalty * bias.square().sum() / k)
            return nll + penalty

        minimise_lbfgs([weight, bias], loss, self.max_iter)
        self.weight_, self.bias_ = weight.detach(), bias.detach()

    def _calibrated_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return logits @ self.weight_.to(logits.device).T + self.bias_.to(logits.device)
