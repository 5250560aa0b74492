"""Calibration metrics: ECE, adaptive ECE, MCE, RMS calibration error, classwise ECE,
Brier score and negative log-likelihood, with bootstrap confidence intervals.

Every metric takes ``scores`` of shape (N, K) and integer ``labels`` (N,) and is explicit
about what ``scores`` are: ``from_logits=True`` (the default) expects pre-softmax logits and
refuses a matrix whose rows are non-negative and sum to one (probabilities passed by
mistake); ``from_logits=False`` expects probabilities and refuses rows that do not sum to one.

Binning conventions
-------------------
Equal-width bins follow Guo et al. (2017): bin ``m`` of ``M`` is ``((m - 1)/M, m/M]``, so a
confidence of exactly 1.0 falls in the last bin (there is no extra bin for it) and a
confidence of exactly 0 in the first. Equal-mass (adaptive) bins sort the samples by
confidence and cut them into ``M`` groups whose sizes differ by at most one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from mlsafety._validation import check_in, check_labels, check_logits, check_positive
from mlsafety.exceptions import InvalidInputError, ShapeError
from mlsafety.metrics.bootstrap import bootstrap_interval

Strategy = Literal["uniform", "quantile"]

__all__ = [
    "ReliabilityBins",
    "adaptive_calibration_error",
    "brier_score",
    "calibration_bins",
    "calibration_metrics",
    "classwise_calibration_error",
    "expected_calibration_error",
    "maximum_calibration_error",
    "negative_log_likelihood",
    "rms_calibration_error",
    "to_probabilities",
]


# -- input handling ----------------------------------------------------------------------
def to_probabilities(scores: Any, *, from_logits: bool = True, name: str = "scores") -> torch.Tensor:
    """Validate ``scores`` (N, K) and return float64 probabilities.

    Parameters
    ----------
    scores : Tensor or ndarray, shape (N, K)
        Logits (``from_logits=True``) or probabilities (``from_logits=False``), K >= 2.
    from_logits : bool
        Whether ``scores`` are pre-softmax logits.

    Raises
    ------
    ShapeError
        If ``scores`` is not (N, K) with N >= 1 and K >= 2.
    InvalidInputError
        If ``scores`` holds NaN/inf, if logits look like probabilities, or if probabilities
        are outside [0, 1] or do not sum to one per row.
    """
    if from_logits:
        logits = check_logits(scores, name)
        _check_two_classes(logits, name)
        return torch.softmax(logits.double(), dim=1)
    if isinstance(scores, np.ndarray):
        scores = torch.from_numpy(scores)
    if not isinstance(scores, torch.Tensor):
        raise InvalidInputError(f"`{name}` must be a torch.Tensor; got {type(scores).__name__}.")
    if scores.ndim != 2:
        raise ShapeError(f"`{name}` must have shape (N, n_classes); got {tuple(scores.shape)}.")
    if scores.shape[0] == 0:
        raise ShapeError(f"`{name}` is empty (N = 0); pass at least one sample.")
    _check_two_classes(scores, name)
    probabilities = scores.double()
    if not bool(torch.isfinite(probabilities).all()):
        raise InvalidInputError(f"`{name}` contains NaN or infinite values; check the model output.")
    row_error = float((probabilities.sum(1) - 1).abs().max())
    if bool((probabilities < -1e-9).any()) or bool((probabilities > 1 + 1e-9).any()) or row_error > 1e-4:
        raise InvalidInputError(
            f"`{name}` must hold probabilities (rows in [0, 1] summing to 1) when from_logits=False; "
            f"rows deviate from 1 by up to {row_error:.3g}. Pass from_logits=True for pre-softmax outputs."
        )
    return probabilities.clamp(0.0, 1.0)


def _check_two_classes(scores: torch.Tensor, name: str) -> None:
    if scores.shape[1] < 2:
        raise ShapeError(
            f"`{name}` must have at least 2 columns (classes); got {scores.shape[1]}. For a binary model "
            "with one logit z, pass torch.cat([torch.zeros_like(z), z], 1)."
        )


def _prepare(scores: Any, labels: Any, from_logits: bool) -> tuple[torch.Tensor, torch.Tensor]:
    probabilities = to_probabilities(scores, from_logits=from_logits)
    labels = check_labels(labels, probabilities.shape[0], probabilities.shape[1], "labels")
    return probabilities, labels.to(probabilities.device)


def _check_n_bins(n_bins: Any, owner: str) -> int:
    return int(check_positive(n_bins, "n_bins", owner, integer=True))


# -- binning -------------------------------------------------------------------------------
@dataclass
class ReliabilityBins:
    """Per-bin statistics of a reliability diagram.

    Attributes
    ----------
    edges : ndarray (M + 1,)
        Bin edges (for equal-mass bins, the confidence range each group spans).
    counts : ndarray (M,)
        Samples per bin.
    confidence : ndarray (M,)
        Mean confidence per bin (NaN for empty bins).
    accuracy : ndarray (M,)
        Fraction correct per bin (NaN for empty bins).
    """

    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def weights(self) -> np.ndarray:
        return self.counts / max(int(self.counts.sum()), 1)

    @property
    def gaps(self) -> np.ndarray:
        """``|accuracy - confidence|`` per bin (0 for empty bins)."""
        return np.nan_to_num(np.abs(self.accuracy - self.confidence))


def _uniform_bin_index(confidences: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Index m in [0, M) of the right-closed bin ((m)/M, (m+1)/M] holding each confidence."""
    inner = torch.linspace(0.0, 1.0, n_bins + 1, dtype=confidences.dtype, device=confidences.device)[1:-1]
    # bucketize(right=False) returns i with inner[i-1] < c <= inner[i]: right-closed bins, and
    # c = 1.0 gets index M - 1 (the last bin), c = 0 gets index 0.
    return torch.bucketize(confidences.contiguous(), inner, right=False)


def _quantile_bin_index(confidences: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Equal-mass bins: the rank-sorted samples are cut into ``n_bins`` near-equal groups."""
    n = confidences.shape[0]
    order = torch.sort(confidences, stable=True).indices
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(n, device=confidences.device)
    return torch.div(ranks * n_bins, n, rounding_mode="floor")


def _bin_sums(values: torch.Tensor, correct: torch.Tensor, index: torch.Tensor,
              n_bins: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Counts, summed confidences and summed correctness per bin (batched scatter-add)."""
    zeros = torch.zeros(n_bins, dtype=torch.float64, device=values.device)
    counts = zeros.index_add(0, index, torch.ones_like(values, dtype=torch.float64))
    conf_sum = zeros.index_add(0, index, values.double())
    correct_sum = zeros.index_add(0, index, correct.double())
    return counts, conf_sum, correct_sum


def _top_label(probabilities: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    confidences, predictions = probabilities.max(1)
    return confidences, (predictions == labels).double()


def _bin_errors(confidences: torch.Tensor, correct: torch.Tensor, n_bins: int,
                strategy: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights, |acc - conf|) per bin; empty bins have weight 0 and gap 0."""
    index = _uniform_bin_index(confidences, n_bins) if strategy == "uniform" else \
        _quantile_bin_index(confidences, n_bins)
    counts, conf_sum, correct_sum = _bin_sums(confidences, correct, index, n_bins)
    safe = counts.clamp_min(1)
    gaps = (correct_sum / safe - conf_sum / safe).abs()
    return counts / counts.sum(), gaps


def calibration_bins(scores: Any, labels: Any, *, n_bins: int = 15, strategy: Strategy = "uniform",
                     from_logits: bool = True) -> ReliabilityBins:
    """Per-bin confidence and accuracy of the top-label prediction (a reliability diagram).

    Parameters
    ----------
    scores : Tensor (N, K)
        Logits or probabilities (see ``from_logits``).
    labels : Tensor (N,)
        Integer labels in [0, K).
    n_bins : int
        Number of bins M.
    strategy : {"uniform", "quantile"}
        Equal-width bins ``((m-1)/M, m/M]`` or equal-mass bins.
    from_logits : bool
        Whether ``scores`` are logits.

    Returns
    -------
    ReliabilityBins
    """
    n_bins = _check_n_bins(n_bins, "calibration_bins")
    check_in(strategy, {"uniform", "quantile"}, "strategy", "calibration_bins")
    probabilities, labels = _prepare(scores, labels, from_logits)
    confidences, correct = _top_label(probabilities, labels)
    if strategy == "uniform":
        index = _uniform_bin_index(confidences, n_bins)
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        index = _quantile_bin_index(confidences, n_bins)
        high = torch.full((n_bins,), float("-inf"), dtype=torch.float64, device=confidences.device)
        high = high.scatter_reduce(0, index, confidences, "amax").cpu().numpy()
        # bin m spans from the previous bin's largest confidence to its own; an empty bin
        # (only with fewer samples than bins) has zero width
        edges = np.maximum.accumulate(np.concatenate([[float(confidences.min())], high]))
    counts, conf_sum, correct_sum = _bin_sums(confidences, correct, index, n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        counts_np = counts.cpu().numpy()
        confidence = np.where(counts_np > 0, conf_sum.cpu().numpy() / counts_np, np.nan)
        accuracy = np.where(counts_np > 0, correct_sum.cpu().numpy() / counts_np, np.nan)
    return ReliabilityBins(edges, counts_np.astype(np.int64), confidence, accuracy)


# -- metrics on validated float64 probabilities (no re-validation in bootstrap loops) -----------
def _ece(p: torch.Tensor, y: torch.Tensor, n_bins: int) -> float:
    weights, gaps = _bin_errors(*_top_label(p, y), n_bins, "uniform")
    return float((weights * gaps).sum())


def _adaptive_ece(p: torch.Tensor, y: torch.Tensor, n_bins: int) -> float:
    weights, gaps = _bin_errors(*_top_label(p, y), n_bins, "quantile")
    return float((weights * gaps).sum())


def _mce(p: torch.Tensor, y: torch.Tensor, n_bins: int) -> float:
    weights, gaps = _bin_errors(*_top_label(p, y), n_bins, "uniform")
    return float(gaps[weights > 0].max())


def _rms_ce(p: torch.Tensor, y: torch.Tensor, n_bins: int) -> float:
    weights, gaps = _bin_errors(*_top_label(p, y), n_bins, "uniform")
    return float((weights * gaps.square()).sum().sqrt())


def _classwise_ece(p: torch.Tensor, y: torch.Tensor, n_bins: int) -> float:
    n, k = p.shape
    onehot = torch.nn.functional.one_hot(y, k).double()
    # one flat index per (class, bin) so that all classes are binned in a single scatter-add
    index = (_uniform_bin_index(p, n_bins) + n_bins * torch.arange(k, device=p.device)).flatten()
    _, conf_sum, freq_sum = _bin_sums(p.flatten(), onehot.flatten(), index, n_bins * k)
    return float((conf_sum - freq_sum).abs().sum() / (n * k))


def _brier(p: torch.Tensor, y: torch.Tensor) -> float:
    onehot = torch.nn.functional.one_hot(y, p.shape[1]).double()
    return float((p - onehot).square().sum(1).mean())


def _nll(log_p: torch.Tensor, y: torch.Tensor) -> float:
    return float(-log_p.gather(1, y[:, None]).mean())


def _accuracy(p: torch.Tensor, y: torch.Tensor) -> float:
    return float((p.argmax(1) == y).double().mean())


def _confidence(p: torch.Tensor, y: torch.Tensor) -> float:
    return float(p.max(1).values.mean())


# -- binned calibration errors ----------------------------------------------------------------
def expected_calibration_error(scores: Any, labels: Any, *, n_bins: int = 15,
                               from_logits: bool = True) -> float:
    """Expected calibration error with equal-width bins.

    Naeini, Cooper & Hauskrecht (2015), "Obtaining well calibrated probabilities using
    Bayesian binning"; Guo, Pleiss, Sun & Weinberger (2017), "On calibration of modern neural
    networks":

    .. math:: \\mathrm{ECE} = \\sum_{m=1}^{M} \\frac{|B_m|}{N}\\,|\\mathrm{acc}(B_m) - \\mathrm{conf}(B_m)|

    with top-label confidence ``max_k p_k`` and bins ``B_m = ((m-1)/M, m/M]``.

    Parameters
    ----------
    scores : Tensor (N, K)
        Logits (default) or probabilities with ``from_logits=False``.
    labels : Tensor (N,)
        Integer labels in [0, K).
    n_bins : int
        Number of bins M (15 as in Guo et al.).
    from_logits : bool
        Whether ``scores`` are logits.

    Returns
    -------
    float in [0, 1]

    Raises
    ------
    InvalidInputError, ShapeError
        On NaN scores, probabilities passed as logits (or vice versa), labels out of range,
        fewer than two classes or zero samples.

    Examples
    --------
    >>> expected_calibration_error(model_logits, labels)
    0.031...
    """
    n_bins = _check_n_bins(n_bins, "expected_calibration_error")
    return _ece(*_prepare(scores, labels, from_logits), n_bins)


def adaptive_calibration_error(scores: Any, labels: Any, *, n_bins: int = 15,
                               from_logits: bool = True) -> float:
    """Expected calibration error with equal-mass (adaptive) bins.

    Nixon, Dusenberry, Zhang, Jerfel & Tran (2019), "Measuring calibration in deep
    learning"; Mukhoti et al. (2020), "Calibrating deep neural networks using focal loss"
    (AdaECE). The samples sorted by top-label confidence are cut into ``M`` groups of
    ``N/M`` samples (sizes differ by at most one) and

    .. math:: \\mathrm{AdaECE} = \\sum_{m=1}^{M} \\frac{|B_m|}{N}\\,|\\mathrm{acc}(B_m) - \\mathrm{conf}(B_m)|

    Parameters and errors are as in :func:`expected_calibration_error`.
    """
    n_bins = _check_n_bins(n_bins, "adaptive_calibration_error")
    return _adaptive_ece(*_prepare(scores, labels, from_logits), n_bins)


def maximum_calibration_error(scores: Any, labels: Any, *, n_bins: int = 15,
                              from_logits: bool = True) -> float:
    """Maximum calibration error over the non-empty equal-width bins.

    Naeini, Cooper & Hauskrecht (2015):

    .. math:: \\mathrm{MCE} = \\max_{m:\\,|B_m| > 0} |\\mathrm{acc}(B_m) - \\mathrm{conf}(B_m)|

    Parameters and errors are as in :func:`expected_calibration_error`.
    """
    n_bins = _check_n_bins(n_bins, "maximum_calibration_error")
    return _mce(*_prepare(scores, labels, from_logits), n_bins)


def rms_calibration_error(scores: Any, labels: Any, *, n_bins: int = 15, from_logits: bool = True) -> float:
    """Root-mean-square calibration error with equal-width bins.

    Hendrycks, Mazeika, Kadavath & Song (2019), "Using self-supervised learning can improve
    model robustness and uncertainty" (after Nguyen & O'Connor, 2015):

    .. math:: \\mathrm{RMSCE} = \\sqrt{\\sum_{m=1}^{M} \\frac{|B_m|}{N}\\,(\\mathrm{acc}(B_m) - \\mathrm{conf}(B_m))^2}

    Parameters and errors are as in :func:`expected_calibration_error`.
    """
    n_bins = _check_n_bins(n_bins, "rms_calibration_error")
    return _rms_ce(*_prepare(scores, labels, from_logits), n_bins)


def classwise_calibration_error(scores: Any, labels: Any, *, n_bins: int = 15,
                                from_logits: bool = True) -> float:
    """Classwise ECE: the equal-width-bin ECE of every class's probability, averaged over classes.

    Kull, Perello-Nieto, Kängsepp, Silva Filho, Song & Flach (2019), "Beyond temperature
    scaling: obtaining well-calibrated multiclass probabilities with Dirichlet calibration":

    .. math:: \\mathrm{cwECE} = \\frac{1}{K}\\sum_{k=1}^{K}\\sum_{m=1}^{M} \\frac{|B_{m,k}|}{N}
              \\,|\\mathrm{freq}_k(B_{m,k}) - \\mathrm{conf}_k(B_{m,k})|

    where ``B_{m,k}`` holds the samples whose ``p_k`` falls in bin ``m`` and ``freq_k`` is
    the fraction of them with label ``k``. Parameters are as in
    :func:`expected_calibration_error`.
    """
    n_bins = _check_n_bins(n_bins, "classwise_calibration_error")
    return _classwise_ece(*_prepare(scores, labels, from_logits), n_bins)


# -- proper scoring rules ----------------------------------------------------------------------
def brier_score(scores: Any, labels: Any, *, from_logits: bool = True) -> float:
    """Multi-class Brier score (Brier, 1950, "Verification of forecasts expressed in terms of
    probability").

    .. math:: \\mathrm{BS} = \\frac{1}{N}\\sum_{i=1}^{N}\\sum_{k=1}^{K} (p_{ik} - \\mathbb{1}[y_i = k])^2

    Ranges over [0, 2]; lower is better. (Some libraries divide by K or score only the
    positive class of a binary problem, which gives half this value for K = 2.)
    """
    return _brier(*_prepare(scores, labels, from_logits))


def negative_log_likelihood(scores: Any, labels: Any, *, from_logits: bool = True,
                            eps: float = 1e-12) -> float:
    """Mean negative log-likelihood of the labels, ``-(1/N) sum_i log p_{i, y_i}``.

    Computed with ``log_softmax`` from logits (exact, no underflow); from probabilities the
    probability of the true class is clipped at ``eps`` so that a confident mistake gives a
    large finite value (``-log eps``) instead of infinity.
    """
    if from_logits:
        logits = check_logits(scores, "scores")
        _check_two_classes(logits, "scores")
        labels = check_labels(labels, logits.shape[0], logits.shape[1], "labels").to(logits.device)
        return float(torch.nn.functional.cross_entropy(logits.double(), labels))
    probabilities, labels = _prepare(scores, labels, from_logits)
    return _nll(probabilities.clamp_min(eps).log(), labels)


# -- all at once, with intervals -----------------------------------------------------------------
_BINNED: dict[str, Callable[[torch.Tensor, torch.Tensor, int], float]] = {
    "ece": _ece,
    "adaptive_ece": _adaptive_ece,
    "mce": _mce,
    "rms_ce": _rms_ce,
    "classwise_ece": _classwise_ece,
}
_UNBINNED: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
    "brier": _brier,
    "accuracy": _accuracy,
    "confidence": _confidence,
}
METRIC_NAMES: tuple[str, ...] = (*_BINNED, "brier", "nll", "accuracy", "confidence")


def calibration_metrics(scores: Any, labels: Any, *, n_bins: int = 15, from_logits: bool = True,
                        n_resamples: int = 0, confidence: float = 0.95, seed: int = 0,
                        metrics: tuple[str, ...] | None = None, eps: float = 1e-12) -> dict[str, float]:
    """All calibration metrics at once, optionally with percentile bootstrap intervals.

    Parameters
    ----------
    scores, labels, n_bins, from_logits :
        As in :func:`expected_calibration_error`.
    n_resamples : int
        Bootstrap resamples (Efron & Tibshirani, 1993) for ``<metric>_low`` /
        ``<metric>_high`` entries, via :func:`mlsafety.metrics.bootstrap_interval`; 0 for none.
    confidence : float
        Coverage of the bootstrap interval.
    seed : int
        Seed of the bootstrap.
    metrics : tuple of str, optional
        Subset of ``METRIC_NAMES`` (all by default).
    eps : float
        Clip of the true-class probability in the NLL when ``from_logits=False``.

    Returns
    -------
    dict
        ``ece, adaptive_ece, mce, rms_ce, classwise_ece, brier, nll, accuracy, confidence``
        (and ``<name>_low`` / ``<name>_high`` with bootstrap).

    Examples
    --------
    >>> calibration_metrics(logits, labels, n_resamples=200)["ece_high"]
    """
    names = METRIC_NAMES if metrics is None else tuple(metrics)
    for name in names:
        check_in(name, set(METRIC_NAMES), "metrics", "calibration_metrics")
    n_bins = _check_n_bins(n_bins, "calibration_metrics")
    check_positive(n_resamples, "n_resamples", "calibration_metrics", integer=True, allow_zero=True)
    # the NLL stays exact on logits (log_softmax); from probabilities it is clipped at eps
    if from_logits:
        logits = check_logits(scores, "scores")
        _check_two_classes(logits, "scores")
        log_probabilities = torch.log_softmax(logits.double(), 1)
        probabilities = torch.softmax(logits.double(), 1)  # as in the single-metric functions
    else:
        probabilities = to_probabilities(scores, from_logits=False)
        log_probabilities = probabilities.clamp_min(eps).log()
    labels = check_labels(labels, probabilities.shape[0], probabilities.shape[1], "labels").to(probabilities.device)

    def compute(name: str, p: torch.Tensor, log_p: torch.Tensor, y: torch.Tensor) -> float:
        if name in _BINNED:
            return _BINNED[name](p, y, n_bins)
        if name == "nll":
            return _nll(log_p, y)
        return _UNBINNED[name](p, y)

    result = {name: compute(name, probabilities, log_probabilities, labels) for name in names}
    if n_resamples:
        arrays = (probabilities.cpu().numpy(), log_probabilities.cpu().numpy(), labels.cpu().numpy())
        with _one_thread():
            result.update(_intervals(names, compute, arrays, n_resamples, confidence, seed))
    return result


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run many tiny tensor ops on one thread: on a busy machine, intra-op threads make
    each op tens of times slower than the work itself."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _intervals(names: tuple[str, ...], compute: Callable[..., float], arrays: tuple[np.ndarray, ...],
               n_resamples: int, confidence: float, seed: int) -> dict[str, float]:
    result: dict[str, float] = {}
    for name in names:
        low, high = bootstrap_interval(
            lambda p, log_p, y, name=name: compute(name, torch.from_numpy(p), torch.from_numpy(log_p),
                                                   torch.from_numpy(y)),
            *arrays, n_resamples=n_resamples, confidence=confidence, seed=seed)
        result[f"{name}_low"], result[f"{name}_high"] = low, high
    return result
