"""WaNet: an imperceptible warping-based trigger."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mlsafety._validation import check_positive
from mlsafety.monitoring.backdoor._attack import BackdoorAttack, image_size_error
from mlsafety.registry import BACKDOOR_ATTACKS


@BACKDOOR_ATTACKS.register("wanet")
class WaNet(BackdoorAttack):
    """Warping trigger of Nguyen and Tran (2021), *WaNet -- Imperceptible Warping-based
    Backdoor Attack* (ICLR).

    A random control grid ``P`` of shape (2, k, k), uniform in [-1, 1] and normalised by
    its mean absolute value, is upsampled (bicubic) to the image size and added to the
    identity sampling grid with strength ``s``:
    ``grid = clip(identity + s * upsample(P) / H, -1, 1)``; ``x' = grid_sample(x, grid)``.
    The field is drawn once from ``seed``, so the trigger is the same for every image.

    This implementation does not include the paper's "noise mode" (training on randomly
    warped images with their true labels), which makes the backdoor harder to detect but
    is not needed to implant it.

    Parameters
    ----------
    grid_size : int
        ``k``, the control-grid resolution (the paper uses 4).
    strength : float
        ``s``, the warping strength (the paper uses 0.5 on CIFAR-10).
    target_class, mapping, poison_rate, seed : see :class:`BackdoorAttack`.

    Raises
    ------
    InvalidParameterError
        If the control grid is larger than the image.
    """

    def __init__(self, grid_size: int = 4, strength: float = 0.5, target_class: int = 0,
                 mapping: str = "all_to_one", poison_rate: float = 0.1, seed: int | None = 0) -> None:
        super().__init__(target_class, mapping, poison_rate, seed)
        self.grid_size = grid_size
        self.strength = strength

    def grid(self, height: int, width: int, device: torch.device | str = "cpu",
             dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The warped sampling grid (1, H, W, 2) in grid_sample coordinates."""
        owner = type(self).__name__
        check_positive(self.grid_size, "grid_size", owner, integer=True)
        check_positive(self.strength, "strength", owner)
        if self.grid_size > min(height, width):
            raise image_size_error(owner, "grid_size", (self.grid_size,) * 2, (height, width))
        generator = torch.Generator().manual_seed(0 if self.seed is None else int(self.seed))
        control = torch.rand(1, 2, self.grid_size, self.grid_size, generator=generator, dtype=torch.float64) * 2 - 1
        control = control / control.abs().mean()
        field = F.interpolate(control, size=(height, width), mode="bicubic", align_corners=True)
        field = field.permute(0, 2, 3, 1)
        rows = torch.linspace(-1, 1, height, dtype=torch.float64)
        cols = torch.linspace(-1, 1, width, dtype=torch.float64)
        grid_y, grid_x = torch.meshgrid(rows, cols, indexing="ij")
        identity = torch.stack((grid_x, grid_y), dim=-1).unsqueeze(0)
        warped = (identity + self.strength * field / height).clamp(-1, 1)
        return warped.to(device=device, dtype=dtype)

    def apply_trigger(self, x: torch.Tensor) -> torch.Tensor:
        grid = self.grid(x.shape[2], x.shape[3], x.device, x.dtype).expand(x.shape[0], -1, -1, -1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
