"""OOD detection: how well can this model's outputs flag inputs from none of its classes?"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
from matplotlib.figure import Figure as MatplotlibFigure
from sklearn.metrics import roc_curve

from mlsafety.audit.base import AuditContext, Check, CheckResult, Figure, Table
from mlsafety.data.dataset import ImageDataset
from mlsafety.data.ood import ood_splits
from mlsafety.exceptions import MLSafetyError, MLSafetyWarning
from mlsafety.metrics.ood import DEFAULT_POSITIVE, ood_metrics
from mlsafety.monitoring.ood.base import OODDetector
from mlsafety.monitoring.ood.tuning import FeatureSet, TuningResult, tune_features, tune_inputs
from mlsafety.registry import CHECKS, OOD_DETECTORS

# quick / full budgets (per-check times are in each report's summary table)
SIZES = {
    True: {"fit": 1000, "evaluation": 500, "ood": 300, "validation": 300, "validation_ood": 200, "resamples": 100},
    False: {"fit": 5000, "evaluation": 2000, "ood": 1000, "validation": 1000, "validation_ood": 500,
            "resamples": 300},
}
ODIN_GRID = {"temperature": [1.0, 1000.0], "noise": [0.0, 0.001, 0.002]}
ODIN_SIZES = {"fit": 256, "validation": 200, "evaluation": 500, "ood": 300}


def _interval(value: float, ci: tuple[float, float]) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def plot_histograms(scores_in: np.ndarray, scores_out: dict[str, np.ndarray], detector: str) -> MatplotlibFigure:
    """Score histograms, in-distribution against each OOD set (shared bins)."""
    figure = MatplotlibFigure(figsize=(7.0, 4.0))
    axes = figure.add_subplot()
    everything = np.concatenate([scores_in, *scores_out.values()])
    low, high = np.quantile(everything, [0.005, 0.995])
    bins = np.linspace(low, high if high > low else low + 1, 50)
    axes.hist(np.clip(scores_in, low, high), bins=bins, density=True, alpha=0.55, label="in-distribution",
              color="black")
    for name, values in scores_out.items():
        axes.hist(np.clip(values, low, high), bins=bins, density=True, histtype="step", linewidth=1.5, label=name)
    axes.set_xlabel(f"{detector} score (higher = more anomalous)")
    axes.set_ylabel("density")
    axes.legend(fontsize=8)
    return figure


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], title: str) -> MatplotlibFigure:
    """ROC curves (OOD as positive) with the AUROC in the legend."""
    figure = MatplotlibFigure(figsize=(5.2, 4.6))
    axes = figure.add_subplot()
    for name, (fpr, tpr, value) in curves.items():
        axes.plot(fpr, tpr, linewidth=1.4, label=f"{name} ({value:.3f})")
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("false-positive rate (ID flagged)")
    axes.set_ylabel("true-positive rate (OOD flagged)")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=7, loc="lower right")
    return figure


@CHECKS.register("ood")
class OODCheck(Check):
    """Compare every registered OOD detector on this model, tuned on validation data only.

    Detector statistics are fitted on the training split (or, without one, on part of the
    validation split); hyperparameters (ODIN temperature and noise, ReAct and ASH
    percentiles, KNN k, GEN γ) are chosen by mean AUROC between the rest of the validation
    split and *validation* OOD sets; the *test* OOD sets -- built-in near-OOD digits,
    far-OOD photograph and texture patches, noise and blobs, plus any ``context.ood`` set --
    share no image with them and are used once, for the table. The recommended detector
    is the one with the best mean validation AUROC, so the test sets never choose it.

    Options (``context.options["ood"]``): ``detectors`` (names; default all), ``builtin``
    (True: add the built-in OOD sets), ``include_digits`` (default: unless the data are
    digits), ``odin`` (default: full mode only -- it needs a backward pass per input),
    ``auroc_threshold`` (0.9), ``sizes`` (overrides of :data:`SIZES`: ``fit``, ``evaluation``,
    ``ood``, ``validation``, ``validation_ood``, ``resamples``).

    Verdict: ``pass`` when the recommended detector reaches ``auroc_threshold`` on every
    test OOD set, ``warn`` when some set stays below it, ``fail`` when its mean AUROC is
    below 0.7.
    """

    name = "ood"
    title = "Out-of-distribution detection"
    hazard = "Monitoring: confident answers on inputs from none of the classes"
    order = 30
    metric_names = frozenset({
        "auroc_mean",
        "fpr95_mean",
        "msp_auroc_mean",
        "n_detectors",
        "n_ood_sets",
        "worst_set_auroc",
    })

    def not_applicable(self, context: AuditContext) -> str | None:
        reason = super().not_applicable(context)
        if reason is None and context.data.image_shape[0] not in (1, 3) and not context.ood:
            reason = (f"the built-in OOD sets need 1- or 3-channel images (got {context.data.image_shape[0]}); "
                      "pass OOD sets with --ood NAME=PATH")
        return reason

    # -- data -----------------------------------------------------------------------------
    def _data(self, context: AuditContext, sizes: dict[str, int], notes: list[str],
              warns: list[str]) -> dict[str, Any]:
        seed = context.seed
        evaluation = context.evaluation_data(n_full=sizes["evaluation"], n_quick=sizes["evaluation"])
        validation = context.validation
        if context.train is not None:
            fit = context.train.head(sizes["fit"], seed=seed)
            tune_in = validation.head(sizes["validation"], seed=seed) if validation is not None else None
            fit_name = f"{context.train.name} ({len(fit)} images)"
        elif validation is not None and len(validation) >= 20:
            fit, tune_in = validation.split([0.6, 0.4], seed=seed)
            fit, tune_in = fit.head(sizes["fit"], seed=seed), tune_in.head(sizes["validation"], seed=seed)
            fit_name = f"60% of {validation.name} ({len(fit)} images; no training split given)"
        else:
            fit, evaluation = evaluation.split([0.5, 0.5], seed=seed)
            tune_in = None
            fit_name = f"half of the evaluation data ({len(fit)} images; no training or validation split given)"
            warns.append("no validation split: detectors use their default hyperparameters and are fitted on half "
                         "of the evaluation data (the other half is scored).")
        include_digits = context.option("ood", "include_digits", not evaluation.name.lower().startswith("digits"))
        test_ood: dict[str, ImageDataset] = {}
        validation_ood: dict[str, ImageDataset] = {}
        if context.option("ood", "builtin", True) and evaluation.image_shape[0] in (1, 3):
            builtin = ood_splits(evaluation.image_shape, sizes["ood"], seed=seed, include_digits=include_digits)
            test_ood.update(builtin["test"])
            validation_ood = {k: v.head(sizes["validation_ood"], seed=seed) for k, v in builtin["validation"].items()}
            notes.append(
                "Built-in OOD sets: near-OOD scikit-learn digits, far-OOD patches of scikit-image photographs and "
                "textures, Gaussian/uniform noise and blobs. Validation and test sets share no image: the digits are "
                "split in halves, the photographs by source image, the noise by seed."
            )
        for name, data in context.ood.items():
            if data.image_shape != evaluation.image_shape:
                warns.append(f"OOD set {name!r} has images of shape {data.image_shape}, the model expects "
                             f"{evaluation.image_shape}; it was skipped.")
                continue
            test_ood[name] = data.head(sizes["ood"], seed=seed)
        return {"fit": fit, "fit_name": fit_name, "evaluation": evaluation, "tune_in": tune_in,
                "validation_ood": validation_ood, "test_ood": test_ood}

    # -- run ------------------------------------------------------------------------------
    def run(self, context: AuditContext) -> CheckResult:
        started = time.perf_counter()
        sizes = {**SIZES[bool(context.quick)], **context.option("ood", "sizes", {})}
        notes: list[str] = []
        warns: list[str] = []
        data = self._data(context, sizes, notes, warns)
        if not data["test_ood"]:
            return self.result("skipped", "No OOD sets to score (built-in sets disabled and none given).")
        classifier = context.classifier
        try:
            head = classifier.head
            classifier.features(data["fit"].images[:2])
            has_features = True
        except MLSafetyError as error:
            head, has_features = None, False
            warns.append(f"penultimate features are unavailable ({error}); only logit-based detectors were run.")

        def compute(dataset: ImageDataset) -> FeatureSet:
            if has_features:
                return FeatureSet.compute(classifier, dataset)
            return FeatureSet(None, classifier.predict_logits(dataset.images), dataset.labels, dataset.name)

        forward_start = time.perf_counter()
        fit = compute(data["fit"])
        fit.name = data["fit_name"]
        if has_features:
            evaluation = context.features(data["evaluation"])
        else:
            evaluation = (None, context.logits(data["evaluation"]))
        test_in = FeatureSet(evaluation[0], evaluation[1], data["evaluation"].labels, data["evaluation"].name)
        test_ood = {name: compute(d) for name, d in data["test_ood"].items()}
        tuning = data["tune_in"] is not None and bool(data["validation_ood"])
        if tuning:
            tune_in = compute(data["tune_in"])
            tune_in.name = f"{data['tune_in'].name} ({len(data['tune_in'])} images)"
            validation_ood = {name: compute(d) for name, d in data["validation_ood"].items()}
        forward_seconds = time.perf_counter() - forward_start

        run_odin = context.option("ood", "odin", not context.quick)
        names = context.option("ood", "detectors", None) or OOD_DETECTORS.names()
        detectors: dict[str, OODDetector] = {}
        tuned: dict[str, TuningResult] = {}
        skipped: list[str] = []
        for name in names:
            detector = OOD_DETECTORS.create(name)
            if (detector.uses_features or detector.needs_head) and not has_features:
                skipped.append(f"{name} (needs features)")
                continue
            if detector.needs_inputs and not run_odin:
                skipped.append(f"{name} (needs a backward pass per input; runs in the full audit)")
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", MLSafetyWarning)
                    if detector.needs_inputs:
                        detectors[name], tuned[name] = self._tune_odin(detector, classifier, data, tuning)
                    elif tuning:
                        detectors[name], tuned[name] = tune_features(detector, fit, tune_in, validation_ood, head=head)
                    else:
                        detectors[name] = detector.fit_features(fit.features, fit.logits, fit.labels, head=head)
                        tuned[name] = TuningResult(type(detector).__name__, {}, float("nan"), [], fit.name)
            except (ImportError, MLSafetyError) as error:
                skipped.append(f"{name} ({str(error).splitlines()[0]})")

        scores: dict[str, dict[str, np.ndarray]] = {}
        for name, detector in detectors.items():
            if detector.needs_inputs:
                x_in = data["evaluation"].images[: ODIN_SIZES["evaluation"]]
                scores[name] = {"__in__": detector.score(x_in).double().numpy()}
                for ood_name, d in data["test_ood"].items():
                    scores[name][ood_name] = detector.score(d.images[: ODIN_SIZES["ood"]]).double().numpy()
                continue
            scores[name] = {"__in__": detector.score_features(test_in.features, test_in.logits).double().numpy()}
            for ood_name, s in test_ood.items():
                scores[name][ood_name] = detector.score_features(s.features, s.logits).double().numpy()

        ood_names = list(test_ood)
        results: dict[str, dict[str, dict[str, Any]]] = {}
        for name, by_set in scores.items():
            results[name] = {
                ood_name: ood_metrics(by_set["__in__"], by_set[ood_name], intervals=True,
                                      n_resamples=sizes["resamples"], seed=context.seed)
                for ood_name in ood_names
            }
        if not results:
            return self.result("skipped", "No detector could run on this model.", warnings=warns)

        mean_auroc = {n: float(np.mean([results[n][o]["auroc"] for o in ood_names])) for n in results}
        if tuning:
            validation_score = {n: tuned[n].best_score for n in results}
            recommended = max(results, key=lambda n: validation_score[n])
            basis = "the best mean AUROC on the validation OOD sets"
        else:
            recommended = "energy" if "energy" in results else next(iter(results))
            basis = "a default (no validation data to choose with)"
        best = results[recommended]
        threshold = float(context.option("ood", "auroc_threshold", 0.9))
        weak = [o for o in ood_names if best[o]["auroc"] < threshold]
        verdict = "fail" if mean_auroc[recommended] < 0.7 else ("warn" if weak else "pass")

        order = sorted(results, key=lambda n: -mean_auroc[n])
        auroc_rows = [[n, *[_interval(results[n][o]["auroc"], results[n][o]["auroc_ci"]) for o in ood_names],
                       round(mean_auroc[n], 4)] for n in order]
        fpr_rows = [[n, *[_interval(results[n][o]["fpr95"], results[n][o]["fpr95_ci"]) for o in ood_names],
                     round(float(np.mean([results[n][o]["fpr95"] for o in ood_names])), 4)] for n in order]
        tuning_rows = []
        for n in order:
            t = tuned[n]
            chosen = ", ".join(f"{k}={v}" for k, v in t.best_params.items()) or "defaults"
            val = f"{t.best_score:.3f}" if np.isfinite(t.best_score) else "-"
            on = f"{t.validation_in} vs {', '.join(t.validation_ood)}" if t.validation_ood else "not tuned"
            tuning_rows.append([n, chosen, val, t.fit_data, on])
        tables = [
            Table("AUROC [95% bootstrap interval] by test OOD set", ["detector", *ood_names, "mean"], auroc_rows),
            Table(f"FPR at 95% TPR (positive = {'in-distribution' if DEFAULT_POSITIVE == 'in' else 'OOD'}) "
                  "[95% bootstrap interval]", ["detector", *ood_names, "mean"], fpr_rows),
            Table("Which data fitted and tuned what", ["detector", "hyperparameters", "validation AUROC",
                                                       "statistics fitted on", "tuned on"], tuning_rows),
        ]
        by_set = scores[recommended]
        figures = [
            Figure.from_matplotlib(plot_histograms(by_set["__in__"], {o: by_set[o] for o in ood_names}, recommended),
                                   f"Score histograms: {recommended}",
                                   "In-distribution test scores (filled) against each test OOD set."),
        ]
        curves = {}
        for o in ood_names:
            labels = np.r_[np.zeros(len(by_set["__in__"])), np.ones(len(by_set[o]))]
            fpr, tpr, _ = roc_curve(labels, np.r_[by_set["__in__"], by_set[o]])
            curves[o] = (fpr, tpr, best[o]["auroc"])
        figures.append(Figure.from_matplotlib(plot_roc(curves, f"ROC curves: {recommended}"),
                                              f"ROC curves: {recommended}", "OOD counted as positive."))
        near = "digits" if "digits" in ood_names else ood_names[0]
        near_curves = {}
        for n in order[:6]:
            labels = np.r_[np.zeros(len(scores[n]["__in__"])), np.ones(len(scores[n][near]))]
            fpr, tpr, _ = roc_curve(labels, np.r_[scores[n]["__in__"], scores[n][near]])
            near_curves[n] = (fpr, tpr, results[n][near]["auroc"])
        figures.append(Figure.from_matplotlib(plot_roc(near_curves, f"ROC curves on {near}: top detectors"),
                                              f"ROC curves on {near}", "The six detectors with the best mean AUROC."))

        notes.append(f"Recommended detector: {recommended}, chosen by {basis}; test OOD sets were not used to choose.")
        notes.append(f"Statistics fitted on {fit.name}; in-distribution test scores from {len(test_in.logits)} "
                     f"images of {data['evaluation'].name}.")
        if tuning:
            notes.append(f"Hyperparameters tuned on {tune_in.name} against validation OOD sets "
                         f"{', '.join(validation_ood)} (disjoint from the test OOD sets).")
        notes.append("FPR@95 counts in-distribution as positive (the ODIN and Energy papers: the fraction of OOD "
                     "inputs accepted when 95% of normal inputs are accepted); OpenOOD and pytorch-ood count OOD as "
                     "positive -- use mlsafety.metrics.ood.fpr_at_95_tpr(..., positive='ood') for theirs.")
        if "odin" in results:
            notes.append(f"ODIN was scored on {ODIN_SIZES['evaluation']} ID and {ODIN_SIZES['ood']} images per OOD set "
                         f"(a backward pass per input), tuned over {ODIN_GRID}.")
        if skipped:
            notes.append("Skipped: " + "; ".join(skipped) + ".")
        summary = (f"Recommended detector {recommended}: mean AUROC {mean_auroc[recommended]:.3f} over "
                   f"{len(ood_names)} test OOD sets (MSP baseline {mean_auroc.get('msp', float('nan')):.3f})"
                   + (f"; below {threshold:g} on {', '.join(weak)}." if weak else "."))
        metrics = {
            "auroc_mean": mean_auroc[recommended],
            "fpr95_mean": float(np.mean([best[o]["fpr95"] for o in ood_names])),
            "worst_set_auroc": float(min(best[o]["auroc"] for o in ood_names)),
            "n_detectors": float(len(results)),
            "n_ood_sets": float(len(ood_names)),
        }
        if "msp" in mean_auroc:
            metrics["msp_auroc_mean"] = mean_auroc["msp"]
        details = {
            "recommended": recommended,
            "results": {n: {o: {k: v for k, v in r.items() if k != "positive"} for o, r in by.items()}
                        for n, by in results.items()},
            "tuning": {n: vars(t) for n, t in tuned.items()},
            "seconds": {"forward": forward_seconds, "total": time.perf_counter() - started},
        }
        next_step = ""
        if verdict != "pass":
            next_step = (f"deploy the recommended detector ({recommended}) with a threshold chosen on validation data, "
                         "and treat flagged inputs as unknown; for the sets it misses, fine-tune with Outlier "
                         "Exposure (Hendrycks et al. 2019) on auxiliary outliers, or pass your own OOD data with "
                         "--ood NAME=PATH to check it on the inputs you expect (docs/ood.md).")
        data_note = (f"{len(test_in.logits):,} in-distribution images of {data['evaluation'].name} against "
                     f"{len(ood_names)} test OOD sets of up to {sizes['ood']:,} images each; detector statistics "
                     f"fitted on {fit.name}" + (" (--quick sizes)." if context.quick else "."))
        return self.result(verdict, summary, metrics=metrics, tables=tables, figures=figures, notes=notes,
                           warnings=warns, details=details, data_note=data_note, next_step=next_step)

    def _tune_odin(self, detector: OODDetector, classifier: Any, data: dict[str, Any],
                   tuning: bool) -> tuple[OODDetector, TuningResult]:
        fit = data["fit"].head(ODIN_SIZES["fit"])
        if not tuning:
            return detector.fit(classifier, fit), TuningResult("ODIN", {}, float("nan"), [], data["fit_name"])
        tune_in = data["tune_in"].head(ODIN_SIZES["validation"])
        validation_ood = {k: v.head(ODIN_SIZES["validation"]) for k, v in data["validation_ood"].items()}
        best, result = tune_inputs(detector, classifier, fit, tune_in, validation_ood, grid=ODIN_GRID)
        result.fit_data = "none (ODIN has no statistics)"
        result.validation_in = f"{data['tune_in'].name} ({len(tune_in)} images)"
        return best, result
