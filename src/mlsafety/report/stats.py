"""Confidence intervals for the proportions a report shows (accuracies, success rates)."""

from __future__ import annotations

import math

from mlsafety.exceptions import InvalidParameterError


def wilson_interval(n_successes: int, n_trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Wilson, E. B. (1927), "Probable inference, the law of succession, and statistical
    inference". With :math:`\\hat p = k / n` and :math:`z` the two-sided normal quantile,

    .. math:: \\frac{\\hat p + z^2/2n \\pm z\\sqrt{\\hat p(1-\\hat p)/n + z^2/4n^2}}{1 + z^2/n}.

    Unlike the normal ("Wald") interval it stays inside [0, 1] and keeps its coverage at
    0 % or 100 % accuracy and on small samples (Brown, Cai & DasGupta, 2001).

    Parameters
    ----------
    n_successes : k, the number of correct predictions (0 <= k <= n).
    n_trials : n, the number of predictions (>= 1).
    confidence : the coverage, in (0, 1).

    Returns
    -------
    (low, high) : floats in [0, 1].

    Example
    -------
    >>> [round(v, 4) for v in wilson_interval(8, 10)]
    [0.4902, 0.9433]
    """
    if n_trials < 1:
        raise InvalidParameterError(f"n_trials of wilson_interval must be >= 1; got {n_trials}.")
    if not 0 <= n_successes <= n_trials:
        raise InvalidParameterError(
            f"n_successes of wilson_interval must be in 0..{n_trials}; got {n_successes}.")
    if not 0 < confidence < 1:
        raise InvalidParameterError(f"confidence of wilson_interval must be in (0, 1); got {confidence}.")
    z = _normal_quantile(0.5 + confidence / 2)
    p = n_successes / n_trials
    denominator = 1 + z * z / n_trials
    centre = (p + z * z / (2 * n_trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / n_trials + z * z / (4 * n_trials * n_trials)) / denominator
    # at k = 0 (k = n) the bound is exactly 0 (1); rounding would leave 1e-17
    low = 0.0 if n_successes == 0 else max(0.0, centre - half)
    high = 1.0 if n_successes == n_trials else min(1.0, centre + half)
    return low, high


def _normal_quantile(probability: float) -> float:
    """The standard normal quantile, by bisection on ``math.erf`` (no scipy import needed)."""
    low, high = -10.0, 10.0
    for _ in range(80):
        middle = (low + high) / 2
        if 0.5 * (1 + math.erf(middle / math.sqrt(2))) < probability:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def accuracy_with_interval(n_correct: int, n_total: int, confidence: float = 0.95) -> str:
    """``"91.2% [90.6, 91.7]"``: a percentage with its Wilson interval, for text and tables."""
    low, high = wilson_interval(n_correct, n_total, confidence)
    return f"{n_correct / n_total:.1%} [{low:.1%}, {high:.1%}]".replace("%,", ",")


def interval_of_rate(rate: float, n_total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson interval of a proportion given as a rate over ``n_total`` trials."""
    return wilson_interval(round(rate * n_total), n_total, confidence)
