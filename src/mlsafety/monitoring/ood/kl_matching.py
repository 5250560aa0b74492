"""KL matching to class-typical posteriors."""

from __future__ import annotations

import math

import torch

from mlsafety.monitoring.ood.base import OODDetector
from mlsafety.registry import OOD_DETECTORS


@OOD_DETECTORS.register("kl_matching", inputs="logits")
class KLMatching(OODDetector):
    """Smallest KL divergence between the posterior and the typical posterior of a class.

    Hendrycks, Basart, Mazeika, Zou, Kwon, Mostajabi, Steinhardt & Song (2022), "Scaling
    Out-of-Distribution Detection for Real-World Settings", ICML.

    .. math::

        d_k = \\mathbb{E}[p(x) \\mid \\hat y(x) = k],\\qquad s(x) = \\min_k D_{KL}(p(x) \\,\\|\\, d_k)

    The templates :math:`d_k` are averaged over the fit samples the model *predicts* as
    class k (labels are not needed); classes never predicted are ignored. The paper fits
    on held-out validation data.

    Examples
    --------
    >>> scores = KLMatching().fit(classifier, validation).score(images)
    """

    def __init__(self) -> None:
        pass

    def _fit(self, features, logits, labels, head) -> None:  # type: ignore[no-untyped-def]
        p = logits.double().softmax(dim=1)
        predicted = torch.nn.functional.one_hot(p.argmax(dim=1), p.shape[1]).double()
        counts = predicted.sum(0)
        self.templates_ = ((predicted.T @ p) / counts.clamp_min(1).unsqueeze(1))[counts > 0]

    def _score(self, features: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        log_p = logits.double().log_softmax(dim=1)
        templates = self.templates_.to(log_p.device)
        log_templates = templates.log().clamp_min(math.log(torch.finfo(torch.float64).tiny))
        divergence = (log_p.exp() * log_p).sum(dim=1, keepdim=True) - log_p.exp() @ log_templates.T
        return divergence.min(dim=1).values.float()
