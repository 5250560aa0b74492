"""Corruption error (CE), mean corruption error (mCE) and their relative versions.

Hendrycks & Dietterich (2019), "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR. With :math:`E^f_{s,c}` the top-1 error of model
``f`` on corruption ``c`` at severity ``s`` and a baseline model (AlexNet for ImageNet-C):

.. math::

    CE^f_c = \\frac{\\sum_s E^f_{s,c}}{\\sum_s E^{base}_{s,c}}, \\qquad
    mCE^f = \\frac{1}{|C|}\\sum_c CE^f_c, \\qquad
    \\text{relative } CE^f_c = \\frac{\\sum_s (E^f_{s,c} - E^f_{clean})}
                                   {\\sum_s (E^{base}_{s,c} - E^{base}_{clean})}.

Errors are fractions in [0, 1]; CE values are ratios (1.0 = as bad as the baseline).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from mlsafety.exceptions import InvalidInputError, InvalidParameterError

Errors = Mapping[str, Any]
"""corruption name -> errors per severity (array-like) or one error averaged over severities."""


def _as_errors(values: Any, name: str, what: str) -> np.ndarray:
    array = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if array.ndim != 1 or array.size == 0:
        raise InvalidInputError(f"{what} for {name!r} must be one error per severity (1-D); got shape {array.shape}.")
    if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 1:
        raise InvalidInputError(
            f"{what} for {name!r} must be error fractions in [0, 1]; got {array.tolist()}. "
            "Pass errors (1 - accuracy), not percentages.")
    return array


def corruption_error(errors: Any, baseline_errors: Any, name: str = "corruption") -> float:
    """CE of one corruption: summed errors over severities divided by the baseline's.

    ``baseline_errors`` may be one number (the baseline's error averaged over severities,
    as in the shipped AlexNet table); then the ratio of means is used, which equals the
    ratio of sums when the model was evaluated on all five severities.
    """
    model = _as_errors(errors, name, "model errors")
    base = _as_errors(baseline_errors, name, "baseline errors")
    if base.size == 1 and model.size != 1:
        model_total, base_total = model.mean(), base[0]
    elif base.size != model.size:
        raise InvalidInputError(
            f"errors for {name!r} cover {model.size} severities but the baseline's cover {base.size}; "
            "evaluate both on the same severities.")
    else:
        model_total, base_total = model.sum(), base.sum()
    if base_total <= 0:
        raise InvalidInputError(f"the baseline's error on {name!r} is 0; CE is undefined.")
    return float(model_total / base_total)


def relative_corruption_error(errors: Any, clean_error: float, baseline_errors: Any,
                              baseline_clean_error: float, name: str = "corruption") -> float:
    """Relative CE: the error *increase* over clean, normalised by the baseline's increase."""
    model = _as_errors(errors, name, "model errors")
    base = _as_errors(baseline_errors, name, "baseline errors")
    if base.size == 1 and model.size != 1:
        model_gap, base_gap = model.mean() - clean_error, base[0] - baseline_clean_error
    elif base.size != model.size:
        raise InvalidInputError(
            f"errors for {name!r} cover {model.size} severities but the baseline's cover {base.size}.")
    else:
        model_gap = (model - clean_error).sum()
        base_gap = (base - baseline_clean_error).sum()
    if base_gap <= 0:
        raise InvalidInputError(
            f"the baseline's error on {name!r} does not exceed its clean error; relative CE is undefined.")
    return float(model_gap / base_gap)


def _common_names(errors: Errors, baseline: Errors) -> list[str]:
    if not errors:
        raise InvalidInputError("`errors` is empty; pass errors for at least one corruption.")
    missing = [name for name in errors if name not in baseline]
    if missing:
        raise InvalidInputError(
            f"the baseline has no errors for {missing}; it covers {sorted(baseline)}. "
            "Restrict `errors` to those corruptions or pass a baseline that covers them.")
    return list(errors)


def _baseline(baseline: Errors | str) -> tuple[Errors, float | None]:
    if isinstance(baseline, str):
        if baseline != "alexnet":
            raise InvalidParameterError(f"`baseline` must be 'alexnet' or a mapping of errors; got {baseline!r}.")
        table = alexnet_errors()
        return table["mean_error"], table["clean_error"]
    return baseline, None


def mean_corruption_error(errors: Errors, baseline: Errors | str = "alexnet") -> float:
    """mCE: the mean over corruptions of :func:`corruption_error`.

    Parameters
    ----------
    errors : corruption name -> the model's errors per severity.
    baseline : the baseline model's errors in the same form, or ``"alexnet"`` for the
        shipped ImageNet-C AlexNet table (meaningful only for ImageNet-scale models
        evaluated on all five severities).

    Examples
    --------
    >>> mean_corruption_error({"fog": [0.2, 0.3]}, {"fog": [0.4, 0.6]})
    0.5
    """
    table, _ = _baseline(baseline)
    names = _common_names(errors, table)
    return float(np.mean([corruption_error(errors[n], table[n], n) for n in names]))


def relative_mean_corruption_error(errors: Errors, clean_error: float, baseline: Errors | str = "alexnet",
                                   baseline_clean_error: float | None = None) -> float:
    """Relative mCE: the mean over corruptions of :func:`relative_corruption_error`."""
    table, table_clean = _baseline(baseline)
    if baseline_clean_error is None:
        baseline_clean_error = table_clean
    if baseline_clean_error is None:
        raise InvalidParameterError("`baseline_clean_error` is needed with a baseline given as a mapping.")
    names = _common_names(errors, table)
    return float(np.mean([relative_corruption_error(errors[n], clean_error, table[n], baseline_clean_error, n)
                          for n in names]))


def corruption_errors(errors: Errors, baseline: Errors | str = "alexnet") -> dict[str, float]:
    """CE of every corruption in ``errors`` (a dict, for tables and plots)."""
    table, _ = _baseline(baseline)
    return {n: corruption_error(errors[n], table[n], n) for n in _common_names(errors, table)}


@lru_cache(maxsize=1)
def alexnet_errors() -> dict[str, Any]:
    """The shipped ImageNet-C AlexNet error table: ``mean_error`` (per corruption, averaged
    over severities 1-5) and ``clean_error``."""
    path = resources.files("mlsafety.data") / "resources" / "alexnet_errors.json"
    return json.loads(path.read_text())
