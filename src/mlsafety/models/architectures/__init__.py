"""Default network architectures for 28-32 px inputs; each registers by name."""

from __future__ import annotations

from typing import Any

from torch import nn

from mlsafety.registry import ARCHITECTURES


def build_architecture(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate the architecture registered as ``name`` (e.g. ``"small_cnn"``)."""
    return ARCHITECTURES.create(name, **kwargs)


__all__ = ["build_architecture"]
