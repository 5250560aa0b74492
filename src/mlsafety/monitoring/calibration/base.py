"""The recalibrator interface: ``fit(logits, labels) -> self``, ``transform(logits) -> probabilities``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

from mlsafety._validation import check_is_fitted, check_labels, check_logits
from mlsafety.base import ParamsMixin
from mlsafety.exceptions import InvalidInputError, ShapeError
from mlsafety.metrics.calibration import _one_thread


class Calibrator(ParamsMixin, ABC):
    """Maps a classifier's logits to calibrated class probabilities.

    Subclasses implement :meth:`_fit` and :meth:`_transform`; the public methods validate
    input once (logits, not probabilities; finite; labels in range; at least two classes)
    so that every calibrator refuses bad input with the same one-line messages.

    Fit on a held-out validation split only, never on the data you evaluate on.
    """

    registry_name: ClassVar[str] = ""
    n_classes_: int | None = None

    def fit(self, logits: Any, labels: Any) -> Calibrator:
        """Learn the calibration map from validation ``logits`` (N, K) and ``labels`` (N,).

        Returns
        -------
        self

        Raises
        ------
        ShapeError
            Zero samples, fewer than two columns, or a label count that differs from N.
        InvalidInputError
            NaN/inf logits, probabilities passed as logits, labels outside [0, K), or labels
            that hold a single class (nothing to calibrate against).
        """
        logits = self._check_logits(logits)
        labels = check_labels(labels, logits.shape[0], logits.shape[1], "labels").to(logits.device)
        if int(labels.unique().numel()) < 2:
            raise InvalidInputError(
                f"`labels` passed to {type(self).__name__}.fit hold a single class ({int(labels[0])}); "
                "fit on a validation split that contains at least two classes."
            )
        self._fit(logits, labels)
        self.n_classes_ = int(logits.shape[1])
        return self

    def transform(self, logits: Any) -> torch.Tensor:
        """Calibrated probabilities (N, K), rows summing to one, on the device of ``logits``."""
        logits = self._check_fitted_logits(logits)
        return self._transform(logits).to(logits.dtype)

    def fit_transform(self, logits: Any, labels: Any) -> torch.Tensor:
        return self.fit(logits, labels).transform(logits)

    def _check_logits(self, logits: Any) -> torch.Tensor:
        logits = check_logits(logits, "logits")
        if logits.shape[1] < 2:
            raise ShapeError(
                f"`logits` must have at least 2 columns (classes); got {logits.shape[1]}. For a binary "
                "model with one logit z, pass torch.cat([torch.zeros_like(z), z], 1)."
            )
        return logits

    def _check_fitted_logits(self, logits: Any) -> torch.Tensor:
        """Validated logits whose width matches the classes seen in ``fit``."""
        check_is_fitted(self, "n_classes_")
        logits = self._check_logits(logits)
        if logits.shape[1] != self.n_classes_:
            raise ShapeError(
                f"`logits` have {logits.shape[1]} columns but {type(self).__name__} was fitted on "
                f"{self.n_classes_} classes; refit on logits of this model."
            )
        return logits

    @abstractmethod
    def _fit(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Learn from validated logits (N, K) and labels (N,) on the same device."""

    @abstractmethod
    def _transform(self, logits: torch.Tensor) -> torch.Tensor:
        """Probabilities (N, K) from validated logits."""


class LogitScalingCalibrator(Calibrator):
    """A calibrator that maps logits to new logits (temperature, vector, matrix scaling)."""

    def calibrated_logits(self, logits: Any) -> torch.Tensor:
        """Calibrated logits (N, K), float64; their softmax is :meth:`transform`."""
        return self._calibrated_logits(self._check_fitted_logits(logits).double())

    @abstractmethod
    def _calibrated_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """New logits from validated float64 logits."""

    def _transform(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self._calibrated_logits(logits.double()), dim=1)


def minimise_lbfgs(parameters: list[torch.Tensor], loss_fn: Any, max_iter: int,
                   state: dict[str, Any] | None = None) -> float:
    """Minimise ``loss_fn()`` over ``parameters`` with full-batch L-BFGS and a strong-Wolfe
    line search (Nocedal & Wright, 2006, ch. 7); returns the final loss. ``state``, if given,
    receives the iterations run (``n_iter``)."""
    optimiser = torch.optim.LBFGS(parameters, lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-9, tolerance_change=1e-12, history_size=20)

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    # the tensors are small (N x K): on CPU one thread is many times faster than several
    # competing ones, so the fit runs single-threaded and restores the setting afterwards
    with torch.enable_grad(), _one_thread():
        optimiser.step(closure)
        if state is not None:
            state["n_iter"] = int(optimiser.state[optimiser.param_groups[0]["params"][0]].get("n_iter", 0))
        return float(loss_fn().detach())


def one_vs_rest_probabilities(probabilities: torch.Tensor) -> torch.Tensor:
    """Renormalise per-class calibrated probabilities (N, K) so that rows sum to one
    (Zadrozny & Elkan, 2002); a row that is all zeros becomes uniform."""
    total = probabilities.sum(1, keepdim=True)
    uniform = torch.full_like(probabilities, 1.0 / probabilities.shape[1])
    return torch.where(total > 0, probabilities / total.clamp_min(1e-300), uniform)
