"""Isotonic regression calibration (Zadrozny & Elkan, 2002), one-vs-rest for K classes."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.isotonic import IsotonicRegression as _Isotonic

from mlsafety.monitoring.calibration.base import Calibrator, one_vs_rest_probabilities
from mlsafety.registry import CALIBRATORS


@CALIBRATORS.register("isotonic_regression", binary=False)
class IsotonicRegression(Calibrator):
    """Fit a non-decreasing step function from each class probability to its label frequency.

    Zadrozny & Elkan (2002), "Transforming classifier scores into accurate multiclass
    probability estimates". For class k, the map ``g_k`` solves

    .. math:: \\min_{g_k \\text{ non-decreasing}} \\sum_i (\\mathbb{1}[y_i = k] - g_k(p_{ik}))^2

    by pool-adjacent-violators (scikit-learn's ``IsotonicRegression``, clipped outside the
    fitted range); then each row ``g_k(p_{ik})`` is renormalised to sum to one. Like
    histogram binning it is non-parametric, can change the argmax and can output zeros.

    Attributes
    ----------
    thresholds_ : list of (ndarray, ndarray)
        For each class, the fitted step function as (x, y) knots.
    """

    thresholds_: list[tuple[np.ndarray, np.ndarray]] | None = None

    def __init__(self) -> None:
        pass

    def _fit(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        probabilities = torch.softmax(logits.double(), 1).cpu().numpy()
        targets = torch.nn.functional.one_hot(labels, probabilities.shape[1]).double().cpu().numpy()
        knots = []
        for k in range(probabilities.shape[1]):  # K small fits, each vectorised over samples
            model = _Isotonic(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(probabilities[:, k], targets[:, k])
            knots.append((model.X_thresholds_.copy(), model.y_thresholds_.copy()))
        self.thresholds_ = knots

    def _transform(self, logits: torch.Tensor) -> torch.Tensor:
        probabilities = torch.softmax(logits.double(), 1).cpu().numpy()
        # the fitted isotonic function is the linear interpolation between its knots
        calibrated = np.stack([np.interp(probabilities[:, k], x, y) for k, (x, y) in enumerate(self.thresholds_)],
                              axis=1)
        return one_vs_rest_probabilities(torch.from_numpy(calibrated).to(logits.device))
