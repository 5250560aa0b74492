"""Fixtures of the attack tests: a small digits batch and a deliberately gradient-masked model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mlsafety.models import Classifier


@pytest.fixture(scope="session")
def batch(digits_splits) -> tuple[torch.Tensor, torch.Tensor]:
    test = digits_splits["test"]
    return test.images[:64].clone(), test.labels[:64].clone()


class Quantise(nn.Module):
    """Rounds pixels to 4 levels: non-differentiable, so input gradients are exactly zero."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * 3) / 3


@pytest.fixture(scope="session")
def masked_classifier(tiny_classifier) -> Classifier:
    """The tiny digits model behind an input quantisation (a classic gradient-masking defence)."""
    module = nn.Sequential(Quantise(), tiny_classifier.normalize, tiny_classifier.module).eval()
    return Classifier(module, class_names=tiny_classifier.class_names, input_shape=(1, 16, 16), name="masked")
