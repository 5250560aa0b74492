"""Adversarial JPEG: offsets of the 8x8 block-DCT coefficients, in quantisation steps."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F

from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks.unforeseen._base import State, UnforeseenAttack

# The luminance quantisation table of the JPEG standard (ITU-T T.81, Annex K, Table K.1), quality 50.
_LUMINANCE_TABLE = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]


def dct_matrix(size: int = 8, device: torch.device | None = None) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``D`` (``D @ block @ D.T`` is the 2-D DCT used by JPEG)."""
    k = torch.arange(size, device=device, dtype=torch.float32)[:, None]
    n = torch.arange(size, device=device, dtype=torch.float32)[None, :]
    matrix = torch.cos(math.pi * (2 * n + 1) * k / (2 * size)) * math.sqrt(2 / size)
    matrix[0] /= math.sqrt(2)
    return matrix


@ATTACKS.register("jpeg", threat_models=("unforeseen",), black_box=False, family="unforeseen")
class JPEG(UnforeseenAttack):
    """Adversarial JPEG artefacts (Kang et al. 2019; Kaufmann et al. 2023, "Testing Robustness
    Against Unforeseen Adversaries").

    The image is cut into 8x8 blocks (edge-padded), each block's orthonormal DCT coefficients
    ``c = D B D^T`` are offset by ``z * Q / 255`` with ``Q`` the JPEG luminance quantisation
    table and ``|z| <= epsilon``, and the block is transformed back:

    .. math:: x' = \\mathrm{clip}_{[0,1]}\\big(D^T (D B D^T + z \\odot Q/255) D\\big)

    so ``epsilon`` is the largest offset of a coefficient in JPEG quantisation steps (quality
    50): the rounding error of real JPEG is at most 0.5 steps. Every channel uses the
    luminance table. Parameters as in :class:`~mlsafety.robustness.attacks.unforeseen.UnforeseenAttack`.

    Examples
    --------
    >>> x_adv = JPEG(level="medium")(images, labels, classifier)
    """

    levels: ClassVar[dict[str, float]] = {"low": 0.125, "medium": 0.25, "high": 0.5}
    max_epsilon = 8.0
    budget_meaning = "largest DCT-coefficient offset, in JPEG quantisation steps"

    @staticmethod
    def _blocks(x: torch.Tensor) -> tuple[int, int]:
        return math.ceil(x.shape[-2] / 8), math.ceil(x.shape[-1] / 8)

    def latent_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        rows, cols = self._blocks(x)
        return (x.shape[0], x.shape[1], rows, cols, 8, 8)

    def setup(self, x: torch.Tensor, generator: torch.Generator) -> State:
        table = torch.tensor(_LUMINANCE_TABLE, device=x.device, dtype=x.dtype).view(8, 8) / 255
        return {"dct": dct_matrix(8, x.device).to(x.dtype), "table": table}

    def render(self, x: torch.Tensor, latent: torch.Tensor, state: State, epsilon: float) -> torch.Tensor:
        n, c, h, w = x.shape
        rows, cols = self._blocks(x)
        padded = F.pad(x, (0, cols * 8 - w, 0, rows * 8 - h), mode="replicate")
        blocks = padded.view(n, c, rows, 8, cols, 8).permute(0, 1, 2, 4, 3, 5)
        d = state["dct"]
        coefficients = d @ blocks @ d.T + latent * state["table"]
        blocks = d.T @ coefficients @ d
        image = blocks.permute(0, 1, 2, 4, 3, 5).reshape(n, c, rows * 8, cols * 8)[..., :h, :w]
        return image.clamp(0.0, 1.0)
