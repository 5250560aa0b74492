"""Projected gradient descent (PGD) with random start and restarts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mlsafety._validation import check_in, check_positive
from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks._common import (
    Attack,
    Forward,
    cross_entropy,
    input_gradient,
    linf_box,
    make_forward,
    margin,
    project,
    random_in_ball,
    steepest_direction,
)

if TYPE_CHECKING:
    from mlsafety.models.classifier import Classifier

LOSSES = ("ce", "margin")


def attack_loss(name: str, targeted: bool):
    """The per-sample objective the attacker *maximises* for ``name`` in {"ce", "margin"}."""
    if name == "ce":
        return (lambda z, t: -cross_entropy(z, t)) if targeted else cross_entropy
    return margin if targeted else (lambda z, y: -margin(z, y))


def is_success(logits: torch.Tensor, y: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Per-sample success: the target class is predicted (targeted) or the label is not (untargeted)."""
    prediction = logits.argmax(1)
    return prediction == y if targeted else prediction != y


def pgd(forward: Forward, x: torch.Tensor, y: torch.Tensor, *, epsilon: float, norm: str, n_steps: int,
        step_size: float, n_restarts: int = 1, random_start: bool = True, loss: str = "ce",
        targeted: bool = False, early_stop: bool = True, generator: torch.Generator | None = None,
        done: torch.Tensor | None = None) -> torch.Tensor:
    """Batched PGD on tensors already on the model's device; the functional core of :class:`PGD`.

    With ``early_stop`` each sample leaves the batch at its first successful iterate (which is
    returned); samples never fooled return the last iterate of the last restart. Without it
    every sample returns its last iterate (as adversarial training expects). ``done`` marks
    samples to leave untouched (e.g. already misclassified).
    """
    objective = attack_loss(loss, targeted)
    result = x.clone()
    fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device) if done is None else done.clone()
    for restart in range(n_restarts):
        ids = (~fooled).nonzero().squeeze(1)
        if ids.numel() == 0:
            break
        origin, labels = (x, y) if ids.numel() == x.shape[0] else (x[ids], y[ids])
        # Linf: the ball and the image box as per-pixel bounds, so a step is three passes
        # (sign, add, clamp) over the batch, all in place
        bounds = linf_box(origin, epsilon) if norm == "Linf" else None
        current = random_in_ball(origin, epsilon, norm, generator) if random_start else origin.clone()
        # the final iterate needs a forward pass only if a later restart must know who was fooled
        last = restart == n_restarts - 1 or not early_stop
        for step in range(n_steps + 1):
            if step < n_steps:
                logits, _, grad = input_gradient(forward, current, lambda z, t=labels: objective(z, t))
            elif last:
                break
            else:
                with torch.no_grad():
                    logits = forward(current)
            success = is_success(logits, labels, targeted)
            keep = None
            if early_stop and bool(success.any()):
                result[ids[success]] = current[success]
                fooled[ids[success]] = True
                keep = ~success
                ids, labels = ids[keep], labels[keep]
                if bounds is None:
                    origin, current, grad = origin[keep], current[keep], grad[keep]
            if step == n_steps or ids.numel() == 0:
                if keep is not None and bounds is not None:
                    current = current[keep]
                break
            if bounds is not None:
                # the step is elementwise: taken on the whole batch, then the samples that left
                # are dropped (one copy of the batch fewer than dropping them from the gradient)
                current = torch.clamp(current.add_(grad.sign_(), alpha=step_size), *bounds, out=current)
                if keep is not None:
                    current, bounds = current[keep], (bounds[0][keep], bounds[1][keep])
            else:
                current = project(current + step_size * steepest_direction(grad, norm), origin, epsilon, norm)
        if ids.numel():
            result[ids] = current
        if not early_stop:
            break
    return result


@ATTACKS.register("pgd", threat_models=("Linf", "L2"), black_box=False)
class PGD(Attack):
    """Projected gradient descent with random start and restarts.

    Madry, Makelov, Schmidt, Tsipras & Vladu (2018), "Towards Deep Learning Models Resistant
    to Adversarial Attacks". From a random point of the ball ``B(x, epsilon)`` it iterates

    .. math:: x^{t+1} = \\Pi_{B(x, \\epsilon) \\cap [0,1]^d}\\big(x^t + \\alpha\\,
              \\mathrm{dir}(\\nabla_x L(f(x^t), y))\\big)

    with ``dir = sign`` (Linf) or ``g / ||g||_2`` (L2). Each sample stops at its first
    successful iterate; samples the model already misclassifies are returned unchanged.

    Parameters
    ----------
    epsilon : radius of the threat model (pixels in [0, 1]); default 8/255.
    norm : "Linf" or "L2".
    n_steps : gradient steps per restart.
    step_size : step alpha; default ``2.5 * epsilon / n_steps`` (Madry et al.).
    n_restarts : random restarts; later restarts attack only samples still robust.
    random_start : start from a random point of the ball (else from ``x``).
    loss : "ce" (cross-entropy) or "margin" (Carlini-Wagner logit margin).
    targeted : if True, ``y`` holds target classes and the attack pulls towards them.
    precision : "fp32", or "bf16" (autocast and channels_last inputs; the result is checked
        in fp32 by the evaluation functions).
    seed : seed of the random start.

    Examples
    --------
    >>> x_adv = PGD(epsilon=0.1, n_steps=20)(images, labels, classifier)
    """

    def __init__(self, epsilon: float = 8 / 255, norm: str = "Linf", n_steps: int = 10,
                 step_size: float | None = None, n_restarts: int = 1, random_start: bool = True,
                 loss: str = "ce", targeted: bool = False, precision: str = "fp32", seed: int | None = 0) -> None:
        self.epsilon = epsilon
        self.norm = norm
        self.n_steps = n_steps
        self.step_size = step_size
        self.n_restarts = n_restarts
        self.random_start = random_start
        self.loss = loss
        self.targeted = targeted
        self.precision = precision
        self.seed = seed

    def _check_params(self) -> None:
        self._check_common()
        check_in(self.loss, LOSSES, "loss", type(self).__name__)
        if self.step_size is not None:
            check_positive(self.step_size, "step_size", type(self).__name__)

    def _attack_batch(self, classifier: Classifier, x: torch.Tensor, y: torch.Tensor,
                      generator: torch.Generator) -> torch.Tensor:
        forward = make_forward(classifier, self.precision)
        step = self.step_size if self.step_size is not None else 2.5 * self.epsilon / self.n_steps
        if self._start_unfooled():
            done = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        else:
            with torch.no_grad():
                done = is_success(forward(x), y, self.targeted)
        return pgd(forward, x, y, epsilon=self.epsilon, norm=self.norm, n_steps=self.n_steps, step_size=step,
                   n_restarts=self.n_restarts, random_start=self.random_start, loss=self.loss,
                   targeted=self.targeted, generator=generator, done=done)
