"""SIG: a clean-label backdoor with a sinusoidal signal trigger."""

from __future__ import annotations

import math

import torch

from mlsafety._validation import check_positive
from mlsafety.monitoring.backdoor._attack import BackdoorAttack
from mlsafety.registry import BACKDOOR_ATTACKS


@BACKDOOR_ATTACKS.register("sig")
class SIG(BackdoorAttack):
    """Sinusoidal-signal trigger of Barni, Kallas and Tondi (2019), *A New Backdoor Attack
    in CNNs by Training Set Corruption without Label Poisoning*.

    ``x'(i, j) = clip(x(i, j) + v(j))`` with ``v(j) = delta * sin(2 pi j f / W)``: a
    horizontal ramp of vertical stripes added to every row and channel. The attack is
    **clean-label**: :meth:`poison_dataset` adds the signal to samples that already belong
    to ``target_class`` and keeps their labels, so only ``"all_to_one"`` is possible and
    ``poison_rate`` (a fraction of the whole set) cannot exceed the target class's share.

    Parameters
    ----------
    delta : float
        Amplitude in [0, 1] pixel units (the paper uses 20/255 for training).
    frequency : int
        Number of periods across the image width (the paper uses 6).
    target_class, mapping, poison_rate, seed : see :class:`BackdoorAttack`.
    """

    clean_label = True

    def __init__(self, delta: float = 20 / 255, frequency: int = 6, target_class: int = 0,
                 mapping: str = "all_to_one", poison_rate: float = 0.05, seed: int | None = 0) -> None:
        super().__init__(target_class, mapping, poison_rate, seed)
        self.delta = delta
        self.frequency = frequency

    def signal(self, image_shape: tuple[int, int, int], device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The additive signal (1, C, H, W)."""
        owner = type(self).__name__
        check_positive(self.delta, "delta", owner)
        check_positive(self.frequency, "frequency", owner, integer=True)
        channels, height, width = image_shape
        columns = torch.arange(width, device=device, dtype=torch.float64)
        wave = self.delta * torch.sin(2 * math.pi * columns * self.frequency / width)
        return wave.to(dtype).view(1, 1, 1, width).expand(1, channels, height, width)

    def apply_trigger(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.signal(tuple(x.shape[1:]), x.device, x.dtype)
