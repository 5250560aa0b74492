"""Adversarial attacks (one file each), AutoAttack, evaluation and gradient-masking sanity checks.

Every attack is a :class:`~mlsafety.base.Perturbation` registered in
:data:`mlsafety.registry.ATTACKS`: ``attack(x, y, classifier) -> x_adv``, batched, seeded,
Linf or L2, acting in pixel space on images in [0, 1].

>>> from mlsafety.robustness.attacks import AutoAttack
>>> result = AutoAttack(epsilon=0.1).evaluate(images, labels, classifier)
"""

from mlsafety.robustness.attacks.apgd import APGD, APGDT
from mlsafety.robustness.attacks.autoattack import AutoAttack, AutoAttackResult
from mlsafety.robustness.attacks.cw import CW
from mlsafety.robustness.attacks.evaluation import (
    RobustnessResult,
    accuracy_vs_epsilon,
    attack_success_rate,
    clean_accuracy,
    evaluate_attack,
    minimal_perturbation,
    robust_accuracy,
)
from mlsafety.robustness.attacks.fab import FAB
from mlsafety.robustness.attacks.fgsm import FGSM
from mlsafety.robustness.attacks.pgd import PGD
from mlsafety.robustness.attacks.sanity import SanityFinding, run_sanity_checks
from mlsafety.robustness.attacks.square import Square

__all__ = [
    "APGD",
    "APGDT",
    "CW",
    "FAB",
    "FGSM",
    "PGD",
    "AutoAttack",
    "AutoAttackResult",
    "RobustnessResult",
    "SanityFinding",
    "Square",
    "accuracy_vs_epsilon",
    "attack_success_rate",
    "clean_accuracy",
    "evaluate_attack",
    "minimal_perturbation",
    "robust_accuracy",
    "run_sanity_checks",
]
