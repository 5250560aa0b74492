"""The Carlini-Wagner L2 attack."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mlsafety._validation import check_positive
from mlsafety.exceptions import parameter_error
from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks._common import Attack, _view, make_forward, project

if TYPE_CHECKING:
    from mlsafety.models.classifier import Classifier


@ATTACKS.register("cw", threat_models=("L2",), black_box=False)
class CW(Attack):
    """Carlini-Wagner L2: minimal L2 perturbation by Adam in tanh space with a binary search on c.

    Carlini & Wagner (2017), "Towards Evaluating the Robustness of Neural Networks" (IEEE S&P).
    With ``x' = (tanh(w) + 1) / 2`` (so the box constraint holds by construction) it minimises

    .. math:: \\|x' - x\\|_2^2 + c \\cdot \\max\\big(z_y(x') - \\max_{j \\ne y} z_j(x'), -\\kappa\\big)

    (targeted: ``max_{j != t} z_j - z_t``) with Adam, and adjusts ``c`` per sample by binary
    search: halve towards the lower bound after a success, otherwise multiply by 10 until a
    success bounds it. The smallest adversarial example found is returned; samples never
    fooled (and samples misclassified from the start) are returned unchanged. With
    ``epsilon`` set the result is projected onto the L2 ball of that radius.

    Parameters
    ----------
    epsilon : optional L2 radius of the output (None: unbounded, the minimal-norm attack).
    norm : must be "L2".
    confidence : the margin kappa required of an adversarial example.
    initial_const : the starting trade-off constant c.
    n_steps : Adam steps per binary-search step.
    step_size : Adam learning rate.
    binary_search_steps : search steps over c.
    targeted : if True, ``y`` holds target classes.
    seed : unused (deterministic); kept for the common interface.
    """

    _epsilon_optional = True

    def __init__(self, epsilon: float | None = None, norm: str = "L2", confidence: float = 0.0,
                 initial_const: float = 1.0, n_steps: int = 100, step_size: float = 0.01,
                 binary_search_steps: int = 5, targeted: bool = False, seed: int | None = 0) -> None:
        self.epsilon = epsilon
        self.norm = norm
        self.confidence = confidence
        self.initial_const = initial_const
        self.n_steps = n_steps
        self.step_size = step_size
        self.binary_search_steps = binary_search_steps
        self.targeted = targeted
        self.seed = seed

    def _check_params(self) -> None:
        owner = type(self).__name__
        if self.norm != "L2":
            raise parameter_error("norm", owner, "'L2' (CW is an L2 attack)", self.norm,
                                  "Use APGD or PGD for norm='Linf'.")
        self._check_common()
        check_positive(self.confidence, "confidence", owner, allow_zero=True)
        check_positive(self.initial_const, "initial_const", owner)
        check_positive(self.step_size, "step_size", owner)
        check_positive(self.binary_search_steps, "binary_search_steps", owner, integer=True)

    def _objective(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        own = logits.gather(1, y[:, None]).squeeze(1)
        others = logits.scatter(1, y[:, None], float("-inf")).amax(1)
        gap = others - own if self.targeted else own - others
        return gap.clamp_min(-self.confidence)

    def _attack_batch(self, classifier: Classifier, x: torch.Tensor, y: torch.Tensor,
                      generator: torch.Generator) -> torch.Tensor:
        forward = make_forward(classifier)
        n = x.shape[0]
        with torch.no_grad():
            prediction = forward(x).argmax(1)
        done = prediction == y if self.targeted else prediction != y
        best = x.clone()
        best_distance = torch.full((n,), float("inf"), device=x.device)
        const = torch.full((n,), float(self.initial_const), device=x.device)
        lower = torch.zeros(n, device=x.device)
        upper = torch.full((n,), 1e10, device=x.device)
        w_start = torch.atanh((2 * x - 1).clamp(-1 + 1e-6, 1 - 1e-6))
        active = ~done
        for _ in range(self.binary_search_steps):
            if not bool(active.any()):
                break
            w = w_start.clone().requires_grad_(True)
            optimizer = torch.optim.Adam([w], lr=self.step_size)
            succeeded = torch.zeros(n, dtype=torch.bool, device=x.device)
            for _ in range(self.n_steps):
                with torch.enable_grad():
                    adversarial = (torch.tanh(w) + 1) / 2
                    logits = forward(adversarial)
                    distance = (adversarial - x).flatten(1).pow(2).sum(1)
                    gap = self._objective(logits, y)
                    loss = ((distance + const * gap) * active).sum()
                    (grad,) = torch.autograd.grad(loss, w)
                w.grad = grad
                optimizer.step()
                with torch.no_grad():
                    fooled = (gap <= -self.confidence) if self.confidence > 0 else (
                        (logits.argmax(1) == y) if self.targeted else (logits.argmax(1) != y))
                    fooled &= active
                    better = fooled & (distance < best_distance)
                    best = torch.where(_view(better, x), adversarial.detach(), best)
                    best_distance = torch.where(better, distance, best_distance)
                    succeeded |= fooled
            with torch.no_grad():
                upper = torch.where(succeeded, torch.minimum(upper, const), upper)
                lower = torch.where(succeeded, lower, torch.maximum(lower, const))
                const = torch.where(upper < 1e9, (lower + upper) / 2, const * 10)
        if self.epsilon is not None:
            best = project(best, x, float(self.epsilon), "L2")
        return best.detach()
