"""Logistic-regression probe."""

from __future__ import annotations

import torch

from mlsafety._validation import check_positive
from mlsafety.monitoring.honesty.probes.base import PROBES, Probe


@PROBES.register("logistic", supervised=True)
class LogisticProbe(Probe):
    """L2-regularised logistic regression on standardised hidden states.

    The supervised baseline of the probing literature, e.g. Azaria & Mitchell (2023), "The Internal
    State of an LLM Knows When It's Lying" (SAPLMA uses a small MLP; a linear probe is the common
    reduction), and Marks & Tegmark (2023).

    .. math:: P(\\text{true} \\mid x) = \\sigma(w^\\top z + b), \\quad z = (x - \\mu) / s

    Parameters
    ----------
    C : float
        Inverse L2 strength (scikit-learn's ``C``).
    max_iter : int
        L-BFGS iterations.

    Examples
    --------
    >>> probe = LogisticProbe().fit(train_x, train_y); accuracy = (probe.predict(test_x) == test_y).float().mean()
    """

    _state = ("coef_", "intercept_")

    def __init__(self, C: float = 0.1, max_iter: int = 500) -> None:
        self.C = C
        self.max_iter = max_iter

    def _validate_params(self) -> None:
        check_positive(self.C, "C", type(self).__name__)
        check_positive(self.max_iter, "max_iter", type(self).__name__, integer=True)

    def _fit(self, z: torch.Tensor, y: torch.Tensor | None) -> None:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(z.numpy(), y.numpy())
        self.coef_ = torch.from_numpy(model.coef_[0]).float()
        self.intercept_ = torch.tensor([float(model.intercept_[0])])
        self.threshold_ = 0.0

    def _score(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.coef_ + self.intercept_
