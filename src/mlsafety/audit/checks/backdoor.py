"""Backdoors: does the model carry a trojan? Calibrated model-level detectors (Neural Cleanse,
MNTD, ULP against a shadow-model zoo), STRIP on the inputs, Spectral Signatures on the training
data when it is given."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure as MatplotlibFigure

from mlsafety.audit.base import AuditContext, Check, CheckResult, Figure, Table
from mlsafety.monitoring.backdoor.calibration import CalibratedDecision, calibrated_decision
from mlsafety.monitoring.backdoor.neural_cleanse import NeuralCleanse
from mlsafety.monitoring.backdoor.spectral_signatures import SpectralSignatures
from mlsafety.monitoring.backdoor.strip import STRIP
from mlsafety.registry import CHECKS

# (quick, full) settings, chosen for the 15 s / 60 s budgets on the default model (2 CPU cores)
NC_SETTINGS = {True: {"steps": 25, "batch_size": 8, "n_samples": 128},
               False: {"steps": 120, "batch_size": 16, "n_samples": 1000}}
STRIP_SETTINGS = {True: {"n_perturbations": 8, "n_overlays": 100, "n_inputs": 200},
                  False: {"n_perturbations": 20, "n_overlays": 200, "n_inputs": 500}}
SS_SAMPLES = {True: 0, False: 5000}
# target false-positive rate of the calibrated verdict
ALPHA = 0.05


def zoo_data_name(data_name: str) -> str | None:
    """The zoo data set matching an audit data set's name, if any."""
    for prefix in ("fashion-mnist", "digits"):
        if data_name.startswith(prefix):
            return prefix
    return None


def calibrate(context: AuditContext, reference: Any, settings: dict[str, Any], cleanse: NeuralCleanse
              ) -> tuple[CalibratedDecision | None, str, str | None]:
    """Calibrate the model-level statistics against the held-out clean shadows of a cached zoo.

    Returns (decision, why, mismatch): ``decision`` is None (and ``why`` says why) without a
    usable zoo; ``mismatch`` says how the zoo's models differ from the audited one.
    """
    from mlsafety.exceptions import MLSafetyError
    from mlsafety.monitoring.backdoor.model_level import (
        MIN_CALIBRATION_SHADOWS,
        fitted_meta_detectors,
        meta_key,
        reverse_engineering_key,
        reverse_engineering_statistics,
        split_clean_rows,
        zoo_mismatch,
    )
    from mlsafety.monitoring.backdoor.zoo import build_command, find_zoo

    architecture = str(context.classifier.describe().get("name", ""))
    data = zoo_data_name(reference.name)
    command = build_command(architecture or "small_cnn", data or "fashion-mnist")
    if data is None:
        return None, (f"no shadow-model zoo exists for data {reference.name!r} (zoos cover fashion-mnist and digits), "
                      "so the statistics below are uncalibrated"), None
    zoo = find_zoo(architecture, data)
    clean_rows = [] if zoo is None else zoo.rows("clean")
    _, calibration_rows = split_clean_rows(clean_rows)
    if zoo is None or len(calibration_rows) < MIN_CALIBRATION_SHADOWS:
        return None, (f"no shadow-model zoo with at least {MIN_CALIBRATION_SHADOWS} clean models exists for "
                      f"{architecture} on {data} (found {len(clean_rows)}), so the statistics below are uncalibrated; "
                      f"build one with: {command}"), None
    names = [row["name"] for row in calibration_rows]
    key = reverse_engineering_key("neural_cleanse", settings, context.seed, reference)
    stats = zoo.statistics(key, lambda model: reverse_engineering_statistics(
        NeuralCleanse(seed=context.seed, **settings).fit(model, reference)), kind="clean", names=names)
    observed = {"neural_cleanse_norm_ratio": cleanse.norm_ratio_}
    null = {"neural_cleanse_norm_ratio": [stats[name]["norm_ratio"] for name in names]}
    mismatch = zoo_mismatch(context.classifier, zoo)
    notes: list[str] = []
    try:
        for name, detector in fitted_meta_detectors(zoo).items():
            score = detector.score_model(context.classifier)
            scores = zoo.statistics(meta_key(detector), detector.score_model, kind="clean", names=names)
            if mismatch is None:
                observed[name] = score
                null[name] = [scores[n] for n in names]
            else:
                # a meta-classifier only knows the zoo's family of models: scores of other models are
                # extrapolations (the shipped width-32 model scores far above every width-16 shadow)
                notes.append(f"{name.upper()} score {score:.2f} (clean shadows {min(scores.values()):.2f} to "
                             f"{max(scores.values()):.2f}) is not used in the verdict: the zoo's models differ from "
                             "this one, and a meta-classifier's score does not transfer across model families.")
    except MLSafetyError as error:  # e.g. a different number of classes than the shadows
        for name in ("mntd", "ulp"):
            observed.pop(name, None)
            null.pop(name, None)
        notes.append(f"meta-detectors not used: {error}")
    decision = calibrated_decision(observed, null, alpha=ALPHA, zoo=zoo.config.identity)
    decision.notes.extend(notes)
    return decision, "", mismatch


def plot_triggers(cleanse: NeuralCleanse, class_names: list[str]) -> MatplotlibFigure:
    """Masks (top row) and masked patterns ``m * p`` (bottom row) of every class."""
    n = cleanse.masks_.shape[0]
    columns = min(n, 10)
    rows = 2 * ((n + columns - 1) // columns)
    figure = MatplotlibFigure(figsize=(1.3 * columns, 1.45 * rows))
    triggers = cleanse.triggers()
    for k in range(n):
        block, column = divmod(k, columns)
        flagged = k in cleanse.flagged_classes_
        for row, image in ((0, cleanse.masks_[k, 0]), (1, triggers[k])):
            axes = figure.add_subplot(rows, columns, (2 * block + row) * columns + column + 1)
            if row == 0:
                axes.imshow(image.numpy(), cmap="gray", vmin=0, vmax=1)
                colour = "red" if flagged else "black"
                axes.set_title(f"{class_names[k][:10]}\nL1 {cleanse.l1_norms_[k]:.0f}, "
                               f"a={cleanse.anomaly_indices_[k]:.1f}", fontsize=7, color=colour)
            else:
                picture = image.permute(1, 2, 0).numpy()
                axes.imshow(picture[..., 0] if picture.shape[-1] == 1 else picture, cmap="gray", vmin=0, vmax=1)
            axes.set_xticks([])
            axes.set_yticks([])
    figure.suptitle("Reversed triggers: masks (upper) and mask x pattern (lower); red = flagged", fontsize=8, y=1.03)
    return figure


@CHECKS.register("backdoor")
class BackdoorCheck(Check):
    """Calibrated model-level verdict with the recovered triggers, plus STRIP and Spectral Signatures.

    * **Neural Cleanse** (Wang et al., 2019) reverse-engineers the smallest trigger that
      sends clean validation images to each class; a backdoor target needs a much smaller
      one. Its model-level statistic is the ratio of the median to the smallest trigger norm.
    * **MNTD** (Xu et al., 2021) and **ULP** (Kolouri et al., 2020): meta-classifiers on the
      model's outputs for learned query images, trained on a shadow-model zoo.
    * **Calibration**: with a zoo of the model's architecture and data
      (``mlsafety backdoor zoo build``), every statistic gets an empirical p-value against
      clean shadows that no meta-detector saw; the minimum p-value is recalibrated and the
      verdict is ``warn`` when it is <= 0.05, with the false-positive rate of that threshold
      measured leave-one-out. A zoo whose models differ in size from the audited one is
      used with a warning. Without a zoo the verdict is labelled UNCALIBRATED and a Neural
      Cleanse flag (MAD anomaly index > 2) is only ``info``.
    * **STRIP** (Gao et al., 2019): the share of evaluation inputs whose prediction survives
      superimposition (low entropy) beyond the 1% false-rejection threshold set on
      validation data; far above 1% means triggered inputs may be present.
    * **Spectral Signatures** (Tran et al., 2018) on up to 5,000 training samples when the
      training data is available (full mode only).
    """

    name = "backdoor"
    title = "Backdoors (trojans)"
    hazard = "Monitoring: backdoors"
    order = 60
    metric_names = frozenset({
        "anomaly_index",
        "calibrated",
        "calibrated_p_value",
        "calibration_measured_fpr",
        "is_backdoored",
        "min_trigger_l1",
        "mntd_score",
        "nc_norm_ratio",
        "ulp_score",
        "zoo_mismatch",
        "neural_cleanse_seconds",
        "spectral_max_score",
        "strip_flagged_fraction",
        "suspected_target",
    })

    def not_applicable(self, context: AuditContext) -> str | None:
        n_classes = len(context.data.class_names)
        if n_classes < 3:
            return f"Neural Cleanse needs at least 3 classes for its outlier test; the data has {n_classes}"
        return super().not_applicable(context)

    def run(self, context: AuditContext) -> CheckResult:
        quick = context.quick
        reference = context.validation if context.validation is not None else context.data
        class_names = list(context.classifier.class_names or context.data.class_names)
        settings = dict(NC_SETTINGS[quick])
        settings.update(context.options.get(self.name, {}).get("neural_cleanse", {}))
        cleanse = NeuralCleanse(seed=context.seed, **settings).fit(context.classifier, reference)
        metrics: dict[str, float] = {
            "anomaly_index": cleanse.anomaly_index_,
            "is_backdoored": float(cleanse.is_backdoored_),
            "suspected_target": float(-1 if cleanse.suspected_target_ is None else cleanse.suspected_target_),
            "min_trigger_l1": float(cleanse.l1_norms_.min()),
            "neural_cleanse_seconds": cleanse.seconds_,
        }
        rows = [[class_names[k], float(cleanse.l1_norms_[k]), float(cleanse.anomaly_indices_[k]),
                 float(cleanse.success_[k]), k in cleanse.flagged_classes_]
                for k in range(len(cleanse.l1_norms_))]
        tables = [Table("Neural Cleanse: reversed trigger per class",
                        ["class", "mask L1 norm", "anomaly index", "trigger success", "flagged"], rows)]
        figures = [Figure.from_matplotlib(
            plot_triggers(cleanse, class_names), "Reversed triggers",
            "Smallest mask (and pattern) found for each class; a backdoor target needs a much smaller "
            "mask than the other classes (anomaly index a > 2).")]
        notes = [
            f"Neural Cleanse: {cleanse.steps} Adam steps of {cleanse.batch_size} images per class on "
            f"{min(cleanse.n_samples, len(reference))} clean {reference.name} images "
            f"({cleanse.seconds_:.1f} s)" + ("; quick mode: few steps, so norms are not converged and the "
                                             "verdict is indicative only; run the full audit to confirm." if quick
                                             else "."),
            "Neural Cleanse assumes a small, input-agnostic, all-to-one trigger: it is expected to miss "
            "whole-image (Blended, SIG), warping (WaNet) and all-to-all backdoors. Its uncalibrated MAD rule "
            "also raises false alarms on classes that are naturally easy to reach (class Bag on small "
            "Fashion-MNIST models); look at the reversed trigger before acting (see docs/backdoor.md).",
        ]
        details: dict[str, Any] = {"neural_cleanse": cleanse.summary()}
        strip_settings = STRIP_SETTINGS[quick]
        if reference is not context.data and len(reference) >= 2 * strip_settings["n_overlays"]:
            strip = STRIP(n_perturbations=strip_settings["n_perturbations"],
                          n_overlays=strip_settings["n_overlays"], seed=context.seed).fit(context.classifier,
                                                                                          reference)
            inputs = context.evaluation_data(strip_settings["n_inputs"], strip_settings["n_inputs"])
            start = time.perf_counter()
            flagged = strip.predict(inputs.images)
            metrics["strip_flagged_fraction"] = float(flagged.float().mean())
            details["strip"] = {"seconds": time.perf_counter() - start, "n_inputs": len(inputs),
                                "threshold": strip.threshold_,
                                "flagged_indices": torch.nonzero(flagged).flatten()[:50].tolist()}
            notes.append(f"STRIP: {len(inputs)} evaluation inputs, {strip.n_perturbations} overlays each; the "
                         "threshold flags 1% of clean validation inputs, so about 1% is expected on clean data.")
        else:
            notes.append("STRIP skipped: it needs a validation split of clean images distinct from the "
                         "evaluation data.")
        n_ss = SS_SAMPLES[quick]
        if context.train is not None and n_ss > 0:
            train = context.train.head(n_ss, seed=context.seed)
            ss = SpectralSignatures().fit(context.classifier, train)
            scores = ss.scores_.cpu().numpy()
            top = np.argsort(-scores)[:20]
            metrics["spectral_max_score"] = float(scores.max())
            tables.append(Table("Spectral Signatures: most suspicious training samples",
                                ["index in subset", "label", "score"],
                                [[int(i), class_names[int(train.labels[i])], float(scores[i])] for i in top]))
            notes.append(f"Spectral Signatures on {len(train)} training samples; raw scores (squared projection on the "
                         "class's top singular direction); a poisoned class shows a cluster of very high scores.")
        elif context.train is None:
            notes.append("Spectral Signatures skipped: no training data was given.")
        else:
            notes.append("Spectral Signatures skipped in quick mode.")
        decision, why, mismatch = calibrate(context, reference, settings, cleanse)
        smallest = int(cleanse.l1_norms_.argmin())
        metrics["nc_norm_ratio"] = cleanse.norm_ratio_
        if decision is not None:
            details["calibration"] = decision.summary()
            metrics.update({"calibrated_p_value": decision.combined_p_value, "calibrated": 1.0,
                            "calibration_measured_fpr": decision.measured_fpr,
                            "zoo_mismatch": float(mismatch is not None)})
            for name in ("mntd", "ulp"):
                if name in decision.statistics:
                    metrics[f"{name}_score"] = decision.statistics[name]
            metrics["is_backdoored"] = float(decision.is_backdoored)
            table_rows = [[name, decision.statistics[name], decision.p_values[name]] for name in decision.statistics]
            tables.insert(0, Table(f"Calibrated model-level statistics (against {decision.n_clean} held-out clean "
                                   f"shadow models of zoo {decision.zoo})", ["statistic", "value", "p-value"],
                                   table_rows))
            strongest = min(decision.p_values, key=decision.p_values.__getitem__)
            notes.insert(0, f"Calibrated against {decision.n_clean} clean shadow models of zoo {decision.zoo} that no "
                            f"meta-detector was trained on: statistics {', '.join(decision.statistics)}; combined "
                            f"p-value {decision.combined_p_value:.3f} (smallest: {strongest}, p = "
                            f"{decision.p_values[strongest]:.3f}); threshold p <= {decision.alpha:g}, whose "
                            f"false-positive rate measured leave-one-out on those clean shadows is "
                            f"{decision.measured_fpr:.1%}.")
            notes[1:1] = decision.notes
            warnings = []
            if mismatch is not None:
                warnings.append(f"Zoo mismatch: {mismatch}.")
            if decision.is_backdoored:
                target = class_names[cleanse.suspected_target_ if cleanse.suspected_target_ is not None else smallest]
                verdict = "warn"
                summary = (f"Possible backdoor: {strongest} is higher than on clean shadow models (combined p = "
                           f"{decision.combined_p_value:.3f} <= {decision.alpha:g}; measured FPR "
                           f"{decision.measured_fpr:.1%}, zoo {decision.zoo}); smallest reversed trigger: class "
                           f"{target!r}.")
                warnings.append(f"Calibrated model-level detectors flag this model ({strongest}); the smallest "
                                f"reversed trigger is class {target!r}. Inspect it; mitigate with TriggerUnlearning "
                                "or FinePruning.")
            else:
                verdict = "pass"
                summary = (f"No backdoor found: the model-level statistics ({', '.join(decision.statistics)}) are "
                           f"typical of clean shadow models (combined p = {decision.combined_p_value:.3f} > "
                           f"{decision.alpha:g}; measured FPR {decision.measured_fpr:.1%}, zoo {decision.zoo})"
                           + ("; the zoo's models differ from this one (see warnings)." if mismatch else "."))
        else:
            metrics["calibrated"] = 0.0
            notes.insert(0, f"UNCALIBRATED: {why}.")
            if cleanse.is_backdoored_:
                target = class_names[cleanse.suspected_target_]  # type: ignore[index]
                # an uncalibrated MAD flag has a measured false-positive rate near one half on small clean
                # models (docs/backdoor.md), so it is reported, not raised as a warning
                verdict = "info"
                summary = (f"Uncalibrated: Neural Cleanse's anomaly index {cleanse.anomaly_index_:.2f} > "
                           f"{cleanse.threshold:g} for class {target!r}, but without clean shadow models its "
                           f"false-positive rate is unknown; {why.split('; ')[-1]}.")
                warnings = []
            else:
                verdict, warnings = "pass", []
                summary = (f"No backdoor found by Neural Cleanse (uncalibrated: largest anomaly index "
                           f"{cleanse.anomaly_index_:.2f} <= {cleanse.threshold:g}).")
        data_note = context.data_note(min(cleanse.n_samples, len(reference)), "Neural Cleanse reverses a trigger "
                                      "for every class on clean images", source=reference)
        next_step = ""
        if verdict == "warn":
            next_step = ("open the reversed trigger of the flagged class in this report; scan the training data with "
                         "`mlsafety backdoor scan`; if the trigger is real, remove it with TriggerUnlearning or "
                         "FinePruning (docs/backdoor.md) and audit again.")
        elif verdict == "info" and "build one with: " in why:
            next_step = (f"give this verdict a measured false-positive rate: build a shadow-model zoo with "
                         f"`{why.split('build one with: ')[-1]}`, then rerun the audit.")
        elif verdict == "info":
            next_step = ("inspect the reversed trigger of the flagged class in this report before acting: without "
                         "a shadow-model zoo for this data the flag's false-positive rate is unknown.")
        return self.result(verdict, summary, metrics=metrics, tables=tables, figures=figures, notes=notes,
                           warnings=warnings, details=details, data_note=data_note, next_step=next_step)
