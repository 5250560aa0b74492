"""ViM: virtual-logit matching."""

from __future__ import annotations

import torch

from mlsafety._validation import check_positive
from mlsafety.exceptions import parameter_error
from mlsafety.monitoring.ood.base import OODDetector
from mlsafety.registry import OOD_DETECTORS


@OOD_DETECTORS.register("vim", inputs="features")
class ViM(OODDetector):
    """Residual norm outside the principal feature subspace, scaled and matched to the logits.

    Wang, Li, Feng & Zhang (2022), "ViM: Out-Of-Distribution with Virtual-logit Matching",
    CVPR.

    With origin :math:`o = -W^+ b`, principal subspace :math:`P` spanned by the top
    ``n_components`` eigenvectors of the covariance of :math:`f - o` on training data, and
    residual :math:`x^{P^\\perp}` the projection of :math:`f - o` on the complement,

    .. math::

        \\alpha = \\frac{\\mathbb{E}_{train}[\\max_k z_k]}{\\mathbb{E}_{train}\\lVert x^{P^\\perp}\\rVert},
        \\qquad s(x) = \\alpha \\lVert x^{P^\\perp}\\rVert - \\log \\sum_k e^{z_k}

    a monotone function of the softmax probability of the virtual logit
    :math:`\\alpha \\lVert x^{P^\\perp}\\rVert` (the paper's score).

    Parameters
    ----------
    n_components : int or None
        Dimension of the principal subspace; None uses half the feature width (the paper
        uses 1000 of 2048 for ResNet-50 and 512 of 768 for ViT).

    Examples
    --------
    >>> scores = ViM().fit(classifier, train).score(images)
    """

    uses_features = True
    needs_head = True

    def __init__(self, n_components: int | None = None) -> None:
        self.n_components = n_components

    def _validate_params(self) -> None:
        if self.n_components is not None:
            check_positive(self.n_components, "n_components", type(self).__name__, integer=True)

    def _fit(self, features, logits, labels, head) -> None:  # type: ignore[no-untyped-def]
        weight, bias = head
        width = features.shape[1]
        components = self.n_components if self.n_components is not None else max(1, width // 2)
        if components >= width:
            raise parameter_error("n_components", type(self).__name__, f"smaller than the feature width ({width})",
                                  self.n_components, "The residual subspace would be empty.")
        self.origin_ = -(torch.linalg.pinv(weight.double()) @ bias.double())
        centred = features.double() - self.origin_
        covariance = centred.T @ centred / centred.shape[0]
        _, eigenvectors = torch.linalg.eigh(covariance)  # ascending eigenvalues
        self.residual_basis_ = eigenvectors[:, : width - components].contiguous()
        residual_norm = (centred @ self.residual_basis_).norm(dim=1)
        self.alpha_ = float(logits.double().max(dim=1).values.mean() / residual_norm.mean().clamp_min(1e-12))

    def _score(self, features: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        centred = features.double().to(self.origin_.device) - self.origin_  # type: ignore[union-attr]
        virtual = self.alpha_ * (centred @ self.residual_basis_).norm(dim=1)
        return (virtual - torch.logsumexp(logits.double().to(virtual.device), dim=1)).float().to(logits.device)
