"""Checks of the model against the data before any audit check runs.

A report is only as good as the match between model and data. These checks refuse what
cannot be right (labels the model cannot output, images the model cannot take) and turn
what is probably wrong (a model at chance level, labels covering only some of the
model's classes) into report-wide warnings that also lower the overall verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mlsafety.exceptions import InvalidInputError

if TYPE_CHECKING:
    from mlsafety.audit.base import AuditContext
    from mlsafety.data.dataset import ImageDataset

CHANCE_MARGIN = 0.05  # accuracy within 5 points of the best constant guess is treated as chance
PREFLIGHT_SAMPLES = 2000


def _check_labels_fit(data: ImageDataset, n_outputs: int, role: str) -> list[str]:
    if len(data) == 0:
        return []
    highest = int(data.labels.max())
    if highest >= n_outputs:
        raise InvalidInputError(
            f"the {role} data ({data.name}) has label {highest} but the model has {n_outputs} outputs (valid labels "
            f"0..{n_outputs - 1}); check the label mapping, or that this is the model meant for this data."
        )
    warnings = []
    present = int(torch.unique(data.labels).numel())
    if data.n_classes < n_outputs or highest + 1 < n_outputs:
        warnings.append(
            f"The {role} data ({data.name}) has labels for {min(data.n_classes, highest + 1)} classes but the model "
            f"has {n_outputs} outputs ({present} label values occur). Predictions of the other classes count as "
            "errors, and per-class figures cover only the labelled classes; check that this is intended."
        )
    return warnings


def preflight(context: AuditContext) -> list[str]:
    """Validate model against data; return report-wide warnings.

    Raises
    ------
    InvalidInputError, ShapeError
        If the model cannot run on the data, or a label lies outside the model's outputs.
    """
    classifier, data = context.classifier, context.data
    if len(data) == 0:
        raise InvalidInputError(f"the evaluation data ({data.name}) holds no images; pass a non-empty data set.")
    n_outputs = classifier.validate_outputs(data.images[:16])
    if classifier.class_names is None:
        # a model file without class names takes the data's, unless they cannot be its outputs
        same = data.n_classes == n_outputs
        classifier.class_names = list(data.class_names) if same else [str(i) for i in range(n_outputs)]
    warnings = _check_labels_fit(data, n_outputs, "evaluation")
    if context.validation is not None and len(context.validation):
        if context.validation.image_shape != data.image_shape:
            raise InvalidInputError(
                f"the validation images have shape {context.validation.image_shape} but the evaluation images "
                f"{data.image_shape}; give validation data of the same kind."
            )
        warnings += _check_labels_fit(context.validation, n_outputs, "validation")
    for name, ood in context.ood.items():
        if ood.image_shape != data.image_shape:
            raise InvalidInputError(
                f"the OOD set {name!r} has images of shape {ood.image_shape} but the model takes "
                f"{data.image_shape}; resize or convert it."
            )
    sample = context.evaluation_data(n_full=PREFLIGHT_SAMPLES, n_quick=PREFLIGHT_SAMPLES)
    accuracy = float((context.logits(sample).argmax(1) == sample.labels).float().mean())
    counts = torch.bincount(sample.labels, minlength=n_outputs).float()
    chance = max(float(counts.max() / counts.sum()), 1.0 / n_outputs)
    context.preflight = {"n_outputs": n_outputs, "sample_accuracy": accuracy, "chance_accuracy": chance,
                         "n_sample": len(sample)}
    if accuracy <= chance + CHANCE_MARGIN:
        warnings.append(
            f"Clean accuracy is {accuracy:.1%} on {len(sample)} images, within {CHANCE_MARGIN:.0%} of chance "
            f"({chance:.1%}): the model does not work on this data, so every figure below describes a broken "
            "set-up. Likely causes: the wrong input normalisation (--normalization), a different label order, "
            "or data the model was not trained for."
        )
    return warnings
