"""Calibration under distribution shift: ECE and accuracy across corruption severities.

Ovadia, Fertig, Ren, Nado, Sculley, Nowozin, Dillon, Lakshminarayanan & Snoek (2019),
"Can you trust your model's uncertainty? Evaluating predictive uncertainty under dataset
shift": calibration measured on clean validation data degrades as corruptions grow more
severe, and temperature scaling fitted on clean data does not fix it. This module measures
that on the user's model: corrupted copies of the evaluation data are made with
perturbations (by default from :data:`mlsafety.registry.CORRUPTIONS`) or passed in
already corrupted, and each (corruption, severity) gets accuracy, confidence, ECE and NLL,
before and after an optional recalibrator fitted on clean validation data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from matplotlib.figure import Figure

from mlsafety._validation import check_positive
from mlsafety.exceptions import InvalidInputError, parameter_error
from mlsafety.metrics.calibration import calibration_metrics

if TYPE_CHECKING:
    from mlsafety.base import Perturbation
    from mlsafety.data.dataset import ImageDataset
    from mlsafety.models.classifier import Classifier
    from mlsafety.monitoring.calibration.base import Calibrator

PerturbationFactory = Callable[..., "Perturbation"]
_METRICS = ("accuracy", "confidence", "ece", "nll")


@dataclass
class ShiftResult:
    """Calibration metrics per (corruption, severity); severity 0 is the clean data.

    Attributes
    ----------
    rows : list of dict
        One per condition: ``corruption, severity, n_samples, accuracy, confidence, ece, nll``
        and, with a calibrator, ``ece_calibrated, nll_calibrated``.
    skipped : list of str
        Why some requested corruptions were not evaluated.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def corruptions(self) -> list[str]:
        return list(dict.fromkeys(r["corruption"] for r in self.rows if r["severity"] > 0))

    @property
    def severities(self) -> list[int]:
        return sorted({int(r["severity"]) for r in self.rows})

    def by_severity(self) -> list[dict[str, Any]]:
        """Metrics averaged over corruptions at each severity (severity 0: the clean data)."""
        keys = [k for k in self.rows[0] if k not in ("corruption", "severity", "n_samples")] if self.rows else []
        summary = []
        for severity in self.severities:
            rows = [r for r in self.rows if r["severity"] == severity]
            summary.append({"severity": severity, "n_conditions": len(rows),
                            **{k: float(np.mean([r[k] for r in rows])) for k in keys}})
        return summary


def _metrics(classifier: Classifier, images: torch.Tensor, labels: torch.Tensor,
             calibrator: Calibrator | None, n_bins: int) -> dict[str, float]:
    logits = classifier.predict_logits(images)
    row = calibration_metrics(logits, labels, n_bins=n_bins, metrics=_METRICS)
    if calibrator is not None:
        calibrated = calibration_metrics(calibrator.transform(logits), labels, n_bins=n_bins,
                                         from_logits=False, metrics=("ece", "nll"))
        row.update({"ece_calibrated": calibrated["ece"], "nll_calibrated": calibrated["nll"]})
    return row


def evaluate_shift(classifier: Classifier, shifted: Mapping[str, Mapping[int, ImageDataset]], *,
                   clean: ImageDataset | None = None, calibrator: Calibrator | None = None,
                   n_bins: int = 15) -> ShiftResult:
    """Calibration metrics on already-corrupted data sets.

    Parameters
    ----------
    classifier : Classifier
    shifted : mapping corruption name -> {severity (int >= 1): ImageDataset}
        Corrupted copies of the evaluation data (e.g. CIFAR-10-C loaded from disk).
    clean : ImageDataset, optional
        The uncorrupted data, reported as severity 0.
    calibrator : Calibrator, optional
        A recalibrator already fitted on clean validation data; adds ``ece_calibrated``.
    n_bins : int

    Returns
    -------
    ShiftResult
    """
    n_bins = int(check_positive(n_bins, "n_bins", "evaluate_shift", integer=True))
    result = ShiftResult()
    if clean is not None:
        result.rows.append({"corruption": "clean", "severity": 0, "n_samples": len(clean),
                            **_metrics(classifier, clean.images, clean.labels, calibrator, n_bins)})
    for name, by_severity in shifted.items():
        for severity, data in sorted(by_severity.items()):
            if int(severity) < 1:
                raise parameter_error("shifted", "evaluate_shift", "severities >= 1 (0 is the clean data)",
                                      severity, f"Check the severities given for {name!r}.")
            result.rows.append({"corruption": name, "severity": int(severity), "n_samples": len(data),
                                **_metrics(classifier, data.images, data.labels, calibrator, n_bins)})
    return result


def _resolve(corruptions: Mapping[str, PerturbationFactory] | Sequence[str],
             skipped: list[str]) -> dict[str, PerturbationFactory]:
    if isinstance(corruptions, Mapping):
        return dict(corruptions)
    from mlsafety.registry import CORRUPTIONS

    resolved = {}
    for name in corruptions:
        if name in CORRUPTIONS:
            resolved[name] = CORRUPTIONS.get(name)
        else:
            skipped.append(f"corruption {name!r} is not registered in CORRUPTIONS; skipped.")
    return resolved


def corrupt(data: ImageDataset, factory: PerturbationFactory, severity: int, seed: int = 0,
            batch_size: int = 1024) -> ImageDataset:
    """A corrupted copy of ``data``: ``factory(severity=severity, seed=seed + b).perturb`` on batch ``b``.

    Each batch gets its own seed, so that batches do not repeat the same noise pattern.
    """
    from mlsafety.data.dataset import ImageDataset

    batches, name = [], ""
    for index, batch in enumerate(data.images.split(batch_size)):
        perturbation = factory(severity=severity, seed=seed + index)
        name = getattr(perturbation, "registry_name", "") or type(perturbation).__name__
        batches.append(perturbation.perturb(batch))
    images = torch.cat(batches)
    if images.shape != data.images.shape:
        raise InvalidInputError(
            f"{name} changed the image shape from {tuple(data.images.shape)} to {tuple(images.shape)}; "
            "corruptions must keep the shape."
        )
    return ImageDataset(images.clamp(0, 1), data.labels, list(data.class_names), f"{data.name}+{name}@{severity}")


def calibration_under_shift(classifier: Classifier, data: ImageDataset,
                            corruptions: Mapping[str, PerturbationFactory] | Sequence[str],
                            severities: Sequence[int] = (1, 2, 3, 4, 5), *,
                            calibrator: Calibrator | None = None, n_bins: int = 15,
                            seed: int = 0) -> ShiftResult:
    """ECE and accuracy of ``classifier`` on ``data`` corrupted at increasing severities.

    Parameters
    ----------
    classifier : Classifier
    data : ImageDataset
        Clean evaluation data (reported as severity 0).
    corruptions : mapping name -> factory, or sequence of registered corruption names
        A factory is called as ``factory(severity=s, seed=seed)`` and must return a
        :class:`~mlsafety.base.Perturbation` (a corruption class works as its own factory).
        Names are looked up in :data:`mlsafety.registry.CORRUPTIONS`; unregistered names
        are skipped and listed in ``ShiftResult.skipped``.
    severities : sequence of int >= 1
    calibrator : Calibrator, optional
        Fitted on clean validation data; adds ``ece_calibrated`` and ``nll_calibrated``.
    n_bins : int
    seed : int
        Seed passed to every corruption.

    Returns
    -------
    ShiftResult

    Examples
    --------
    >>> result = calibration_under_shift(classifier, test, ["gaussian_noise", "contrast"],
    ...                                  calibrator=TemperatureScaling().fit(val_logits, val_labels))
    >>> result.by_severity()[-1]["ece"]
    """
    if not severities or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in severities):
        raise parameter_error("severities", "calibration_under_shift", "a non-empty sequence of integers >= 1",
                              list(severities) if severities is not None else None)
    skipped: list[str] = []
    factories = _resolve(corruptions, skipped)
    shifted = {name: {s: corrupt(data, factory, s, seed) for s in severities} for name, factory in factories.items()}
    result = evaluate_shift(classifier, shifted, clean=data, calibrator=calibrator, n_bins=n_bins)
    result.skipped = skipped
    return result


def plot_shift(result: ShiftResult, title: str = "Calibration under shift") -> Figure:
    """Accuracy and ECE against corruption severity: the mean over corruptions (bold) and each
    corruption (thin); with a calibrator, the recalibrated ECE dashed."""
    if not result.rows:
        raise InvalidInputError("`result` holds no rows to plot; run calibration_under_shift first.")
    figure = Figure(figsize=(9, 3.6), layout="constrained")
    accuracy_axes, ece_axes = figure.subplots(1, 2)
    summary = result.by_severity()
    x = [s["severity"] for s in summary]
    clean = [r for r in result.rows if r["severity"] == 0]
    for name in result.corruptions:
        rows = clean + sorted((r for r in result.rows if r["corruption"] == name), key=lambda r: r["severity"])
        xs = [r["severity"] for r in rows]
        accuracy_axes.plot(xs, [r["accuracy"] for r in rows], color="#3b75af", alpha=0.3, linewidth=0.8)
        ece_axes.plot(xs, [r["ece"] for r in rows], color="#d62728", alpha=0.3, linewidth=0.8)
        ece_axes.annotate(name, (xs[-1], rows[-1]["ece"]), fontsize=7, color="#7f2020", alpha=0.8,
                          xytext=(3, 0), textcoords="offset points", va="center")
    accuracy_axes.plot(x, [s["accuracy"] for s in summary], "o-", color="#3b75af", linewidth=2, label="accuracy")
    accuracy_axes.plot(x, [s["confidence"] for s in summary], "s:", color="#ff7f0e", linewidth=1.5,
                       label="mean confidence")
    ece_axes.plot(x, [s["ece"] for s in summary], "o-", color="#d62728", linewidth=2, label="ECE")
    if "ece_calibrated" in summary[0]:
        ece_axes.plot(x, [s["ece_calibrated"] for s in summary], "o--", color="#2ca02c", linewidth=2,
                      label="ECE after recalibration")
    for axes, label in ((accuracy_axes, "accuracy / confidence"), (ece_axes, "expected calibration error")):
        axes.set_xlabel("corruption severity (0 = clean)")
        axes.set_ylabel(label)
        axes.set_xticks(x)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    accuracy_axes.set_ylim(0, 1.02)
    ece_axes.set_ylim(bottom=0)
    figure.suptitle(f"{title} ({len(result.corruptions)} corruptions)", fontsize=10)
    return figure
