"""Adversarial patches: a per-image patch with location search, a universal patch trained over a
data set, and attack success against patch size."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from mlsafety._validation import check_images, check_is_fitted, check_labels, check_positive, make_generator
from mlsafety.base import ParamsMixin
from mlsafety.exceptions import InvalidInputError, ShapeError, parameter_error
from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks._common import Attack, check_seed, make_forward
from mlsafety.robustness.attacks.pgd import attack_loss, is_success
from mlsafety.robustness.attacks.unforeseen._base import optimise_latent

if TYPE_CHECKING:
    from mlsafety.models.classifier import Classifier


def check_patch_size(size: Any, owner: str) -> float:
    ok = isinstance(size, numbers.Real) and not isinstance(size, bool) and 0 < size <= 1
    if not ok:
        raise parameter_error("size", owner, "a number in (0, 1] (the patch side as a fraction of the image side)",
                              size)
    return float(size)


def patch_side(size: float, height: int, width: int, owner: str) -> int:
    """The patch side in pixels: ``round(size * min(H, W))``; at least 2 px."""
    side = round(size * min(height, width))
    if side < 2:
        raise ShapeError(f"{height}x{width} images are too small for a patch of size {size:g} ({side} px); "
                         f"{owner} needs a patch side of at least 2 px: use a larger `size` or larger images.")
    return side


def random_positions(n: int, side: int, height: int, width: int, generator: torch.Generator,
                     device: torch.device) -> torch.Tensor:
    """(N, 2) random top-left corners (row, column) of a ``side`` x ``side`` patch inside the image."""
    rows = torch.randint(0, height - side + 1, (n,), generator=generator, device=device)
    cols = torch.randint(0, width - side + 1, (n,), generator=generator, device=device)
    return torch.stack((rows, cols), 1)


def apply_patch(x: torch.Tensor, patch: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Paste ``patch`` ((C, s, s) shared or (N, C, s, s) per image) at ``positions`` (N, 2).

    Differentiable in ``patch``; no per-sample Python loop (pixels are gathered by index).
    """
    n, c, h, w = x.shape
    side = patch.shape[-1]
    rows = torch.arange(h, device=x.device)[None] - positions[:, :1]  # (N, H) row inside the patch
    cols = torch.arange(w, device=x.device)[None] - positions[:, 1:]  # (N, W)
    inside = ((rows >= 0) & (rows < side))[:, :, None] & ((cols >= 0) & (cols < side))[:, None, :]
    r, k = rows.clamp(0, side - 1), cols.clamp(0, side - 1)
    if patch.ndim == 3:
        canvas = patch[:, r[:, :, None], k[:, None, :]].permute(1, 0, 2, 3)  # (N, C, H, W)
    else:
        index = torch.arange(n, device=x.device)[:, None, None]
        canvas = patch.permute(0, 2, 3, 1)[index, r[:, :, None], k[:, None, :]].permute(0, 3, 1, 2)
    return torch.where(inside[:, None], canvas.expand(n, c, h, w), x)


@ATTACKS.register("patch", threat_models=("patch",), black_box=False, family="patch")
class Patch(Attack):
    """A per-image adversarial patch with location search (perceptible, unbounded in content).

    Brown, Mané, Roy, Abadi & Gilmer (2017), "Adversarial Patch": the attacker replaces a square
    of side ``size * min(H, W)`` by arbitrary pixels. Here the patch content ``P`` in [0, 1] is
    optimised per image by signed-gradient ascent,

    .. math:: P^{t+1} = \\mathrm{clip}_{[0,1]}\\big(P^t + \\alpha\\,\\mathrm{sign}(\\nabla_P
              L(f(A(x, P, \\ell)), y))\\big),

    at ``n_locations`` random locations ``ell`` tried one after the other on the images not
    yet fooled (location search); ``A`` pastes the patch.

    Parameters
    ----------
    size : patch side as a fraction of the image side, in (0, 1]; default 0.25.
    n_locations : locations tried per image.
    n_steps : gradient steps per location.
    step_size : step on the patch pixels; default ``2.5 / n_steps``.
    seed : seed of the locations and of the random initial patches.

    Raises
    ------
    ShapeError
        If the patch would be smaller than 2 x 2 pixels.

    Examples
    --------
    >>> x_adv = Patch(size=0.2)(images, labels, classifier)
    """

    def __init__(self, size: float = 0.25, n_locations: int = 4, n_steps: int = 10, step_size: float | None = None,
                 seed: int | None = 0) -> None:
        self.size = size
        self.n_locations = n_locations
        self.n_steps = n_steps
        self.step_size = step_size
        self.seed = seed

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_patch_size(self.size, owner)
        check_positive(self.n_locations, "n_locations", owner, integer=True)
        check_positive(self.n_steps, "n_steps", owner, integer=True)
        if self.step_size is not None:
            check_positive(self.step_size, "step_size", owner)
        check_seed(self.seed, owner)

    def perturb(self, x: torch.Tensor, y: torch.Tensor | None = None,
                classifier: Classifier | None = None) -> torch.Tensor:
        self._check_params()
        if isinstance(x, torch.Tensor) and x.ndim == 4:
            patch_side(self.size, x.shape[-2], x.shape[-1], type(self).__name__)
        return super().perturb(x, y, classifier)

    def _attack_batch(self, classifier: Classifier, x: torch.Tensor, y: torch.Tensor,
                      generator: torch.Generator) -> torch.Tensor:
        forward = make_forward(classifier)
        n, c, h, w = x.shape
        side = patch_side(self.size, h, w, type(self).__name__)
        step = self.step_size if self.step_size is not None else 2.5 / self.n_steps
        with torch.no_grad():
            fooled = is_success(forward(x), y, False)
        result = x.clone()
        for _ in range(self.n_locations):
            positions = random_positions(n, side, h, w, generator, x.device)
            ids = (~fooled).nonzero().squeeze(1)
            if ids.numel() == 0:
                break
            where = positions[ids]

            def paste(image: torch.Tensor, patch: torch.Tensor, at: torch.Tensor = where) -> torch.Tensor:
                return apply_patch(image, patch, at)

            adversarial, _ = optimise_latent(forward, x[ids], y[ids], paste, (ids.numel(), c, side, side), 0.0, 1.0,
                                             n_steps=self.n_steps,
                                             step_size=step, generator=generator, loss="margin")
            with torch.no_grad():
                success = is_success(forward(adversarial), y[ids], False)
            result[ids] = adversarial  # the last location's attempt for images never fooled
            fooled[ids[success]] = True
        return result


class UniversalPatch(ParamsMixin):
    """A universal adversarial patch trained over a data set (Brown et al. 2017, "Adversarial Patch").

    One patch ``P`` is trained to fool the model wherever it is placed on any image: each step
    draws a batch and a random location per image and ascends the expected loss
    (expectation over transformations, here locations),

    .. math:: P \\leftarrow \\mathrm{clip}_{[0,1]}\\Big(P + \\alpha\\,\\mathrm{sign}\\,\\nabla_P
              \\mathbb{E}_{x, \\ell}\\, L\\big(f(A(x, P, \\ell)), y\\big)\\Big)

    (untargeted), or descends the loss of ``target`` (targeted, as the paper's "toaster" patch).
    Then :meth:`perturb` pastes the fitted ``patch_`` at random (seeded) locations.

    Parameters
    ----------
    size : patch side as a fraction of the image side, in (0, 1].
    n_epochs : passes over the training images.
    batch_size : images per step.
    step_size : signed-gradient step on the patch pixels.
    target : class the patch should make the model predict (None: untargeted).
    seed : seed of the initial patch, the batches and the locations.

    Examples
    --------
    >>> patch = UniversalPatch(size=0.25).fit(classifier, train_images, train_labels)
    >>> success = patch.success_rate(classifier, test_images, test_labels)
    """

    def __init__(self, size: float = 0.25, n_epochs: int = 5, batch_size: int = 128, step_size: float = 0.05,
                 target: int | None = None, seed: int | None = 0) -> None:
        self.size = size
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.step_size = step_size
        self.target = target
        self.seed = seed
        self.patch_: torch.Tensor | None = None

    def _check_params(self, classifier: Classifier) -> None:
        owner = type(self).__name__
        check_patch_size(self.size, owner)
        check_positive(self.n_epochs, "n_epochs", owner, integer=True)
        check_positive(self.batch_size, "batch_size", owner, integer=True)
        check_positive(self.step_size, "step_size", owner)
        check_seed(self.seed, owner)
        if self.target is not None:
            n_classes = classifier.n_classes
            if not isinstance(self.target, numbers.Integral) or self.target < 0 or (
                    n_classes is not None and self.target >= n_classes):
                raise parameter_error("target", owner, f"None or a class index in [0, {n_classes})", self.target)

    def fit(self, classifier: Classifier, x: torch.Tensor, y: torch.Tensor) -> UniversalPatch:
        """Train ``patch_`` (C, s, s) on images ``x`` with labels ``y``; returns ``self``."""
        self._check_params(classifier)
        x = check_images(x)
        y = check_labels(y, x.shape[0], classifier.n_classes)
        n, c, h, w = x.shape
        side = patch_side(self.size, h, w, type(self).__name__)
        targeted = self.target is not None
        objective = attack_loss("ce", targeted)
        with classifier.evaluating():
            device = classifier.device
            generator = make_generator(self.seed, device)
            forward = make_forward(classifier)
            patch = torch.rand(c, side, side, generator=generator, device=device)
            for _ in range(self.n_epochs):
                order = torch.randperm(n, generator=generator, device=device).cpu()
                for start in range(0, n, self.batch_size):
                    ids = order[start:start + self.batch_size]
                    xb = x[ids].to(device)
                    labels = torch.full_like(y[ids], int(self.target)) if targeted else y[ids]
                    positions = random_positions(xb.shape[0], side, h, w, generator, device)
                    patch = patch.detach().requires_grad_(True)
                    with torch.enable_grad():
                        loss = objective(forward(apply_patch(xb, patch, positions)), labels.to(device)).mean()
                        (grad,) = torch.autograd.grad(loss, patch)
                    patch = (patch.detach() + self.step_size * grad.sign()).clamp(0.0, 1.0)
        self.patch_ = patch.detach().cpu()
        return self

    def perturb(self, x: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        """``x`` with the fitted patch pasted at random locations (seeded by ``seed`` or ``self.seed``)."""
        check_is_fitted(self, "patch_")
        x = check_images(x)
        assert self.patch_ is not None
        if x.shape[1] != self.patch_.shape[0]:
            raise InvalidInputError(f"the patch has {self.patch_.shape[0]} channels but the images have "
                                    f"{x.shape[1]}; fit the patch on images like these.")
        side = self.patch_.shape[-1]
        if side > min(x.shape[-2:]):
            raise ShapeError(f"{x.shape[-2]}x{x.shape[-1]} images are too small for the fitted {side} px patch; "
                             "fit the patch on images of this size.")
        generator = make_generator(self.seed if seed is None else seed, "cpu")
        positions = random_positions(x.shape[0], side, x.shape[-2], x.shape[-1], generator, torch.device("cpu"))
        return apply_patch(x, self.patch_.to(x.device, x.dtype), positions.to(x.device))

    def success_rate(self, classifier: Classifier, x: torch.Tensor, y: torch.Tensor, seed: int | None = None) -> float:
        """Fraction of the correctly classified images that the patch makes misclassified (or,
        targeted, classified as ``target``)."""
        y = check_labels(y, check_images(x).shape[0], classifier.n_classes)
        clean = classifier.predict(x).cpu() == y.cpu()
        if not bool(clean.any()):
            return float("nan")
        predicted = classifier.predict(self.perturb(x, seed)).cpu()
        hit = predicted == self.target if self.target is not None else predicted != y.cpu()
        return float((hit & clean).sum()) / int(clean.sum())


def patch_success_curve(classifier: Classifier, x_train: torch.Tensor, y_train: torch.Tensor, x: torch.Tensor,
                        y: torch.Tensor, sizes: Sequence[float] = (0.1, 0.2, 0.3, 0.4), **patch_kwargs: Any,
                        ) -> dict[str, list[float]]:
    """Success of a universal patch trained on ``(x_train, y_train)`` and tested on ``(x, y)``,
    for each patch size (Brown et al. 2017, Fig. 3: success rises with the patch's share of the image).

    Returns
    -------
    dict with ``sizes``, ``area`` (fraction of the image covered) and ``success_rate``.
    """
    if not sizes:
        raise parameter_error("sizes", "patch_success_curve", "a non-empty list of sizes in (0, 1]", sizes)
    rates, areas = [], []
    for size in sizes:
        patch = UniversalPatch(size=size, **patch_kwargs).fit(classifier, x_train, y_train)
        rates.append(patch.success_rate(classifier, x, y))
        assert patch.patch_ is not None
        areas.append(patch.patch_.shape[-1] ** 2 / (x.shape[-2] * x.shape[-1]))
    return {"sizes": [float(s) for s in sizes], "area": areas, "success_rate": rates}
