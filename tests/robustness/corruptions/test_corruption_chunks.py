"""The CPU execution details of the Corruption base class change nothing a user can see:
corrupting in chunks gives the deterministic corruptions' exact result, a channels-last input
gives the same result as a contiguous one, and the caller's tensor is never written."""

from __future__ import annotations

import pytest
import torch

from mlsafety.registry import CORRUPTIONS
from mlsafety.robustness.corruptions import corruption_names

DETERMINISTIC = ["defocus_blur", "zoom_blur", "gaussian_blur", "contrast", "brightness", "pixelate",
                 "jpeg_compression", "saturate"]


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(6, 3, 40, 40, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_chunked_equals_whole_batch_for_deterministic_corruptions(name: str, images: torch.Tensor) -> None:
    whole = CORRUPTIONS.get(name)(severity=4, resolution="imagenet")
    whole.chunk_elements = None
    chunked = CORRUPTIONS.get(name)(severity=4, resolution="imagenet")
    chunked.chunk_elements = 2 * images[0].numel()  # three chunks of two images
    assert torch.allclose(chunked(images), whole(images), atol=1e-6)


@pytest.mark.parametrize("name", corruption_names("all"))
def test_chunking_keeps_seeding_bounds_and_input(name: str, images: torch.Tensor) -> None:
    corruption = CORRUPTIONS.get(name)(severity=3, seed=7, resolution="imagenet")
    corruption.chunk_elements = 2 * images[0].numel()
    before = images.clone()
    first, second = corruption(images), corruption(images)
    assert torch.equal(images, before)
    assert torch.equal(first, second)
    assert first.shape == images.shape and first.is_contiguous()
    assert float(first.min()) >= 0 and float(first.max()) <= 1


@pytest.mark.parametrize("name", corruption_names("all"))
def test_channels_last_input_gives_the_contiguous_result(name: str, images: torch.Tensor) -> None:
    corruption = CORRUPTIONS.get(name)(severity=2, seed=3, resolution="imagenet")
    channels_last = images.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    assert not channels_last.is_contiguous()
    assert torch.equal(corruption(channels_last), corruption(images))
