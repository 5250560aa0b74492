"""AugMix: mixtures of augmentation chains and the Jensen-Shannon consistency loss.

Hendrycks, Mu, Cubuk, Zoph, Gilmer & Lakshminarayanan (2020), "AugMix: A Simple Data
Processing Method to Improve Robustness and Uncertainty", ICLR.

Every operation is batched on (N, C, H, W) tensors with per-sample random magnitudes
(the reference code works on one PIL image at a time). The operation set excludes
anything that overlaps with the corruptions of the benchmark (contrast, brightness,
colour, sharpness, noise, blur), as in the paper, so that the test corruptions stay unseen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mlsafety._validation import check_images, check_positive, make_generator
from mlsafety.base import ParamsMixin
from mlsafety.exceptions import parameter_error
from mlsafety.models.classifier import Classifier

Operation = Callable[[torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


# --- the operations: op(x, level, generator) with x (n, C, H, W) and level (n,) in [0.1, severity] ------

def _random_sign(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randint(0, 2, (n,), generator=generator, device=device).float() * 2 - 1


def _affine(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Warp with (n, 2, 3) matrices in normalised coordinates (about the centre), bilinear, black fill."""
    grid = F.affine_grid(matrix.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _identity_matrix(n: int, device: torch.device) -> torch.Tensor:
    return torch.eye(2, 3, device=device).repeat(n, 1, 1)


def autocontrast(x: torch.Tensor, level: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Stretch each channel of each image to the full [0, 1] range (PIL ``ImageOps.autocontrast``)."""
    low = x.amin(dim=(2, 3), keepdim=True)
    high = x.amax(dim=(2, 3), keepdim=True)
    scale = torch.where(high > low, 1.0 / (high - low).clamp_min(1e-8), torch.ones_like(high))
    offset = torch.where(high > low, low, torch.zeros_like(low))
    return ((x - offset) * scale).clamp(0, 1)


def equalize(x: torch.Tensor, level: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Histogram equalisation per image and channel, with PIL's ``ImageOps.equalize`` lookup table."""
    n, c, h, w = x.shape
    values = (x * 255).round().long().clamp(0, 255).reshape(n * c, h * w)
    histogram = torch.zeros(n * c, 256, device=x.device).scatter_add_(
        1, values, torch.ones_like(values, dtype=torch.float32))
    # PIL: step = (count - count of the last non-empty bin) // 255; lut[i] = (step // 2 + cdf_before[i]) // step
    last = 255 - torch.flip(histogram > 0, dims=[1]).float().argmax(1)
    last_count = histogram.gather(1, last[:, None]).squeeze(1)
    step = torch.div(h * w - last_count, 255, rounding_mode="floor")
    cdf_before = torch.cumsum(histogram, 1) - histogram
    lut = torch.div(torch.div(step, 2, rounding_mode="floor")[:, None] + cdf_before,
                    step.clamp_min(1)[:, None], rounding_mode="floor").clamp(max=255)
    identity = torch.arange(256, device=x.device, dtype=lut.dtype).expand_as(lut)
    lut = torch.where((step > 0)[:, None], lut, identity)
    return (lut.gather(1, values) / 255.0).reshape(n, c, h, w).to(x.dtype)


def posterize(x: torch.Tensor, level: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Keep the top ``4 - int(level * 4 / 10)`` bits of every 8-bit value."""
    bits = 4 - torch.floor(level * 4 / 10)
    quantum = (2 ** (8 - bits)).view(-1, 1, 1, 1)
    values = torch.floor((x * 255).round() / quantum) * quantum
    return (values / 255).to(x.dtype)


def rotate(x: torch.Tensor, level: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Rotate by ``int(level * 30 / 10)`` degrees with a random sign."""
    degrees = torch.floor(level * 30 / 10) * _random_sign(len(x), generator, x.device)
    radians = degrees * math.pi / 180
    matrix = _identity_matrix(len(x), x.device)
    cos, sin = torch.cos(radians), torch.sin(radians)
    matrix[:, 0, 0], matrix[:, 0, 1], matrix[:, 1, 0], matrix[:, 1, 1] = cos, -sin, sin, cos
    return _affine(x, matrix)


def solarize(x: torch.Tensor, level: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Invert the values at or above ``256 - int(level * 256 / 10)`` (out of 255)."""
    threshold = (256 - torch.floor(level * 256 / 10)).view(-1, 1, 1, 1) / 255
    return torch.where(x >= threshold, 1 - x, x)


def _shear(axis: int) -> Operation:
    def shear(x: torch.Tensor, level: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        amount = level * 0.3 / 10 * _random_sign(len(x), generator, x.device)
        matrix = _identity_matrix(len(x), x.device)
        matrix[:, axis, 1 - axis] = amount
        return _affine(x, matrix)

    shear.__name__ = f"shear_{'xy'[axis]}"
    shear.__doc__ = f"Shear along {'xy'[axis]} by ``level * 0.3 / 10`` with a random sign."
    return shear


def _translate(axis: int) -> Operation:
    def translate(x: torch.Tensor, level: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        size = x.shape[3 - axis]
        pixels = torch.floor(level * (size / 3) / 10) * _random_sign(len(x), generator, x.device)
        matrix = _identity_matrix(len(x), x.device)
        matrix[:, axis, 2] = 2 * pixels / size
        return _affine(x, matrix)

    translate.__name__ = f"translate_{'xy'[axis]}"
    translate.__doc__ = f"Translate along {'xy'[axis]} by ``int(level * size / 3 / 10)`` pixels, random sign."
    return translate


OPERATIONS: dict[str, Operation] = {
    "autocontrast": autocontrast,
    "equalize": equalize,
    "posterize": posterize,
    "rotate": rotate,
    "solarize": solarize,
    "shear_x": _shear(0),
    "shear_y": _shear(1),
    "translate_x": _translate(0),
    "translate_y": _translate(1),
}
"""AugMix's operations (the paper's set, without those that overlap with ImageNet-C)."""


def apply_operation_chains(x: torch.Tensor, n_chains: int, depth: int, severity: float,
                           operations: Sequence[str], generator: torch.Generator) -> torch.Tensor:
    """Apply ``n_chains`` random chains of 1-3 (or ``depth``) operations to every image.

    Returns a tensor of shape (n_chains, N, C, H, W). Operations are drawn per image and
    per step; each operation runs once per step on the images that drew it.
    """
    n = len(x)
    chains = x.unsqueeze(0).repeat(n_chains, 1, 1, 1, 1).reshape(n_chains * n, *x.shape[1:])
    rows = chains.shape[0]
    device = x.device
    if depth > 0:
        depths = torch.full((rows,), depth, device=device)
    else:
        depths = torch.randint(1, 4, (rows,), generator=generator, device=device)
    functions = [OPERATIONS[name] for name in operations]
    for step in range(int(depths.max())):
        chosen = torch.randint(0, len(functions), (rows,), generator=generator, device=device)
        level = torch.rand(rows, generator=generator, device=device) * (severity - 0.1) + 0.1
        active = depths > step
        for index, function in enumerate(functions):
            rows_here = torch.nonzero(active & (chosen == index)).squeeze(1)
            if rows_here.numel():
                chains[rows_here] = function(chains[rows_here], level[rows_here], generator)
    return chains.reshape(n_chains, n, *x.shape[1:])


class AugMix(ParamsMixin):
    """The AugMix augmentation: a convex mixture of random augmentation chains, skip-connected.

    Hendrycks et al. (2020), "AugMix: A Simple Data Processing Method to Improve Robustness
    and Uncertainty". With weights ``w ~ Dirichlet(alpha, ..., alpha)`` over ``width``
    chains and ``m ~ Beta(alpha, alpha)``:

    .. math:: x_{augmix} = (1 - m)\\, x + m \\sum_{i=1}^{width} w_i\\, \\mathrm{chain}_i(x)

    Parameters
    ----------
    severity : float
        Magnitude of the operations, in (0, 10]; 3 as in the paper.
    width : int
        Number of chains mixed (3).
    depth : int
        Operations per chain; -1 draws 1 to 3 per chain (the paper's default).
    alpha : float
        Dirichlet and Beta concentration (1).
    operations : sequence of str or None
        Names from :data:`OPERATIONS`; None uses all of them.
    seed : int or None
        Seed of the generator used when none is passed to :meth:`__call__`.

    Examples
    --------
    >>> augmix = AugMix(seed=0)
    >>> mixed = augmix(images)                                   # (N, C, H, W) in [0, 1]
    >>> train_classifier(classifier, train, augment=augmix)      # plain AugMix augmentation
    """

    def __init__(self, severity: float = 3.0, width: int = 3, depth: int = -1, alpha: float = 1.0,
                 operations: Sequence[str] | None = None, seed: int | None = 0) -> None:
        self.severity = severity
        self.width = width
        self.depth = depth
        self.alpha = alpha
        self.operations = operations
        self.seed = seed
        self._validate()

    def _validate(self) -> None:
        owner = type(self).__name__
        check_positive(self.severity, "severity", owner)
        if self.severity > 10 or self.severity <= 0.1:
            raise parameter_error("severity", owner, "a number in (0.1, 10]", self.severity)
        check_positive(self.width, "width", owner, integer=True)
        check_positive(self.alpha, "alpha", owner)
        if not isinstance(self.depth, int) or (self.depth < 1 and self.depth != -1) or self.depth > 10:
            raise parameter_error("depth", owner, "-1 (random 1-3) or an integer in 1..10", self.depth)
        unknown = [name for name in (self.operations or []) if name not in OPERATIONS]
        if unknown or (self.operations is not None and len(self.operations) == 0):
            raise parameter_error("operations", owner, f"a non-empty subset of {sorted(OPERATIONS)}",
                                  self.operations)

    def mixing_weights(self, n: int, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Dirichlet chain weights (n, width) and Beta skip weights (n,), drawn with numpy from
        a seed taken from ``generator`` (torch has no seeded Dirichlet sampler)."""
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        rng = np.random.default_rng(seed)
        weights = rng.dirichlet([self.alpha] * self.width, size=n)
        skip = rng.beta(self.alpha, self.alpha, size=n)
        return weights, skip

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """AugMix images ``x`` (N, C, H, W) in [0, 1]; returns the same shape, device and dtype."""
        check_images(x)
        if generator is None:
            generator = make_generator(self.seed, x.device)
        elif generator.device != x.device:
            # train_classifier passes a CPU generator; derive a device generator from it
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            generator = make_generator(seed, x.device)
        operations = list(self.operations) if self.operations is not None else list(OPERATIONS)
        chains = apply_operation_chains(x.float(), self.width, self.depth, float(self.severity),
                                        operations, generator)
        weights, skip = self.mixing_weights(len(x), generator)
        w = torch.as_tensor(weights.T, dtype=torch.float32, device=x.device).view(self.width, -1, 1, 1, 1)
        m = torch.as_tensor(skip, dtype=torch.float32, device=x.device).view(-1, 1, 1, 1)
        mixed = (w * chains).sum(0)
        return ((1 - m) * x.float() + m * mixed).clamp(0, 1).to(x.dtype)


def jensen_shannon(logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """Jensen-Shannon divergence among the softmax distributions of several logit tensors.

    .. math:: JS(p_1, ..., p_k) = \\frac{1}{k} \\sum_i KL(p_i \\| M), \\quad M = \\frac{1}{k}\\sum_i p_i

    Averaged over the batch. ``M`` is clamped to [1e-7, 1] before the log, as in the paper's code.
    """
    probabilities = [F.softmax(z, dim=1) for z in logits]
    mixture = torch.clamp(torch.stack(probabilities).mean(0), 1e-7, 1).log()
    return sum(F.kl_div(mixture, p, reduction="batchmean") for p in probabilities) / len(probabilities)


class AugMixLoss(ParamsMixin):
    """AugMix's training objective: cross-entropy on the clean images plus a Jensen-Shannon
    consistency term between the clean image and two independent AugMix views.

    .. math:: L = CE(p_{clean}, y) + \\lambda\\, JS(p_{clean}, p_{augmix1}, p_{augmix2})

    Hendrycks et al. (2020), eq. (1)-(2); ``jsd_weight`` (lambda) is 12 as in the paper.
    The three views go through the network as one batch, so batch-norm statistics are
    shared between them, as in the reference implementation.

    Use as ``train_classifier(classifier, train, loss_fn=AugMixLoss(AugMix(seed=0)))``.
    """

    def __init__(self, augmix: AugMix | None = None, jsd_weight: float = 12.0, seed: int | None = 0) -> None:
        self.augmix = augmix
        self.jsd_weight = jsd_weight
        self.seed = seed
        check_positive(jsd_weight, "jsd_weight", "AugMixLoss", allow_zero=True)
        self._generators: dict[str, torch.Generator] = {}

    def _generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._generators:
            self._generators[key] = make_generator(self.seed, device)
        return self._generators[key]

    def __call__(self, classifier: Classifier, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        augmix = self.augmix if self.augmix is not None else AugMix()
        generator = self._generator(x.device)
        views = torch.cat([x, augmix(x, generator), augmix(x, generator)])
        logits_clean, logits_first, logits_second = classifier(views).split(len(x))
        loss = F.cross_entropy(logits_clean, y)
        if self.jsd_weight:
            loss = loss + self.jsd_weight * jensen_shannon([logits_clean, logits_first, logits_second])
        return loss
