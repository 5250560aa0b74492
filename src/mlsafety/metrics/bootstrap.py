"""Percentile bootstrap confidence intervals (Efron & Tibshirani, 1993, ch. 13)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlsafety._validation import check_fraction, check_positive
from mlsafety.exceptions import ShapeError


def bootstrap_interval(
    metric: Callable[..., float],
    *arrays: np.ndarray,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    stratify: np.ndarray | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric(*arrays)``.

    Rows of all ``arrays`` are resampled jointly with replacement ``n_resamples`` times;
    the interval is the ((1 - c)/2, (1 + c)/2) quantiles of the resampled metric. With
    ``stratify`` (e.g. in/out labels), each stratum is resampled separately so that every
    resample keeps the original class sizes (needed for AUROC, FPR@95, ...).

    Returns
    -------
    (low, high) : tuple of float
    """
    check_positive(n_resamples, "n_resamples", "bootstrap_interval", integer=True)
    check_fraction(confidence, "confidence", "bootstrap_interval")
    arrays = tuple(np.asarray(a) for a in arrays)
    n = len(arrays[0])
    if n == 0 or any(len(a) != n for a in arrays):
        raise ShapeError(f"bootstrap_interval needs non-empty arrays of equal length; got {[len(a) for a in arrays]}.")
    rng = np.random.default_rng(seed)
    if stratify is None:
        indices = rng.integers(0, n, size=(n_resamples, n))
    else:
        groups = [np.flatnonzero(np.asarray(stratify) == value) for value in np.unique(stratify)]
        indices = np.concatenate(
            [group[rng.integers(0, len(group), size=(n_resamples, len(group)))] for group in groups], axis=1
        )
    values = np.array([metric(*(a[index] for a in arrays)) for index in indices], dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)
