"""Contrast-Consistent Search (Burns et al. 2023)."""

from __future__ import annotations

import torch

from mlsafety._validation import check_positive
from mlsafety.monitoring.honesty.probes.base import PROBES, Probe


def ccs_loss(p_pos: torch.Tensor, p_neg: torch.Tensor) -> torch.Tensor:
    """Consistency + confidence loss, averaged over statements (one value per column of ``p_pos``).

    .. math:: L = \\frac{1}{N}\\sum_i [p(x_i^+) - (1 - p(x_i^-))]^2 + \\min(p(x_i^+), p(x_i^-))^2
    """
    consistency = (p_pos - (1 - p_neg)) ** 2
    confidence = torch.minimum(p_pos, p_neg) ** 2
    return (consistency + confidence).mean(0)


@PROBES.register("ccs", supervised=False)
class CCSProbe(Probe):
    """Contrast-Consistent Search: an unsupervised linear probe on contrast pairs.

    Burns, Ye, Klein & Steinhardt (2023), "Discovering Latent Knowledge in Language Models Without
    Supervision", ICLR. Each statement is read twice, followed by "True" (:math:`x^+`) and by
    "False" (:math:`x^-`); each side is standardised on its own. A probe
    :math:`p(x) = \\sigma(w^\\top z + b)` minimises :func:`ccs_loss` (truth is consistent:
    :math:`p(x^+) \\approx 1 - p(x^-)`, and confident). The best of ``n_restarts`` random starts
    (lowest loss; all trained at once) is kept. The score is
    :math:`\\tfrac12 [p(x^+) + 1 - p(x^-)] - \\tfrac12`, threshold 0.

    Training uses no labels. CCS cannot tell "true" from "false" (both signs are solutions); labels
    given to ``fit`` are used only to orient the probe, from the first ``n_sign_labels`` of them,
    as the paper does for reporting.

    Parameters
    ----------
    n_restarts : int
        Random starts (10 in the paper).
    n_epochs : int
        Full-batch AdamW steps (1000 in the paper).
    learning_rate : float
        AdamW step size.
    weight_decay : float
        AdamW weight decay.
    n_sign_labels : int
        Labelled statements used only to orient the probe.
    seed : int
        Seed of the initialisation.

    Examples
    --------
    >>> pairs = torch.stack([features["pos"][layer], features["neg"][layer]], dim=1)  # (N, 2, d)
    >>> probe = CCSProbe().fit(pairs)
    """

    pairs = True
    supervised = False
    _state = ("coef_", "intercept_")

    def __init__(self, n_restarts: int = 10, n_epochs: int = 1000, learning_rate: float = 1e-2,
                 weight_decay: float = 0.01, n_sign_labels: int = 16, seed: int = 0) -> None:
        self.n_restarts = n_restarts
        self.n_epochs = n_epochs
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.n_sign_labels = n_sign_labels
        self.seed = seed

    def _validate_params(self) -> None:
        owner = type(self).__name__
        for name in ("n_restarts", "n_epochs", "n_sign_labels"):
            check_positive(getattr(self, name), name, owner, integer=True)
        check_positive(self.learning_rate, "learning_rate", owner)
        check_positive(self.weight_decay, "weight_decay", owner, allow_zero=True)

    def _probabilities(self, z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.sigmoid(z[:, 0] @ weight + bias), torch.sigmoid(z[:, 1] @ weight + bias)

    def _fit(self, z: torch.Tensor, y: torch.Tensor | None) -> None:
        generator = torch.Generator().manual_seed(int(self.seed))
        width = z.shape[-1]
        weight = (torch.randn(width, self.n_restarts, generator=generator) / width**0.5).requires_grad_()
        bias = torch.zeros(self.n_restarts, requires_grad=True)
        optimiser = torch.optim.AdamW([weight, bias], lr=self.learning_rate, weight_decay=self.weight_decay)
        positive, negative = z[:, 0].contiguous(), z[:, 1].contiguous()
        for _ in range(self.n_epochs):
            optimiser.zero_grad(set_to_none=True)
            losses = ccs_loss(torch.sigmoid(torch.addmm(bias, positive, weight)),
                              torch.sigmoid(torch.addmm(bias, negative, weight)))
            losses.sum().backward()  # the restarts are independent: the sum trains each on its own loss
            optimiser.step()
        with torch.no_grad():
            losses = ccs_loss(*self._probabilities(z, weight, bias))
            best = int(losses.argmin())
            self.coef_ = weight[:, best].detach().clone()
            self.intercept_ = bias[best : best + 1].detach().clone()
            self.info_ = {"loss": float(losses[best]), "flipped": False}
            self.threshold_ = 0.0
            if y is not None:
                few = torch.arange(min(self.n_sign_labels, len(y)))
                correct = ((self._score(z[few]) > 0).long() == y[few]).float().mean()
                if correct < 0.5:
                    self.coef_, self.intercept_ = -self.coef_, -self.intercept_
                    self.info_["flipped"] = True

    def _score(self, z: torch.Tensor) -> torch.Tensor:
        p_pos, p_neg = self._probabilities(z, self.coef_[:, None], self.intercept_)
        return (0.5 * (p_pos + 1 - p_neg) - 0.5)[:, 0]
