"""Platt scaling (Platt, 1999) for binary problems, one-vs-rest beyond two classes."""

from __future__ import annotations

import torch

from mlsafety._validation import check_positive
from mlsafety.monitoring.calibration.base import Calibrator, minimise_lbfgs, one_vs_rest_probabilities
from mlsafety.registry import CALIBRATORS


def log_odds(logits: torch.Tensor) -> torch.Tensor:
    """Per-class log-odds of the softmax, ``log p_k - log(1 - p_k)`` (N, K), computed stably.

    For two classes this is the margin ``z_1 - z_0`` (column 1) and its negative (column 0).
    """
    if logits.shape[1] == 2:  # exact, even where the softmax saturates
        margin = logits[:, 1] - logits[:, 0]
        return torch.stack([-margin, margin], 1)
    log_p = torch.log_softmax(logits, 1)
    # log(1 - p) = log(-expm1(log p)); the clamp keeps p = 1 finite
    return log_p - torch.log((-torch.expm1(log_p)).clamp_min(1e-300))


@CALIBRATORS.register("platt_scaling", binary=True)
class PlattScaling(Calibrator):
    """Fit a sigmoid ``sigma(a s + b)`` of the classifier's log-odds to the labels.

    Platt (1999), "Probabilistic outputs for support vector machines and comparisons to
    regularized likelihood methods". For a binary problem with logits (z_0, z_1) the score
    is ``s = z_1 - z_0`` and

    .. math:: P(y = 1 \\mid s) = \\sigma(a s + b), \\qquad
              \\min_{a,b} -\\sum_i t_i \\log \\sigma(a s_i + b) + (1 - t_i) \\log(1 - \\sigma(a s_i + b))

    with Platt's smoothed targets ``t = (N_+ + 1)/(N_+ + 2)`` for positives and
    ``1/(N_- + 2)`` for negatives (set ``smooth_targets=False`` for 0/1 targets). Fitted with
    L-BFGS. Platt scaling is a binary method; for K > 2 classes this class fits one sigmoid
    per class on that class's log-odds (one-vs-rest) and renormalises the rows, as
    scikit-learn's ``CalibratedClassifierCV(method="sigmoid")`` does.

    Parameters
    ----------
    max_iter : int
        L-BFGS iterations.
    smooth_targets : bool
        Use Platt's out-of-sample target smoothing.

    Attributes
    ----------
    slope_, intercept_ : Tensor (K,)
        a and b per class (for K = 2 only entry 1, the positive class, is used).
    """

    slope_: torch.Tensor | None = None
    intercept_: torch.Tensor | None = None

    def __init__(self, max_iter: int = 100, smooth_targets: bool = True) -> None:
        self.max_iter = max_iter
        self.smooth_targets = smooth_targets

    def _fit(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        check_positive(self.max_iter, "max_iter", "PlattScaling", integer=True)
        scores = log_odds(logits.double())
        k = scores.shape[1]
        targets = torch.nn.functional.one_hot(labels, k).double()
        if self.smooth_targets:
            positives = targets.sum(0)
            negatives = targets.shape[0] - positives
            targets = torch.where(targets > 0, (positives + 1) / (positives + 2), 1 / (negatives + 2))
        slope = torch.ones(k, dtype=torch.float64, device=logits.device, requires_grad=True)
        intercept = torch.zeros(k, dtype=torch.float64, device=logits.device, requires_grad=True)
        # the K one-vs-rest problems are independent, so one L-BFGS run on their summed loss solves all
        minimise_lbfgs(
            [slope, intercept],
            lambda: torch.nn.functional.binary_cross_entropy_with_logits(
                scores * slope + intercept, targets, reduction="sum") / targets.shape[0],
            self.max_iter)
        self.slope_, self.intercept_ = slope.detach(), intercept.detach()

    def _transform(self, logits: torch.Tensor) -> torch.Tensor:
        scores = log_odds(logits.double())
        slope, intercept = self.slope_.to(logits.device), self.intercept_.to(logits.device)
        if scores.shape[1] == 2:
            positive = torch.sigmoid(scores[:, 1] * slope[1] + intercept[1])
            return torch.stack([1 - positive, positive], 1)
        return one_vs_rest_probabilities(torch.sigmoid(scores * slope + intercept))
