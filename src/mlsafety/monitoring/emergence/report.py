"""Report sections for the emergence analysis, rendered with the audit's HTML + JSON renderer.

Each builder turns part of an :class:`~mlsafety.monitoring.emergence.analysis.EmergenceAnalysis`
(or a grokking run) into a :class:`~mlsafety.report.CheckResult`; :func:`write_report` renders
them with :func:`mlsafety.report.render_report`. Figures use ``matplotlib.figure.Figure``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure as MatplotlibFigure

from mlsafety.monitoring.emergence.analysis import CurveAnalysis, EmergenceAnalysis
from mlsafety.monitoring.emergence.testbeds.grokking import GrokkingResult
from mlsafety.report import CheckResult, Figure, Table, render_report

HAZARD = "Monitoring: emergent capabilities"


def _interval(interval: Any) -> str:
    if interval is None:
        return "n/a (no per-example scores)"
    return f"[{interval[0]:.3g}, {interval[1]:.3g}]"


def _x_axis(axes: Any, scales: np.ndarray, label: str) -> None:
    if np.all(scales > 0) and scales.max() / scales.min() > 20:
        axes.set_xscale("log")
    axes.set_xlabel(label)


def plot_curve(axes: Any, analysis: CurveAnalysis, scale_name: str = "scale") -> None:
    """One curve: values, bootstrap band, flagged jump (orange span) and forecast band (grey)."""
    curve = analysis.curve
    axes.plot(curve.scales, curve.values, marker="o", markersize=3, color="tab:blue", label=curve.metric)
    if analysis.band is not None:
        axes.fill_between(curve.scales, analysis.band[0], analysis.band[1], color="tab:blue", alpha=0.2,
                          label="95% bootstrap")
    jump = analysis.flagged
    if jump is not None:
        axes.axvspan(jump.scale_before, jump.scale_after, color="orange", alpha=0.3, label="flagged jump")
    forecast = analysis.forecast
    if forecast is not None:
        grid = np.asarray(forecast.fitted_curve["u"])
        shift = 1.0 if np.any(curve.scales <= 0) else 0.0
        axes.plot(10 ** grid - shift, forecast.fitted_curve["y"], color="grey", linestyle="--", linewidth=1,
                  label=f"{forecast.model} fit (first {forecast.n_fit})")
        axes.fill_between(forecast.scales, forecast.lower, forecast.upper, color="grey", alpha=0.25,
                          label="forecast 95%")
    _x_axis(axes, curve.scales, scale_name)
    arrow = "" if curve.higher_is_better else " (lower is better)"
    axes.set_title(f"{curve.label}{arrow}", fontsize=9)
    axes.legend(fontsize=6)


def task_figure(analyses: list[CurveAnalysis], scale_name: str = "scale") -> MatplotlibFigure:
    """All metrics of one task side by side."""
    columns = min(3, len(analyses))
    rows = math.ceil(len(analyses) / columns)
    figure = MatplotlibFigure(figsize=(4.0 * columns, 3.2 * rows))
    for i, analysis in enumerate(analyses):
        plot_curve(figure.add_subplot(rows, columns, i + 1), analysis, scale_name)
    figure.tight_layout()
    return figure


def _curve_row(a: CurveAnalysis) -> list[Any]:
    jump = a.flagged or max(a.jumps, key=lambda j: j.fraction_of_range)
    forecast = a.forecast
    return [a.curve.task, a.curve.metric, {True: "yes", False: "no", None: "?"}[a.curve.continuous],
            round(a.linearity, 3), round(a.breakthroughness, 3), "yes" if a.flagged else "no",
            f"{jump.scale_before:g} -> {jump.scale_after:g}", round(jump.size, 4), _interval(jump.interval),
            round(jump.step_ratio, 2) if math.isfinite(jump.step_ratio) else "inf",
            forecast.model if forecast else a.forecast_note,
            round(forecast.max_surprise, 2) if forecast else "n/a",
            round(max(forecast.excess), 4) if forecast else "n/a"]


def summary_section(analysis: EmergenceAnalysis, scale_name: str = "scale") -> CheckResult:
    """Every curve in one table; the verdict warns when a jump is flagged."""
    flagged = analysis.flagged
    mirages = [c for c in analysis.comparisons if c.verdict == "mirage"]
    if flagged:
        names = ", ".join(f"{j.task}/{j.metric} at {j.scale_before:g}->{j.scale_after:g}" for j in flagged)
        summary = f"{len(flagged)} jump(s) flagged: {names}."
        if mirages:
            summary += f" {len(mirages)} of them vanish under continuous metrics (mirage)."
    else:
        summary = f"No jump flagged in {len(analysis.curves)} curve(s)."
    table = Table("Curves", ["task", "metric", "continuous", "linearity L", "breakthroughness B", "flagged",
                             f"step ({scale_name})", "jump size", "95% interval", "step / earlier pace",
                             "forecast family", "max surprise (sd)", "max excess"],
                  [_curve_row(a) for a in analysis.curves])
    rule = analysis.rule
    notes = [f"Flag rule: improvement >= {rule.min_fraction:.0%} of the curve's range, >= {rule.min_step_ratio:g}x "
             f"the mean size of the earlier steps, and (with per-example scores) a "
             f"{rule.confidence:.0%} bootstrap interval above 0 ({rule.n_resamples} resamples over examples).",
             "Linearity and breakthroughness as defined in BIG-bench (Srivastava et al. 2022, Appendix B).",
             "Surprise: (observed - forecast) / forecast sd; excess: distance outside the forecast interval."]
    metrics = {"n_curves": float(len(analysis.curves)), "n_flagged": float(len(flagged)),
               "n_mirage": float(len(mirages))}
    return CheckResult("emergence.summary", "Emergent capabilities: summary", "warn" if flagged else "pass", summary,
                       hazard=HAZARD, metrics=metrics, tables=[table], notes=notes,
                       details={"analysis": analysis.to_dict()})


def task_section(analysis: EmergenceAnalysis, task: str, scale_name: str = "scale") -> CheckResult:
    """The curves of one task with their jumps and forecasts, and the metric comparison."""
    curves = [a for a in analysis.curves if a.curve.task == task]
    flagged = [a.flagged for a in curves if a.flagged is not None]
    comparisons = [c for c in analysis.comparisons if c.task == task]
    if flagged:
        summary = "; ".join(f"{j.metric} jumps by {j.size:.3g} between {scale_name} {j.scale_before:g} and "
                            f"{j.scale_after:g} (interval {_interval(j.interval)})" for j in flagged) + "."
    else:
        summary = "No jump flagged."
    for comparison in comparisons:
        summary += (f" Under continuous metrics the {comparison.metric} jump "
                    f"{'persists' if comparison.verdict == 'persists' else 'is ' + comparison.verdict}.")
    rows = []
    for comparison in comparisons:
        for check in comparison.checks:
            rows.append([comparison.metric, check.metric, f"{check.scale_before:g} -> {check.scale_after:g}",
                         round(check.size, 4), _interval(check.interval), round(check.fraction_of_range, 3),
                         round(check.step_ratio, 2) if math.isfinite(check.step_ratio) else "inf",
                         "yes" if check.flagged else "no", "; ".join(check.reasons)])
    tables = [Table("Metric comparison (Schaeffer et al. 2023): the same step under continuous metrics",
                    ["flagged metric", "continuous metric", "step", "change", "95% interval", "share of range",
                     "step / earlier pace", "also flagged", "why not"], rows)] if rows else []
    forecast_rows = []
    for a in curves:
        if a.forecast is not None:
            f = a.forecast
            for s, pred, low, high, obs, z in zip(f.scales, f.predicted, f.lower, f.upper, f.observed, f.surprise,
                                                  strict=True):
                forecast_rows.append([a.curve.metric, f.model, f.n_fit, s, round(pred, 4),
                                      f"[{low:.3g}, {high:.3g}]", round(obs, 4), round(z, 2)])
    if forecast_rows:
        tables.append(Table("Forecasts from the points before the jump (or all but the last)",
                            ["metric", "family", "points fitted", scale_name, "forecast", "95% interval", "observed",
                             "surprise (sd)"], forecast_rows))
    figure = Figure.from_matplotlib(task_figure(curves, scale_name), f"{task}: curves",
                                    "Orange: flagged jump; band: 95% bootstrap over examples; grey: forecast.")
    verdict = "warn" if flagged else "pass"
    metrics = {f"{a.curve.metric}.breakthroughness": a.breakthroughness for a in curves}
    return CheckResult(f"emergence.{task}", f"Task {task}", verdict, summary, hazard=HAZARD, metrics=metrics,
                       tables=tables, figures=[figure],
                       details={"comparisons": [c.to_dict() for c in comparisons]})


def analysis_sections(analysis: EmergenceAnalysis, scale_name: str = "scale") -> list[CheckResult]:
    tasks = sorted({a.curve.task for a in analysis.curves})
    return [summary_section(analysis, scale_name)] + [task_section(analysis, t, scale_name) for t in tasks]


def grokking_figure(result: GrokkingResult) -> MatplotlibFigure:
    """Losses, accuracies and progress measures against epoch, with the milestones marked."""
    epochs = np.asarray(result.epochs)
    c = result.curves
    figure = MatplotlibFigure(figsize=(12, 3.4))
    axes = figure.add_subplot(1, 3, 1)
    for name, colour in (("train_loss", "tab:blue"), ("test_loss", "tab:red"), ("restricted_loss", "tab:green"),
                         ("excluded_loss", "tab:purple")):
        if name in c:
            axes.plot(epochs, np.maximum(c[name], 1e-12), label=name, color=colour)
    axes.set_yscale("log")
    axes.set_title("losses", fontsize=9)
    axes.legend(fontsize=6)
    axes = figure.add_subplot(1, 3, 2)
    for name in ("train_accuracy", "test_accuracy"):
        axes.plot(epochs, c[name], label=name)
    axes.set_title("accuracy", fontsize=9)
    axes.legend(fontsize=6)
    axes = figure.add_subplot(1, 3, 3)
    for name in ("gini_embedding", "key_fourier_fraction"):
        if name in c:
            axes.plot(epochs, c[name], label=name)
    axes.set_title("Fourier sparsity", fontsize=9)
    axes.legend(fontsize=6)
    for axes in figure.axes:
        axes.set_xlabel("epoch")
        for key, colour in (("test_loss_below_1", "red"), ("onset_restricted_loss", "green")):
            epoch = result.milestones.get(key)
            if epoch is not None:
                axes.axvline(epoch, color=colour, linestyle=":", linewidth=1)
    figure.tight_layout()
    return figure


def grokking_section(result: GrokkingResult) -> CheckResult:
    """One grokking run: milestones, whether the progress measures move first, and the curves."""
    m = result.milestones
    lead = {}
    reference = m.get("test_accuracy_above_0.5")
    for name in ("restricted_loss", "excluded_loss", "gini_embedding"):
        onset = m.get(f"onset_{name}")
        if onset is not None and reference is not None:
            lead[name] = reference - onset
    if reference is None:
        summary = (f"Test accuracy did not pass 0.5 within {result.epochs[-1]} epochs (p = {result.p}); "
                   f"final test loss {result.curves['test_loss'][-1]:.3g}.")
    else:
        parts = ", ".join(f"{k} {v:+d}" for k, v in lead.items())
        summary = (f"Test accuracy passes 0.5 at epoch {reference}; the progress measures start moving "
                   f"(10 % of their change) this many epochs earlier: {parts}.")
    rows = [[key, value] for key, value in m.items()]
    table = Table("Milestones (epoch)", ["milestone", "epoch"], rows)
    figure = Figure.from_matplotlib(grokking_figure(result), "Grokking curves",
                                    "Red dotted: test loss < 1; green dotted: restricted loss starts falling.")
    metrics = {f"lead.{k}": float(v) for k, v in lead.items()}
    notes = [f"Key frequencies (k, w = 2 pi k / p): {result.key_frequencies}.",
             f"{result.seconds:.0f} s CPU for {result.epochs[-1]} epochs.",
             "Reference (Nanda et al. 2023, p = 113): train loss < 0.01 by ~300, test-loss peak ~1,400, "
             "test loss < 1 near 13,800."]
    return CheckResult("emergence.grokking", f"Grokking: modular addition, p = {result.p}",
                       "info", summary, hazard=HAZARD, metrics=metrics, tables=[table], figures=[figure], notes=notes,
                       details=result.to_dict())


def write_report(out_dir: str | Path, sections: list[CheckResult], metadata: dict[str, Any] | None = None,
                 title: str = "mlsafety emergent capabilities") -> tuple[Path, Path]:
    """Render ``sections`` to ``out_dir/report.json`` and ``out_dir/report.html``."""
    return render_report(out_dir, sections, dict(metadata or {}), title=title)
