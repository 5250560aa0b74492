"""Evaluation over the unforeseen attacks: accuracy per attack and level, UA2, the worst
attack, and two gradient-masking checks (zero input gradients; optimisation no better than a
random distortion of the same budget)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from mlsafety._validation import check_images, check_labels, check_positive
from mlsafety.exceptions import InvalidParameterError, UnknownMethodError
from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks.sanity import OVERESTIMATE, SanityFinding, check_gradients
from mlsafety.robustness.attacks.unforeseen._base import LEVELS, UA2_CORE

if TYPE_CHECKING:
    from mlsafety.models.classifier import Classifier


def unforeseen_names() -> list[str]:
    """Registered unforeseen attacks, sorted."""
    return ATTACKS.names(family="unforeseen")


def check_attack_names(names: Sequence[str] | None, owner: str = "evaluate_unforeseen") -> list[str]:
    """Validate a list of unforeseen attack names (all of them when None)."""
    known = unforeseen_names()
    if names is None:
        return known
    if isinstance(names, str):
        names = [names]
    for name in names:
        ATTACKS.get(name)  # unknown names: UnknownMethodError with suggestions
        if name not in known:
            raise UnknownMethodError(f"{name!r} is not an unforeseen attack (it is an Lp attack); "
                                     f"choose from {', '.join(known)}.")
    return list(dict.fromkeys(names))


@dataclass
class UnforeseenReport:
    """Accuracy of a model under unforeseen attacks.

    Attributes
    ----------
    clean_accuracy : accuracy on the unperturbed images.
    accuracy : ``{attack: {level: accuracy}}`` under the optimised attacks.
    random_accuracy : ``{attack: accuracy}`` under a random distortion (no optimisation) at the
        medium level (or the first level evaluated), the baseline of the masking check.
    robust : ``{attack: (N,) bool}`` per-sample robustness at that level.
    adversarial : ``{attack: (N, C, H, W)}`` the attacked images at that level.
    findings : gradient-masking sanity checks.
    """

    clean_accuracy: float
    accuracy: dict[str, dict[str, float]]
    random_accuracy: dict[str, float]
    reference_level: str
    robust: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    adversarial: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    findings: list[SanityFinding] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ua2(self) -> float:
        """Mean accuracy over the core attacks of Kaufmann et al. (2023) at the medium level
        (over the attacks evaluated when some core attack is missing; NaN without a medium level)."""
        medium = {name: levels["medium"] for name, levels in self.accuracy.items() if "medium" in levels}
        core = [medium[name] for name in UA2_CORE if name in medium] or list(medium.values())
        return float(sum(core) / len(core)) if core else float("nan")

    @property
    def worst(self) -> tuple[str, float]:
        """(attack, accuracy) of the most damaging attack at the reference level."""
        name = min(self.accuracy, key=lambda n: self.accuracy[n][self.reference_level])
        return name, self.accuracy[name][self.reference_level]

    def to_dict(self) -> dict[str, Any]:
        return {"clean_accuracy": self.clean_accuracy, "accuracy": self.accuracy, "ua2": self.ua2,
                "random_accuracy": self.random_accuracy, "reference_level": self.reference_level,
                "worst": list(self.worst), "findings": [f.to_dict() for f in self.findings],
                "seconds": self.seconds}


def check_optimisation_helps(optimised: dict[str, float], random: dict[str, float], clean: float,
                             tolerance: float = 0.02) -> SanityFinding:
    """The optimised attacks, together, must do better than random distortions of the same budget.

    When the gradient steps gain nothing over the random start on every attack, the gradients
    do not guide the attack (gradient masking) and the accuracies are upper bounds at best.
    """
    gains = {name: random[name] - optimised[name] for name in optimised if name in random}
    best = max(gains.values(), default=0.0)
    drop_left = max(random.values(), default=0.0) > tolerance
    passed = best > tolerance or not drop_left or clean <= tolerance
    message = ("the gradient steps beat random distortions of the same budget" if passed else
               f"optimising the distortions gains at most {best:.1%} accuracy over random distortions of the same "
               f"budget; {OVERESTIMATE} the input gradients do not guide the attacks (gradient masking). Treat the "
               "accuracies as upper bounds; use a differentiable surrogate of the masking layer (BPDA).")
    return SanityFinding("optimisation_beats_random", passed, message, best)


def evaluate_unforeseen(classifier: Classifier, x: torch.Tensor, y: torch.Tensor,
                        attacks: Sequence[str] | None = None, levels: Sequence[str] = LEVELS, *,
                        n_steps: int = 10, seed: int = 0, random_baseline: bool = True,
                        **attack_kwargs: Any) -> UnforeseenReport:
    """Accuracy of ``classifier`` under each unforeseen attack at each level.

    Parameters
    ----------
    attacks : registry names (default: every unforeseen attack).
    levels : subset of ("low", "medium", "high").
    n_steps : signed-gradient steps of every attack.
    random_baseline : also run each attack with 0 steps at the reference level (medium if
        evaluated) for the gradient-masking check.

    Returns
    -------
    UnforeseenReport
    """
    names = check_attack_names(attacks)
    levels = list(dict.fromkeys([levels] if isinstance(levels, str) else levels))
    if not levels or any(level not in LEVELS for level in levels):
        raise InvalidParameterError(f"`levels` of evaluate_unforeseen must be a non-empty subset of {LEVELS}; "
                                    f"got {levels!r}.")
    check_positive(n_steps, "n_steps", "evaluate_unforeseen", integer=True, allow_zero=True)
    x = check_images(x)
    y = check_labels(y, x.shape[0], classifier.n_classes).to(x.device)
    reference = "medium" if "medium" in levels else levels[0]
    clean = classifier.predict(x).to(x.device) == y
    accuracy: dict[str, dict[str, float]] = {}
    random_accuracy: dict[str, float] = {}
    robust: dict[str, torch.Tensor] = {}
    adversarial: dict[str, torch.Tensor] = {}
    seconds: dict[str, float] = {}
    for name in names:
        start = time.perf_counter()
        accuracy[name] = {}
        for level in levels:
            attack = ATTACKS.create(name, level=level, n_steps=n_steps, seed=seed, **attack_kwargs)
            images = attack(x, y, classifier)
            flags = clean & (classifier.predict(images).to(x.device) == y)
            accuracy[name][level] = float(flags.float().mean())
            if level == reference:
                robust[name], adversarial[name] = flags, images
        if random_baseline:
            attack = ATTACKS.create(name, level=reference, n_steps=0, seed=seed, **attack_kwargs)
            images = attack(x, y, classifier)
            random_accuracy[name] = float((clean & (classifier.predict(images).to(x.device) == y)).float().mean())
        seconds[name] = time.perf_counter() - start
    clean_accuracy = float(clean.float().mean())
    findings = [check_gradients(classifier, x, y)]
    if random_baseline:
        findings.append(check_optimisation_helps({n: accuracy[n][reference] for n in names}, random_accuracy,
                                                 clean_accuracy))
    return UnforeseenReport(clean_accuracy, accuracy, random_accuracy, reference, robust, adversarial, findings,
                            seconds)
