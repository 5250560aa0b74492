"""Unforeseen and perceptible adversaries: UA2-style non-Lp attacks, spatial attacks and a
universal adversarial patch."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure as MatplotlibFigure

from mlsafety.audit.base import AuditContext, Check, CheckResult, Figure, Table
from mlsafety.metrics.bootstrap import bootstrap_interval
from mlsafety.registry import CHECKS
from mlsafety.report import wilson_interval


def _interval(rate: float, n: int) -> str:
    low, high = wilson_interval(round(rate * n), n)
    return f"[{low:.1%}, {high:.1%}]"


def plot_accuracy(matrix: np.ndarray, names: list[str], levels: list[str], clean: float) -> MatplotlibFigure:
    """Attack x level accuracy heatmap with values annotated."""
    figure = MatplotlibFigure(figsize=(1.6 + 1.0 * len(levels), 0.8 + 0.34 * len(names)))
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="RdYlGn", vmin=0, vmax=max(clean, 1e-6), aspect="auto")
    axes.set_xticks(range(len(levels)), levels)
    axes.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(len(names)):
        for j in range(len(levels)):
            axes.text(j, i, f"{matrix[i, j]:.0%}", ha="center", va="center", fontsize=7)
    figure.colorbar(image, ax=axes, fraction=0.05, label=f"accuracy (clean {clean:.1%})")
    return figure


def plot_examples(panels: list[tuple[str, torch.Tensor]]) -> MatplotlibFigure:
    """One image under each attack, with the predicted class in the title."""
    columns = min(8, len(panels))
    rows = int(np.ceil(len(panels) / columns))
    figure = MatplotlibFigure(figsize=(1.35 * columns, 1.6 * rows))
    for index, (title, picture) in enumerate(panels):
        axes = figure.add_subplot(rows, columns, index + 1)
        array = picture.detach().cpu().permute(1, 2, 0).numpy()
        if array.shape[2] == 1:
            axes.imshow(array[..., 0], cmap="gray", vmin=0, vmax=1)
        else:
            axes.imshow(array[..., :3].clip(0, 1))
        axes.set_title(title, fontsize=6)
        axes.axis("off")
    return figure


@CHECKS.register("unforeseen")
class UnforeseenCheck(Check):
    """Robustness to adversaries outside the Lp ball: optimised non-Lp distortions (UA2,
    Kaufmann et al. 2023), rotations and translations (Engstrom et al. 2019) and a universal
    adversarial patch (Brown et al. 2017).

    Full mode: 80 test images, every unforeseen attack at the low, medium and high levels
    (5 gradient steps each), spatial worst-of-10, and a universal patch (side 1/4 of the
    image) trained for 2 epochs on 500 validation images. Quick mode: 32 images, the eight UA2
    attacks at the medium level (3 steps), worst-of-10 and a 1-epoch patch on 200 images.

    Options (``{"unforeseen": {...}}``): ``attacks``, ``levels``, ``n_samples``, ``n_steps``,
    ``patch_size``, ``max_relative_drop`` (default 0.5).
    Verdict: ``warn`` if a gradient-masking check fails, or if UA2 or the spatial accuracy
    falls below ``max_relative_drop`` of the clean accuracy; ``pass`` otherwise.
    """

    name = "unforeseen"
    title = "Unforeseen adversaries (non-Lp, spatial, patch)"
    hazard = "Robustness: perceptible and unforeseen adversaries"
    requires = frozenset({"gradients"})
    order = 35
    metric_names = frozenset({
        "clean_accuracy",
        "n_samples",
        "patch_success_rate",
        "sanity_failures",
        "spatial_accuracy",
        "ua2",
        "worst_attack_accuracy",
    })

    def not_applicable(self, context: AuditContext) -> str | None:
        reason = super().not_applicable(context)
        if reason:
            return reason
        h, w = context.data.image_shape[1:]
        if min(h, w) < 8:
            return f"images of {h}x{w} px are too small for the unforeseen attacks (need at least 8x8)"
        return None

    def run(self, context: AuditContext) -> CheckResult:
        from mlsafety.robustness.attacks.patch import UniversalPatch
        from mlsafety.robustness.attacks.spatial import Spatial
        from mlsafety.robustness.attacks.unforeseen import LEVELS, UA2_CORE, evaluate_unforeseen, unforeseen_names

        start = time.perf_counter()
        quick = context.quick
        classifier, seed = context.classifier, context.seed
        attacks = list(context.option(self.name, "attacks", list(UA2_CORE) if quick else unforeseen_names()))
        levels = list(context.option(self.name, "levels", ["medium"] if quick else list(LEVELS)))
        n = int(context.option(self.name, "n_samples", 32 if quick else 80))
        n_steps = int(context.option(self.name, "n_steps", 3 if quick else 5))
        patch_size = float(context.option(self.name, "patch_size", 0.25))
        max_drop = float(context.option(self.name, "max_relative_drop", 0.5))
        subset = context.data.head(n, seed=seed)
        x, y = subset.images, subset.labels
        names = subset.class_names
        notes: list[str] = []

        report = evaluate_unforeseen(classifier, x, y, attacks, levels, n_steps=n_steps, seed=seed)
        clean, ua2 = report.clean_accuracy, report.ua2
        worst_name, worst_accuracy = report.worst
        reference = report.reference_level
        notes.append(f"{len(subset)} test images; {len(attacks)} unforeseen attacks at {', '.join(levels)} "
                     f"({n_steps} signed-gradient steps on each attack's latent; budgets in docs/unforeseen.md).")
        if any(name not in attacks for name in UA2_CORE) or "medium" not in levels:
            notes.append("UA2 is defined over the eight core attacks at the medium level; with a subset it is the "
                         "mean over the attacks evaluated.")

        spatial_attack = Spatial(method="worst_of_k", n_samples=10, seed=seed)
        spatial_images = spatial_attack(x, y, classifier)
        spatial_accuracy = float(((classifier.predict(x) == y) & (classifier.predict(spatial_images) == y))
                                 .float().mean())
        notes.append(f"Spatial: worst of 10 random rotations (up to {spatial_attack.max_rotation:g} degrees) and "
                     f"translations (up to {spatial_attack.max_translation:.0%} of the side), Engstrom et al. 2019.")

        source = context.validation if context.validation is not None else context.data
        n_train = 200 if quick else 500
        train = source.head(min(n_train, len(source)), seed=seed + 1)
        patch = UniversalPatch(size=patch_size, n_epochs=1 if quick else 2, seed=seed).fit(
            classifier, train.images, train.labels)
        patch_success = patch.success_rate(classifier, x, y)
        patched = patch.perturb(x)
        notes.append(f"Universal patch (Brown et al. 2017): side {patch_size:g} of the image, trained on "
                     f"{len(train)} {'validation' if context.validation is not None else 'evaluation'} images, "
                     "tested at random locations on the test images.")
        if context.validation is None:
            notes.append("No validation split: the patch was trained on evaluation images, so its success is "
                         "optimistic for the attacker.")

        warnings = [f.message for f in report.findings if not f.passed]
        ua2_interval, ua2_bounds = "-", None
        core = [a for a in UA2_CORE if a in report.robust] or list(report.robust)
        if reference == "medium" and core:
            # UA2 is a mean over attacks on the same images: resample images, not attacks x images
            per_image = torch.stack([report.robust[a].float().cpu() for a in core]).mean(0).numpy()
            if abs(float(per_image.mean()) - ua2) < 1e-6:
                ua2_low, ua2_high = ua2_bounds = bootstrap_interval(np.mean, per_image, seed=seed)
                ua2_interval = f"[{ua2_low:.1%}, {ua2_high:.1%}] (bootstrap over the images)"
        matrix = np.array([[report.accuracy[a][lv] for lv in levels] for a in attacks])
        figures = [Figure.from_matplotlib(plot_accuracy(matrix, attacks, levels, clean), "Accuracy under each attack",
                                          "Optimised non-Lp attacks at each distortion level.")]
        correct = (classifier.predict(x) == y).nonzero().squeeze(1)
        if correct.numel():
            i = int(correct[0])
            panels = [(f"clean: {names[int(y[i])]}", x[i])]
            extra = [(f"{a} ({reference})", report.adversarial[a][i]) for a in attacks]
            extra += [("spatial", spatial_images[i]), ("patch", patched[i])]
            predicted = classifier.predict(torch.stack([image for _, image in extra]))
            panels += [(f"{title}: {names[int(p)]}", image) for (title, image), p in zip(extra, predicted)]
            figures.append(Figure.from_matplotlib(plot_examples(panels), "Example attacks",
                                                  "One test image under each attack (title: predicted class)."))

        low = [label for label, value in (("UA2", ua2), ("spatial accuracy", spatial_accuracy))
               if value < max_drop * clean]
        verdict = "warn" if warnings or low else "pass"
        summary = (f"UA2 {ua2:.1%}" + (f" [{ua2_bounds[0]:.1%}, {ua2_bounds[1]:.1%}]" if ua2_bounds else "")
                   + f" vs clean {clean:.1%}; worst attack {worst_name} ({worst_accuracy:.1%}); "
                   f"spatial worst-of-10 {spatial_accuracy:.1%}; universal patch fools {patch_success:.1%}"
                   + (f"; {len(warnings)} sanity warning(s)." if warnings else "."))
        metrics: dict[str, float] = {
            "clean_accuracy": clean, "ua2": ua2, "worst_attack_accuracy": worst_accuracy,
            "spatial_accuracy": spatial_accuracy, "patch_success_rate": patch_success, "n_samples": float(len(subset)),
            "sanity_failures": float(len(warnings)),
        }
        tables = [
            Table("Accuracy under unforeseen attacks", ["attack", *levels, f"random ({reference})"],
                  [[a, *[report.accuracy[a][lv] for lv in levels], report.random_accuracy.get(a)] for a in attacks]),
            Table("Summary (95% Wilson interval over the images)", ["measure", "value", "95% interval"],
                  [["clean accuracy", clean, _interval(clean, len(subset))],
                   ["UA2 (mean at medium)", ua2, ua2_interval],
                   [f"worst attack: {worst_name}", worst_accuracy, _interval(worst_accuracy, len(subset))],
                   ["spatial worst-of-10 accuracy", spatial_accuracy, _interval(spatial_accuracy, len(subset))],
                   [f"universal patch success (size {patch_size:g})", patch_success,
                    _interval(patch_success, len(subset))]]),
            Table("Sanity checks", ["check", "passed", "meaning"],
                  [[f.name, f.passed, f.message] for f in report.findings]),
        ]
        details: dict[str, Any] = {**report.to_dict(), "attack_seconds": report.seconds,
                                   "spatial_accuracy": spatial_accuracy, "patch_success_rate": patch_success,
                                   "ua2_interval": ua2_bounds,
                                   "seconds": time.perf_counter() - start}
        next_step = ""
        if low:
            next_step = ("train with the perturbations the model fails on: spatial failures call for rotation and "
                         "translation augmentation, non-Lp failures for diverse augmentation (AugMix/PixMix in "
                         "mlsafety.robustness.training) or adversarial training ('mlsafety train --adversarial pgd'), "
                         "which transfers partly to unforeseen attacks (docs/unforeseen.md).")
        elif warnings:
            next_step = "a sanity check failed, so the attack figures may overstate robustness; see docs/unforeseen.md."
        data_note = context.data_note(len(subset), "each attack optimises a latent per image; the patch is trained "
                                                   "on separate validation images")
        return self.result(verdict, summary, metrics=metrics, tables=tables, figures=figures, notes=notes,
                           warnings=warnings, details=details, data_note=data_note, next_step=next_step)
