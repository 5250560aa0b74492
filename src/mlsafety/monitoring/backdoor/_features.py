"""Shared helpers of the data-level detectors: features and per-class labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mlsafety._validation import check_is_fitted, check_labels
from mlsafety.exceptions import InvalidInputError, ShapeError

if TYPE_CHECKING:
    from mlsafety.models.classifier import Classifier


def check_features(features: torch.Tensor, name: str = "features") -> torch.Tensor:
    if not isinstance(features, torch.Tensor):
        raise InvalidInputError(f"`{name}` must be a torch.Tensor; got {type(features).__name__}.")
    if features.ndim != 2 or features.shape[0] == 0:
        raise ShapeError(f"`{name}` must have shape (N, D) with N > 0; got {tuple(features.shape)}.")
    if not bool(torch.isfinite(features).all()):
        raise InvalidInputError(f"`{name}` contains NaN or infinite values.")
    return features.float()


def features_and_labels(detector: object, x: torch.Tensor,
                        y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features of ``x`` with the fitted classifier, and labels (``y`` or predictions)."""
    check_is_fitted(detector, "classifier_")
    classifier: Classifier = detector.classifier_  # type: ignore[attr-defined]
    features, logits = classifier.features(x)
    labels = logits.argmax(1) if y is None else check_labels(y, x.shape[0], logits.shape[1]).to(features.device)
    return features, labels
