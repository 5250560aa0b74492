"""Monitoring: emergent capabilities -- detect, explain and forecast sudden jumps in what a model can do.

* :mod:`.schema` -- the run-table format (scale or step, task, metric, per-example outputs) and its checks;
* :mod:`.jump` and :mod:`.changepoint` -- changepoints with ``ruptures``, the jump size with a
  bootstrap interval over examples, and the flag rule;
* :mod:`.bigbench` -- BIG-bench linearity and breakthroughness (Srivastava et al. 2022);
* :mod:`.metrics` -- re-scoring outputs with exact match, token edit distance, per-token accuracy,
  target log-likelihood and Brier (Schaeffer et al. 2023);
* :mod:`.forecast` and :mod:`.curve_models` -- forecasting surprise (Ganguli et al. 2022);
* :mod:`.analysis` -- all of it on a run table; :mod:`.report` -- the HTML + JSON report;
* :mod:`.testbeds` -- tiny GPT-2 scaling family and grokking with Nanda et al.'s progress measures.

Importing this package does not import ``transformers`` (only the scaling testbed does).
"""

from __future__ import annotations

from mlsafety.monitoring.emergence.analysis import (
    CurveAnalysis,
    EmergenceAnalysis,
    MetricComparison,
    analyze,
    compare_metrics,
)
from mlsafety.monitoring.emergence.bigbench import breakthroughness, linearity, overall_improvement
from mlsafety.monitoring.emergence.changepoint import changepoints
from mlsafety.monitoring.emergence.curve_models import CURVE_MODELS
from mlsafety.monitoring.emergence.forecast import Forecast, forecast_curve
from mlsafety.monitoring.emergence.jump import FlagRule, Jump, bootstrap_step, evaluate_step, find_jumps
from mlsafety.monitoring.emergence.metrics import METRICS, rescore
from mlsafety.monitoring.emergence.schema import Curve, RunTable, load_runs, table_from_records

__all__ = [
    "CURVE_MODELS", "METRICS", "Curve", "CurveAnalysis", "EmergenceAnalysis", "FlagRule", "Forecast", "Jump",
    "MetricComparison", "RunTable", "analyze", "bootstrap_step", "breakthroughness", "changepoints",
    "compare_metrics", "evaluate_step", "find_jumps", "forecast_curve", "linearity", "load_runs",
    "overall_improvement", "rescore", "table_from_records",
]
