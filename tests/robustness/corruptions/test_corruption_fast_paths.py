"""The CPU fast paths of the corruptions equal the plain formulations they replace."""

from __future__ import annotations

import pytest
import torch

from mlsafety.registry import CORRUPTIONS
from mlsafety.robustness.corruptions import _ops


def _zoom_blur_by_grid_sample(x: torch.Tensor, zooms: tuple[float, ...]) -> torch.Tensor:
    out = x.clone()
    for zoom in zooms:
        out += x if zoom == 1 else _ops.clipped_zoom(x, float(zoom))
    return out / (len(zooms) + 1)


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (3, 1, 37, 45)])
@pytest.mark.parametrize("resolution", ["cifar", "imagenet"])
def test_sparse_zoom_blur_equals_one_grid_sample_per_zoom(shape: tuple, resolution: str) -> None:
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    for severity in (1, 5):
        zooms = CORRUPTIONS.get("zoom_blur")(severity=severity, resolution=resolution).parameters_for(*shape[-2:])
        expected = _zoom_blur_by_grid_sample(x, zooms)
        assert torch.allclose(_ops.zoom_blur(x, zooms), expected, atol=2e-6, rtol=0)


def test_zoom_blur_matrix_rows_are_averages() -> None:
    # every row holds the weights of a mean of len(zooms) + 1 bilinear samples: they sum to 1
    zooms = (1.0, 1.05, 1.1, 1.2)
    matrix = _ops.zoom_blur_matrix(20, 24, zooms, torch.device("cpu")).to_dense()
    assert torch.allclose(matrix.sum(1), torch.ones(20 * 24), atol=1e-6)
    assert float(matrix.min()) >= 0
    # the identity (twice, as the published code adds the image to the zoom of factor 1) and four taps per zoom
    assert int((matrix != 0).sum(1).max()) <= 4 * (len(zooms) - 1) + 1


def test_scaled_and_limited_poisson_draws_are_the_clipped_counts() -> None:
    from mlsafety.robustness.corruptions.noise import sample_poisson

    rate = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    for offset in (0.0, 0.3 / 255):  # on the 8-bit grid, and off it (arrival counting)
        x = (rate * 255).round() / 255 + offset
        counts = sample_poisson(x * 5, torch.Generator().manual_seed(2), 5.0, 5 / 255)
        scaled = sample_poisson(x * 5, torch.Generator().manual_seed(2), 5.0, 5 / 255, scale=0.2, limit=1.0)
        assert torch.equal(scaled, (counts * 0.2).clamp(max=1.0))
        assert float(counts.max()) * 0.2 > 1  # the limit was reached


@pytest.mark.parametrize("mode", ["nearest", "reflect", "mirror", "wrap"])
def test_padding_by_slices_equals_gathering_every_position(mode: str) -> None:
    x = torch.rand(2, 3, 7, 5, generator=torch.Generator().manual_seed(3))
    for top, bottom, left, right in [(1, 1, 1, 1), (3, 0, 0, 4), (6, 7, 4, 5), (7, 8, 5, 6), (9, 2, 12, 1)]:
        rows = _ops.boundary_index(torch.arange(-top, 7 + bottom), 7, mode)
        cols = _ops.boundary_index(torch.arange(-left, 5 + right), 5, mode)
        expected = x[..., rows, :][..., cols]
        assert torch.equal(_ops.pad(x, top, bottom, left, right, mode), expected), (top, bottom, left, right)


def test_motion_blur_corrupts_large_images_whole_and_small_ones_in_chunks() -> None:
    blur = CORRUPTIONS.get("motion_blur")(severity=2, seed=5, resolution="imagenet")
    calls = []
    corrupt = blur._corrupt
    blur._corrupt = lambda x, params, generator: calls.append(len(x)) or corrupt(x, params, generator)
    for side, expected in ((48, [3]), (20, [1, 1, 1])):
        x = torch.rand(3, 3, side, side, generator=torch.Generator().manual_seed(0))
        blur.chunk_elements = x[0].numel()
        calls.clear()
        chunked = blur(x)
        assert calls == expected
        blur.chunk_elements = None
        assert torch.allclose(chunked, blur(x), atol=1e-6)
