"""PixMix: mixing training images with structurally complex pictures (here: procedural fractals).

Hendrycks, Zou, Mazeika, Tang, Li, Song & Steinhardt (2022), "PixMix: Dreamlike Pictures
Comprehensively Improve Safety Measures", CVPR.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mlsafety._validation import check_images, check_positive, make_generator
from mlsafety.base import ParamsMixin
from mlsafety.exceptions import InvalidInputError, parameter_error
from mlsafety.robustness.training.augmix import OPERATIONS, apply_operation_chains
from mlsafety.robustness.training.fractals import fractal_bank


def mix_add(image: torch.Tensor, other: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PixMix's additive mixing in [-1, 1]: :math:`((a (2x - 1) + b (2y - 1)) + 1) / 2`."""
    return (a * (image * 2 - 1) + b * (other * 2 - 1) + 1) / 2


def mix_multiply(image: torch.Tensor, other: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PixMix's geometric mixing in [0, 2]: :math:`(2x)^a (2y)^b / 2`."""
    return (image * 2) ** a * (other * 2).clamp_min(1e-37) ** b / 2


def mixing_exponents(n: int, beta: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """PixMix's ``get_ab``: with probability 1/2 ``a ~ Beta(beta, 1), b ~ Beta(1, beta)``,
    otherwise ``a = 1 + Beta(1, beta), b = -Beta(1, beta)`` (extrapolation away from the picture)."""
    first = rng.random(n) < 0.5
    a = np.where(first, rng.beta(beta, 1, n), 1 + rng.beta(1, beta, n))
    b = np.where(first, rng.beta(1, beta, n), -rng.beta(1, beta, n))
    return a, b


class PixMix(ParamsMixin):
    """The PixMix augmentation with procedurally generated fractal mixing pictures.

    Hendrycks et al. (2022), Algorithm 1: starting from the image or one random AugMix
    operation applied to it, up to ``k`` times (uniform in 0..k) the running result is
    mixed, additively or multiplicatively with equal chance, with either another augmented
    copy of the image or the image's mixing picture:

    .. math:: x \\leftarrow \\mathrm{clip}(\\mathrm{mix}(x, y; a, b), 0, 1)

    with exponents ``a, b`` from :func:`mixing_exponents`. The mixing set is rendered
    fractals (:mod:`mlsafety.robustness.training.fractals`; nothing is downloaded); a
    random crop of one per image is used.

    Parameters
    ----------
    k : int
        Maximum number of mixing rounds (4 in the paper).
    beta : float
        Concentration of the mixing exponents (3 in the paper).
    augmentation_severity : float
        Severity of the AugMix operations (3).
    operations : sequence of str or None
        AugMix operation names (default: all of :data:`~mlsafety.robustness.training.augmix.OPERATIONS`).
    mixing_set : Tensor (M, C or 3, S, S) or None
        Mixing pictures in [0, 1]; None renders ``n_pictures`` fractals.
    n_pictures : int
        Size of the rendered fractal set.
    seed : int or None
        Seed for the fractals and, when no generator is passed, for the mixing.

    Examples
    --------
    >>> pixmix = PixMix(seed=0)
    >>> train_classifier(classifier, train, augment=pixmix)
    """

    def __init__(self, k: int = 4, beta: float = 3.0, augmentation_severity: float = 3.0,
                 operations: Sequence[str] | None = None, mixing_set: torch.Tensor | None = None,
                 n_pictures: int = 256, seed: int | None = 0) -> None:
        self.k = k
        self.beta = beta
        self.augmentation_severity = augmentation_severity
        self.operations = operations
        self.mixing_set = mixing_set
        self.n_pictures = n_pictures
        self.seed = seed
        owner = type(self).__name__
        check_positive(k, "k", owner, integer=True)
        check_positive(beta, "beta", owner)
        check_positive(augmentation_severity, "augmentation_severity", owner)
        check_positive(n_pictures, "n_pictures", owner, integer=True)
        unknown = [name for name in (operations or []) if name not in OPERATIONS]
        if unknown or (operations is not None and len(operations) == 0):
            raise parameter_error("operations", owner, f"a non-empty subset of {sorted(OPERATIONS)}", operations)
        if mixing_set is not None:
            check_images(mixing_set, "mixing_set")

    def _pictures(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One random crop of a random mixing picture per image, matched to ``x``'s channels and size."""
        n, c, h, w = x.shape
        if self.mixing_set is None:
            size = int(np.ceil(max(h, w) * 1.125))
            bank = fractal_bank(self.n_pictures, size, 3, 0 if self.seed is None else int(self.seed))
        else:
            bank = self.mixing_set
            if bank.shape[1] not in (1, 3, c):
                raise InvalidInputError(f"`mixing_set` has {bank.shape[1]} channels; the images have {c}.")
            if bank.shape[-2] < h or bank.shape[-1] < w:
                bank = F.interpolate(bank, size=(max(h, bank.shape[-2]), max(w, bank.shape[-1])),
                                     mode="bilinear", align_corners=False)
        bank = bank.to(x.device, x.dtype)
        if bank.shape[1] == 3 and c != 3:
            luma = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
            bank = (bank * luma).sum(1, keepdim=True)
        if bank.shape[1] == 1 and c != 1:
            bank = bank.expand(-1, c, -1, -1)
        choice = torch.randint(0, len(bank), (n,), generator=generator, device=x.device)
        top = torch.randint(0, bank.shape[-2] - h + 1, (n,), generator=generator, device=x.device)
        left = torch.randint(0, bank.shape[-1] - w + 1, (n,), generator=generator, device=x.device)
        rows = (top[:, None] + torch.arange(h, device=x.device)[None])  # (n, h)
        cols = (left[:, None] + torch.arange(w, device=x.device)[None])
        pictures = bank[choice]  # (n, c, S, T)
        pictures = pictures.gather(2, rows[:, None, :, None].expand(n, c, h, pictures.shape[-1]))
        return pictures.gather(3, cols[:, None, None, :].expand(n, c, h, w))

    def _augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        operations = list(self.operations) if self.operations is not None else list(OPERATIONS)
        return apply_operation_chains(x, 1, 1, float(self.augmentation_severity), operations, generator)[0]

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """PixMix images ``x`` (N, C, H, W) in [0, 1]; same shape, device and dtype."""
        check_images(x)
        if generator is None:
            generator = make_generator(self.seed, x.device)
        elif generator.device != x.device:
            generator = make_generator(int(torch.randint(0, 2**62, (1,), generator=generator)), x.device)
        n = len(x)
        source = x.float()
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device)))
        pictures = self._pictures(source, generator)

        def coin(probability: float = 0.5) -> torch.Tensor:
            return torch.as_tensor(rng.random(n) < probability, device=x.device).view(-1, 1, 1, 1)

        mixed = torch.where(coin(), self._augment(source, generator), source)
        rounds = torch.as_tensor(rng.integers(0, self.k + 1, n), device=x.device).view(-1, 1, 1, 1)
        for step in range(int(self.k)):
            other = torch.where(coin(), self._augment(source, generator), pictures)
            a, b = mixing_exponents(n, float(self.beta), rng)
            a = torch.as_tensor(a, dtype=torch.float32, device=x.device).view(-1, 1, 1, 1)
            b = torch.as_tensor(b, dtype=torch.float32, device=x.device).view(-1, 1, 1, 1)
            candidate = torch.where(coin(), mix_add(mixed, other, a, b), mix_multiply(mixed, other, a, b))
            mixed = torch.where(rounds > step, candidate.nan_to_num(0.0, 1.0, 0.0).clamp(0, 1), mixed)
        return mixed.clamp(0, 1).to(x.dtype)
