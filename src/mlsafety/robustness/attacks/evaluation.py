"""Robustness evaluation: clean and robust accuracy, attack success rate, accuracy-vs-epsilon
curves and per-sample minimal perturbations.

Every figure is computed in fp32 from the returned adversarial examples (``classifier.predict``),
after checking that they lie in [0, 1] and inside the threat model, so an attack run in bf16,
or a buggy attack, cannot inflate the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from mlsafety._validation import check_images, check_in, check_labels
from mlsafety.exceptions import InvalidInputError, parameter_error
from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks._common import NORMS, Attack, lp_norm, make_forward
from mlsafety.robustness.attacks.fab import fab

if TYPE_CHECKING:
    from mlsafety.models.classifier import Classifier


@dataclass
class RobustnessResult:
    """Outcome of one attack at one radius.

    Attributes
    ----------
    clean_correct, robust : Tensor (N,) bool; robust = correct on the adversarial example.
    adversarial : Tensor (N, C, H, W).
    perturbation_norm : Tensor (N,) norm of ``adversarial - x`` in the attack's norm.
    """

    clean_correct: torch.Tensor
    robust: torch.Tensor
    adversarial: torch.Tensor
    perturbation_norm: torch.Tensor

    @property
    def clean_accuracy(self) -> float:
        return float(self.clean_correct.float().mean())

    @property
    def robust_accuracy(self) -> float:
        return float(self.robust.float().mean())

    @property
    def success_rate(self) -> float:
        """Fraction of the correctly classified samples that the attack fooled."""
        n_correct = int(self.clean_correct.sum())
        if n_correct == 0:
            return float("nan")
        return float((self.clean_correct & ~self.robust).sum()) / n_correct


def clean_accuracy(classifier: Classifier, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy on unperturbed images."""
    y = check_labels(y, check_images(x).shape[0], classifier.n_classes)
    return float((classifier.predict(x).cpu() == y.cpu()).float().mean())


def _make_attack(attack: Attack | str, **kwargs: Any) -> Attack:
    if isinstance(attack, str):
        return ATTACKS.create(attack, **kwargs)
    if kwargs:
        params = attack.get_params()
        params.update(kwargs)
        return type(attack)(**params)
    return attack


def evaluate_attack(attack: Attack | str, x: torch.Tensor, y: torch.Tensor, classifier: Classifier,
                    **attack_kwargs: Any) -> RobustnessResult:
    """Run ``attack`` (an instance or a registry name with keyword arguments) and score it in fp32.

    Raises
    ------
    InvalidInputError
        If the attack returns images outside [0, 1] or outside its epsilon-ball.
    """
    attack = _make_attack(attack, **attack_kwargs)
    x = check_images(x)
    y = check_labels(y, x.shape[0], classifier.n_classes).to(x.device)
    if getattr(attack, "targeted", False) and not hasattr(attack, "n_target_classes"):
        raise InvalidInputError("evaluate_attack measures untargeted robustness; use targeted=False.")
    adversarial = attack(x, y, classifier)
    size = lp_norm(adversarial - x, attack.norm)
    epsilon = getattr(attack, "epsilon", None)
    if float(adversarial.min()) < -1e-6 or float(adversarial.max()) > 1 + 1e-6:
        raise InvalidInputError(f"{type(attack).__name__} returned images outside [0, 1]; this is a bug.")
    if epsilon is not None and bool((size > epsilon * (1 + 1e-4) + 1e-6).any()):
        raise InvalidInputError(
            f"{type(attack).__name__} returned perturbations larger than epsilon={epsilon} "
            f"(max {float(size.max()):.4g}); this is a bug in the attack."
        )
    clean = classifier.predict(x).to(x.device) == y
    robust = clean & (classifier.predict(adversarial).to(x.device) == y)
    return RobustnessResult(clean, robust, adversarial, size)


def robust_accuracy(attack: Attack | str, x: torch.Tensor, y: torch.Tensor, classifier: Classifier,
                    **attack_kwargs: Any) -> float:
    """Fraction of samples correctly classified *and* not fooled by ``attack``."""
    return evaluate_attack(attack, x, y, classifier, **attack_kwargs).robust_accuracy


def attack_success_rate(attack: Attack | str, x: torch.Tensor, y: torch.Tensor, classifier: Classifier,
                        **attack_kwargs: Any) -> float:
    """Fraction of the correctly classified samples that ``attack`` fools."""
    return evaluate_attack(attack, x, y, classifier, **attack_kwargs).success_rate


def accuracy_vs_epsilon(classifier: Classifier, x: torch.Tensor, y: torch.Tensor, epsilons: Sequence[float],
                        attack: Attack | str = "apgd", **attack_kwargs: Any) -> dict[str, Any]:
    """Robust accuracy of ``attack`` at each radius in ``epsilons``.

    Returns
    -------
    dict with ``epsilons`` (list), ``robust_accuracy`` (list), ``robust`` (Tensor (E, N) bool)
    and ``first_broken_epsilon`` (Tensor (N,): the smallest radius of the grid at which the
    sample was fooled; 0 if misclassified clean, inf if never) -- a grid estimate of each
    sample's minimal perturbation.
    """
    if not epsilons or any(e <= 0 for e in epsilons):
        raise parameter_error("epsilons", "accuracy_vs_epsilon", "a non-empty list of positive radii", epsilons)
    epsilons = sorted(float(e) for e in epsilons)
    flags = []
    clean = None
    for epsilon in epsilons:
        result = evaluate_attack(attack, x, y, classifier, epsilon=epsilon, **attack_kwargs)
        clean = result.clean_correct
        flags.append(result.robust)
    robust = torch.stack(flags)
    first = torch.full((x.shape[0],), float("inf"))
    for epsilon, row in zip(reversed(epsilons), reversed(list(robust))):
        first = torch.where(~row.cpu(), torch.tensor(epsilon), first)
    first = torch.where(clean.cpu(), first, torch.tensor(0.0))
    return {"epsilons": epsilons, "robust_accuracy": robust.float().mean(1).tolist(), "robust": robust,
            "first_broken_epsilon": first}


def minimal_perturbation(classifier: Classifier, x: torch.Tensor, y: torch.Tensor, norm: str = "Linf",
                         n_steps: int = 100, targeted: bool = False, n_target_classes: int = 9) -> torch.Tensor:
    """Per-sample norm of the smallest adversarial perturbation found by FAB (an upper bound).

    Uses the unbounded FAB attack (Croce & Hein 2020) in fp32: untargeted by default (one
    gradient per class and step), or FAB-T over ``n_target_classes`` targets.

    Returns
    -------
    Tensor (N,): 0 for samples misclassified without attack, ``inf`` where none was found.
    """
    check_in(norm, NORMS, "norm", "minimal_perturbation")
    x = check_images(x)
    y = check_labels(y, x.shape[0], classifier.n_classes)
    from mlsafety.robustness.attacks.apgd import target_classes

    out = torch.zeros(x.shape[0])
    with classifier.evaluating():
        forward = make_forward(classifier)
        device = classifier.device
        for start in range(0, x.shape[0], classifier.batch_size):
            xb = x[start:start + classifier.batch_size].to(device)
            yb = y[start:start + classifier.batch_size].to(device)
            with torch.no_grad():
                logits = forward(xb)
            correct = logits.argmax(1) == yb
            best = torch.where(correct, float("inf"), 0.0)
            ids = correct.nonzero().squeeze(1)
            targets = target_classes(logits, n_target_classes) if targeted else [None]
            for target in targets:
                if ids.numel() == 0:
                    break
                _, size = fab(forward, xb[ids], yb[ids], norm=norm, n_steps=n_steps,
                              target=None if target is None else target[ids])
                best[ids] = torch.minimum(best[ids], size)
            out[start:start + xb.shape[0]] = best.cpu()
    return out
