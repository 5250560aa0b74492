"""Auto-PGD (APGD-CE, APGD-DLR) and its targeted version APGD-T."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from mlsafety._validation import check_in, check_positive
from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks._common import (
    Attack,
    Forward,
    _view,
    cross_entropy,
    dlr_loss,
    dlr_targeted_loss,
    linf_box,
    make_forward,
    project,
    select_rows,
    targeted_margin_loss,
)

if TYPE_CHECKING:
    from mlsafety.models.classifier import Classifier

LOSSES = ("ce", "dlr")


def checkpoints(n_steps: int) -> list[int]:
    """The iterations at which APGD may halve its step size.

    Croce & Hein (2020), Sec. 3.2: ``w_j = ceil(p_j N)`` with ``p_0 = 0``, ``p_1 = 0.22`` and
    ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``. The intervals between checkpoints
    therefore start at ``0.22 N`` and shrink by ``0.03 N`` down to ``0.06 N``; like the
    authors' code we round the interval lengths down (``int(0.22 N)``, ``int(0.03 N)``,
    ``int(0.06 N)``, each at least 1).
    """
    length = max(int(0.22 * n_steps), 1)
    decrement = max(int(0.03 * n_steps), 1)
    minimum = max(int(0.06 * n_steps), 1)
    points, at = [], 0
    while at + length <= n_steps:
        at += length
        points.append(at)
        length = max(length - decrement, minimum)
    return points


def apgd(forward: Forward, x: torch.Tensor, y: torch.Tensor, loss: Callable[[torch.Tensor], torch.Tensor], *,
         epsilon: float, norm: str, n_steps: int, generator: torch.Generator, rho: float = 0.75,
         eot_iter: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """One run of APGD on a batch; returns (adversarial images, success flags).

    ``loss(logits, rows)`` is the per-sample objective to maximise, where ``rows`` indexes the
    samples still in the batch (so that per-sample targets can be looked up). Samples leave
    the batch at their first misclassified iterate (per-sample early exit); the others
    return their unchanged input ``x``.
    """
    n = x.shape[0]
    device = x.device
    result = x.clone()
    success = torch.zeros(n, dtype=torch.bool, device=device)
    length = max(int(0.22 * n_steps), 1)
    decrement = max(int(0.03 * n_steps), 1)
    minimum = max(int(0.06 * n_steps), 1)

    # random start on the sphere of radius epsilon (then clipped to the image box)
    if norm == "Linf":
        noise = 2 * torch.rand(x.shape, generator=generator, device=device) - 1
        noise = noise / _view(noise.flatten(1).abs().amax(1), x)
    else:
        noise = torch.randn(x.shape, generator=generator, device=device)
        noise = noise / _view(noise.flatten(1).norm(dim=1) + 1e-12, x)
    x_adv = (x + epsilon * noise).clamp(0.0, 1.0)

    def evaluate(points: torch.Tensor, rows: torch.Tensor, need_grad: bool = True,
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        if not need_grad:
            # the last iterate: its gradient would never be used (the same logits without the backward pass)
            with torch.no_grad():
                logits = forward(points)
                return logits, loss(logits, rows), None
        if eot_iter == 1:
            # the gradient itself: no zero tensor to add it to and no division by one
            points_ = points.detach().requires_grad_(True)
            with torch.enable_grad():
                logits = forward(points_)
                values = loss(logits, rows)
                (g,) = torch.autograd.grad(values.sum(), points_, allow_unused=True)
            return logits.detach(), values.detach(), torch.zeros_like(points) if g is None else g.detach()
        grad = torch.zeros_like(points)
        for _ in range(eot_iter):
            points_ = points.detach().requires_grad_(True)
            with torch.enable_grad():
                logits = forward(points_)
                values = loss(logits, rows)
                (g,) = torch.autograd.grad(values.sum(), points_, allow_unused=True)
            if g is not None:
                grad += g.detach()
        return logits.detach(), values.detach(), grad / eot_iter

    rows = torch.arange(n, device=device)
    logits, loss_value, grad = evaluate(x_adv, rows)
    origin, labels = x, y
    # Linf: the ball and the image box as per-pixel bounds (one clamp pass per projection)
    bounds = linf_box(origin, epsilon) if norm == "Linf" else None
    step_size = torch.full((n,), 2.0 * epsilon, device=device)
    # no tensor of the batch is modified in place below, so these may share storage
    x_best, grad_best, loss_best = x_adv, grad, loss_value
    loss_steps = torch.zeros(n_steps, n, device=device)
    loss_best_last_check = loss_best
    reduced_last_check = torch.ones(n, dtype=torch.bool, device=device)
    x_previous = x_adv
    until_check = length
    since_check = 0

    def drop(keep: torch.Tensor) -> None:
        nonlocal rows, origin, labels, x_adv, x_previous, grad, step_size, x_best, grad_best, loss_best
        nonlocal loss_steps, loss_best_last_check, reduced_last_check, bounds
        if bounds is not None:
            bounds = (bounds[0][keep], bounds[1][keep])
        rows, origin, labels, x_adv, x_previous = rows[keep], origin[keep], labels[keep], x_adv[keep], x_previous[keep]
        step_size, x_best, grad_best = step_size[keep], x_best[keep], grad_best[keep]
        grad = grad[keep] if grad is not None else None  # None after the last step
        loss_best, loss_steps = loss_best[keep], loss_steps[:, keep]
        loss_best_last_check, reduced_last_check = loss_best_last_check[keep], reduced_last_check[keep]

    def record(logits: torch.Tensor, points: torch.Tensor) -> None:
        # ``points`` are the images the logits are of (a checkpoint may since have reset x_adv)
        fooled = logits.argmax(1) != labels
        if bool(fooled.any()):
            result[rows[fooled]] = points[fooled]
            success[rows[fooled]] = True
            drop(~fooled)

    record(logits, x_adv)
    for i in range(n_steps):
        if rows.numel() == 0:
            break
        with torch.no_grad():
            momentum = 0.75 if i > 0 else 1.0
            size = _view(step_size, x_adv)
            if bounds is not None:
                # the update below in place, in the same order of operations
                z = torch.addcmul(x_adv, size, grad.sign()).clamp_(*bounds)
                z.sub_(x_adv).mul_(momentum).add_(x_adv)
                if momentum != 1.0:
                    z.add_(x_adv - x_previous, alpha=1 - momentum)
                x_previous, x_adv = x_adv, z.clamp_(*bounds)
            else:
                difference = x_adv - x_previous
                x_previous = x_adv
                z = project(x_adv + size * grad / _view(grad.flatten(1).norm(dim=1) + 1e-12, grad),
                            origin, epsilon, norm)
                x_adv = project(x_adv + momentum * (z - x_adv) + (1 - momentum) * difference, origin, epsilon,
                                norm)
        last = i == n_steps - 1 and eot_iter == 1
        logits, loss_value, grad = evaluate(x_adv, rows, need_grad=not last)
        evaluated = x_adv
        with torch.no_grad():
            loss_steps[i] = loss_value
            improved = loss_value > loss_best
            # the iterate and gradient of the samples that improved (on the CPU without a
            # broadcast where, which costs several passes over the batch)
            x_best = select_rows(improved, x_adv, x_best)
            if not last:
                grad_best = select_rows(improved, grad, grad_best)
            loss_best = torch.where(improved, loss_value, loss_best)
            since_check += 1
            if since_check == until_check:
                # condition 1: the loss increased in at most rho * k of the last k steps
                start = i + 1 - until_check
                # the step before the first compares with the last row (zero until it is written)
                before = loss_steps[start - 1:i] if start > 0 else torch.cat((loss_steps[-1:], loss_steps[:i]))
                increases = (loss_steps[start:i + 1] > before).float().sum(0)
                oscillating = increases <= until_check * rho
                # condition 2: the step size was not reduced and the best loss did not improve
                stalled = ~reduced_last_check & (loss_best_last_check >= loss_best)
                reduce = oscillating | stalled
                reduced_last_check = reduce
                loss_best_last_check = loss_best
                if bool(reduce.any()):
                    step_size = torch.where(reduce, step_size / 2.0, step_size)
                    x_adv = select_rows(reduce, x_best, x_adv)
                    if not last:
                        grad = select_rows(reduce, grad_best, grad)
                until_check = max(until_check - decrement, minimum)
                since_check = 0
        record(logits, evaluated)
    return result, success


def _clean_fooled(forward: Forward, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        logits = forward(x)
    return logits, logits.argmax(1) != y


@ATTACKS.register("apgd", threat_models=("Linf", "L2"), black_box=False)
class APGD(Attack):
    """Auto-PGD: step-size-free PGD with momentum and adaptive step-size halving.

    Croce & Hein (2020), "Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks" (ICML). From a random point on the sphere of radius
    ``epsilon`` with step ``eta = 2 epsilon``:

    .. math:: z^{k+1} = P(x^k + \\eta^k \\mathrm{dir}(\\nabla L(x^k))),\\quad
              x^{k+1} = P(x^k + \\alpha (z^{k+1} - x^k) + (1 - \\alpha)(x^k - x^{k-1}))

    with ``alpha = 0.75`` (1 at the first step) and P the projection onto the ball and [0, 1].
    At the checkpoints ``w_j`` (see :func:`checkpoints`) the step is halved, and the iterate
    reset to the best point, where the loss increased in at most ``rho = 0.75`` of the last
    steps, or where the step was not reduced at the previous checkpoint and the best loss did
    not improve since. ``loss='ce'`` gives APGD-CE; ``loss='dlr'`` the Difference of Logits
    Ratio (APGD-DLR, shift- and scale-invariant, needs at least 3 classes).

    A sample stops at its first misclassified iterate; restarts attack only samples still
    correctly classified; samples misclassified at the start are returned unchanged.

    Parameters
    ----------
    epsilon : radius of the threat model; default 8/255.
    norm : "Linf" or "L2".
    n_steps : iterations per restart (100 in AutoAttack).
    n_restarts : restarts from new random points.
    loss : "ce" or "dlr".
    rho : the oscillation threshold of condition 1.
    eot_iter : gradients averaged per step (Expectation over Transformation, for randomised models).
    precision : "fp32" or "bf16" (autocast, channels_last).
    seed : seed of the random starts.

    Examples
    --------
    >>> x_adv = APGD(epsilon=0.1, loss="dlr")(images, labels, classifier)
    """

    def __init__(self, epsilon: float = 8 / 255, norm: str = "Linf", n_steps: int = 100, n_restarts: int = 1,
                 loss: str = "ce", rho: float = 0.75, eot_iter: int = 1, precision: str = "fp32",
                 seed: int | None = 0) -> None:
        self.epsilon = epsilon
        self.norm = norm
        self.n_steps = n_steps
        self.n_restarts = n_restarts
        self.loss = loss
        self.rho = rho
        self.eot_iter = eot_iter
        self.precision = precision
        self.seed = seed

    def _check_params(self) -> None:
        owner = type(self).__name__
        self._check_common()
        check_in(self.loss, LOSSES, "loss", owner)
        check_positive(self.rho, "rho", owner)
        check_positive(self.eot_iter, "eot_iter", owner, integer=True)

    def _attack_batch(self, classifier: Classifier, x: torch.Tensor, y: torch.Tensor,
                      generator: torch.Generator) -> torch.Tensor:
        forward = make_forward(classifier, self.precision)
        # DLR needs the number of classes, which the clean pass gives when the classifier does not
        if self._start_unfooled() and (self.loss == "ce" or classifier.n_classes is not None):
            fooled, n_classes = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device), classifier.n_classes
        else:
            logits, fooled = _clean_fooled(forward, x, y)
            n_classes = logits.shape[1]
        if self.loss == "dlr" and n_classes < 3:
            from mlsafety.exceptions import parameter_error

            raise parameter_error("loss", type(self).__name__, "'ce' for models with fewer than 3 classes",
                                  self.loss, "The DLR loss needs the third-largest logit.")
        result = x.clone()
        objective = cross_entropy if self.loss == "ce" else dlr_loss
        for _ in range(self.n_restarts):
            ids = (~fooled).nonzero().squeeze(1)
            if ids.numel() == 0:
                break
            labels = y[ids]
            adv, success = apgd(forward, x[ids], labels, lambda z, rows, t=labels, f=objective: f(z, t[rows]),
                                epsilon=self.epsilon, norm=self.norm, n_steps=self.n_steps, generator=generator,
                                rho=self.rho, eot_iter=self.eot_iter)
            result[ids[success]] = adv[success]
            fooled[ids[success]] = True
        return result


def target_classes(logits: torch.Tensor, n_target_classes: int) -> list[torch.Tensor]:
    """The targets of APGD-T / FAB-T: for ``k = 2 .. n_target_classes + 1``, the class with
    the k-th largest clean logit, capped at ``n_classes - 1`` targets."""
    n = min(n_target_classes, logits.shape[1] - 1)
    ordered = logits.argsort(1)
    return [ordered[:, -k] for k in range(2, n + 2)]


@ATTACKS.register("apgd_t", threat_models=("Linf", "L2"), black_box=False)
class APGDT(APGD):
    """Targeted APGD (APGD-T) with the targeted DLR loss, run against several target classes.

    Croce & Hein (2020), "Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks". For each of the ``n_target_classes`` classes with the
    largest clean logits (after the prediction), APGD maximises

    .. math:: \\mathrm{DLR}_t(z, y) = -\\frac{z_y - z_t}{z_{\\pi_1} - (z_{\\pi_3} + z_{\\pi_4})/2}

    and the attack succeeds when the prediction leaves ``y`` (any class). The number of
    targets adapts to the number of classes (at most ``n_classes - 1``); with fewer than 4
    classes the targeted DLR is undefined and the margin ``z_t - z_y`` replaces it.
    ``y`` holds the true labels (the targets are chosen automatically).

    Parameters
    ----------
    As :class:`APGD`, plus ``n_target_classes`` (9 in AutoAttack); ``loss`` is fixed to
    targeted DLR.
    """

    def __init__(self, epsilon: float = 8 / 255, norm: str = "Linf", n_steps: int = 100, n_restarts: int = 1,
                 n_target_classes: int = 9, rho: float = 0.75, eot_iter: int = 1, precision: str = "fp32",
                 seed: int | None = 0) -> None:
        self.epsilon = epsilon
        self.norm = norm
        self.n_steps = n_steps
        self.n_restarts = n_restarts
        self.n_target_classes = n_target_classes
        self.rho = rho
        self.eot_iter = eot_iter
        self.precision = precision
        self.seed = seed

    def _check_params(self) -> None:
        owner = type(self).__name__
        self._check_common()
        check_positive(self.rho, "rho", owner)
        check_positive(self.eot_iter, "eot_iter", owner, integer=True)
        check_positive(self.n_target_classes, "n_target_classes", owner, integer=True)

    def _attack_batch(self, classifier: Classifier, x: torch.Tensor, y: torch.Tensor,
                      generator: torch.Generator) -> torch.Tensor:
        forward = make_forward(classifier, self.precision)
        logits, fooled = _clean_fooled(forward, x, y)
        result = x.clone()
        use_dlr = logits.shape[1] >= 4
        for targets in target_classes(logits, self.n_target_classes):
            for _ in range(self.n_restarts):
                ids = (~fooled).nonzero().squeeze(1)
                if ids.numel() == 0:
                    return result
                labels, goal = y[ids], targets[ids]
                if use_dlr:
                    def objective(z: torch.Tensor, rows: torch.Tensor, t=labels, g=goal) -> torch.Tensor:
                        return dlr_targeted_loss(z, t[rows], g[rows])
                else:
                    def objective(z: torch.Tensor, rows: torch.Tensor, t=labels, g=goal) -> torch.Tensor:
                        return targeted_margin_loss(z, t[rows], g[rows])
                adv, success = apgd(forward, x[ids], labels, objective, epsilon=self.epsilon, norm=self.norm,
                                    n_steps=self.n_steps, generator=generator, rho=self.rho, eot_iter=self.eot_iter)
                result[ids[success]] = adv[success]
                fooled[ids[success]] = True
        return result

