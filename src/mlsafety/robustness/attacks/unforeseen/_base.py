"""The shared machinery of the unforeseen (non-Lp) attacks: a latent-space PGD core and the
:class:`UnforeseenAttack` base that every attack file subclasses.

Kaufmann, Kang, Sun, Basart, Yin, Mazeika, Arora, Dziedzic, Boenisch, Brown, Steinhardt &
Hendrycks (2023), "Testing Robustness Against Unforeseen Adversaries" (ImageNet-UA; earlier
Kang, Sun, Hendrycks, Brown & Steinhardt 2019, code ``advex-uar``): each attack is a
differentiable image transformation ``x' = g(x, z)`` of a latent variable ``z`` (fog opacity
grids, a flow field, DCT offsets, stripe colours, ...) constrained to a box ``B(epsilon)``, and
the attacker maximises the loss by projected signed-gradient ascent on ``z``:

.. math:: z^{t+1} = \\Pi_{B(\\epsilon)}\\big(z^t + \\alpha\\,\\mathrm{sign}(\\nabla_z L(f(g(x, z^t)), y))\\big)

from a uniformly random ``z^0``. ``epsilon`` is the attack's own budget (its meaning is stated
in each attack's docstring); the levels ``low``, ``medium`` and ``high`` name three budgets.
"""

from __future__ import annotations

import math
import numbers
from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

from mlsafety._validation import check_in, check_positive
from mlsafety.exceptions import ShapeError, parameter_error
from mlsafety.robustness.attacks._common import Attack, Forward, check_seed, make_forward
from mlsafety.robustness.attacks.pgd import attack_loss, is_success

if TYPE_CHECKING:
    from collections.abc import Callable

    from mlsafety.models.classifier import Classifier

LEVELS = ("low", "medium", "high")
LOSSES = ("ce", "margin")
#: the attacks whose mean accuracy at the medium level is the UA2 metric (Kaufmann et al. 2023, Sec. 4)
UA2_CORE = ("elastic", "gabor", "glitch", "jpeg", "kaleidoscope", "pixel", "snow", "wood")
State = dict[str, Any]


def optimise_latent(forward: Forward, x: torch.Tensor, y: torch.Tensor,
                    render: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], latent_shape: tuple[int, ...],
                    lower: float, upper: float, *, n_steps: int, step_size: float, generator: torch.Generator,
                    loss: str = "ce", done: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched projected signed-gradient ascent on a latent box; the functional core of every
    unforeseen attack.

    Parameters
    ----------
    render : ``render(x, z) -> x'`` differentiable in ``z``.
    latent_shape : shape of ``z`` (first dimension N).
    lower, upper : the box ``B(epsilon)`` of the latent.
    n_steps : gradient steps; 0 returns the random start (a random, not optimised, distortion).
    done : (N,) samples to leave untouched (already misclassified).

    Returns
    -------
    (x_adv, z) : each sample's first successful image (its last iterate if never fooled) and
    the latent that produced the last iterate, both detached.
    """
    objective = attack_loss(loss, False)
    noise = torch.rand(latent_shape, generator=generator, device=x.device, dtype=x.dtype)
    latent = lower + (upper - lower) * noise
    fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device) if done is None else done.clone()
    result = x.clone()
    for step in range(n_steps + 1):
        if step < n_steps:
            latent = latent.detach().requires_grad_(True)
            with torch.enable_grad():
                image = render(x, latent)
                logits = forward(image)
                (grad,) = torch.autograd.grad(objective(logits, y).sum(), latent, allow_unused=True)
            grad = torch.zeros_like(latent) if grad is None else grad
        else:
            with torch.no_grad():
                image = render(x, latent)
                logits = forward(image)
        image = image.detach()
        success = is_success(logits.detach(), y, False) & ~fooled
        result[success] = image[success]
        fooled |= success
        if step == n_steps or bool(fooled.all()):
            break
        latent = (latent.detach() + step_size * grad.sign()).clamp(lower, upper)
    left = ~fooled
    if done is not None:
        left &= ~done
    result[left] = image[left]
    return result.clamp(0.0, 1.0), latent.detach()


class UnforeseenAttack(Attack):
    """Base class of the unforeseen attacks: validation, levels and the latent optimisation.

    A subclass sets ``levels`` (epsilon of each level), ``max_epsilon`` and implements
    :meth:`latent_shape`, :meth:`render` and optionally :meth:`setup` (random structure drawn
    once per batch: flake positions, kernel orientations, ...) and :meth:`latent_bounds`.

    Parameters
    ----------
    level : "low", "medium" or "high": the calibrated budget (ignored when ``epsilon`` is given).
    epsilon : the attack's own budget; overrides ``level``. Must lie in (0, ``max_epsilon``].
    n_steps : signed-gradient steps on the latent (0: a random distortion of the same budget).
    step_size : step on the latent; default ``1.25 * (box width) / n_steps`` (PGD's 2.5 eps / n).
    loss : "ce" (cross-entropy) or "margin" (Carlini-Wagner logit margin), maximised.
    seed : seed of the random start and of the attack's random structure.
    """

    #: epsilon of each level
    levels: ClassVar[dict[str, float]] = {}
    #: the largest budget that still describes the attack (e.g. opacity 1)
    max_epsilon: ClassVar[float] = 1.0
    #: smallest image side the attack works on
    min_size: ClassVar[int] = 8
    #: True when |x' - x| <= epsilon holds pixel-wise (the budget is a pixel bound)
    pixel_bounded: ClassVar[bool] = False
    #: what epsilon measures, for reports
    budget_meaning: ClassVar[str] = ""
    norm = "latent"  # not an Lp threat model: evaluate with evaluate_unforeseen, not evaluate_attack

    def __init__(self, level: str = "medium", epsilon: float | None = None, n_steps: int = 10,
                 step_size: float | None = None, loss: str = "ce", seed: int | None = 0) -> None:
        self.level = level
        self.epsilon = epsilon
        self.n_steps = n_steps
        self.step_size = step_size
        self.loss = loss
        self.seed = seed

    # -- parameters ------------------------------------------------------------------------
    @property
    def budget(self) -> float:
        """The epsilon in use: ``epsilon`` when given, else the level's."""
        return float(self.epsilon) if self.epsilon is not None else float(self.levels[self.level])

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_in(self.level, LEVELS, "level", owner)
        if self.epsilon is not None:
            ok = isinstance(self.epsilon, numbers.Real) and not isinstance(self.epsilon, bool)
            if not ok or not 0 < self.epsilon <= self.max_epsilon:
                constraint = f"a number in (0, {self.max_epsilon:g}] ({self.budget_meaning})"
                raise parameter_error("epsilon", owner, constraint, self.epsilon,
                                      f"Or use level='low'|'medium'|'high' ({self._level_text()}).")
        check_positive(self.n_steps, "n_steps", owner, integer=True, allow_zero=True)
        if self.step_size is not None:
            check_positive(self.step_size, "step_size", owner)
        check_in(self.loss, LOSSES, "loss", owner)
        check_seed(self.seed, owner)

    def _level_text(self) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in self.levels.items())

    def _check_size(self, x: torch.Tensor) -> None:
        if min(x.shape[-2:]) < self.min_size:
            raise ShapeError(f"{type(self).__name__} needs images of at least {self.min_size}x{self.min_size} px; "
                             f"got {x.shape[-2]}x{x.shape[-1]}. Upsample the images or choose another attack.")

    # -- what a subclass defines -----------------------------------------------------------------
    def latent_bounds(self, epsilon: float) -> tuple[float, float]:
        """The latent box ``B(epsilon)``: [-epsilon, epsilon] unless the attack says otherwise."""
        return -epsilon, epsilon

    @abstractmethod
    def latent_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        """Shape of the latent for the batch ``x``."""

    def setup(self, x: torch.Tensor, generator: torch.Generator) -> State:
        """Random structure of the attack for the batch ``x`` (fixed during the optimisation)."""
        return {}

    @abstractmethod
    def render(self, x: torch.Tensor, latent: torch.Tensor, state: State, epsilon: float) -> torch.Tensor:
        """The distorted images ``g(x, z)``, differentiable in ``latent``."""

    # -- running -----------------------------------------------------------------------------
    def perturb(self, x: torch.Tensor, y: torch.Tensor | None = None,
                classifier: Classifier | None = None) -> torch.Tensor:
        self._check_params()
        if isinstance(x, torch.Tensor) and x.ndim == 4:
            self._check_size(x)
        return super().perturb(x, y, classifier)

    def _attack_batch(self, classifier: Classifier, x: torch.Tensor, y: torch.Tensor,
                      generator: torch.Generator) -> torch.Tensor:
        return self.attack_batch(make_forward(classifier), x, y, generator)[0]

    def attack_batch(self, forward: Forward, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_adv, latent) for one batch on the model's device (tests read the latent)."""
        epsilon = self.budget
        state = self.setup(x, generator)
        lower, upper = self.latent_bounds(epsilon)
        step = self.step_size if self.step_size is not None else 1.25 * (upper - lower) / max(self.n_steps, 1)
        with torch.no_grad():
            done = is_success(forward(x), y, False)
        return optimise_latent(forward, x, y, lambda image, z: self.render(image, z, state, epsilon),
                               self.latent_shape(x), lower, upper, n_steps=self.n_steps, step_size=step,
                               generator=generator, loss=self.loss, done=done)


# -- small differentiable image operations shared by the attacks ------------------------------
def gaussian_kernel(sigma: float, size: int | None = None, device: torch.device | None = None) -> torch.Tensor:
    """A normalised 1-D Gaussian kernel of odd ``size`` (default ``2 * ceil(2 sigma) + 1``)."""
    size = size or 2 * math.ceil(2 * sigma) + 1
    grid = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    kernel = torch.exp(-0.5 * (grid / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable depthwise Gaussian blur with reflect padding."""
    kernel = gaussian_kernel(sigma, device=x.device).to(x.dtype)
    k = kernel.numel()
    channels = x.shape[1]
    pad = k // 2
    out = F.pad(x, (pad, pad, 0, 0), mode="reflect" if pad < x.shape[-1] else "replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, k).expand(channels, 1, 1, k), groups=channels)
    out = F.pad(out, (0, 0, pad, pad), mode="reflect" if pad < x.shape[-2] else "replicate")
    return F.conv2d(out, kernel.view(1, 1, k, 1).expand(channels, 1, k, 1), groups=channels)


def upsample(grid: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize a coarse latent grid to the image size."""
    if mode == "nearest":
        return F.interpolate(grid, size=size, mode="nearest")
    return F.interpolate(grid, size=size, mode=mode, align_corners=False)


def identity_grid(n: int, height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Sampling grid (N, H, W, 2) of the identity warp in grid_sample's [-1, 1] coordinates."""
    theta = torch.eye(2, 3, device=device, dtype=dtype).expand(n, 2, 3)
    return F.affine_grid(theta, [n, 1, height, width], align_corners=False)


def warp(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear resampling of ``x`` at ``grid`` with border padding (no black frame)."""
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
