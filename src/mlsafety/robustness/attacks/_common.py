"""Shared machinery of the adversarial attacks: the :class:`Attack` base, threat-model
projections, attack losses and the differentiable forward pass.

Every attack acts in pixel space on images in [0, 1] (normalisation lives in the model), is
batched, runs on the classifier's device, draws all randomness from a generator seeded with
``seed``, and leaves the model's parameters and train/eval mode as it found them.
"""

from __future__ import annotations

import numbers
from abc import abstractmethod
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

from mlsafety._validation import check_images, check_labels, check_positive, make_generator
from mlsafety.base import Perturbation
from mlsafety.exceptions import InvalidInputError, parameter_error

if TYPE_CHECKING:
    from mlsafety.models.classifier import Classifier

NORMS = ("Linf", "L2")
PRECISIONS = ("fp32", "bf16")
Forward = Callable[[torch.Tensor], torch.Tensor]
LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# -- parameter validation ----------------------------------------------------------------------
def check_norm(norm: Any, owner: str) -> str:
    if norm not in NORMS:
        fix = ""
        if isinstance(norm, str) and norm.lower() in ("linf", "inf", "l_inf", "linfty"):
            fix = "Write norm='Linf'."
        elif isinstance(norm, str) and norm.lower() in ("l2", "2", "l_2"):
            fix = "Write norm='L2'."
        raise parameter_error("norm", owner, "'Linf' or 'L2'", norm, fix)
    return norm


def check_epsilon(epsilon: Any, norm: str, owner: str, *, allow_none: bool = False) -> float | None:
    """Validate the radius of the threat model (pixels are in [0, 1])."""
    if epsilon is None and allow_none:
        return None
    ok = isinstance(epsilon, numbers.Real) and not isinstance(epsilon, bool) and epsilon > 0
    if norm == "Linf" and ok and epsilon > 1:
        hint = f" Did you mean {epsilon}/255 = {epsilon / 255:.4g}?" if epsilon >= 2 else ""
        raise parameter_error("epsilon", owner, "in (0, 1] for norm='Linf' (pixels are in [0, 1])",
                              epsilon, hint.strip())
    if not ok:
        raise parameter_error("epsilon", owner, "a number > 0 (the radius of the threat model)", epsilon)
    return float(epsilon)


def check_seed(seed: Any, owner: str) -> None:
    if seed is not None and (not isinstance(seed, numbers.Integral) or isinstance(seed, bool)):
        raise parameter_error("seed", owner, "an integer or None", seed)


# -- geometry of the threat model --------------------------------------------------------------
def _view(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.ndim - 1)))


def lp_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample norm (N,) of a batch of perturbations."""
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "Linf" else flat.norm(dim=1)


def project(x_adv: torch.Tensor, x: torch.Tensor, epsilon: float | torch.Tensor, norm: str) -> torch.Tensor:
    """Project ``x_adv`` onto the ``norm`` ball of radius ``epsilon`` around ``x``, then onto [0, 1]."""
    delta = x_adv - x
    if norm == "Linf":
        eps = _view(epsilon, x) if isinstance(epsilon, torch.Tensor) else epsilon
        delta = torch.maximum(torch.minimum(delta, eps + torch.zeros_like(delta)), -eps + torch.zeros_like(delta))
    else:
        norms = lp_norm(delta, "L2")
        eps = epsilon if isinstance(epsilon, torch.Tensor) else torch.full_like(norms, float(epsilon))
        factor = torch.minimum(torch.ones_like(norms), eps / (norms + 1e-12))
        delta = delta * _view(factor, delta)
    return (x + delta).clamp(0.0, 1.0)


def linf_box(x: torch.Tensor, epsilon: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel bounds of the Linf ball around ``x`` intersected with [0, 1]: projecting onto
    it is one ``clamp(v, lower, upper)`` pass (the same point as :func:`project`, up to the
    rounding of ``x + (v - x)``)."""
    return (x - epsilon).clamp_(min=0.0), (x + epsilon).clamp_(max=1.0)


def select_rows(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.where(mask[:, None, ...], a, b)``: sample ``i`` of ``a`` where ``mask[i]``, else of ``b``.

    The same values; on the CPU the result is ``a`` or ``b`` itself when the mask is all
    True or all False (neither is modified in place, so sharing is safe), and otherwise a copy
    of the majority side with the other rows copied in: on a CPU a broadcast ``where`` over
    the batch costs several elementwise passes.
    """
    if a.device.type != "cpu":
        return torch.where(_view(mask, a), a, b)
    count, n = int(mask.sum()), mask.shape[0]
    if count == n:
        return a
    if count == 0:
        return b
    if 2 * count >= n:
        rows = (~mask).nonzero().squeeze(1)
        return a.index_copy(0, rows, b.index_select(0, rows))
    rows = mask.nonzero().squeeze(1)
    return b.index_copy(0, rows, a.index_select(0, rows))


def steepest_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The unit-norm steepest-ascent direction: sign(grad) for Linf, grad/||grad||_2 for L2."""
    if norm == "Linf":
        return grad.sign()
    return grad / _view(lp_norm(grad, "L2") + 1e-12, grad)


def random_in_ball(x: torch.Tensor, epsilon: float, norm: str, generator: torch.Generator) -> torch.Tensor:
    """A uniformly random start in the Linf ball, or a random direction at a uniform radius in the L2 ball."""
    if norm == "Linf":
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1
        return (x + epsilon * noise).clamp(0.0, 1.0)
    direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    direction = direction / _view(lp_norm(direction, "L2") + 1e-12, x)
    radius = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype) * epsilon
    return (x + direction * _view(radius, x)).clamp(0.0, 1.0)


# -- losses (to be maximised by the attacker) ------------------------------------------------
def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy (N,)."""
    return F.cross_entropy(logits.float(), y, reduction="none")


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``z_y - max_{i != y} z_i`` (N,): positive while the sample is classified as ``y``."""
    logits = logits.float()
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    return true - others


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference of Logits Ratio (Croce & Hein 2020), shift- and scale-invariant:
    ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)`` with ``z_pi`` the sorted logits.

    Needs at least 3 classes.
    """
    logits = logits.float()
    ordered = logits.sort(1).values
    return -margin(logits, y) / (ordered[:, -1] - ordered[:, -3] + 1e-12)


def dlr_targeted_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targeted DLR: ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``; needs at least 4 classes."""
    logits = logits.float()
    ordered = logits.sort(1).values
    difference = logits.gather(1, y[:, None]).squeeze(1) - logits.gather(1, target[:, None]).squeeze(1)
    return -difference / (ordered[:, -1] - 0.5 * (ordered[:, -3] + ordered[:, -4]) + 1e-12)


def targeted_margin_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``z_t - z_y``: the targeted loss used when there are too few classes for targeted DLR."""
    logits = logits.float()
    return logits.gather(1, target[:, None]).squeeze(1) - logits.gather(1, y[:, None]).squeeze(1)


# -- forward passes and gradients ------------------------------------------------------------
def make_forward(classifier: Classifier, precision: str = "fp32") -> Forward:
    """Differentiable logits of ``classifier``; with ``precision='bf16'`` the forward pass runs
    under bf16 autocast on channels_last inputs and returns float32 logits."""
    if precision == "fp32":
        return lambda x: classifier.forward(x).float()

    def forward(x: torch.Tensor) -> torch.Tensor:
        inputs = x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
            return classifier.forward(inputs).float()

    return forward


def input_gradient(forward: Forward, x: torch.Tensor, loss_of_logits: Callable[[torch.Tensor], torch.Tensor],
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits, per-sample loss, d loss.sum() / dx) at ``x``; no parameter gradient is stored."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = forward(x)
        loss = loss_of_logits(logits)
        if not loss.requires_grad:
            raise InvalidInputError(
                "the model's output does not depend differentiably on its input (no autograd graph); "
                "white-box attacks need gradients: use the black-box 'square' attack instead."
            )
        (grad,) = torch.autograd.grad(loss.sum(), x, allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(x)
    return logits.detach(), loss.detach(), grad.detach()


@torch.no_grad()
def predict(forward: Forward, x: torch.Tensor) -> torch.Tensor:
    return forward(x).argmax(1)


# -- the base class ----------------------------------------------------------------------------
class Attack(Perturbation):
    """Base class of the white- and black-box attacks.

    Subclasses implement :meth:`_attack_batch` on a batch already on the model's device with
    the model in eval mode; the base class validates inputs, splits into batches of
    ``classifier.batch_size``, seeds the generator, and returns images on the input's device.

    In an untargeted attack ``y`` holds the true labels (the model's predictions when
    omitted); in a targeted attack (``targeted=True``) ``y`` holds the target classes.
    """

    requires_classifier: ClassVar[bool] = True
    #: whether this attack reads only the logits (black-box); then it also runs on models
    #: without gradients (TorchScript, non-differentiable pre-processing).
    black_box: ClassVar[bool] = False
    #: set by :meth:`perturb` while ``y`` holds the model's own fp32 predictions of the float32
    #: batch (``y`` omitted): then no sample is misclassified at the start, and an attack may
    #: skip its clean forward pass.
    _labels_are_predictions: bool = False

    def _start_unfooled(self) -> bool:
        """True when no sample of the batch can be misclassified at the start (``y`` holds the
        model's own fp32 predictions), so the clean forward pass may be skipped."""
        return self._labels_are_predictions and getattr(self, "precision", "fp32") == "fp32"

    def _check_common(self) -> None:
        owner = type(self).__name__
        check_norm(self.norm, owner)
        check_epsilon(self.epsilon, self.norm, owner, allow_none=getattr(self, "_epsilon_optional", False))
        check_seed(self.seed, owner)
        for name in ("n_steps", "n_restarts"):
            if hasattr(self, name):
                check_positive(getattr(self, name), name, owner, integer=True)
        if getattr(self, "targeted", False) not in (True, False):
            raise parameter_error("targeted", owner, "True or False", self.targeted)
        precision = getattr(self, "precision", "fp32")
        if precision not in PRECISIONS:
            raise parameter_error("precision", owner, "'fp32' or 'bf16'", precision)

    def _check_params(self) -> None:
        """Validate hyperparameters (called at the start of every :meth:`perturb`)."""
        self._check_common()

    def perturb(self, x: torch.Tensor, y: torch.Tensor | None = None,
                classifier: Classifier | None = None) -> torch.Tensor:
        """Adversarial examples for ``x`` (same shape, device and dtype, in [0, 1] and in the ball).

        Parameters
        ----------
        x : Tensor (N, C, H, W) in [0, 1].
        y : Tensor (N,) of true labels (untargeted; predictions if None) or target classes
            (``targeted=True``, required).
        classifier : the :class:`~mlsafety.models.Classifier` under attack.
        """
        from mlsafety.models.classifier import Classifier

        self._check_params()
        owner = type(self).__name__
        if not isinstance(classifier, Classifier):
            raise InvalidInputError(
                f"`classifier` of {owner}.perturb must be an mlsafety Classifier; got "
                f"{type(classifier).__name__}. Wrap the module: Classifier(module, mean=..., std=...)."
            )
        x = check_images(x)
        if self._y_holds_targets() and y is None:
            raise InvalidInputError(f"{owner} with targeted=True needs `y`: the target class of each image.")
        labels_are_predictions = y is None and x.dtype == torch.float32
        if y is None:
            y = classifier.predict(x)
        y = check_labels(y, x.shape[0], classifier.n_classes)
        generator_seed = self.seed
        outputs = []
        self._labels_are_predictions = labels_are_predictions
        try:
            # channels-last on the CPU: a forward+backward pass of a convolutional model is about 1.3x faster
            with classifier.evaluating(), classifier.channels_last():
                device = classifier.device
                generator = make_generator(generator_seed, device)
                for start in range(0, x.shape[0], classifier.batch_size):
                    xb = x[start:start + classifier.batch_size].to(device=device, dtype=torch.float32)
                    yb = y[start:start + classifier.batch_size].to(device)
                    adv = self._attack_batch(classifier, xb, yb, generator)
                    outputs.append(adv.detach().to(x.device, x.dtype))
        finally:
            self._labels_are_predictions = False
        if len(outputs) == 1:
            # one batch: no copy through cat, unless the attack handed back the caller's tensor
            out = outputs[0]
            return out.clone() if out.untyped_storage().data_ptr() == x.untyped_storage().data_ptr() else out
        return torch.cat(outputs)

    def _y_holds_targets(self) -> bool:
        """True when ``y`` holds target classes rather than true labels."""
        return bool(getattr(self, "targeted", False))

    @abstractmethod
    def _attack_batch(self, classifier: Classifier, x: torch.Tensor, y: torch.Tensor,
                      generator: torch.Generator) -> torch.Tensor:
        """Attack one batch on the model's device (model already in eval mode)."""


def batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, start + size)

