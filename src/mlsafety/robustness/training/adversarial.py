"""Adversarial training objectives for :func:`mlsafety.models.train_classifier`.

Each defence is a small callable ``loss(classifier, x, y) -> scalar`` passed as ``loss_fn``.
The inner attack runs with the model in eval mode (so that batch-norm running statistics see
only the training inputs, and dropout is off), then the model goes back to train mode for the
outer loss, as in the TRADES reference implementation.

Example
-------
>>> from mlsafety.models import train_classifier
>>> from mlsafety.robustness.training.adversarial import PGDAdversarialLoss
>>> train_classifier(classifier, train, epochs=5, loss_fn=PGDAdversarialLoss(epsilon=0.1))
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from mlsafety._validation import check_positive, make_generator
from mlsafety.base import ParamsMixin
from mlsafety.robustness.attacks._common import (
    check_epsilon,
    check_norm,
    check_seed,
    input_gradient,
    make_forward,
    project,
    random_in_ball,
    steepest_direction,
)
from mlsafety.robustness.attacks.pgd import pgd

if TYPE_CHECKING:
    from mlsafety.models.classifier import Classifier


@contextmanager
def _eval_mode(classifier: Classifier) -> Iterator[None]:
    was_training = classifier.module.training
    classifier.module.eval()
    try:
        yield
    finally:
        classifier.module.train(was_training)


class _AdversarialLoss(ParamsMixin):
    def _generator(self, device: torch.device) -> torch.Generator:
        # one stream per loss object, created lazily on the training device
        if getattr(self, "_stream", None) is None or self._stream.device != device:
            self._stream = make_generator(self.seed, device)
        return self._stream

    def _validate(self) -> None:
        owner = type(self).__name__
        check_norm(self.norm, owner)
        check_epsilon(self.epsilon, self.norm, owner)
        check_seed(self.seed, owner)


class PGDAdversarialLoss(_AdversarialLoss):
    """Cross-entropy on PGD adversarial examples (min-max adversarial training).

    Madry, Makelov, Schmidt, Tsipras & Vladu (2018), "Towards Deep Learning Models Resistant
    to Adversarial Attacks":

    .. math:: \\min_\\theta \\mathbb{E}_{(x,y)} \\max_{\\|\\delta\\| \\le \\epsilon}
              L(f_\\theta(x + \\delta), y)

    with the inner maximum approximated by ``n_steps`` of PGD from a random start.

    Parameters
    ----------
    epsilon, norm : the threat model trained against.
    n_steps : PGD steps of the inner maximisation.
    step_size : PGD step; default ``2.5 * epsilon / n_steps``.
    seed : seed of the random starts.
    """

    def __init__(self, epsilon: float = 0.1, norm: str = "Linf", n_steps: int = 10,
                 step_size: float | None = None, seed: int | None = 0) -> None:
        self.epsilon = epsilon
        self.norm = norm
        self.n_steps = n_steps
        self.step_size = step_size
        self.seed = seed

    def __call__(self, classifier: Classifier, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self._validate()
        check_positive(self.n_steps, "n_steps", type(self).__name__, integer=True)
        step = self.step_size if self.step_size is not None else 2.5 * self.epsilon / self.n_steps
        with _eval_mode(classifier):
            x_adv = pgd(make_forward(classifier), x, y, epsilon=self.epsilon, norm=self.norm, n_steps=self.n_steps,
                        step_size=step, early_stop=False, generator=self._generator(x.device))
        return F.cross_entropy(classifier(x_adv.detach()), y)


class TRADESLoss(_AdversarialLoss):
    """TRADES: clean cross-entropy plus ``beta`` times the KL divergence to the adversarial point.

    Zhang, Yu, Jiao, Xing, El Ghaoui & Jordan (2019), "Theoretically Principled Trade-off
    between Robustness and Accuracy":

    .. math:: L = \\mathrm{CE}(f(x), y) + \\beta\\, \\max_{\\|x' - x\\| \\le \\epsilon}
              \\mathrm{KL}\\big(p(x)\\,\\|\\,p(x')\\big)

    The inner maximum starts at ``x + 0.001 N(0, I)`` and takes ``n_steps`` ascent steps on
    the KL term, as in the paper's code.

    Parameters
    ----------
    epsilon, norm : the threat model.
    beta : weight of the robustness term (6 in the paper).
    n_steps, step_size : inner maximisation (default step ``2.5 * epsilon / n_steps``).
    seed : seed of the starting noise.
    """

    def __init__(self, epsilon: float = 0.1, norm: str = "Linf", beta: float = 6.0, n_steps: int = 10,
                 step_size: float | None = None, seed: int | None = 0) -> None:
        self.epsilon = epsilon
        self.norm = norm
        self.beta = beta
        self.n_steps = n_steps
        self.step_size = step_size
        self.seed = seed

    def __call__(self, classifier: Classifier, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self._validate()
        owner = type(self).__name__
        check_positive(self.n_steps, "n_steps", owner, integer=True)
        check_positive(self.beta, "beta", owner, allow_zero=True)
        step = self.step_size if self.step_size is not None else 2.5 * self.epsilon / self.n_steps
        forward = make_forward(classifier)
        generator = self._generator(x.device)
        with _eval_mode(classifier):
            with torch.no_grad():
                clean_log_probs = F.log_softmax(forward(x), 1)
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x_adv = (x + 0.001 * noise).clamp(0, 1)

            def kl(logits: torch.Tensor) -> torch.Tensor:
                return F.kl_div(F.log_softmax(logits, 1), clean_log_probs, reduction="none", log_target=True).sum(1)

            for _ in range(self.n_steps):
                _, _, grad = input_gradient(forward, x_adv, kl)
                x_adv = project(x_adv + step * steepest_direction(grad, self.norm), x, self.epsilon, self.norm)
        logits = classifier(x)
        adversarial_logits = classifier(x_adv.detach())
        robust = F.kl_div(F.log_softmax(adversarial_logits, 1), F.log_softmax(logits, 1), reduction="batchmean",
                          log_target=True)
        return F.cross_entropy(logits, y) + self.beta * robust


class FastFGSMLoss(_AdversarialLoss):
    """"Fast is better than free": FGSM from a uniformly random start (FGSM-RS).

    Wong, Rice & Kolter (2020), "Fast is better than free: Revisiting adversarial training":
    ``delta ~ U(-epsilon, epsilon)``, one signed gradient step of size ``alpha = 1.25 epsilon``,
    projection onto the ball, then cross-entropy at ``x + delta``. About twice the cost of
    standard training; watch for catastrophic overfitting (PGD accuracy collapsing to 0
    while FGSM accuracy rises), which the paper avoids with ``alpha <= 1.25 epsilon``.

    Parameters
    ----------
    epsilon, norm : the threat model.
    step_size : FGSM step; default ``1.25 * epsilon``.
    seed : seed of the random start.
    """

    def __init__(self, epsilon: float = 0.1, norm: str = "Linf", step_size: float | None = None,
                 seed: int | None = 0) -> None:
        self.epsilon = epsilon
        self.norm = norm
        self.step_size = step_size
        self.seed = seed

    def __call__(self, classifier: Classifier, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self._validate()
        step = self.step_size if self.step_size is not None else 1.25 * self.epsilon
        with _eval_mode(classifier):
            start = random_in_ball(x, self.epsilon, self.norm, self._generator(x.device))
            _, _, grad = input_gradient(make_forward(classifier), start,
                                        lambda z: F.cross_entropy(z, y, reduction="none"))
            x_adv = project(start + step * steepest_direction(grad, self.norm), x, self.epsilon, self.norm)
        return F.cross_entropy(classifier(x_adv.detach()), y)


__all__ = ["FastFGSMLoss", "PGDAdversarialLoss", "TRADESLoss"]
