"""Jump size at a changepoint, its bootstrap interval over examples, and the flag rule.

A *jump* is the one-step improvement :math:`\\Delta_k = y_k - y_{k-1}` (in the metric's "better"
direction) between consecutive scales. The flag rule (documented in ``docs/emergence.md``) marks a
jump as emergent when all of these hold:

1. it is an improvement that covers a large share of the curve's range,
   :math:`\\Delta_k \\ge` ``min_fraction`` :math:`\\times (\\max y - \\min y)`;
2. it is faster than the curve's earlier pace, :math:`\\Delta_k \\ge` ``min_step_ratio``
   :math:`\\times \\frac{1}{k-1}\\sum_{j<k} |\\Delta_j|` (so the first step is never flagged,
   and smooth power laws, whose steps shrink along log scale, are not either);
3. with per-example scores, the percentile-bootstrap interval of :math:`\\Delta_k` over examples
   (Efron & Tibshirani 1993; the same resampled examples at both scales) lies above 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mlsafety.exceptions import parameter_error
from mlsafety.monitoring.emergence.changepoint import changepoints
from mlsafety.monitoring.emergence.schema import Curve


@dataclass
class FlagRule:
    """Thresholds of the flag rule (see the module docstring)."""

    min_fraction: float = 0.25
    min_step_ratio: float = 3.0
    confidence: float = 0.95
    n_resamples: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        owner = "FlagRule"
        if not 0 < self.min_fraction <= 1:
            raise parameter_error("min_fraction", owner, "in (0, 1]", self.min_fraction)
        if not self.min_step_ratio > 0:
            raise parameter_error("min_step_ratio", owner, "> 0", self.min_step_ratio)
        if not 0 < self.confidence < 1:
            raise parameter_error("confidence", owner, "in (0, 1)", self.confidence)
        if not isinstance(self.n_resamples, int) or self.n_resamples < 10:
            raise parameter_error("n_resamples", owner, "an integer >= 10", self.n_resamples)


@dataclass
class Jump:
    """The step into ``index`` (between scales ``index - 1`` and ``index``) of one curve."""

    task: str
    metric: str
    index: int
    scale_before: float
    scale_after: float
    size: float
    fraction_of_range: float
    step_ratio: float
    interval: tuple[float, float] | None
    flagged: bool
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bootstrap_step(per_example: np.ndarray, index: int, n_resamples: int = 1000, confidence: float = 0.95,
                   seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean step ``mean(s[index]) - mean(s[index - 1])``.

    Examples are resampled with replacement, jointly at both scales (a paired bootstrap), so the
    interval reflects which examples were evaluated, not a change of examples between scales.
    """
    differences = per_example[index] - per_example[index - 1]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, differences.size, size=(n_resamples, differences.size))
    means = differences[draws].mean(1)
    alpha = (1 - confidence) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def bootstrap_band(per_example: np.ndarray, n_resamples: int = 1000, confidence: float = 0.95,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise percentile-bootstrap band of the mean over examples at each scale, shape (n,) each."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, per_example.shape[1], size=(n_resamples, per_example.shape[1]))
    means = per_example[:, draws].mean(2)  # (n, n_resamples)
    alpha = (1 - confidence) / 2
    return np.quantile(means, alpha, axis=1), np.quantile(means, 1 - alpha, axis=1)


def evaluate_step(curve: Curve, index: int, rule: FlagRule | None = None) -> Jump:
    """Apply the flag rule to the step into ``index`` of ``curve``."""
    rule = rule or FlagRule()
    y = curve.oriented
    if not 1 <= index < y.size:
        raise parameter_error("index", "evaluate_step", f"in [1, {y.size - 1}]", index)
    steps = np.diff(y)
    size = float(steps[index - 1])
    span = float(np.ptp(y))
    fraction = size / span if span > 0 else 0.0
    earlier = np.abs(steps[: index - 1])
    typical = float(earlier.mean()) if earlier.size else float("nan")
    ratio = float("nan")  # the first step has no earlier pace to compare with
    if earlier.size:
        ratio = size / typical if typical > 0 else (np.inf if size > 0 else 0.0)
    interval = None
    reasons = []
    per_example = curve.oriented_per_example
    if per_example is not None:
        interval = bootstrap_step(per_example, index, rule.n_resamples, rule.confidence, rule.seed)
    flagged = True
    if size <= 0:
        flagged = False
        reasons.append("not an improvement")
    if fraction < rule.min_fraction:
        flagged = False
        reasons.append(f"covers {fraction:.0%} of the range (< {rule.min_fraction:.0%})")
    if np.isnan(ratio):
        flagged = False
        reasons.append("no earlier step to compare with (the first step of the curve)")
    elif ratio < rule.min_step_ratio:
        flagged = False
        reasons.append(f"{ratio:.2g}x the earlier pace (< {rule.min_step_ratio:g}x)")
    if interval is not None and interval[0] <= 0:
        flagged = False
        reasons.append(f"{rule.confidence:.0%} interval includes 0")
    return Jump(curve.task, curve.metric, index, float(curve.scales[index - 1]), float(curve.scales[index]),
                size if curve.higher_is_better else -size, fraction, float(ratio), _orient(interval, curve),
                flagged, reasons)


def _orient(interval: tuple[float, float] | None, curve: Curve) -> tuple[float, float] | None:
    """Report intervals in the metric's own units (a fall for lower-is-better metrics)."""
    if interval is None or curve.higher_is_better:
        return interval
    return (-interval[1], -interval[0])


def find_jumps(curve: Curve, rule: FlagRule | None = None, n_changepoints: int = 1,
               method: str = "dynp") -> list[Jump]:
    """Locate up to ``n_changepoints`` breaks with ``ruptures`` and evaluate the largest step next to each.

    A least-squares break sits between the two segments' means; the step reported is, within one
    index of it, a flagged step if there is one (the largest), else the largest improvement, so a
    planted step is found exactly.
    """
    y = curve.oriented
    steps = np.diff(y)
    found: dict[int, Jump] = {}
    for k in changepoints(y, n_changepoints, method):
        window = [evaluate_step(curve, j, rule) for j in (k - 1, k, k + 1) if 1 <= j < y.size]
        best = max(window, key=lambda jump: (jump.flagged, float(steps[jump.index - 1])))
        found.setdefault(best.index, best)
    if not found and y.size > 1:  # a constant curve: report its (zero) first step
        found[1] = evaluate_step(curve, 1, rule)
    return [found[k] for k in sorted(found)]
