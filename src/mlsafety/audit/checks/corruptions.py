"""Robustness to common corruptions (long tails): accuracy under the 15 benchmark corruptions."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure as MatplotlibFigure

from mlsafety.audit.base import AuditContext, CheckResult, Figure, ShardedCheck, ShardPlan, Table
from mlsafety.execution import Shard
from mlsafety.metrics.bootstrap import bootstrap_interval
from mlsafety.registry import CHECKS, CORRUPTIONS
from mlsafety.report import wilson_interval


def plot_heatmap(matrix: np.ndarray, names: list[str], severities: list[int], clean: float) -> MatplotlibFigure:
    """Corruption x severity accuracy heatmap with values annotated."""
    figure = MatplotlibFigure(figsize=(1.2 + 0.9 * len(severities), 0.8 + 0.36 * len(names)))
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="RdYlGn", vmin=0, vmax=max(clean, 1e-6), aspect="auto")
    axes.set_xticks(range(len(severities)), [str(s) for s in severities])
    axes.set_yticks(range(len(names)), names, fontsize=8)
    axes.set_xlabel("severity")
    for i in range(len(names)):
        for j in range(len(severities)):
            axes.text(j, i, f"{matrix[i, j]:.0%}", ha="center", va="center", fontsize=7)
    figure.colorbar(image, ax=axes, fraction=0.05, label=f"accuracy (clean {clean:.1%})")
    return figure


def plot_curves(matrix: np.ndarray, names: list[str], severities: list[int], clean: float) -> MatplotlibFigure:
    """Accuracy against severity, one line per corruption, starting from clean accuracy at 0."""
    figure = MatplotlibFigure(figsize=(7.5, 4.6))
    axes = figure.add_subplot()
    xs = [0, *severities]
    for i, name in enumerate(names):
        style = "-" if i < 10 else "--"
        axes.plot(xs, [clean, *matrix[i].tolist()], style, marker="o", markersize=3, label=name)
    axes.plot(xs, [clean, *matrix.mean(0).tolist()], "k-", linewidth=3, label="mean")
    axes.set_xlabel("severity (0 = clean)")
    axes.set_ylabel("accuracy")
    axes.set_xticks(xs)
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=6, ncol=2, loc="lower left")
    return figure


def plot_examples(image: torch.Tensor, names: list[str], severity: int, seed: int) -> MatplotlibFigure:
    """One image under every corruption at one severity."""
    columns = 8
    rows = int(np.ceil((len(names) + 1) / columns))
    figure = MatplotlibFigure(figsize=(1.3 * columns, 1.5 * rows))
    panels = [("clean", image)]
    for name in names:
        panels.append((name, CORRUPTIONS.get(name)(severity=severity, seed=seed)(image[None])[0]))
    for index, (title, picture) in enumerate(panels):
        axes = figure.add_subplot(rows, columns, index + 1)
        array = picture.detach().cpu().permute(1, 2, 0).numpy()
        if array.shape[2] == 1:
            axes.imshow(array[..., 0], cmap="gray", vmin=0, vmax=1)
        else:
            axes.imshow(array[..., :3].clip(0, 1))
        axes.set_title(title.replace("_", " "), fontsize=7)
        axes.axis("off")
    return figure


def _pack(hits: np.ndarray) -> str:
    """Per-image correctness as text (a bit per image, base64) that a shard store can hold."""
    return base64.b64encode(np.packbits(hits)).decode("ascii")


def _unpack(text: str, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8), count=n).astype(bool)


def corruption_cell(shard: Shard, shared: tuple[Any, torch.Tensor, torch.Tensor, int]) -> dict[str, Any]:
    """Correct predictions on one (corruption, severity) cell, or on the clean images, with
    which images were right (``hits``, packed bits) for the bootstrap intervals of the means.

    Batch ``i`` of a cell is seeded with :func:`~mlsafety.robustness.corruptions.evaluate.batch_seed`
    ``(seed, corruption, severity, i)``: derived from the cell's identity, so the count is the
    same whichever worker runs it (and the same as :func:`evaluate_corruptions`).
    """
    from mlsafety.robustness.corruptions import corrupt_dataset

    classifier, images, labels, batch_size = shared
    name, severity = shard.params["corruption"], shard.params["severity"]
    if name is None:  # the clean accuracy, reduced as evaluate_corruptions does (a float32 mean)
        hits = classifier.predict(images).cpu() == labels.cpu()
        return {"accuracy": float(hits.float().mean()), "hits": _pack(hits.numpy())}
    parts = []
    offset = 0
    for batch in corrupt_dataset(images, name, severity, seed=shard.params["seed"], batch_size=batch_size):
        parts.append(classifier.predict(batch).cpu() == labels[offset:offset + len(batch)].cpu())
        offset += len(batch)
    hits = torch.cat(parts).numpy()
    return {"correct": int(hits.sum()), "hits": _pack(hits)}


@CHECKS.register("corruptions")
class CorruptionsCheck(ShardedCheck):
    """Accuracy under the 15 common corruptions of Hendrycks & Dietterich (2019, ImageNet-C),
    per corruption and severity, with a heatmap, accuracy-vs-severity curves and the worst
    corruptions called out.

    Quick mode evaluates 200 images at severities 1, 3 and 5; the full audit 1,000 images at
    all five severities. Options (``options["corruptions"]``): ``severities``, ``n_images``,
    ``max_relative_drop`` (default 0.5: warn when some corruption's mean accuracy falls below
    half the clean accuracy), ``baseline_errors`` (corruption -> errors per severity of a
    baseline model, to report mCE) and ``baseline_clean_error``.

    Verdict: ``warn`` when some corruption costs more than ``max_relative_drop`` of the clean
    accuracy, ``info`` otherwise (there is no universal pass mark for corruption robustness).

    Shards: the clean images and every (corruption, severity) cell, each counted by
    :func:`corruption_cell` (76 shards in the full audit).
    """

    name = "corruptions"
    title = "Common corruptions (long tails)"
    hazard = "Robustness: rare, unusual inputs (noise, blur, weather, digital artefacts)"
    order = 20
    metric_names = frozenset({
        "clean_accuracy",
        "mCE",
        "mean_corruption_accuracy",
        "mean_corruption_accuracy_high",
        "mean_corruption_accuracy_low",
        "mean_corruption_error",
        "n_images",
        "relative_accuracy",
        "relative_mCE",
        "worst_corruption_accuracy",
    })

    def config(self, context: AuditContext) -> dict[str, Any]:
        # shards of format 2 carry per-image hits; finished shards of format 1 are not reused
        return {**super().config(context), "shard_format": 2}

    def not_applicable(self, context: AuditContext) -> str | None:
        reason = super().not_applicable(context)
        if reason:
            return reason
        h, w = context.data.image_shape[1:]
        if min(h, w) < 8:
            return f"images of {h}x{w} px are too small for the corruptions (need at least 8x8)"
        return None

    def plan(self, context: AuditContext) -> ShardPlan:
        from mlsafety.robustness.corruptions import corruption_names

        default_severities = (1, 3, 5) if context.quick else (1, 2, 3, 4, 5)
        severities = [int(s) for s in context.option(self.name, "severities", default_severities)]
        if not severities or any(s not in (1, 2, 3, 4, 5) for s in severities):
            from mlsafety.exceptions import parameter_error

            raise parameter_error("severities", "evaluate_corruptions", "a non-empty subset of 1..5", severities)
        n_images = int(context.option(self.name, "n_images", 200 if context.quick else 1000))
        data = context.data.head(n_images, seed=context.seed)
        names = corruption_names("benchmark")
        shards = [Shard.create("clean", context.seed, corruption=None, severity=0, seed=context.seed)]
        shards += [Shard.create(f"{name}-{severity}", context.seed, corruption=name, severity=severity,
                                seed=context.seed) for name in names for severity in severities]
        shared = (context.classifier, data.images, data.labels, context.classifier.batch_size)
        return ShardPlan(corruption_cell, shards, shared,
                         {"data": data, "names": names, "severities": severities})

    def combine(self, context: AuditContext, plan: ShardPlan, results: list[Any]) -> CheckResult:
        from mlsafety.metrics.corruption import mean_corruption_error, relative_mean_corruption_error
        from mlsafety.robustness.corruptions.evaluate import CorruptionResult

        data, names, severities = plan.state["data"], plan.state["names"], plan.state["severities"]
        max_drop = float(context.option(self.name, "max_relative_drop", 0.5))
        cells = {(shard.params["corruption"], shard.params["severity"]): value
                 for shard, value in zip(plan.shards, results)}
        accuracy = {name: np.asarray([cells[name, s]["correct"] / len(data) for s in severities]) for name in names}
        result = CorruptionResult(accuracy, severities, float(cells[None, 0]["accuracy"]), len(data))
        matrix = result.matrix()
        clean = result.clean_accuracy
        means = matrix.mean(1)
        order = np.argsort(means)
        worst = [names[i] for i in order[:3]]
        mean_accuracy = float(matrix.mean())
        n = len(data)
        # per image: the fraction of its corrupted copies (per corruption, or over all) classified right;
        # resampling images keeps the correlation between severities and corruptions of one image
        hits = np.stack([[_unpack(cells[name, s]["hits"], n) for s in severities] for name in names])
        per_corruption = hits.mean(1)
        mean_intervals = [bootstrap_interval(np.mean, row, seed=context.seed) for row in per_corruption]
        overall_low, overall_high = bootstrap_interval(np.mean, per_corruption.mean(0), seed=context.seed)
        clean_hits = _unpack(cells[None, 0]["hits"], n).astype(float)
        relative_low, relative_high = bootstrap_interval(
            lambda corrupted, right: corrupted.mean() / right.mean() if right.any() else np.nan,
            per_corruption.mean(0), clean_hits, seed=context.seed)
        metrics = {
            "clean_accuracy": clean,
            "mean_corruption_accuracy": mean_accuracy,
            "mean_corruption_accuracy_low": overall_low,
            "mean_corruption_accuracy_high": overall_high,
            "mean_corruption_error": 1 - mean_accuracy,
            "relative_accuracy": mean_accuracy / clean if clean > 0 else 0.0,
            "worst_corruption_accuracy": float(means[order[0]]),
            "n_images": float(len(data)),
        }
        notes = [
            f"{len(data)} images, severities {severities}"
            + (" (quick mode: a subset of the five severities)" if len(severities) < 5 else "")
            + f", severity table '{CORRUPTIONS.get(names[0])().resolution}' chosen by image size "
            "(CIFAR table up to 40 px, Tiny-ImageNet up to 96 px, ImageNet above).",
            "Frost uses a procedural ice texture instead of the benchmark's photographs.",
        ]
        baseline = context.option(self.name, "baseline_errors", None)
        if baseline is not None:
            errors = {n: 1 - result.accuracy[n] for n in names if n in baseline}
            metrics["mCE"] = mean_corruption_error(errors, baseline)
            baseline_clean = context.option(self.name, "baseline_clean_error", None)
            if baseline_clean is not None:
                metrics["relative_mCE"] = relative_mean_corruption_error(errors, 1 - clean, baseline, baseline_clean)
        else:
            notes.append("mCE needs a baseline model's errors (option baseline_errors); the AlexNet "
                         "ImageNet table is not comparable with this data set, so only accuracies are shown.")
        failing = [names[i] for i in order if clean > 0 and means[i] < (1 - max_drop) * clean]
        warnings = []
        if failing:
            warnings.append(
                f"accuracy under {', '.join(failing)} falls below {1 - max_drop:.0%} of the clean accuracy "
                f"({clean:.1%}); the model fails on these rare but realistic inputs. Consider AugMix or PixMix "
                "training (mlsafety.robustness.training).")
        clean_low, clean_high = wilson_interval(round(clean * n), n)
        summary = (f"Mean accuracy under 15 corruptions {mean_accuracy:.1%} [{overall_low:.1%}, {overall_high:.1%}] "
                   f"vs {clean:.1%} [{clean_low:.1%}, {clean_high:.1%}] clean; worst: "
                   + ", ".join(f"{names[i]} {means[i]:.1%} [{mean_intervals[i][0]:.1%}, {mean_intervals[i][1]:.1%}]"
                               for i in order[:3]) + ".")
        cell_intervals = [[wilson_interval(round(float(a) * n), n) for a in matrix[i]] for i in range(len(names))]
        widest = max(high - low for row in cell_intervals for low, high in row) / 2
        rows = [[name, *[float(a) for a in matrix[i]], float(means[i]),
                 "[{:.1%}, {:.1%}]".format(*mean_intervals[i]), float(clean - means[i]),
                 "[{:.1%}, {:.1%}]".format(*cell_intervals[i][-1])]
                for i, name in enumerate(names)]
        notes.append(f"Every cell is the accuracy on the same {n:,} images; its 95% Wilson interval is at most "
                     f"±{widest:.1%} (the last column gives it at severity {severities[-1]}). Clean accuracy "
                     f"{clean:.1%} [{clean_low:.1%}, {clean_high:.1%}] (Wilson). The intervals of the means "
                     "(per corruption over the severities, and over every cell) are 95% percentile bootstrap "
                     f"intervals over the {n:,} images (1,000 resamples), which keep the correlation between the "
                     "corrupted copies of one image; relative accuracy (mean / clean) "
                     f"{metrics['relative_accuracy']:.1%} [{relative_low:.1%}, {relative_high:.1%}].")
        example_severity = 3 if 3 in severities else severities[len(severities) // 2]
        figures = [
            Figure.from_matplotlib(plot_heatmap(matrix, names, severities, clean), "Accuracy: corruption x severity",
                                   "Top-1 accuracy of the model on each corrupted copy of the evaluation data."),
            Figure.from_matplotlib(plot_curves(matrix, names, severities, clean), "Accuracy vs severity",
                                   "Severity 0 is the clean data; the thick line is the mean over corruptions."),
            Figure.from_matplotlib(plot_examples(data.images[0], names, example_severity, context.seed),
                                   f"The corruptions at severity {example_severity}", "One evaluation image."),
        ]
        return self.result(
            "warn" if failing else "info",
            summary,
            metrics=metrics,
            tables=[Table("Accuracy per corruption and severity",
                          ["corruption", *[f"severity {s}" for s in severities], "mean", "mean: 95% interval",
                           "drop vs clean",
                           f"severity {severities[-1]}: 95% interval"], rows)],
            figures=figures,
            warnings=warnings,
            notes=notes,
            details={"worst": worst, **result.to_dict(),
                     "intervals": {"clean_accuracy": [clean_low, clean_high], "cells": cell_intervals,
                                   "corruption_means": dict(zip(names, mean_intervals)),
                                   "mean_corruption_accuracy": [overall_low, overall_high],
                                   "relative_accuracy": [relative_low, relative_high]}},
            data_note=context.data_note(n, "each image is corrupted 15 times at every severity"),
            next_step=("train with diverse augmentations, AugMix (Hendrycks et al. 2020) or PixMix (2022): "
                       "mlsafety.robustness.training.augmix and .pixmix give the loss and the augmentation to pass to "
                       "mlsafety.models.train_classifier; benchmarks/augmix_fashion_mnist.py shows the gain on the "
                       "default model." if failing else
                       "no corruption halves the accuracy; compare the worst corruptions above with the inputs your "
                       "model will meet, and re-audit after any retraining."),
        )
