"""Histogram binning (Zadrozny & Elkan, 2001), one-vs-rest for K classes."""

from __future__ import annotations

import torch

from mlsafety._validation import check_positive
from mlsafety.metrics.calibration import _uniform_bin_index
from mlsafety.monitoring.calibration.base import Calibrator, one_vs_rest_probabilities
from mlsafety.registry import CALIBRATORS


@CALIBRATORS.register("histogram_binning", binary=False)
class HistogramBinning(Calibrator):
    """Replace each class probability by the label frequency of its bin on validation data.

    Zadrozny & Elkan (2001), "Obtaining calibrated probability estimates from decision trees
    and naive Bayesian classifiers"; extended to K classes one-vs-rest as in Guo et al. (2017).
    For class k, the softmax probability ``p_k`` is put into equal-width bins
    ``((m-1)/M, m/M]`` and mapped to

    .. math:: \\theta_{m,k} = \\frac{|\\{i \\in B_{m,k} : y_i = k\\}|}{|B_{m,k}|}

    then each row is renormalised to sum to one. Bins that receive no validation sample
    keep their midpoint ``(m - 1/2)/M``. The map is piecewise constant, so it can change the
    argmax and can output probability 0 (its NLL is then large).

    Parameters
    ----------
    n_bins : int
        Bins M per class.

    Attributes
    ----------
    bin_values_ : Tensor (K, M)
        θ for every class and bin.
    """

    bin_values_: torch.Tensor | None = None

    def __init__(self, n_bins: int = 15) -> None:
        self.n_bins = n_bins

    def _fit(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        n_bins = int(check_positive(self.n_bins, "n_bins", "HistogramBinning", integer=True))
        probabilities = torch.softmax(logits.double(), 1)
        k = probabilities.shape[1]
        onehot = torch.nn.functional.one_hot(labels, k).double()
        index = (_uniform_bin_index(probabilities, n_bins)
                 + n_bins * torch.arange(k, device=logits.device)).flatten()
        zeros = torch.zeros(k * n_bins, dtype=torch.float64, device=logits.device)
        counts = zeros.index_add(0, index, torch.ones_like(index, dtype=torch.float64))
        positives = zeros.index_add(0, index, onehot.flatten())
        midpoints = ((torch.arange(n_bins, dtype=torch.float64, device=logits.device) + 0.5) / n_bins).repeat(k)
        self.bin_values_ = torch.where(counts > 0, positives / counts.clamp_min(1), midpoints).view(k, n_bins)

    def _transform(self, logits: torch.Tensor) -> torch.Tensor:
        probabilities = torch.softmax(logits.double(), 1)
        values = self.bin_values_.to(logits.device)
        index = _uniform_bin_index(probabilities, values.shape[1])
        calibrated = values.gather(1, index.T).T  # row k of values, looked up at each sample's bin
        return one_vs_rest_probabilities(calibrated)
