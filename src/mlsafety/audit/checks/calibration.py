"""Calibration: does the model's confidence match how often it is right, before and after
recalibration, and under distribution shift?"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from mlsafety.audit.base import AuditContext, Check, CheckResult, Figure, Table
from mlsafety.exceptions import MLSafetyError
from mlsafety.metrics.calibration import calibration_metrics
from mlsafety.registry import CALIBRATORS, CHECKS
from mlsafety.report import wilson_interval

# corruptions used for the shift study when the user names none (Hendrycks & Dietterich, 2019):
# one noise, one blur and one digital corruption, in this order of preference
DEFAULT_SHIFT_CORRUPTIONS = ("gaussian_noise", "defocus_blur", "contrast")
_REPORTED = ("ece", "adaptive_ece", "mce", "rms_ce", "classwise_ece", "brier", "nll", "accuracy", "confidence")


def _percent(value: float) -> str:
    return f"{value:.1%}"


def _ece(value: float) -> str:
    """ECE (and its relatives) read as a fraction in [0, 1], everywhere in the report, like the
    thresholds (``--fail-over calibration.ece=0.05``)."""
    return f"{value:.3f}"


def _accuracy_interval(accuracy: float, n: int) -> str:
    low, high = wilson_interval(round(accuracy * n), n)
    return f"[{low:.1%}, {high:.1%}]"


@CHECKS.register("calibration")
class CalibrationCheck(Check):
    """Calibration metrics before and after recalibration, reliability diagrams, and
    calibration under corruption shift.

    The recommended recalibrator (temperature scaling, Guo et al., 2017) is fitted on
    ``context.validation`` only and evaluated on the evaluation data; every registered
    recalibrator is compared in a table. Under shift (Ovadia et al., 2019) the evaluation
    data is corrupted at increasing severities with corruptions from
    :data:`mlsafety.registry.CORRUPTIONS`, or with already-corrupted data passed as the
    option ``corrupted_data`` (``{name: {severity: ImageDataset}}``).

    Options (``context.options["calibration"]``): ``method`` (default
    ``"temperature_scaling"``), ``n_bins`` (15), ``ece_threshold`` (0.05),
    ``shift_ece_threshold`` (0.15), ``corruptions`` (names), ``severities``,
    ``n_resamples`` (bootstrap), ``compare`` (True), ``corrupted_data``.

    Verdict: ``warn`` when the uncalibrated ECE exceeds ``ece_threshold`` or the mean ECE at
    the strongest severity exceeds ``shift_ece_threshold``; ``pass`` otherwise.
    """

    name = "calibration"
    title = "Calibration"
    hazard = "Monitoring: confidence that does not match accuracy"
    requires = frozenset({"validation"})
    order = 40
    metric_names = frozenset({
        "adaptive_ece",
        "adaptive_ece_recalibrated",
        "brier",
        "brier_recalibrated",
        "classwise_ece",
        "classwise_ece_recalibrated",
        "confidence",
        "ece",
        "ece_high",
        "ece_high_recalibrated",
        "ece_low",
        "ece_low_recalibrated",
        "ece_recalibrated",
        "mce",
        "mce_recalibrated",
        "n_samples",
        "n_validation",
        "nll",
        "nll_recalibrated",
        "rms_ce",
        "rms_ce_recalibrated",
        "shift_accuracy",
        "shift_ece",
        "shift_ece_recalibrated",
        "shift_severity",
        "temperature",
    })

    def not_applicable(self, context: AuditContext) -> str | None:
        reason = super().not_applicable(context)
        if reason is None and context.data.n_classes < 2:
            reason = "calibration needs at least two classes"
        return reason

    def config(self, context: AuditContext) -> dict[str, Any]:
        config = super().config(context)
        options = dict(config["options"])
        if isinstance(options.get("corrupted_data"), Mapping):  # data sets are keyed by fingerprint
            options["corrupted_data"] = {
                name: {str(s): d.fingerprint() for s, d in by_severity.items()}
                for name, by_severity in options["corrupted_data"].items()
            }
        config["options"] = options
        return config

    def run(self, context: AuditContext) -> CheckResult:
        quick = context.quick

        def option(key: str, default: Any) -> Any:
            return context.option(self.name, key, default)

        method = option("method", "temperature_scaling")
        n_bins = int(option("n_bins", 15))
        ece_threshold = float(option("ece_threshold", 0.05))
        shift_threshold = float(option("shift_ece_threshold", 0.15))
        n_resamples = int(option("n_resamples", 200 if quick else 1000))
        notes: list[str] = []
        warnings: list[str] = []
        tables: list[Table] = []
        figures: list[Figure] = []

        # -- data: evaluation logits, validation logits (a seeded subset in quick mode)
        data = context.evaluation_data()
        logits = context.logits(data)
        labels = data.labels.to(logits.device)
        validation = context.validation
        if validation is None:  # not_applicable() reports this before run() in the runner
            return self.result("skipped", "Needs a validation split to fit the recalibration.")
        if quick and len(validation) > 1000:
            validation = validation.head(1000, seed=context.seed)
            validation_logits = context.classifier.predict_logits(validation.images)
        else:
            validation_logits = context.logits(validation)
        validation_labels = validation.labels.to(validation_logits.device)

        before = calibration_metrics(logits, labels, n_bins=n_bins, metrics=_REPORTED)
        before.update(calibration_metrics(logits, labels, n_bins=n_bins, metrics=("ece",),
                                          n_resamples=n_resamples, seed=context.seed))

        # -- the recommended recalibration, fitted on validation only
        calibrator = None
        after: dict[str, float] = {}
        try:
            calibrator = CALIBRATORS.create(method).fit(validation_logits, validation_labels)
            probabilities = calibrator.transform(logits)
            after = calibration_metrics(probabilities, labels, n_bins=n_bins, from_logits=False, metrics=_REPORTED)
            after.update(calibration_metrics(probabilities, labels, n_bins=n_bins, from_logits=False,
                                             metrics=("ece",), n_resamples=n_resamples, seed=context.seed))
        except MLSafetyError as error:
            warnings.append(f"recalibration with {method!r} failed on the validation split: {error}")
            probabilities = None

        metrics = {key: float(value) for key, value in before.items() if key != "accuracy"}
        metrics["n_samples"] = float(len(data))
        metrics["n_validation"] = float(len(validation))
        for key in ("ece", "ece_low", "ece_high", "adaptive_ece", "mce", "rms_ce", "classwise_ece", "brier", "nll"):
            if key in after:
                metrics[f"{key}_recalibrated"] = float(after[key])
        if calibrator is not None and getattr(calibrator, "temperature_", None) is not None:
            metrics["temperature"] = float(calibrator.temperature_)

        rows = [[key, round(before[key], 4), round(after[key], 4) if key in after else None] for key in _REPORTED]
        rows.append(["ece 95% bootstrap interval", f"[{_ece(before['ece_low'])}, {_ece(before['ece_high'])}]",
                     f"[{_ece(after['ece_low'])}, {_ece(after['ece_high'])}]" if after else None])
        rows.append(["accuracy 95% Wilson interval", _accuracy_interval(before["accuracy"], len(data)),
                     _accuracy_interval(after["accuracy"], len(data)) if after else None])
        tables.append(Table(f"Calibration on {data.name} ({len(data)} samples), {n_bins} bins",
                            ["metric", "uncalibrated", f"after {method}"], rows))

        # -- every registered recalibrator, side by side
        if option("compare", True):
            tables.append(self._compare(validation_logits, validation_labels, logits, labels, n_bins, notes))

        # -- reliability diagrams
        from mlsafety.monitoring.calibration.plots import compare_reliability

        panels: dict[str, Any] = {"uncalibrated": logits}
        flags = {"uncalibrated": True}
        if probabilities is not None:
            panels[f"after {method}"] = probabilities
            flags[f"after {method}"] = False
        figures.append(Figure.from_matplotlib(
            compare_reliability(panels, labels, n_bins=n_bins, from_logits=flags), "Reliability diagram",
            f"Blue: accuracy per confidence bin; red hatched: gap to the bin's mean confidence (above the "
            f"bar: over-confident). {method} fitted on {len(validation)} validation samples only."))

        # -- calibration under shift
        shift_metrics = self._shift(context, calibrator, n_bins, notes, tables, figures)
        metrics.update(shift_metrics)

        # -- verdict
        shift_info = metrics.pop("_shift_info", None)
        if before["ece"] > ece_threshold:
            improved = after and after["ece"] < before["ece"]
            warnings.append(
                f"ECE {_ece(before['ece'])} exceeds {_ece(ece_threshold)}: the model's confidence "
                "overstates or understates how often it is right"
                + (f"; {method} on validation data brings it to {_ece(after['ece'])}" if improved else "") + "."
            )
        if "shift_ece" in shift_metrics and shift_metrics["shift_ece"] > shift_threshold:
            warnings.append(
                f"under the strongest corruptions the ECE rises to {_ece(shift_metrics['shift_ece'])} "
                f"(accuracy {_percent(shift_metrics['shift_accuracy'])}): do not trust confidence on shifted inputs."
            )
        worse = bool(after) and after["ece"] > before["ece"]
        if worse:
            reason = ("the model is already close to calibrated on clean data" if before["ece"] <= ece_threshold
                      else "see the comparison table for a method that does")
            notes.append(f"{method} did not lower the ECE on the evaluation data ({_ece(before['ece'])} -> "
                         f"{_ece(after['ece'])}); {reason}.")
        summary = (f"ECE {_ece(before['ece'])} [{_ece(before['ece_low'])}, {_ece(before['ece_high'])}] "
                   f"on {len(data):,} images")
        if after:
            summary += (f"; {method} fitted on validation made it worse ({_ece(after['ece'])})" if worse
                        else f"; {_ece(after['ece'])} after {method} fitted on validation")
        if shift_info:
            summary += (f"; {_ece(shift_metrics['shift_ece'])} under shift (mean of {shift_info['n_corruptions']} "
                        f"corruptions at severity {int(shift_metrics['shift_severity'])}; worst "
                        f"{shift_info['worst']} at {_ece(shift_info['worst_ece'])})")
        notes.append("ECE and its relatives are fractions in [0, 1] throughout (0.05 = 5 percentage points between "
                     "confidence and accuracy), the unit of --fail-over calibration.ece=0.05.")
        verdict = "warn" if warnings else "pass"
        next_step = ""
        if verdict == "warn":
            next_step = ("wrap the model in the recalibrator fitted on validation data, e.g. "
                         "mlsafety.monitoring.calibration.TemperatureScaling().fit(validation_logits, labels), and use "
                         "its probabilities; under shift, pair it with an OOD detector (see the OOD section) rather "
                         "than trusting confidence; see docs/calibration.md.")
        shift_n = shift_info["n_samples"] if shift_info else 0
        data_note = (context.data_note(len(data)) + f" Recalibrators fitted on {len(validation):,} validation images"
                     + (f"; the shift study corrupts {shift_n:,} evaluation images (every corruption and "
                        "severity costs a forward pass)." if shift_n else "."))
        return self.result(verdict, summary + ".", metrics=metrics, tables=tables,
                           figures=figures, warnings=warnings, notes=notes,
                           details={"metrics_before": before, "metrics_after": after, "shift": shift_info},
                           data_note=data_note, next_step=next_step)

    def _compare(self, validation_logits: Any, validation_labels: Any, logits: Any, labels: Any, n_bins: int,
                 notes: list[str]) -> Table:
        rows = [["uncalibrated", *self._row(logits, labels, n_bins, True), 0.0]]
        for name in CALIBRATORS.names():
            start = time.perf_counter()
            try:
                calibrator = CALIBRATORS.create(name).fit(validation_logits, validation_labels)
                calibrated = calibrator.transform(logits)
            except MLSafetyError as error:
                notes.append(f"{name} could not be fitted: {error}")
                continue
            if getattr(calibrator, "converged_", None) is False:
                notes.append(f"{name} stopped after {calibrator.n_iter_} iterations before its fit converged; "
                             "its row is approximate.")
            rows.append([name, *self._row(calibrated, labels, n_bins, False), round(time.perf_counter() - start, 3)])
        return Table("Recalibrators fitted on validation, scored on evaluation data",
                     ["method", "ECE", "adaptive ECE", "classwise ECE", "NLL", "Brier", "accuracy",
                      "accuracy 95% interval", "fit seconds"],
                     [[*row[:7], _accuracy_interval(row[6], len(labels)), row[7]] for row in rows])

    @staticmethod
    def _row(scores: Any, labels: Any, n_bins: int, from_logits: bool) -> list[float]:
        m = calibration_metrics(scores, labels, n_bins=n_bins, from_logits=from_logits,
                                metrics=("ece", "adaptive_ece", "classwise_ece", "nll", "brier", "accuracy"))
        return [round(m[k], 4) for k in ("ece", "adaptive_ece", "classwise_ece", "nll", "brier", "accuracy")]

    def _shift(self, context: AuditContext, calibrator: Any, n_bins: int, notes: list[str],
               tables: list[Table], figures: list[Figure]) -> dict[str, float]:
        from mlsafety.monitoring.calibration.shift import calibration_under_shift, evaluate_shift, plot_shift
        from mlsafety.registry import CORRUPTIONS

        quick = context.quick
        data = context.data.head(500 if quick else 1000, seed=context.seed)
        user_data = context.option(self.name, "corrupted_data", None)
        if user_data:
            result = evaluate_shift(context.classifier, user_data, clean=None, calibrator=calibrator, n_bins=n_bins)
            source = "corrupted data passed by the user"
        else:
            wanted = list(context.option(self.name, "corruptions",
                                         DEFAULT_SHIFT_CORRUPTIONS[:2] if quick else DEFAULT_SHIFT_CORRUPTIONS))
            available = [name for name in wanted if name in CORRUPTIONS]
            for name in wanted:
                if name not in available:
                    notes.append(f"calibration under shift: corruption {name!r} is not registered; skipped.")
            if not available:
                notes.append("calibration under shift was skipped: no corrupted data was given and none of the "
                             f"corruptions {', '.join(wanted)} is available.")
                return {}
            severities = tuple(context.option(self.name, "severities", (1, 3, 5) if quick else (1, 2, 3, 4, 5)))
            try:
                result = calibration_under_shift(context.classifier, data, available, severities,
                                                 calibrator=calibrator, n_bins=n_bins, seed=context.seed)
            except MLSafetyError as error:
                notes.append(f"calibration under shift was skipped: {error}")
                return {}
            source = f"{len(data)} evaluation samples corrupted with {', '.join(available)}"
        if not result.rows:
            return {}
        summary = result.by_severity()
        columns = ["corruption", "severity", "n_samples", "accuracy", "confidence", "ece", "nll"]
        if calibrator is not None:
            columns += ["ece_calibrated", "nll_calibrated"]
        tables.append(Table(f"Calibration under shift ({source})", [*columns, "accuracy 95% interval"],
                            [[*(r[c] if not isinstance(r[c], float) else round(r[c], 4) for c in columns),
                              _accuracy_interval(r["accuracy"], int(r["n_samples"]))]
                             for r in result.rows]))
        figures.append(Figure.from_matplotlib(
            plot_shift(result), "Calibration under shift",
            "Mean over corruptions (bold) and per corruption (thin); the recalibrator was fitted on clean "
            "validation data (Ovadia et al., 2019)."))
        worst = summary[-1]
        at_worst = [r for r in result.rows if r["severity"] == worst["severity"]]
        hardest = max(at_worst, key=lambda r: r["ece"])
        metrics: dict[str, Any] = {"shift_severity": float(worst["severity"]), "shift_ece": worst["ece"],
                                   "shift_accuracy": worst["accuracy"]}
        metrics["_shift_info"] = {"n_corruptions": len(at_worst), "worst": hardest["corruption"],
                                  "worst_ece": hardest["ece"], "n_samples": int(hardest["n_samples"]),
                                  "per_corruption": {r["corruption"]: r["ece"] for r in at_worst}}
        notes.append(f"ECE under shift is the mean over {len(at_worst)} corruptions at severity {worst['severity']}: "
                     + ", ".join(f"{r['corruption']} {_ece(r['ece'])}"
                                 for r in sorted(at_worst, key=lambda r: -r["ece"]))
                     + f"; {hardest['corruption']} drives it.")
        if "ece_calibrated" in worst:
            metrics["shift_ece_recalibrated"] = worst["ece_calibrated"]
        return metrics
