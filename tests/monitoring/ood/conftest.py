"""Cached features of the default model for the OOD detector tests (one forward pass)."""

from __future__ import annotations

import pytest

from mlsafety.data import ImageDataset
from mlsafety.data.ood import PHOTO_GROUPS, digits_ood, photo_patches, uniform_noise
from mlsafety.models import Classifier
from mlsafety.monitoring.ood.tuning import FeatureSet


@pytest.fixture(scope="session")
def ood_sets() -> dict[str, ImageDataset]:
    """Small 1x28x28 OOD sets for the default Fashion-MNIST model."""
    shape = (1, 28, 28)
    return {"digits": digits_ood(shape, part="test", n=300),
            "photos": photo_patches(PHOTO_GROUPS["test-photos"], 300, shape, seed=0),
            "uniform-noise": uniform_noise(300, shape, seed=0)}


@pytest.fixture(scope="session")
def cached(default_classifier: Classifier, fashion_small: dict[str, ImageDataset],
           ood_sets: dict[str, ImageDataset]) -> dict[str, FeatureSet]:
    """FeatureSets of the default model: ``fit`` (500 validation images), ``test`` (500 test
    images) and each OOD set -- one forward pass shared by every test."""
    sets = {"fit": fashion_small["validation"], "test": fashion_small["test"], **ood_sets}
    return {name: FeatureSet.compute(default_classifier, data) for name, data in sets.items()}
