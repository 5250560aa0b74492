"""The accuracy check against a hand-computed confusion matrix."""

from __future__ import annotations

import torch
from torch import nn

from mlsafety.audit import AuditContext
from mlsafety.audit.checks.accuracy import AccuracyCheck
from mlsafety.data import ImageDataset
from mlsafety.models import Classifier


class _Lookup(nn.Module):
    """Predicts the class stored in the first pixel (so predictions are chosen by the test)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(1, 1)  # unused; gives the model a parameter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot((x[:, 0, 0, 0] * 2).round().long(), 3).float() * 5 - 1


def test_accuracy_check_hand_computed() -> None:
    predicted = torch.tensor([0, 0, 1, 1, 2, 0, 1])
    labels = torch.tensor([0, 0, 1, 2, 2, 2, 2])
    images = torch.zeros(7, 1, 2, 2)
    images[:, 0, 0, 0] = predicted.float() / 2
    data = ImageDataset(images, labels, ["a", "b", "c"])
    result = AccuracyCheck().run(AuditContext(Classifier(_Lookup()), data))
    assert abs(result.metrics["accuracy"] - 4 / 7) < 1e-9
    assert abs(result.metrics["balanced_accuracy"] - (1 + 1 + 1 / 4) / 3) < 1e-9
    assert result.details["confusion_matrix"] == [[2, 0, 0], [0, 1, 0], [1, 2, 1]]
    assert result.verdict == "warn" and "c" in result.warnings[0]
