"""Synthetic logits whose true calibration map is known (shared by the calibration tests)."""

from __future__ import annotations

import torch


def synthetic(n: int, k: int, seed: int, sharpen: float = 2.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels drawn from softmax(z), logits returned as ``sharpen * z``: over-confident by a
    known temperature (``sharpen``)."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, k, generator=generator, dtype=torch.float64) * 1.5
    labels = torch.multinomial(torch.softmax(z, 1), 1, generator=generator).squeeze(1)
    return z * sharpen, labels
