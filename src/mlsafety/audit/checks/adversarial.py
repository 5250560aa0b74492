"""Adversarial robustness: clean vs robust accuracy, accuracy against epsilon, per-sample
minimal perturbations, and gradient-masking sanity checks stated in plain words."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure as MatplotlibFigure

from mlsafety.audit.base import AuditContext, Check, CheckResult, Figure, Table
from mlsafety.registry import CHECKS
from mlsafety.report import wilson_interval
from mlsafety.robustness.attacks.apgd import APGD
from mlsafety.robustness.attacks.autoattack import AutoAttack
from mlsafety.robustness.attacks.evaluation import accuracy_vs_epsilon
from mlsafety.robustness.attacks.sanity import (
    check_black_box_not_stronger,
    check_gradients,
    check_large_epsilon,
    check_monotone_in_epsilon,
    check_more_iterations,
    check_outputs_are_logits,
)

CURVE_FACTORS = (0.25, 0.5, 1.0, 2.0)


def _bounds(rate: float, n: int) -> tuple[float, float]:
    return wilson_interval(round(rate * n), n)


def _interval(rate: float, n: int) -> str:
    low, high = _bounds(rate, n)
    return f"[{low:.1%}, {high:.1%}]"


def _with_interval(rate: float, n: int) -> str:
    return f"{rate:.1%} {_interval(rate, n)}"


def plot_curve(epsilons: list[float], accuracies: list[float], clean: float, epsilon: float,
               robust: float, label: str, norm: str) -> MatplotlibFigure:
    figure = MatplotlibFigure(figsize=(6.0, 4.0))
    axes = figure.add_subplot()
    axes.plot([0.0, *epsilons], [clean, *accuracies], "o-", label="APGD-CE (curve)")
    axes.plot([epsilon], [robust], "r*", markersize=12, label=label)
    axes.set_xlabel(f"epsilon ({norm})")
    axes.set_ylabel("accuracy")
    axes.set_ylim(-0.02, 1.02)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return figure


def plot_minimal(first_broken: np.ndarray, epsilons: list[float], norm: str) -> MatplotlibFigure:
    """Cumulative fraction of samples broken at or below each radius of the grid."""
    figure = MatplotlibFigure(figsize=(6.0, 4.0))
    axes = figure.add_subplot()
    grid = [0.0, *epsilons]
    axes.step(grid, [float((first_broken <= e).mean()) for e in grid], where="post")
    axes.set_xlabel(f"epsilon ({norm})")
    axes.set_ylabel("fraction misclassified at or below epsilon")
    axes.set_ylim(-0.02, 1.02)
    axes.grid(alpha=0.3)
    return figure


def plot_examples(x: torch.Tensor, adversarial: torch.Tensor, clean_names: list[str],
                  adversarial_names: list[str]) -> MatplotlibFigure:
    n = x.shape[0]
    figure = MatplotlibFigure(figsize=(1.6 * n, 3.6))
    for i in range(n):
        for row, (images, names) in enumerate(((x, clean_names), (adversarial, adversarial_names))):
            axes = figure.add_subplot(2, n, row * n + i + 1)
            array = images[i].detach().cpu().permute(1, 2, 0).numpy()
            if array.shape[2] == 1:
                axes.imshow(array[..., 0], cmap="gray", vmin=0, vmax=1)
            else:
                axes.imshow(array[..., :3].clip(0, 1))
            axes.set_title(names[i], fontsize=7)
            axes.axis("off")
    return figure


@CHECKS.register("adversarial")
class AdversarialCheck(Check):
    """Robust accuracy under small worst-case perturbations, with gradient-masking checks.

    Full mode: standard AutoAttack (Croce & Hein 2020) on 500 test images at ``epsilon``.
    Quick mode: 100 images, APGD-CE (20 steps) then APGD-T (3 targets x 20 steps) on the
    survivors, a cheap subset that is an upper bound on the AutoAttack figure.
    Both: an APGD-CE accuracy-vs-epsilon curve, a grid estimate of each image's minimal
    perturbation, and the sanity checks of Carlini et al. (2019).

    Options (``{"adversarial": {...}}``): ``epsilon`` (default 0.1 for grayscale, 8/255 for
    colour images), ``norm`` ("Linf" or "L2"), ``n_samples``, ``n_queries`` (Square queries of
    the black-box sanity check; 300 quick, 1,000 full).
    Verdict: ``warn`` if a sanity check fails; ``fail`` if robust accuracy is below half the
    clean accuracy; ``pass`` otherwise.
    """

    name = "adversarial"
    title = "Adversarial robustness"
    hazard = "Robustness: adversarial examples"
    requires = frozenset({"gradients"})
    order = 30
    metric_names = frozenset({
        "attack_success_rate",
        "clean_accuracy",
        "epsilon",
        "median_minimal_perturbation",
        "n_samples",
        "robust_accuracy",
        "sanity_failures",
    })

    def run(self, context: AuditContext) -> CheckResult:
        start = time.perf_counter()
        classifier = context.classifier
        data = context.data
        grayscale = data.image_shape[0] == 1
        norm = context.option(self.name, "norm", "Linf")
        default_epsilon = (0.1 if grayscale else 8 / 255) if norm == "Linf" else (1.0 if grayscale else 0.5)
        epsilon = float(context.option(self.name, "epsilon", default_epsilon))
        n = int(context.option(self.name, "n_samples", 100 if context.quick else 500))
        subset = data.head(n, seed=context.seed)
        x, y = subset.images, subset.labels
        seed = context.seed
        notes: list[str] = []
        n_classes = len(data.class_names)

        if context.quick:
            steps = 20
            targets = min(3, n_classes - 1)
            attack_label = f"APGD-CE + APGD-T ({targets} targets), {steps} steps"
            first = APGD(epsilon=epsilon, norm=norm, n_steps=steps, seed=seed)
            evaluation = AutoAttack(epsilon=epsilon, norm=norm, attacks=("apgd-ce", "apgd-t"), n_steps=steps,
                                    n_target_classes=targets, seed=seed).evaluate(x, y, classifier)
            notes.append(f"Quick mode: {len(subset)} images; {attack_label} (a cheap subset of AutoAttack, so the "
                         "robust accuracy is an upper bound: run without --quick for standard AutoAttack).")
        else:
            first = APGD(epsilon=epsilon, norm=norm, n_steps=100, seed=seed)
            evaluation = AutoAttack(epsilon=epsilon, norm=norm, n_target_classes=min(9, n_classes - 1),
                                    seed=seed).evaluate(x, y, classifier)
            attack_label = "AutoAttack (standard)"
            notes.append(f"{len(subset)} test images; standard AutoAttack: APGD-CE, APGD-T, FAB-T, Square "
                         f"(Croce & Hein 2020) with {min(9, n_classes - 1)} target classes.")
        clean = evaluation.clean_accuracy
        robust = evaluation.robust_accuracy
        notes.append(f"Threat model: {norm} ball of radius epsilon = {epsilon:g} on pixels in [0, 1] "
                     + ("(the default for grayscale images)." if "epsilon" not in context.options.get(self.name, {})
                        else "(set by the user)."))

        curve_steps = 10 if context.quick else 20
        epsilons = [epsilon * f for f in CURVE_FACTORS]
        curve = accuracy_vs_epsilon(classifier, x, y, epsilons, APGD(norm=norm, n_steps=curve_steps, seed=seed))
        first_broken = curve["first_broken_epsilon"].numpy()
        broken = first_broken[np.isfinite(first_broken) & (first_broken > 0)]
        median_minimal = float(np.median(first_broken[first_broken > 0])) if (first_broken > 0).any() else 0.0

        # sanity checks (Carlini et al. 2019)
        findings = [check_outputs_are_logits(classifier, x), check_gradients(classifier, x, y)]
        findings.append(check_monotone_in_epsilon(curve["epsilons"], curve["robust_accuracy"]))
        large = 0.5 if norm == "Linf" else 0.5 * float(x[0].numel()) ** 0.5
        large_result = accuracy_vs_epsilon(classifier, x, y, [large], APGD(norm=norm, n_steps=10, seed=seed))
        findings.append(check_large_epsilon(large_result["robust_accuracy"][0], large))
        at_epsilon = curve["robust"][CURVE_FACTORS.index(1.0)].cpu()
        more = first.get_params()
        findings.append(check_more_iterations(float(at_epsilon.float().mean()),
                                              float(evaluation.robust.float().mean())
                                              if context.quick else self._apgd_accuracy(more, x, y, classifier),
                                              what="steps"))
        survivors = evaluation.robust.cpu()
        if bool(survivors.any()):
            from mlsafety.robustness.attacks.evaluation import evaluate_attack
            from mlsafety.robustness.attacks.square import Square

            queries = int(context.option(self.name, "n_queries", 300 if context.quick else 1000))
            ids = survivors.nonzero().squeeze(1)
            black = evaluate_attack(Square(epsilon=epsilon, norm=norm, n_queries=queries, seed=seed),
                                    x[ids], y[ids], classifier)
            black_robust = torch.ones_like(survivors)
            black_robust[ids] = black.robust.cpu()
            findings.append(check_black_box_not_stronger(survivors, black_robust))
            notes.append(f"Black-box check: Square ({queries} queries) on the {len(ids)} images the white-box "
                         "attacks did not break.")
        warnings = [f.message for f in findings if not f.passed]

        adversarial_ids = ((~evaluation.robust) & evaluation.clean_correct).nonzero().squeeze(1)[:6].cpu()
        figures = [
            Figure.from_matplotlib(plot_curve(curve["epsilons"], curve["robust_accuracy"], clean, epsilon, robust,
                                              attack_label, norm),
                                   "Accuracy against epsilon",
                                   f"APGD-CE ({curve_steps} steps) at each radius; the star is {attack_label}."),
            Figure.from_matplotlib(plot_minimal(first_broken, curve["epsilons"], norm),
                                   "Minimal perturbation (grid estimate)",
                                   "Fraction of images misclassified at or below each radius (0 = clean errors)."),
        ]
        if adversarial_ids.numel():
            names = data.class_names
            predicted = classifier.predict(evaluation.adversarial[adversarial_ids]).tolist()
            figures.append(Figure.from_matplotlib(
                plot_examples(x[adversarial_ids], evaluation.adversarial[adversarial_ids],
                              [names[int(i)] for i in y[adversarial_ids]], [names[int(i)] for i in predicted]),
                "Adversarial examples", f"Top: clean (true class); bottom: perturbed within epsilon={epsilon:g} "
                "(predicted class)."))
        verdict = "warn" if warnings else ("fail" if robust < 0.5 * clean else "pass")
        n_images = len(subset)
        summary = (f"Robust accuracy {_with_interval(robust, n_images)} vs clean {_with_interval(clean, n_images)} "
                   f"under {norm} epsilon={epsilon:g} ({attack_label}, {n_images} images)"
                   + (f"; {len(warnings)} sanity warning(s)." if warnings else "."))
        if verdict == "fail":
            next_step = (f"train against the attack: 'mlsafety train --adversarial pgd --epsilon {epsilon:g} "
                         "--out robust.safetensors' (PGD adversarial training, Madry et al. 2018; several times "
                         "slower per epoch), then 'mlsafety audit --model robust.safetensors'. For your own "
                         "architecture, pass mlsafety.robustness.training.adversarial.PGDAdversarialLoss as "
                         "loss_fn to mlsafety.models.train_classifier.")
        elif verdict == "warn":
            next_step = ("the sanity checks suggest gradient masking, so the robust accuracy may be overstated: "
                         "remove non-differentiable or randomised preprocessing from the model, or trust only the "
                         "black-box (Square) figure; see docs/adversarial.md.")
        else:
            next_step = ""
        metrics: dict[str, float] = {
            "clean_accuracy": clean, "robust_accuracy": robust, "epsilon": epsilon,
            "attack_success_rate": float((evaluation.clean_correct & ~evaluation.robust).sum())
            / max(int(evaluation.clean_correct.sum()), 1),
            "median_minimal_perturbation": median_minimal, "n_samples": float(len(subset)),
            "sanity_failures": float(len(warnings)),
        }
        details: dict[str, Any] = {
            "curve": {"epsilons": curve["epsilons"], "robust_accuracy": curve["robust_accuracy"]},
            "robust_accuracy_after": evaluation.robust_accuracy_after,
            "attack_seconds": evaluation.seconds, "sanity": [f.to_dict() for f in findings],
            "broken_fraction_within_grid": float(len(broken)) / max(len(first_broken), 1),
            "seconds": time.perf_counter() - start,
        }
        tables = [
            Table("Robust accuracy (95% Wilson interval)", ["setting", "accuracy", "95% interval"],
                  [["clean", clean, _interval(clean, n_images)],
                   *[[f"after {k}", v, _interval(v, n_images)] for k, v in evaluation.robust_accuracy_after.items()]]),
            Table("Accuracy against epsilon", ["epsilon", "robust accuracy", "95% interval"],
                  [[0.0, clean, _interval(clean, n_images)],
                   *[[e, a, _interval(a, n_images)] for e, a in zip(curve["epsilons"], curve["robust_accuracy"])]]),
            Table("Sanity checks (Carlini et al. 2019)", ["check", "passed", "meaning"],
                  [[f.name, f.passed, f.message] for f in findings]),
        ]
        details["intervals"] = {"clean_accuracy": list(_bounds(clean, n_images)),
                                "robust_accuracy": list(_bounds(robust, n_images))}
        data_note = context.data_note(n_images, "each attack step costs a forward and a backward pass per image, "
                                                "so this section uses fewer images than the clean-accuracy section")
        return self.result(verdict, summary, metrics=metrics, tables=tables, figures=figures, warnings=warnings,
                           notes=notes, details=details, data_note=data_note, next_step=next_step)

    @staticmethod
    def _apgd_accuracy(params: dict[str, Any], x: torch.Tensor, y: torch.Tensor, classifier: Any) -> float:
        from mlsafety.robustness.attacks.evaluation import robust_accuracy

        return robust_accuracy(APGD(**params), x, y, classifier)
