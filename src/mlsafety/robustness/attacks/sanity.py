"""Sanity checks that catch evaluations fooled by gradient masking.

Carlini, Athalye, Papernot, Brendel, Rauber, Tsipras, Goodfellow, Madry & Kurakin (2019),
"On Evaluating Adversarial Robustness", and Athalye, Carlini & Wagner (2018), "Obfuscated
Gradients Give a False Sense of Security", list the symptoms of an attack that does not work
on a model (so that its robust accuracy is an overestimate):

1. robust accuracy increases with epsilon;
2. robust accuracy stays well above 0% at a radius large enough to reach any image;
3. a black-box attack (Square, logits only) succeeds where white-box attacks fail;
4. more iterations or restarts lower the attack's success;
5. input gradients are zero or NaN (non-differentiable or saturated layers);
6. the model outputs probabilities, whose softmax saturates and kills the gradients.

Each check returns a :class:`SanityFinding` whose ``message`` says, in plain words, what a
failure means for the evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from mlsafety._validation import check_images, check_labels, looks_like_probabilities
from mlsafety.robustness.attacks._common import make_forward

if TYPE_CHECKING:
    from mlsafety.models.classifier import Classifier

OVERESTIMATE = "this evaluation may overestimate robustness because"


@dataclass
class SanityFinding:
    """One sanity check: ``passed`` is False when the symptom is present."""

    name: str
    passed: bool
    message: str
    value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "message": self.message, "value": self.value}


def check_gradients(classifier: Classifier, x: torch.Tensor, y: torch.Tensor,
                    max_zero_fraction: float = 0.05) -> SanityFinding:
    """Fraction of samples whose cross-entropy input gradient is all zero or not finite."""
    x = check_images(x)
    y = check_labels(y, x.shape[0], classifier.n_classes)
    bad, total = 0, 0
    with classifier.evaluating():
        forward = make_forward(classifier)
        for start in range(0, x.shape[0], classifier.batch_size):
            xb = x[start:start + classifier.batch_size].to(classifier.device).requires_grad_(True)
            yb = y[start:start + classifier.batch_size].to(classifier.device)
            with torch.enable_grad():
                loss = torch.nn.functional.cross_entropy(forward(xb), yb, reduction="sum")
                if loss.requires_grad:
                    (grad,) = torch.autograd.grad(loss, xb, allow_unused=True)
                else:
                    grad = None
            if grad is None:
                bad += xb.shape[0]
            else:
                flat = grad.flatten(1)
                bad += int((~torch.isfinite(flat).all(1) | (flat == 0).all(1)).sum())
            total += xb.shape[0]
    fraction = bad / max(total, 1)
    passed = fraction <= max_zero_fraction
    message = ("input gradients are non-zero and finite" if passed else
               f"{fraction:.0%} of the images have zero or NaN input gradients, so gradient-based attacks "
               f"cannot move them; {OVERESTIMATE} the model masks its gradients (a non-differentiable or "
               "saturating layer). Attack it with the black-box Square attack, or replace the layer by a "
               "differentiable approximation in the backward pass (BPDA).")
    return SanityFinding("gradients", passed, message, fraction)


def check_outputs_are_logits(classifier: Classifier, x: torch.Tensor) -> SanityFinding:
    """Detect a model that returns probabilities (rows non-negative, summing to 1)."""
    logits = classifier.predict_logits(check_images(x)[:256])
    probabilities = looks_like_probabilities(logits)
    message = ("the model returns logits" if not probabilities else
               f"the model returns probabilities (each row sums to 1) instead of logits; {OVERESTIMATE} the "
               "softmax saturates and makes cross-entropy gradients vanish. Remove the final softmax, or "
               "wrap the model to return log-probabilities.")
    return SanityFinding("outputs_are_logits", not probabilities, message, None)


def check_monotone_in_epsilon(epsilons: Sequence[float], accuracies: Sequence[float],
                              tolerance: float = 0.01) -> SanityFinding:
    """Robust accuracy must not increase with the radius (beyond ``tolerance``)."""
    worst = 0.0
    where = None
    for i in range(1, len(accuracies)):
        rise = accuracies[i] - min(accuracies[:i])
        if rise > worst:
            worst, where = rise, i
    passed = worst <= tolerance
    if passed:
        message = "robust accuracy does not increase with epsilon"
    else:
        j = int(torch.tensor(list(accuracies[:where])).argmin())
        message = (f"robust accuracy rises from {accuracies[j]:.1%} at epsilon={epsilons[j]:g} to "
                   f"{accuracies[where]:.1%} at epsilon={epsilons[where]:g}; a larger budget can only help the "
                   f"attacker, so {OVERESTIMATE} the attack fails to optimise (gradient masking or too few steps).")
    return SanityFinding("monotone_in_epsilon", passed, message, worst)


def check_large_epsilon(accuracy: float, epsilon: float, max_accuracy: float = 0.05) -> SanityFinding:
    """At a radius that can reach (almost) any image, robust accuracy must be near 0%."""
    passed = accuracy <= max_accuracy
    message = (f"robust accuracy falls to {accuracy:.1%} at the large radius epsilon={epsilon:g}" if passed else
               f"robust accuracy is still {accuracy:.1%} at epsilon={epsilon:g}, a budget that can turn an image "
               f"into a different-looking one; an attack that works should reach about 0%, so {OVERESTIMATE} the "
               "attack is not finding adversarial examples that exist.")
    return SanityFinding("large_epsilon", passed, message, accuracy)


def check_black_box_not_stronger(white_box_robust: torch.Tensor, black_box_robust: torch.Tensor,
                                 tolerance: float = 0.02) -> SanityFinding:
    """Black-box (Square) should not fool samples that white-box attacks could not.

    Parameters
    ----------
    white_box_robust, black_box_robust : Tensor (N,) bool, robust after each attack.
    """
    extra = float((white_box_robust & ~black_box_robust).float().mean())
    passed = extra <= tolerance
    message = ("the black-box attack finds nothing the white-box attacks missed" if passed else
               f"the black-box Square attack fooled {extra:.1%} of the images on which the white-box (gradient) "
               f"attacks failed; gradients should guide an attack better than random search, so {OVERESTIMATE} "
               "the gradients are misleading (gradient masking). Trust the worst case over all attacks.")
    return SanityFinding("black_box_not_stronger", passed, message, extra)


def check_more_iterations(accuracy_few: float, accuracy_many: float, tolerance: float = 0.01,
                          what: str = "steps") -> SanityFinding:
    """More steps or restarts must not raise robust accuracy (beyond ``tolerance``)."""
    rise = accuracy_many - accuracy_few
    passed = rise <= tolerance
    message = (f"more {what} do not weaken the attack ({accuracy_few:.1%} -> {accuracy_many:.1%})" if passed else
               f"with more {what} robust accuracy rises from {accuracy_few:.1%} to {accuracy_many:.1%}; more "
               f"{what} can only help a working attack, so {OVERESTIMATE} the attack is unstable (randomised "
               "model or noisy gradients: use the 'rand' version of AutoAttack with EOT).")
    return SanityFinding(f"more_{what}", passed, message, rise)


def run_sanity_checks(classifier: Classifier, x: torch.Tensor, y: torch.Tensor, epsilon: float,
                      norm: str = "Linf", *, curve: dict[str, Any] | None = None,
                      white_box_robust: torch.Tensor | None = None, large_epsilon: float | None = None,
                      n_queries: int = 1000, seed: int = 0) -> list[SanityFinding]:
    """Run every check on ``(x, y)`` with cheap attacks; pass results you already have to reuse them.

    Parameters
    ----------
    curve : output of :func:`~mlsafety.robustness.attacks.evaluation.accuracy_vs_epsilon`.
    white_box_robust : (N,) robust flags of your white-box evaluation at ``epsilon``
        (APGD-CE with 20 steps is run otherwise).
    large_epsilon : the "reach any image" radius (0.5 for Linf, ``sqrt(D) / 2`` for L2 by default).
    n_queries : Square queries for the black-box comparison.
    """
    from mlsafety.robustness.attacks.apgd import APGD
    from mlsafety.robustness.attacks.evaluation import evaluate_attack
    from mlsafety.robustness.attacks.square import Square

    x = check_images(x)
    y = check_labels(y, x.shape[0], classifier.n_classes).to(x.device)
    findings = [check_outputs_are_logits(classifier, x), check_gradients(classifier, x, y)]
    if curve is not None and len(curve["epsilons"]) > 1:
        findings.append(check_monotone_in_epsilon(curve["epsilons"], curve["robust_accuracy"]))
    big = large_epsilon if large_epsilon is not None else (0.5 if norm == "Linf" else 0.5 * x[0].numel() ** 0.5)
    large = evaluate_attack(APGD(epsilon=big, norm=norm, n_steps=20, seed=seed), x, y, classifier)
    findings.append(check_large_epsilon(large.robust_accuracy, big))
    few = evaluate_attack(APGD(epsilon=epsilon, norm=norm, n_steps=10, seed=seed), x, y, classifier)
    many = evaluate_attack(APGD(epsilon=epsilon, norm=norm, n_steps=40, seed=seed), x, y, classifier)
    findings.append(check_more_iterations(few.robust_accuracy, many.robust_accuracy))
    if white_box_robust is None:
        white_box_robust = many.robust
    black = evaluate_attack(Square(epsilon=epsilon, norm=norm, n_queries=n_queries, seed=seed), x, y, classifier)
    findings.append(check_black_box_not_stronger(white_box_robust.to(x.device), black.robust))
    return findings
