"""The built-in OOD sets: shapes, ranges, determinism and validation/test disjointness."""

from __future__ import annotations

import pytest
import torch

from mlsafety.data.ood import (
    PHOTO_GROUPS,
    TEST_SETS,
    VALIDATION_SETS,
    auxiliary_outliers,
    blobs,
    ood_splits,
    photo_patches,
)
from mlsafety.exceptions import InvalidParameterError


@pytest.fixture(scope="module")
def splits():
    return ood_splits((1, 28, 28), n=200, seed=0)


def test_sets_have_the_requested_shape_and_range(splits) -> None:
    assert tuple(splits["validation"]) == VALIDATION_SETS and tuple(splits["test"]) == TEST_SETS
    for collection in splits.values():
        for data in collection.values():
            assert data.image_shape == (1, 28, 28)
            assert 0 < len(data) <= 200
            assert float(data.images.min()) >= 0 and float(data.images.max()) <= 1
            assert float(data.images.std()) > 0.05, f"{data.name} is almost constant"


def test_validation_and_test_share_no_image(splits) -> None:
    validation = torch.cat([d.images.flatten(1) for d in splits["validation"].values()])
    for name, data in splits["test"].items():
        distances = torch.cdist(data.images.flatten(1), validation)
        assert float(distances.min()) > 1e-3, f"test set {name} repeats a validation image"
    groups = [set(names) for names in PHOTO_GROUPS.values()]
    assert sum(len(g) for g in groups) == len(set().union(*groups)), "photo groups must be disjoint"


def test_same_seed_same_sets_and_rgb() -> None:
    first = photo_patches(PHOTO_GROUPS["test-photos"], 20, (3, 32, 32), seed=3)
    second = photo_patches(PHOTO_GROUPS["test-photos"], 20, (3, 32, 32), seed=3)
    assert torch.equal(first.images, second.images)
    assert first.image_shape == (3, 32, 32)
    assert float((first.images[:, 0] - first.images[:, 2]).abs().max()) > 0.05, "RGB patches keep colour"
    rgb = ood_splits((3, 20, 24), n=30)
    assert all(d.image_shape == (3, 20, 24) for c in rgb.values() for d in c.values())


def test_blobs_are_binary_and_auxiliary_outliers_are_disjoint() -> None:
    images = blobs(10, (1, 28, 28), seed=0).images
    assert set(images.unique().tolist()) <= {0.0, 1.0}
    assert 0.05 < float(images.mean()) < 0.95
    auxiliary = auxiliary_outliers((1, 28, 28), 50)
    assert len(auxiliary) == 50
    assert not set(auxiliary.metadata["sources"]) & set(PHOTO_GROUPS["test-photos"] + PHOTO_GROUPS["validation"])


def test_bad_shape_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match="`image_shape` of ood_splits must be"):
        ood_splits((2, 28, 28))
