"""Agreement with reference implementations: exact for the building blocks (scipy, OpenCV,
PIL, scikit-image, imagecorruptions' helpers) and statistical for whole corruptions
against ``imagecorruptions`` (an anchor installed from requirements/anchors.txt)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from mlsafety.registry import CORRUPTIONS
from mlsafety.robustness.corruptions import _ops
from mlsafety.robustness.corruptions.blur import glass_offsets, glass_shuffle

scipy_ndimage = pytest.importorskip("scipy.ndimage")


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, 37, 41, generator=generator)


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).numpy().astype(np.float64)


@pytest.mark.parametrize("sigma", [0.5, 3.0, 30.0])
@pytest.mark.parametrize("mode", ["nearest", "reflect", "mirror"])
def test_gaussian_filter_matches_scipy(image: torch.Tensor, sigma: float, mode: str) -> None:
    expected = scipy_ndimage.gaussian_filter(_hwc(image), (sigma, sigma, 0), mode=mode, truncate=3.0)
    ours = _hwc(_ops.gaussian_blur_large(image, sigma, mode=mode, truncate=3.0))
    assert np.abs(ours - expected).max() < 1e-5


def test_clipped_zoom_matches_scipy_zoom(image: torch.Tensor) -> None:
    square = image[:, :, :37, :37]
    for zoom in (1.06, 1.13, 1.3):
        crop = int(np.ceil(37 / zoom))
        top = (37 - crop) // 2
        zoomed = scipy_ndimage.zoom(_hwc(square)[top:top + crop, top:top + crop], (zoom, zoom, 1), order=1)
        trim = (zoomed.shape[0] - 37) // 2
        expected = zoomed[trim:trim + 37, trim:trim + 37]
        assert np.abs(_hwc(_ops.clipped_zoom(square, zoom)) - expected).max() < 1e-5


def test_pixelate_matches_pil_box_resampling(image: torch.Tensor) -> None:
    from PIL import Image

    pixels = (_hwc(image) * 255).astype(np.uint8)
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
    for factor in (0.95, 0.6, 0.25):
        small = (int(41 * factor), int(37 * factor))
        expected = np.asarray(Image.fromarray(pixels).resize(small, Image.BOX).resize((41, 37), Image.BOX)) / 255
        ours = _ops.pil_resize(_ops.pil_resize(x, small[1], small[0], "box"), 37, 41, "box")
        assert np.abs(_hwc(ours) - expected).max() <= 1 / 255 + 1e-6  # PIL rounds to 8 bits in between


def test_hsv_corruptions_match_scikit_image() -> None:
    from skimage import color

    generator = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 20, 20, generator=generator)
    x[0, :, :4, :4] = 0.5  # gray pixels
    x[1, :, :3, :3] = 0.0  # black pixels
    for severity in (1, 5):
        shift = CORRUPTIONS.get("brightness")(severity=severity, resolution="imagenet").parameters_for(20, 20)
        hsv = color.rgb2hsv(x.permute(0, 2, 3, 1).numpy())
        hsv[..., 2] = np.clip(hsv[..., 2] + shift, 0, 1)
        ours = CORRUPTIONS.get("brightness")(severity=severity, resolution="imagenet")(x)
        assert np.abs(ours.permute(0, 2, 3, 1).numpy() - color.hsv2rgb(hsv)).max() < 1e-5
        scale, offset = CORRUPTIONS.get("saturate")(severity=severity, resolution="imagenet").parameters_for(20, 20)
        hsv = color.rgb2hsv(x.permute(0, 2, 3, 1).numpy())
        hsv[..., 1] = np.clip(hsv[..., 1] * scale + offset, 0, 1)
        ours = CORRUPTIONS.get("saturate")(severity=severity, resolution="imagenet")(x)
        assert np.abs(ours.permute(0, 2, 3, 1).numpy() - color.hsv2rgb(hsv)).max() < 1e-5


def test_glass_shuffle_matches_the_sequential_loop() -> None:
    x = torch.rand(3, 2, 14, 17, generator=torch.Generator().manual_seed(2))
    for delta, iterations in ((1, 1), (2, 2), (3, 1), (4, 2)):
        ours = glass_shuffle(x, delta, iterations, torch.Generator().manual_seed(5))
        generator = torch.Generator().manual_seed(5)
        n, _, h, w = x.shape
        rows, cols = list(range(h - delta, delta, -1)), list(range(w - delta, delta, -1))
        expected = x.clone()
        all_offsets = glass_offsets(iterations * n, len(rows) * len(cols), delta, generator, "cpu")
        for offsets in all_offsets.view(iterations, n, -1, 2):
            k = 0
            for row in rows:
                for col in cols:
                    for i in range(n):
                        dx, dy = int(offsets[i, k, 0]), int(offsets[i, k, 1])
                        # the published "swap" is a copy for colour images (NumPy views)
                        expected[i, :, row, col] = expected[i, :, row + dy, col + dx]
                    k += 1
        assert torch.equal(ours, expected)


@pytest.fixture(scope="module")
def reference():
    warnings.filterwarnings("ignore", category=UserWarning)
    pytest.importorskip("cv2")
    module = pytest.importorskip("imagecorruptions.corruptions")
    return module


def test_disk_filter_and_motion_blur_match_imagecorruptions(reference, image: torch.Tensor) -> None:
    import cv2

    for radius, alias in ((1.5, 0.1), (6, 0.5), (10, 0.5)):
        kernel = reference.disk(radius, alias)
        assert np.abs(_ops.disk_kernel(float(radius), alias).numpy() - kernel).max() < 1e-6
        expected = cv2.filter2D(_hwc(image).astype(np.float32), -1, kernel)
        assert np.abs(_hwc(_ops.filter2d(image, torch.from_numpy(kernel))) - expected).max() < 1e-5
    for radius, sigma in ((10, 3.0), (20, 15.0)):
        for angle in (-44.0, 10.0, -120.0):
            expected = reference._motion_blur(_hwc(image), radius, sigma, angle)
            ours = _ops.motion_blur(image, radius, sigma, torch.tensor([angle]))
            assert np.abs(_hwc(ours) - expected).max() < 1e-5
    photo = torch.rand(2, 3, 64, 70, generator=torch.Generator().manual_seed(4))
    for method in ("slices", "gather", "fft"):
        for angle in (-44.0, 17.0):
            expected = reference._motion_blur(_hwc(photo[1:]), 15, 8.0, angle)
            ours = _ops.motion_blur(photo, 15, 8.0, torch.tensor([0.0, angle]), method=method)
            assert np.abs(_hwc(ours[1:]) - expected).max() < 1e-5, method
    small = image[:, :, :12, :12]  # streak longer than the image: the published loop stops early
    expected = reference._motion_blur(_hwc(small), 10, 3.0, 30.0)
    assert np.abs(_hwc(_ops.motion_blur(small, 10, 3.0, torch.tensor([30.0]))) - expected).max() < 1e-5


DETERMINISTIC = ["defocus_blur", "zoom_blur", "contrast", "brightness", "pixelate", "jpeg_compression",
                 "saturate"]
STATISTICAL = ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "motion_blur", "snow"]


def test_whole_corruptions_against_imagecorruptions(reference) -> None:
    """Mean absolute change from the clean image agrees within 2% (deterministic corruptions)
    or 10% (random ones) on two 64 px photo patches, ImageNet table (what the package uses)."""
    from PIL import Image
    from skimage import data

    photos = [np.asarray(Image.fromarray(p).resize((64, 64), Image.BILINEAR))
              for p in (data.astronaut(), data.coffee())]
    pixels = np.stack(photos)
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    np.random.seed(0)
    for name in DETERMINISTIC + STATISTICAL:
        for severity in (2, 5):
            theirs = np.stack([np.uint8(reference.__dict__[name](Image.fromarray(p), severity)) for p in pixels])
            ours = CORRUPTIONS.get(name)(severity=severity, seed=0, resolution="imagenet")(x)
            ours = (ours * 255).round().permute(0, 2, 3, 1).numpy()
            mae_theirs = np.abs(theirs / 255 - pixels / 255).mean()
            mae_ours = np.abs(ours / 255 - pixels / 255).mean()
            tolerance = 0.02 if name in DETERMINISTIC else 0.10
            assert abs(mae_ours / mae_theirs - 1) < tolerance, (name, severity, mae_ours, mae_theirs)
