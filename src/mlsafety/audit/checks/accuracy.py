"""Clean accuracy: overall, per class, confusion matrix, and the model card."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure as MatplotlibFigure
from sklearn.metrics import confusion_matrix

from mlsafety.audit.base import AuditContext, Check, CheckResult, Figure, Table
from mlsafety.registry import CHECKS
from mlsafety.report import format_value, wilson_interval


def plot_confusion_matrix(matrix: np.ndarray, class_names: list[str]) -> MatplotlibFigure:
    """Row-normalised confusion matrix (rows: true class) with counts annotated."""
    figure = MatplotlibFigure(figsize=(6.4, 5.4))
    axes = figure.add_subplot()
    normalised = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    image = axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    axes.set_xticks(ticks, class_names, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(ticks, class_names, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if len(class_names) <= 20:
        for i in range(len(class_names)):
            for j in range(len(class_names)):
                colour = "white" if normalised[i, j] > 0.5 else "black"
                axes.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=6, color=colour)
    figure.colorbar(image, ax=axes, fraction=0.046, label="fraction of true class")
    return figure


@CHECKS.register("accuracy")
class AccuracyCheck(Check):
    """Top-1 accuracy, per-class accuracy and the confusion matrix on clean test data.

    Verdict: ``warn`` when some class is recognised less than half as often as the
    average, since such a class is a silent failure mode; ``pass`` otherwise.
    """

    name = "accuracy"
    title = "Clean accuracy"
    hazard = "Baseline performance"
    order = 0
    metric_names = frozenset({
        "accuracy",
        "accuracy_high",
        "accuracy_low",
        "balanced_accuracy",
        "n_samples",
        "worst_class_accuracy",
    })

    def run(self, context: AuditContext) -> CheckResult:
        data = context.evaluation_data()
        logits = context.logits(data)
        predictions = logits.argmax(1).cpu().numpy()
        labels = data.labels.cpu().numpy()
        # the model's classes, not only the labelled ones: predictions of an unlabelled class are errors
        names = list(context.classifier.class_names or data.class_names)
        names += [str(i) for i in range(len(names), logits.shape[1])]
        matrix = confusion_matrix(labels, predictions, labels=np.arange(len(names)))
        support = matrix.sum(1)
        per_class = np.divide(np.diag(matrix), support, out=np.full(len(names), np.nan),
                              where=support > 0)
        n_correct = int((predictions == labels).sum())
        overall = n_correct / len(labels)
        low, high = wilson_interval(n_correct, len(labels))
        balanced = float(np.nanmean(per_class))
        weak = [names[i] for i in range(len(names))
                if support[i] > 0 and per_class[i] < 0.5 * overall]
        card = context.classifier.describe()
        model_rows = [
            ["architecture", card.get("name")],
            ["parameters", card.get("n_parameters")],
            ["input shape (C, H, W)", str(card.get("input_shape") or list(data.image_shape))],
            ["classes", len(names)],
            ["data set", f"{data.name} ({len(data):,} images)"],
            ["normalisation", format_value(card.get("normalisation"))],
            ["device", str(context.classifier.device)],
        ]
        for key in ("dataset", "test_accuracy", "epochs", "training_seconds", "source"):
            if key in card:
                model_rows.append([f"card: {key}", format_value(card[key])])
        worst = int(np.nanargmin(per_class))
        summary = (f"Top-1 accuracy {overall:.1%} [{low:.1%}, {high:.1%}] on {len(data):,} images; weakest class "
                   f"{names[worst]!r} at {per_class[worst]:.1%}.")
        warnings = []
        if weak:
            warnings.append(
                f"classes {', '.join(weak)} are recognised less than half as often as the average "
                "class; the model fails silently on them."
            )
        return self.result(
            "warn" if weak else "pass",
            summary,
            metrics={"accuracy": overall, "accuracy_low": low, "accuracy_high": high, "balanced_accuracy": balanced,
                     "worst_class_accuracy": float(per_class[worst]), "n_samples": float(len(data))},
            tables=[
                Table("Model card", ["property", "value"], model_rows),
                Table("Per-class accuracy (95% Wilson interval)", ["class", "accuracy", "95% interval", "support"],
                      [[n, float(a), _interval_text(int(matrix[i, i]), int(s)), int(s)]
                       for i, (n, a, s) in enumerate(zip(names, per_class, support))]),
            ],
            figures=[Figure.from_matplotlib(plot_confusion_matrix(matrix, names), "Confusion matrix",
                                            "Rows are true classes, normalised; cells show counts.")],
            warnings=warnings,
            details={"confusion_matrix": matrix.tolist(), "accuracy_interval": [low, high]},
            data_note=context.data_note(len(data)),
            next_step=("look at the weak classes' images and labels in the confusion matrix; add or re-weight "
                       "their training data and retrain (for the default architectures: "
                       "'mlsafety train --data <your data>')." if weak else ""),
        )


def _interval_text(n_correct: int, n_total: int) -> str:
    if n_total == 0:
        return "-"
    low, high = wilson_interval(n_correct, n_total)
    return f"[{low:.1%}, {high:.1%}]"

