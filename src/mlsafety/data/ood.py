"""Out-of-distribution (OOD) sets built offline for any image shape.

Three families, all generated from data that ships with mlsafety's dependencies:

* **near-OOD** -- scikit-learn's handwritten digits resized to the model's resolution
  (the classic Fashion-MNIST vs MNIST pairing);
* **far-OOD** -- random patches of scikit-image's bundled photographs and textures,
  converted to grayscale for 1-channel models and kept RGB otherwise;
* **synthetic** -- Gaussian noise, uniform noise and blobs (smoothed, thresholded noise,
  as in Hendrycks et al., 2019, "Deep Anomaly Detection with Outlier Exposure").

:func:`ood_splits` returns a *validation* OOD collection (for tuning detector
hyperparameters) and a *test* OOD collection (for reporting) that share no image: the digits
are split in two halves, the photographs are split by source image, and the synthetic
sets use different seeds. :func:`auxiliary_outliers` draws from a third, disjoint group of
photographs for training-time methods such as Outlier Exposure.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from mlsafety._validation import check_in, check_positive, make_generator
from mlsafety.data.dataset import ImageDataset
from mlsafety.data.digits import load_digits
from mlsafety.exceptions import InvalidParameterError, parameter_error

OOD_CLASS_NAMES = ["ood"]
"""Every OOD set has one dummy class (label 0): OOD images have no in-distribution label."""

# Source images of scikit-image (bundled in its wheel, no download), split into three
# disjoint groups. ``cat`` is left out: it is the same photograph as ``chelsea``.
PHOTO_GROUPS: dict[str, tuple[str, ...]] = {
    "test-photos": ("camera", "coffee", "chelsea", "moon", "hubble_deep_field", "immunohistochemistry"),
    "test-textures": ("brick", "gravel"),
    "validation": ("astronaut", "rocket", "coins", "clock", "page", "grass"),
    "auxiliary": ("retina", "cell", "text", "colorwheel", "microaneurysms", "shepp_logan_phantom"),
}

TEST_SETS = ("digits", "photos", "textures", "gaussian-noise", "uniform-noise", "blobs")
VALIDATION_SETS = ("digits", "photos", "noise")


@lru_cache(maxsize=32)
def _source_image(name: str) -> torch.Tensor:
    """A scikit-image sample as a float (3, H, W) tensor in [0, 1]."""
    import skimage.data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        array = np.asarray(getattr(skimage.data, name)())
    if array.dtype == bool:
        array = array.astype(np.float32)
    elif array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    else:
        array = array.astype(np.float32)
        array = (array - array.min()) / max(float(array.max() - array.min()), 1e-8)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    array = array[..., :3]  # drop an alpha channel
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).clamp(0, 1)


def _match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert (N, 3, H, W) RGB to ``channels`` (ITU-R 601 luminance for grayscale)."""
    if channels == 3:
        return images
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype).view(1, 3, 1, 1)
    gray = (images * weights).sum(1, keepdim=True)
    return gray.expand(-1, channels, -1, -1).contiguous() if channels > 1 else gray


def _check_shape(image_shape: Sequence[int], owner: str) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or shape[0] not in (1, 3) or shape[1] < 4 or shape[2] < 4:
        raise parameter_error("image_shape", owner, "(C, H, W) with C in {1, 3} and H, W >= 4", image_shape,
                              "Pass data.image_shape of the in-distribution data.")
    return shape  # type: ignore[return-value]


def photo_patches(names: Sequence[str], n: int, image_shape: Sequence[int], *, seed: int = 0,
                  min_crop: int = 32, max_crop: int = 160, name: str = "photos") -> ImageDataset:
    """Random square crops of the named scikit-image samples, resized to ``image_shape``.

    Each patch picks a source image uniformly, a side in [min_crop, max_crop] (capped by
    the image) and a position, all from ``seed``; crops are resized with anti-aliasing.
    """
    c, h, w = _check_shape(image_shape, "photo_patches")
    check_positive(n, "n", "photo_patches", integer=True)
    if not names:
        raise InvalidParameterError("`names` of photo_patches must list at least one scikit-image sample.")
    rng = np.random.default_rng(seed)
    sources = [_source_image(s) for s in names]
    patches = []
    for index in rng.integers(0, len(sources), size=n):
        source = sources[index]
        side_cap = min(source.shape[1], source.shape[2], max_crop)
        side = int(rng.integers(min(min_crop, side_cap), side_cap + 1))
        top = int(rng.integers(0, source.shape[1] - side + 1))
        left = int(rng.integers(0, source.shape[2] - side + 1))
        crop = source[:, top:top + side, left:left + side].unsqueeze(0)
        patches.append(F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False,
                                     antialias=side > min(h, w)))
    images = _match_channels(torch.cat(patches).clamp_(0, 1), c)
    return ImageDataset(images, torch.zeros(n, dtype=torch.long), list(OOD_CLASS_NAMES), name,
                        {"family": "far-ood", "sources": list(names), "seed": seed})


def gaussian_noise(n: int, image_shape: Sequence[int], *, seed: int = 0, mean: float = 0.5,
                   std: float = 0.25, name: str = "gaussian-noise") -> ImageDataset:
    """i.i.d. N(mean, std²) pixels clipped to [0, 1]."""
    shape = _check_shape(image_shape, "gaussian_noise")
    check_positive(n, "n", "gaussian_noise", integer=True)
    generator = make_generator(seed)
    images = (torch.randn((n, *shape), generator=generator) * std + mean).clamp_(0, 1)
    return ImageDataset(images, torch.zeros(n, dtype=torch.long), list(OOD_CLASS_NAMES), name,
                        {"family": "synthetic", "seed": seed})


def uniform_noise(n: int, image_shape: Sequence[int], *, seed: int = 0,
                  name: str = "uniform-noise") -> ImageDataset:
    """i.i.d. U(0, 1) pixels."""
    shape = _check_shape(image_shape, "uniform_noise")
    check_positive(n, "n", "uniform_noise", integer=True)
    images = torch.rand((n, *shape), generator=make_generator(seed))
    return ImageDataset(images, torch.zeros(n, dtype=torch.long), list(OOD_CLASS_NAMES), name,
                        {"family": "synthetic", "seed": seed})


def blobs(n: int, image_shape: Sequence[int], *, seed: int = 0, sigma: float | None = None,
          name: str = "blobs") -> ImageDataset:
    """Binary blobs: Bernoulli(0.7) noise smoothed by a Gaussian of width ``sigma`` and
    thresholded at 0.75 (the "Blobs" outliers of Hendrycks et al., 2019), per channel.

    ``sigma`` defaults to 5% of the image side.
    """
    c, h, w = _check_shape(image_shape, "blobs")
    check_positive(n, "n", "blobs", integer=True)
    sigma = float(sigma) if sigma is not None else max(1.0, 0.05 * min(h, w))
    generator = make_generator(seed)
    noise = (torch.rand((n * c, 1, h, w), generator=generator) < 0.7).float()
    radius = max(1, int(3 * sigma))
    grid = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(grid**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    smooth = F.conv2d(F.pad(noise, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    smooth = F.conv2d(F.pad(smooth, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))
    images = (smooth > 0.75).float().view(n, c, h, w)
    return ImageDataset(images, torch.zeros(n, dtype=torch.long), list(OOD_CLASS_NAMES), name,
                        {"family": "synthetic", "seed": seed})


def digits_ood(image_shape: Sequence[int], *, part: str = "all", seed: int = 0,
               n: int | None = None, name: str = "digits") -> ImageDataset:
    """scikit-learn's handwritten digits at the given shape, as near-OOD for Fashion-MNIST.

    ``part`` is ``"validation"`` or ``"test"`` (two disjoint halves chosen with ``seed``) or
    ``"all"``.
    """
    c, h, w = _check_shape(image_shape, "digits_ood")
    check_in(part, {"all", "validation", "test"}, "part", "digits_ood")
    digits = load_digits(size=8)
    images = F.interpolate(digits.images, size=(h, w), mode="bilinear", align_corners=False).clamp_(0, 1)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    half = len(order) // 2
    index = {"all": order, "validation": order[:half], "test": order[half:]}[part].sort().values
    if n is not None:
        index = index[:n]
    images = images[index].expand(-1, c, -1, -1).contiguous()
    return ImageDataset(images, torch.zeros(len(index), dtype=torch.long), list(OOD_CLASS_NAMES), name,
                        {"family": "near-ood", "part": part, "seed": seed})


def ood_splits(image_shape: Sequence[int], n: int = 1000, *, seed: int = 0,
               include_digits: bool = True) -> dict[str, dict[str, ImageDataset]]:
    """Disjoint validation and test OOD collections matching ``image_shape``.

    Parameters
    ----------
    image_shape : (C, H, W) of the in-distribution data; C in {1, 3}.
    n : images per set (the digits sets hold at most 898 and 899 images).
    seed : seeds every random choice.
    include_digits : leave the digits out (e.g. when the in-distribution data are digits).

    Returns
    -------
    {"validation": {name: ImageDataset}, "test": {name: ImageDataset}}
        Validation: ``digits`` (one half), ``photos`` (patches of a disjoint group of
        scikit-image samples, textures included) and ``noise`` (Gaussian, uniform and blobs
        drawn with other seeds). Test: ``digits`` (other half), ``photos``, ``textures``,
        ``gaussian-noise``, ``uniform-noise``, ``blobs``. No image appears in both.
    """
    shape = _check_shape(image_shape, "ood_splits")
    check_positive(n, "n", "ood_splits", integer=True)
    validation: dict[str, ImageDataset] = {}
    test: dict[str, ImageDataset] = {}
    if include_digits:
        validation["digits"] = digits_ood(shape, part="validation", seed=seed, n=n, name="digits-val")
        test["digits"] = digits_ood(shape, part="test", seed=seed, n=n, name="digits")
    validation["photos"] = photo_patches(PHOTO_GROUPS["validation"], n, shape, seed=seed + 101, name="photos-val")
    thirds = [n // 3 + (1 if i < n % 3 else 0) for i in range(3)]
    parts = [gaussian_noise(thirds[0], shape, seed=seed + 201), uniform_noise(thirds[1], shape, seed=seed + 202),
             blobs(thirds[2], shape, seed=seed + 203)]
    validation["noise"] = ImageDataset(torch.cat([p.images for p in parts]), torch.zeros(n, dtype=torch.long),
                                       list(OOD_CLASS_NAMES), "noise-val", {"family": "synthetic"})
    test["photos"] = photo_patches(PHOTO_GROUPS["test-photos"], n, shape, seed=seed + 1, name="photos")
    test["textures"] = photo_patches(PHOTO_GROUPS["test-textures"], n, shape, seed=seed + 2, name="textures")
    test["gaussian-noise"] = gaussian_noise(n, shape, seed=seed + 3)
    test["uniform-noise"] = uniform_noise(n, shape, seed=seed + 4)
    test["blobs"] = blobs(n, shape, seed=seed + 5)
    return {"validation": validation, "test": test}


def auxiliary_outliers(image_shape: Sequence[int], n: int = 5000, *, seed: int = 0) -> ImageDataset:
    """Outliers for training-time methods (Outlier Exposure): patches of a third group of
    scikit-image samples, disjoint from every validation and test set of :func:`ood_splits`
    (no digits, no noise, so test-time gains are not bought by training on the test families)."""
    return photo_patches(PHOTO_GROUPS["auxiliary"], n, image_shape, seed=seed + 1000, min_crop=16,
                         name="auxiliary-outliers")
