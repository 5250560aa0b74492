"""Mahalanobis distance to class-conditional Gaussians with a shared covariance."""

from __future__ import annotations

import torch

from mlsafety.exceptions import InvalidInputError
from mlsafety.monitoring.ood.base import OODDetector
from mlsafety.registry import OOD_DETECTORS


def class_means_and_precision(features: torch.Tensor, labels: torch.Tensor,
                              n_classes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class means (K, D), the shared (tied) covariance's pseudo-inverse (D, D), and a mask
    (K,) of the classes that occur in ``labels``. Computed in float64."""
    f = features.double()
    onehot = torch.nn.functional.one_hot(labels, n_classes).double()
    counts = onehot.sum(0)
    present = counts > 0
    if int(present.sum()) == 0:
        raise InvalidInputError("no labelled samples to estimate class means from.")
    means = (onehot.T @ f) / counts.clamp_min(1).unsqueeze(1)
    centred = f - means[labels]
    covariance = centred.T @ centred / f.shape[0]
    precision = torch.linalg.pinv(covariance, hermitian=True)
    return means, precision, present


def squared_mahalanobis(features: torch.Tensor, means: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """(N, K) squared distances ``(f - mu_k)^T P (f - mu_k)`` without an (N, K, D) tensor."""
    f = features.double().to(means.device)
    fp = f @ precision
    cross = fp @ means.T
    mean_terms = ((means @ precision) * means).sum(1)
    return ((fp * f).sum(1, keepdim=True) - 2 * cross + mean_terms).clamp_min(0)


@OOD_DETECTORS.register("mahalanobis", inputs="features")
class Mahalanobis(OODDetector):
    """Minimum Mahalanobis distance to the class means under a shared covariance.

    Lee, Lee, Lee & Shin (2018), "A Simple Unified Framework for Detecting
    Out-of-Distribution Samples and Adversarial Attacks", NeurIPS (penultimate layer,
    without input preprocessing or layer ensembles).

    .. math::

        s(x) = \\min_k (f(x) - \\mu_k)^\\top \\Sigma^{-1} (f(x) - \\mu_k),\\quad
        \\Sigma = \\frac{1}{N} \\sum_i (f_i - \\mu_{y_i})(f_i - \\mu_{y_i})^\\top

    Fitting needs in-distribution features with labels. The pseudo-inverse handles the
    rank-deficient covariances of ReLU features.

    Examples
    --------
    >>> detector = Mahalanobis().fit(classifier, train)          # labels from the data set
    >>> scores = detector.score(images)
    """

    uses_features = True
    needs_labels = True

    def __init__(self) -> None:
        pass

    means_: torch.Tensor | None = None

    def _fit(self, features, logits, labels, head) -> None:  # type: ignore[no-untyped-def]
        self.means_, self.precision_, self.present_ = class_means_and_precision(features, labels, logits.shape[1])

    def _score(self, features: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        distances = squared_mahalanobis(features, self.means_, self.precision_)  # type: ignore[arg-type]
        distances[:, ~self.present_] = float("inf")
        return distances.min(dim=1).values.float().to(logits.device)
