"""The fast gradient sign method (FGSM) and its L2 analogue (fast gradient method)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks._common import Attack, input_gradient, make_forward, project, steepest_direction
from mlsafety.robustness.attacks.pgd import attack_loss, is_success

if TYPE_CHECKING:
    from mlsafety.models.classifier import Classifier


@ATTACKS.register("fgsm", threat_models=("Linf", "L2"), black_box=False)
class FGSM(Attack):
    """One gradient step to the boundary of the ball.

    Goodfellow, Shlens & Szegedy (2015), "Explaining and Harnessing Adversarial Examples":

    .. math:: x' = \\Pi_{[0,1]^d}\\big(x + \\epsilon\\, \\mathrm{sign}(\\nabla_x L(f(x), y))\\big)

    (``epsilon * g / ||g||_2`` for ``norm='L2'``). A weak attack: use it as a baseline or a
    sanity check, never to claim robustness. Samples already misclassified are unchanged.

    Parameters
    ----------
    epsilon : radius of the threat model; default 8/255.
    norm : "Linf" or "L2".
    targeted : if True, ``y`` holds target classes (the step descends their cross-entropy).
    seed : unused (FGSM is deterministic); kept for the common interface.

    Examples
    --------
    >>> x_adv = FGSM(epsilon=0.1)(images, labels, classifier)
    """

    def __init__(self, epsilon: float = 8 / 255, norm: str = "Linf", targeted: bool = False,
                 seed: int | None = 0) -> None:
        self.epsilon = epsilon
        self.norm = norm
        self.targeted = targeted
        self.seed = seed

    def _attack_batch(self, classifier: Classifier, x: torch.Tensor, y: torch.Tensor,
                      generator: torch.Generator) -> torch.Tensor:
        forward = make_forward(classifier)
        objective = attack_loss("ce", self.targeted)
        logits, _, grad = input_gradient(forward, x, lambda z: objective(z, y))
        adv = project(x + self.epsilon * steepest_direction(grad, self.norm), x, self.epsilon, self.norm)
        done = is_success(logits, y, self.targeted)
        return torch.where(done.view(-1, 1, 1, 1), x, adv)
