"""Spatial attacks: worst-of-k, grid search and a first-order attack over rotations and translations."""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from mlsafety._validation import check_in, check_positive
from mlsafety.exceptions import parameter_error
from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks._common import Attack, Forward, check_seed, make_forward, margin
from mlsafety.robustness.attacks.pgd import is_success
from mlsafety.robustness.attacks.unforeseen._base import optimise_latent

if TYPE_CHECKING:
    from mlsafety.models.classifier import Classifier

METHODS = ("worst_of_k", "grid", "gradient")


def rotate_translate(x: torch.Tensor, params: torch.Tensor, max_rotation: float, max_translation: float,
                     ) -> torch.Tensor:
    """Rotate each image about its centre and translate it, with zero (black) padding.

    Parameters
    ----------
    x : (N, C, H, W) images.
    params : (N, 3) in [-1, 1]: rotation as a fraction of ``max_rotation`` (degrees) and the
        vertical and horizontal translations as fractions of ``max_translation`` (a fraction
        of the image side). Differentiable in ``params``.
    """
    n, _, h, w = x.shape
    angle = params[:, 0] * math.radians(max_rotation)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # grid_sample coordinates run over [-1, 1] in each axis: a rotation in pixels becomes an
    # anisotropic matrix for non-square images, and a shift of a fraction f of the side is 2 f
    shift_y, shift_x = 2 * max_translation * params[:, 1], 2 * max_translation * params[:, 2]
    theta = torch.stack((torch.stack((cos, -sin * h / w, -shift_x), 1),
                         torch.stack((sin * w / h, cos, -shift_y), 1)), 1)
    grid = F.affine_grid(theta, [n, x.shape[1], h, w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@ATTACKS.register("spatial", threat_models=("spatial",), black_box=False, family="spatial")
class Spatial(Attack):
    """Adversarial rotations and translations.

    Engstrom, Tran, Tsipras, Schmidt & Madry (2019), "Exploring the Landscape of Spatial
    Robustness": the attacker picks a rotation ``|theta| <= max_rotation`` and a translation
    ``|delta_u|, |delta_v| <= max_translation`` (a fraction of the image side; zero padding)
    maximising the loss,

    .. math:: \\max_{\\theta, \\delta} L\\big(f(T_{\\theta,\\delta}(x)), y\\big),

    by one of three searches: ``worst_of_k`` (``n_samples`` random transformations, keep the
    worst: the paper's cheap and strong baseline), ``grid`` (``n_rotations`` x ``n_translations``^2
    evenly spaced transformations: exhaustive up to the grid) or ``gradient`` (signed-gradient
    ascent on the three parameters through the differentiable affine warp: the paper finds it
    weaker than the grid because the loss landscape is highly non-concave). The worst is the
    transformation with the smallest logit margin.

    Parameters
    ----------
    max_rotation : degrees, in [0, 180]; default 30 (the paper's).
    max_translation : fraction of the image side, in [0, 0.5]; default 0.1 (3 px on 28 px).
    method : "worst_of_k", "grid" or "gradient".
    n_samples : transformations tried by ``worst_of_k`` (the paper's k = 10).
    n_rotations, n_translations : grid resolution (the paper's grid: 31 x 5 x 5).
    n_steps : steps of the ``gradient`` search.
    seed : seed of the random transformations and of the gradient search's start.

    Examples
    --------
    >>> x_adv = Spatial(method="grid")(images, labels, classifier)
    """

    def __init__(self, max_rotation: float = 30.0, max_translation: float = 0.1, method: str = "worst_of_k",
                 n_samples: int = 10, n_rotations: int = 31, n_translations: int = 5, n_steps: int = 10,
                 seed: int | None = 0) -> None:
        self.max_rotation = max_rotation
        self.max_translation = max_translation
        self.method = method
        self.n_samples = n_samples
        self.n_rotations = n_rotations
        self.n_translations = n_translations
        self.n_steps = n_steps
        self.seed = seed

    def _check_params(self) -> None:
        owner = type(self).__name__
        for name, high, unit in (("max_rotation", 180.0, "degrees"), ("max_translation", 0.5, "of the image side")):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0 <= value <= high:
                raise parameter_error(name, owner, f"a number in [0, {high:g}] ({unit})", value)
        if self.max_rotation == 0 and self.max_translation == 0:
            raise parameter_error("max_rotation", owner, "> 0 when max_translation is 0 (an empty threat model)", 0)
        check_in(self.method, METHODS, "method", owner)
        for name in ("n_samples", "n_rotations", "n_translations", "n_steps"):
            check_positive(getattr(self, name), name, owner, integer=True)
        check_seed(self.seed, owner)

    def transform(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Apply transformations ``params`` (N, 3) in [-1, 1] (see :func:`rotate_translate`)."""
        return rotate_translate(x, params, self.max_rotation, self.max_translation)

    def candidates(self, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """The (K, 3) transformations searched by ``worst_of_k`` (random) or ``grid``."""
        if self.method == "grid":
            rotations = torch.linspace(-1, 1, self.n_rotations, device=device)
            shifts = torch.linspace(-1, 1, self.n_translations, device=device)
            return torch.cartesian_prod(rotations, shifts, shifts)
        return torch.rand(self.n_samples, 3, generator=generator, device=device) * 2 - 1

    def _attack_batch(self, classifier: Classifier, x: torch.Tensor, y: torch.Tensor,
                      generator: torch.Generator) -> torch.Tensor:
        forward = make_forward(classifier)
        if self.method == "gradient":
            with torch.no_grad():
                done = is_success(forward(x), y, False)
            return optimise_latent(forward, x, y, self.transform, (x.shape[0], 3), -1.0, 1.0, n_steps=self.n_steps,
                                   step_size=2.5 / self.n_steps, generator=generator, loss="margin", done=done)[0]
        return self._search(forward, x, y, self.candidates(x.shape[0], generator, x.device), classifier.batch_size)

    @torch.no_grad()
    def _search(self, forward: Forward, x: torch.Tensor, y: torch.Tensor, candidates: torch.Tensor,
                batch_size: int) -> torch.Tensor:
        n = x.shape[0]
        best_margin = margin(forward(x), y)
        # samples misclassified as they are stay unchanged (as in every other attack)
        best_margin = torch.where(best_margin < 0, torch.full_like(best_margin, float("-inf")), best_margin)
        best = x.clone()
        per_chunk = max(1, batch_size // n)
        for start in range(0, candidates.shape[0], per_chunk):
            chunk = candidates[start:start + per_chunk]  # (k, 3): every sample gets every transformation
            k = chunk.shape[0]
            images = self.transform(x.repeat(k, 1, 1, 1), chunk.repeat_interleave(n, 0))
            margins = margin(forward(images), y.repeat(k)).view(k, n)
            value, index = margins.min(0)
            better = value < best_margin
            if bool(better.any()):
                chosen = images.view(k, n, *x.shape[1:])[index, torch.arange(n, device=x.device)]
                best[better] = chosen[better]
                best_margin = torch.where(better, value, best_margin)
        return best.clamp(0.0, 1.0)
