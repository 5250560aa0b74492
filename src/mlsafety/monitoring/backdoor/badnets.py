"""BadNets: a small fixed patch stamped on the image."""

from __future__ import annotations

import torch

from mlsafety._validation import check_in, check_positive
from mlsafety.monitoring.backdoor._attack import BackdoorAttack, image_size_error
from mlsafety.registry import BACKDOOR_ATTACKS

POSITIONS = ("bottom_right", "bottom_left", "top_right", "top_left")


@BACKDOOR_ATTACKS.register("badnets")
class BadNets(BackdoorAttack):
    """Patch trigger of Gu et al. (2017), *BadNets: Identifying Vulnerabilities in the
    Machine Learning Model Supply Chain*.

    A ``patch_size`` x ``patch_size`` square placed ``margin`` pixels from a corner
    replaces the pixels under it: ``x' = (1 - m) * x + m * p`` with a binary mask ``m``
    (the square) and pattern ``p`` (a black-and-white checkerboard, or all white).

    Parameters
    ----------
    patch_size : int
        Side of the square in pixels.
    position : {"bottom_right", "bottom_left", "top_right", "top_left"}
        Corner the patch sits in.
    margin : int
        Distance from the image border in pixels.
    pattern : {"checkerboard", "white"}
        Content of the patch (identical on every channel).
    target_class, mapping, poison_rate, seed : see :class:`BackdoorAttack`.

    Raises
    ------
    InvalidParameterError
        If the patch (plus margin) is larger than the image.

    Examples
    --------
    >>> attack = BadNets(patch_size=3, target_class=0)
    >>> poisoned, indices = attack.poison_dataset(train)
    """

    def __init__(self, patch_size: int = 3, position: str = "bottom_right", margin: int = 1,
                 pattern: str = "checkerboard", target_class: int = 0, mapping: str = "all_to_one",
                 poison_rate: float = 0.1, seed: int | None = 0) -> None:
        super().__init__(target_class, mapping, poison_rate, seed)
        self.patch_size = patch_size
        self.position = position
        self.margin = margin
        self.pattern = pattern

    def trigger(self, image_shape: tuple[int, int, int], device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """The mask (1, 1, H, W) and pattern (1, C, H, W) of the trigger."""
        owner = type(self).__name__
        check_positive(self.patch_size, "patch_size", owner, integer=True)
        check_positive(self.margin, "margin", owner, integer=True, allow_zero=True)
        check_in(self.position, POSITIONS, "position", owner)
        check_in(self.pattern, ("checkerboard", "white"), "pattern", owner)
        channels, height, width = image_shape
        size = self.patch_size + self.margin
        if size > height or size > width:
            raise image_size_error(owner, "patch_size", (self.patch_size + self.margin,) * 2, (height, width))
        top = self.margin if self.position.startswith("top") else height - size
        left = self.margin if self.position.endswith("left") else width - size
        mask = torch.zeros(1, 1, height, width, device=device, dtype=dtype)
        mask[..., top:top + self.patch_size, left:left + self.patch_size] = 1.0
        pattern = torch.zeros(1, channels, height, width, device=device, dtype=dtype)
        if self.pattern == "white":
            square = torch.ones(self.patch_size, self.patch_size, device=device, dtype=dtype)
        else:
            index = torch.arange(self.patch_size, device=device)
            # the corner pixel is white, so the patch is visible on dark backgrounds
            square = ((index[:, None] + index[None, :]) % 2 == 0).to(dtype)
        pattern[..., top:top + self.patch_size, left:left + self.patch_size] = square
        return mask, pattern

    def apply_trigger(self, x: torch.Tensor) -> torch.Tensor:
        mask, pattern = self.trigger(tuple(x.shape[1:]), x.device, x.dtype)
        return (1 - mask) * x + mask * pattern
