"""The whole analysis of a run table: jumps, BIG-bench scores, metric comparison, forecasts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlsafety.exceptions import InvalidInputError
from mlsafety.monitoring.emergence.bigbench import breakthroughness, linearity
from mlsafety.monitoring.emergence.forecast import Forecast, forecast_curve
from mlsafety.monitoring.emergence.jump import FlagRule, Jump, bootstrap_band, evaluate_step, find_jumps
from mlsafety.monitoring.emergence.schema import Curve, RunTable

DEFAULT_MODELS = ("linear_log", "power_law", "sigmoid")


@dataclass
class CurveAnalysis:
    """Everything computed for one curve."""

    curve: Curve
    jumps: list[Jump]
    linearity: float
    breakthroughness: float
    forecast: Forecast | None
    forecast_note: str = ""
    band: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def flagged(self) -> Jump | None:
        """The largest flagged jump (None when nothing is flagged)."""
        flagged = [j for j in self.jumps if j.flagged]
        return max(flagged, key=lambda j: j.fraction_of_range) if flagged else None

    def to_dict(self) -> dict[str, Any]:
        c = self.curve
        return {
            "task": c.task, "metric": c.metric, "scales": c.scales.tolist(), "values": c.values.tolist(),
            "n_examples": None if c.per_example is None else int(c.per_example.shape[1]),
            "higher_is_better": c.higher_is_better, "continuous": c.continuous,
            "band": None if self.band is None else [self.band[0].tolist(), self.band[1].tolist()],
            "linearity": self.linearity, "breakthroughness": self.breakthroughness,
            "jumps": [j.to_dict() for j in self.jumps],
            "flagged": None if self.flagged is None else self.flagged.to_dict(),
            "forecast": None if self.forecast is None else self.forecast.to_dict(),
            "forecast_note": self.forecast_note,
        }


@dataclass
class MetricComparison:
    """Does a jump flagged under a discontinuous metric persist under the continuous ones?

    ``verdict`` is ``"persists"`` when at least half of the task's continuous metrics are also
    flagged within one step of the jump, ``"mirage"`` when none or fewer are (Schaeffer et al. 2023),
    and ``"untested"`` when the task has no continuous metric.
    """

    task: str
    metric: str
    jump: Jump
    checks: list[Jump]
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "metric": self.metric, "jump": self.jump.to_dict(),
                "checks": [c.to_dict() for c in self.checks], "verdict": self.verdict}


@dataclass
class EmergenceAnalysis:
    """The result of :func:`analyze`."""

    curves: list[CurveAnalysis]
    comparisons: list[MetricComparison]
    rule: FlagRule
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def flagged(self) -> list[Jump]:
        return [a.flagged for a in self.curves if a.flagged is not None]

    def curve(self, task: str, metric: str) -> CurveAnalysis:
        for analysis in self.curves:
            if analysis.curve.task == task and analysis.curve.metric == metric:
                return analysis
        raise InvalidInputError(f"no curve {task}/{metric}; known: "
                                f"{', '.join(a.curve.label for a in self.curves)}.")

    def to_dict(self) -> dict[str, Any]:
        return {"rule": vars(self.rule), "settings": self.settings, "curves": [a.to_dict() for a in self.curves],
                "comparisons": [c.to_dict() for c in self.comparisons],
                "flagged": [j.to_dict() for j in self.flagged]}


def _forecast(curve: Curve, jump: Jump | None, n_fit: int | None,
              models: tuple[str, ...], confidence: float) -> tuple[Forecast | None, str]:
    n = curve.scales.size
    if n_fit is None:
        n_fit = jump.index if jump is not None else n - 1
    n_fit = min(n_fit, n - 1)
    if n_fit < 3:
        where = "before the jump" if jump is not None else "in the curve"
        return None, f"no forecast: {n_fit} point(s) {where}, 3 are needed (2 to fit, 1 to choose the family)"
    return forecast_curve(curve, n_fit, models, confidence), ""


def _best_check(curve: Curve, index: int, rule: FlagRule) -> Jump:
    window = [j for j in (index - 1, index, index + 1) if 1 <= j < curve.scales.size]
    checks = [evaluate_step(curve, j, rule) for j in window]
    return max(checks, key=lambda j: (j.flagged, j.fraction_of_range))


def compare_metrics(curves: list[CurveAnalysis], rule: FlagRule) -> list[MetricComparison]:
    """For each flagged jump under a metric not known to be continuous, evaluate the task's continuous
    metrics at the same step (within one index)."""
    comparisons = []
    for analysis in curves:
        jump = analysis.flagged
        if jump is None or analysis.curve.continuous:
            continue
        same_task = [a.curve for a in curves if a.curve.task == analysis.curve.task and a.curve.continuous
                     and np.array_equal(a.curve.scales, analysis.curve.scales)]
        checks = [_best_check(curve, jump.index, rule) for curve in same_task]
        if not checks:
            verdict = "untested"
        else:
            verdict = "persists" if 2 * sum(c.flagged for c in checks) >= len(checks) else "mirage"
        comparisons.append(MetricComparison(jump.task, jump.metric, jump, checks, verdict))
    return comparisons


def analyze(table: RunTable, rule: FlagRule | None = None, *, n_changepoints: int = 1, method: str = "dynp",
            n_fit: int | None = None, models: tuple[str, ...] = DEFAULT_MODELS) -> EmergenceAnalysis:
    """Analyse every curve of ``table``.

    For each curve: changepoints (``ruptures``), the jump at each with its bootstrap interval and
    the flag rule, BIG-bench linearity and breakthroughness, and a forecast of the points from the
    flagged jump on (or of the last point) from the points before it. Then, per flagged jump under a
    discontinuous metric, whether it persists under the task's continuous metrics.

    Parameters
    ----------
    table : RunTable
        From :func:`~mlsafety.monitoring.emergence.schema.load_runs` or built in code.
    rule : FlagRule, optional
        Thresholds of the flag rule (defaults documented in ``docs/emergence.md``).
    n_changepoints : int
        Breaks placed per curve.
    method : str
        ``"dynp"`` or ``"kernel"`` (see :func:`~mlsafety.monitoring.emergence.changepoint.changepoints`).
    n_fit : int, optional
        Points used by every forecast (default: those before the flagged jump, else all but the last).
    models : tuple of str
        Candidate curve families for the forecasts.

    Returns
    -------
    EmergenceAnalysis
    """
    rule = rule or FlagRule()
    if not table.curves:
        raise InvalidInputError("the run table has no curves; check its columns (schema in docs/emergence.md).")
    analyses = []
    for _, curve in sorted(table.curves.items()):
        jumps = find_jumps(curve, rule, n_changepoints, method)
        band = None
        if curve.per_example is not None:
            band = bootstrap_band(curve.per_example, rule.n_resamples, rule.confidence, rule.seed)
        analysis = CurveAnalysis(curve, jumps, linearity(curve.oriented), breakthroughness(curve.oriented), None,
                                 band=band)
        analysis.forecast, analysis.forecast_note = _forecast(curve, analysis.flagged, n_fit, models,
                                                              rule.confidence)
        analyses.append(analysis)
    settings = {"n_changepoints": n_changepoints, "method": method, "n_fit": n_fit, "models": list(models)}
    return EmergenceAnalysis(analyses, compare_metrics(analyses, rule), rule, settings)
