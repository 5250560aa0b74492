"""Mass-mean probes (Marks & Tegmark 2023), with and without the covariance correction."""

from __future__ import annotations

import torch

from mlsafety._validation import check_fraction
from mlsafety.monitoring.honesty.probes.base import PROBES, Probe


@PROBES.register("mass_mean", supervised=True)
class MassMeanProbe(Probe):
    """Project on the difference of the class means.

    Marks & Tegmark (2023), "The Geometry of Truth: Emergent Linear Structure in Large Language
    Model Representations of True/False Datasets". With :math:`\\theta = \\mu_+ - \\mu_-`,

    .. math:: s(x) = \\theta^\\top z \\quad\\text{(plain)}, \\qquad
              s(x) = \\theta^\\top \\Sigma^{-1} z \\quad\\text{(covariance-corrected, "iid")}

    where :math:`\\Sigma` is the pooled within-class covariance (shrunk towards its mean variance by
    ``shrinkage`` so it is invertible with fewer statements than dimensions). The threshold is the
    midpoint of the projected class means. The paper reports that the plain direction generalises
    across datasets better than logistic regression, and the corrected one is best in distribution.

    Parameters
    ----------
    covariance : bool
        Apply :math:`\\Sigma^{-1}` (the paper's in-distribution variant).
    shrinkage : float
        Weight of the scaled identity in :math:`\\Sigma` (0..1).
    """

    _state = ("direction_",)

    def __init__(self, covariance: bool = False, shrinkage: float = 0.1) -> None:
        self.covariance = covariance
        self.shrinkage = shrinkage

    def _validate_params(self) -> None:
        check_fraction(self.shrinkage, "shrinkage", type(self).__name__, low_inclusive=True)

    def _fit(self, z: torch.Tensor, y: torch.Tensor | None) -> None:
        positive, negative = z[y == 1], z[y == 0]
        theta = positive.mean(0) - negative.mean(0)
        if self.covariance:
            centred = torch.cat([positive - positive.mean(0), negative - negative.mean(0)]).double()
            sigma = centred.T @ centred / max(len(centred) - 2, 1)
            target = sigma.diagonal().mean() * torch.eye(len(sigma), dtype=sigma.dtype)
            sigma = (1 - self.shrinkage) * sigma + self.shrinkage * target
            sigma += 1e-6 * torch.eye(len(sigma), dtype=sigma.dtype)  # constant features (e.g. embeddings of '.')
            theta = torch.linalg.solve(sigma, theta.double()).float()
        self.direction_ = theta
        self._set_threshold_midpoint(z @ theta, y)

    def _score(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.direction_


@PROBES.register("mass_mean_iid", supervised=True)
class MassMeanIIDProbe(MassMeanProbe):
    """Mass-mean probe with the covariance correction (Marks & Tegmark 2023, "iid" variant).

    See :class:`MassMeanProbe`; this is ``MassMeanProbe(covariance=True)`` under its own name.
    """

    def __init__(self, covariance: bool = True, shrinkage: float = 0.1) -> None:
        super().__init__(covariance=covariance, shrinkage=shrinkage)
