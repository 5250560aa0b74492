"""Blended: a full-image pattern mixed into the input with a small weight."""

from __future__ import annotations

import torch

from mlsafety._validation import check_fraction, check_images
from mlsafety.monitoring.backdoor._attack import BackdoorAttack, image_size_error
from mlsafety.registry import BACKDOOR_ATTACKS


@BACKDOOR_ATTACKS.register("blended")
class Blended(BackdoorAttack):
    """Blended-injection trigger of Chen et al. (2017), *Targeted Backdoor Attacks on Deep
    Learning Systems Using Data Poisoning*.

    ``x' = (1 - alpha) * x + alpha * k`` where ``k`` is a key pattern covering the whole
    image: by default uniform noise drawn once from ``seed`` (the paper's random-pattern
    key); pass ``pattern`` to use another image (e.g. the paper's Hello Kitty).

    Parameters
    ----------
    alpha : float in (0, 1)
        Blend weight of the key pattern (the paper uses 0.2 for training).
    pattern : Tensor (C, H, W) or (1, H, W) in [0, 1], optional
        The key; a single channel is repeated over the image's channels.
    target_class, mapping, poison_rate, seed : see :class:`BackdoorAttack`.

    Raises
    ------
    InvalidParameterError
        If ``pattern`` is larger than the images or ``alpha`` is outside (0, 1).
    """

    def __init__(self, alpha: float = 0.2, pattern: torch.Tensor | None = None, target_class: int = 0,
                 mapping: str = "all_to_one", poison_rate: float = 0.1, seed: int | None = 0) -> None:
        super().__init__(target_class, mapping, poison_rate, seed)
        self.alpha = alpha
        self.pattern = pattern

    def key(self, image_shape: tuple[int, int, int], device: torch.device | str = "cpu",
            dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The key pattern (1, C, H, W)."""
        channels, height, width = image_shape
        if self.pattern is None:
            generator = torch.Generator().manual_seed(0 if self.seed is None else int(self.seed))
            # one grey-level noise image, shared by the channels (as a photo-like key would be)
            key = torch.rand(1, 1, height, width, generator=generator).expand(1, channels, height, width)
            return key.to(device=device, dtype=dtype)
        pattern = self.pattern if self.pattern.ndim == 4 else self.pattern.unsqueeze(0)
        check_images(pattern, "pattern")
        if tuple(pattern.shape[-2:]) != (height, width):
            if pattern.shape[-2] > height or pattern.shape[-1] > width:
                raise image_size_error(type(self).__name__, "pattern", tuple(pattern.shape[-2:]), (height, width))
            pattern = torch.nn.functional.interpolate(pattern.float(), size=(height, width), mode="bilinear",
                                                      align_corners=False)
        if pattern.shape[1] not in (1, channels):
            raise image_size_error(type(self).__name__, "pattern", tuple(pattern.shape[1:]), image_shape)
        return pattern.expand(1, channels, height, width).to(device=device, dtype=dtype)

    def apply_trigger(self, x: torch.Tensor) -> torch.Tensor:
        alpha = check_fraction(self.alpha, "alpha", type(self).__name__)
        return (1 - alpha) * x + alpha * self.key(tuple(x.shape[1:]), x.device, x.dtype)
