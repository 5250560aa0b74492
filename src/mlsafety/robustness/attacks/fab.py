"""The Fast Adaptive Boundary attack (FAB), untargeted and targeted (FAB-T)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mlsafety._validation import check_positive
from mlsafety.exceptions import parameter_error
from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks._common import Attack, Forward, _view, lp_norm, make_forward
from mlsafety.robustness.attacks.apgd import target_classes

if TYPE_CHECKING:
    from mlsafety.models.classifier import Classifier


def project_onto_hyperplane_box(points: torch.Tensor, w: torch.Tensor, c: torch.Tensor, norm: str) -> torch.Tensor:
    """Minimal-norm step ``d`` with ``w . d = c`` and ``0 <= points + d <= 1``, batched and exact.

    Solves ``min ||d||_p s.t. w^T d = c, d in [-points, 1 - points]`` for p = inf or 2 (the
    projection step of FAB). Moving in the favourable direction ``sign(w_i c)`` each coordinate
    has room ``r_i``; the reachable value of ``w . d`` at budget t is the concave piecewise
    linear ``h(t) = sum_i |w_i| min(t, r_i)`` (Linf) or ``sum_i |w_i| min(t |w_i|, r_i)``
    (L2, KKT: ``d_i = clip(lambda w_i)``). Sorting the breakpoints gives the smallest t with
    ``h(t) = |c|`` in closed form. When the hyperplane cannot be reached inside the box the
    step goes as far as the box allows.

    Parameters
    ----------
    points, w : Tensor (N, D); c : Tensor (N,).

    Returns
    -------
    Tensor (N, D)
    """
    sign_c = torch.sign(c)[:, None]
    direction = torch.sign(w) * sign_c
    room = torch.where(direction > 0, 1.0 - points, points).clamp_min(0.0)
    a = w.abs() * (direction != 0)
    target = c.abs()
    if norm == "Linf":
        breakpoints, slope = room, a
    else:
        breakpoints = torch.where(a > 0, room / a.clamp_min(1e-30), torch.full_like(room, 1e30))
        slope = a * a
    saturated = a * room
    breakpoints, order = breakpoints.sort(1)
    saturated, slope = saturated.gather(1, order), slope.gather(1, order)
    before = saturated.cumsum(1) - saturated
    after = slope.flip(1).cumsum(1).flip(1)
    reachable = before + breakpoints * after
    reached = reachable >= target[:, None]
    feasible = reached.any(1)
    k = reached.float().argmax(1, keepdim=True)
    t = (target[:, None] - before.gather(1, k)) / after.gather(1, k).clamp_min(1e-30)
    t = torch.where(feasible[:, None], t, torch.full_like(t, 1e30))
    magnitude = torch.minimum(t, room) if norm == "Linf" else torch.minimum(t * a, room)
    return direction * magnitude


def _difference_and_gradient(forward: Forward, x: torch.Tensor, y: torch.Tensor,
                             target: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logit differences ``z_j - z_y`` (N, J) and their input gradients (N, J, D).

    Targeted: J = 1 (the target); untargeted: all classes, with ``j = y`` masked by the caller.
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = forward(x)
        true = logits.gather(1, y[:, None])
        difference = logits.gather(1, target[:, None]) - true if target is not None else logits - true
        grads = []
        for j in range(difference.shape[1]):
            (g,) = torch.autograd.grad(difference[:, j].sum(), x, retain_graph=j + 1 < difference.shape[1],
                                       allow_unused=True)
            grads.append(torch.zeros_like(x) if g is None else g)
    return difference.detach(), torch.stack(grads, 1).flatten(2).detach()


def fab(forward: Forward, x: torch.Tensor, y: torch.Tensor, *, norm: str, n_steps: int,
        target: torch.Tensor | None = None, epsilon: float | None = None, random_start: bool = False,
        alpha_max: float = 0.1, eta: float = 1.05, beta: float = 0.9,
        generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One run of FAB on a batch of correctly classified points.

    Returns the smallest adversarial examples found (``x`` where none) and their norms
    (``inf`` where none). With ``epsilon`` a sample stops once it has an adversarial example
    within ``epsilon`` (per-sample early exit).
    """
    n = x.shape[0]
    best = x.clone()
    best_norm = torch.full((n,), float("inf"), device=x.device)
    rows = torch.arange(n, device=x.device)
    origin, labels = x.flatten(1), y
    goal = target
    current = x.clone()
    if random_start:
        if norm == "Linf":
            noise = 2 * torch.rand(x.shape, generator=generator, device=x.device) - 1
        else:
            noise = torch.randn(x.shape, generator=generator, device=x.device)
        radius = 0.5 * (epsilon if epsilon is not None else 0.1)
        current = (x + radius * noise / _view(lp_norm(noise, norm), x)).clamp(0.0, 1.0)
    shape = x.shape[1:]
    for _ in range(n_steps):
        if rows.numel() == 0:
            break
        difference, gradient = _difference_and_gradient(forward, current, labels, goal)
        flat = current.flatten(1)
        if goal is None:
            dual = gradient.abs().sum(2) if norm == "Linf" else gradient.norm(dim=2)
            distance = difference.abs() / (dual + 1e-12)
            distance.scatter_(1, labels[:, None], float("inf"))
            j = distance.argmin(1)
        else:
            j = torch.zeros_like(labels)
        w = gradient[torch.arange(rows.numel(), device=x.device), j]
        df = difference.gather(1, j[:, None]).squeeze(1)
        # linearised boundary: df + w . (z - current) = 0
        steps = project_onto_hyperplane_box(torch.cat([flat, origin]), torch.cat([w, w]),
                                            torch.cat([-df, -df + (w * (flat - origin)).sum(1)]), norm)
        d_current, d_origin = steps[: rows.numel()], steps[rows.numel():]
        size_current = lp_norm(d_current, norm).clamp_min(1e-8)
        size_origin = lp_norm(d_origin, norm).clamp_min(1e-8)
        alpha = (size_current / (size_current + size_origin)).clamp(0.0, alpha_max)[:, None]
        flat = ((flat + eta * d_current) * (1 - alpha) + (origin + eta * d_origin) * alpha).clamp(0.0, 1.0)
        current = flat.view(-1, *shape)
        with torch.no_grad():
            adversarial = forward(current).argmax(1) != labels
        if bool(adversarial.any()):
            size = lp_norm(flat - origin, norm)
            better = adversarial & (size < best_norm[rows])
            best[rows[better]] = current[better]
            best_norm[rows[better]] = size[better]
            flat = torch.where(adversarial[:, None], origin + (flat - origin) * beta, flat)
            current = flat.view(-1, *shape)
        if epsilon is not None:
            keep = best_norm[rows] > epsilon
            if not bool(keep.all()):
                rows, origin, labels, current = rows[keep], origin[keep], labels[keep], current[keep]
                goal = goal[keep] if goal is not None else None
    return best, best_norm


@ATTACKS.register("fab", threat_models=("Linf", "L2"), black_box=False)
class FAB(Attack):
    """Fast Adaptive Boundary attack: a minimal-norm attack that walks along linearised boundaries.

    Croce & Hein (2020), "Minimally distorted adversarial examples with a fast adaptive
    boundary attack" (ICML). At the iterate ``x^k`` the decision boundary between the true
    class and class ``j`` (the closest, or the target in FAB-T) is linearised,
    ``f_j(x^k) + w^T (z - x^k) = 0``; both ``x^k`` and the original ``x`` are projected onto it
    inside [0, 1] (steps ``d^k``, ``d^0``) and combined with a bias towards ``x``:

    .. math:: x^{k+1} = P_{[0,1]}\\big((1-\\alpha)(x^k + \\eta d^k) + \\alpha (x + \\eta d^0)\\big),
              \\quad \\alpha = \\min\\Big(\\frac{\\|d^k\\|}{\\|d^k\\| + \\|d^0\\|}, \\alpha_{max}\\Big)

    On success it steps back towards ``x`` by ``beta``. The targeted version (``targeted=True``,
    as in AutoAttack's FAB-T) runs against each of the ``n_target_classes`` classes with the
    largest clean logits and needs one gradient per step; the untargeted one needs the
    gradients of all logits. Success is misclassification in both cases; ``y`` holds the true
    labels. The output keeps only adversarial examples within ``epsilon`` (``x`` otherwise);
    with ``epsilon=None`` it returns the smallest adversarial example found (see
    :func:`mlsafety.robustness.attacks.evaluation.minimal_perturbation`).

    Parameters
    ----------
    epsilon : radius of the threat model, or None for unbounded (minimal-norm) use.
    norm : "Linf" or "L2".
    n_steps : iterations per run (100 in AutoAttack).
    n_restarts : runs per target; runs after the first start from random points.
    targeted : FAB-T (default True, as in AutoAttack) or untargeted FAB.
    n_target_classes : targets of FAB-T (capped at ``n_classes - 1``).
    alpha_max, eta, beta : the paper's bias bound, overshoot and backward step.
    seed : seed of the random restarts.
    """

    _epsilon_optional = True

    def __init__(self, epsilon: float | None = 8 / 255, norm: str = "Linf", n_steps: int = 100,
                 n_restarts: int = 1, targeted: bool = True, n_target_classes: int = 9, alpha_max: float = 0.1,
                 eta: float = 1.05, beta: float = 0.9, seed: int | None = 0) -> None:
        self.epsilon = epsilon
        self.norm = norm
        self.n_steps = n_steps
        self.n_restarts = n_restarts
        self.targeted = targeted
        self.n_target_classes = n_target_classes
        self.alpha_max = alpha_max
        self.eta = eta
        self.beta = beta
        self.seed = seed

    def _check_params(self) -> None:
        owner = type(self).__name__
        self._check_common()
        check_positive(self.n_target_classes, "n_target_classes", owner, integer=True)
        if not 0 <= self.alpha_max <= 1:
            raise parameter_error("alpha_max", owner, "in [0, 1]", self.alpha_max)
        check_positive(self.eta, "eta", owner)
        if not 0 < self.beta < 1:
            raise parameter_error("beta", owner, "in (0, 1)", self.beta)

    def _y_holds_targets(self) -> bool:
        return False  # FAB-T picks its targets itself; y holds the true labels

    def _attack_batch(self, classifier: Classifier, x: torch.Tensor, y: torch.Tensor,
                      generator: torch.Generator) -> torch.Tensor:
        forward = make_forward(classifier)
        with torch.no_grad():
            logits = forward(x)
        fooled = logits.argmax(1) != y
        best = x.clone()
        best_norm = torch.where(fooled, 0.0, float("inf"))
        targets = target_classes(logits, self.n_target_classes) if self.targeted else [None]
        for target in targets:
            for restart in range(self.n_restarts):
                open_ = best_norm > (self.epsilon if self.epsilon is not None else 0.0)
                if self.epsilon is None:
                    open_ = ~fooled
                ids = open_.nonzero().squeeze(1)
                if ids.numel() == 0:
                    break
                adv, size = fab(forward, x[ids], y[ids], norm=self.norm, n_steps=self.n_steps,
                                target=None if target is None else target[ids], epsilon=self.epsilon,
                                random_start=restart > 0, alpha_max=self.alpha_max, eta=self.eta, beta=self.beta,
                                generator=generator)
                better = size < best_norm[ids]
                best[ids[better]] = adv[better]
                best_norm[ids[better]] = size[better]
        if self.epsilon is not None:
            within = best_norm <= self.epsilon * (1 + 1e-6)
            best = torch.where(_view(within, x), best, x)
        return best
