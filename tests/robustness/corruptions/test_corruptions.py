"""The 19 corruptions: registry, contracts, severity behaviour and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlsafety.exceptions import InvalidInputError, InvalidParameterError, ShapeError, UnknownMethodError
from mlsafety.registry import CORRUPTIONS
from mlsafety.robustness.corruptions import (
    BENCHMARK_ORDER,
    SEVERITY_TABLES,
    corruption_names,
    evaluate_corruptions,
    resolution_class,
)

ALL = corruption_names("all")
RANDOM = {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "glass_blur", "motion_blur",
          "snow", "frost", "fog", "spatter", "elastic_transform"}


@pytest.fixture(scope="module")
def gray() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    base = torch.rand(4, 1, 6, 6, generator=generator)
    return torch.nn.functional.interpolate(base, size=(32, 32), mode="bilinear", align_corners=False).clamp(0, 1)


@pytest.fixture(scope="module")
def rgb() -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    base = torch.rand(3, 3, 8, 8, generator=generator)
    return torch.nn.functional.interpolate(base, size=(36, 40), mode="bilinear", align_corners=False).clamp(0, 1)


def test_names_and_groups() -> None:
    assert corruption_names("benchmark") == list(BENCHMARK_ORDER)
    assert corruption_names("holdout") == ["speckle_noise", "gaussian_blur", "spatter", "saturate"]
    assert len(ALL) == 19 and len(set(ALL)) == 19
    for name in ALL:
        group = "benchmark" if name in BENCHMARK_ORDER else "holdout"
        assert CORRUPTIONS.metadata(name)["group"] == group
        assert CORRUPTIONS.get(name).group == group
    with pytest.raises(InvalidParameterError, match="group"):
        corruption_names("common")


def test_tables_cover_every_corruption_and_size_class() -> None:
    for table in SEVERITY_TABLES.values():
        assert set(table) == set(ALL)
        assert all(len(levels) == 5 for levels in table.values())
    assert resolution_class(28, 28) == "cifar"
    assert resolution_class(32, 32) == "cifar"
    assert resolution_class(64, 64) == "tiny_imagenet"
    assert resolution_class(224, 224) == "imagenet"
    # zoom factors equal numpy.arange(1, stop, step) of the published code
    assert SEVERITY_TABLES["imagenet"]["zoom_blur"][4] == pytest.approx(tuple(np.arange(1, 1.31, 0.03)))
    assert SEVERITY_TABLES["imagenet"]["zoom_blur"][0] == pytest.approx(tuple(np.arange(1, 1.11, 0.01)))
    assert SEVERITY_TABLES["cifar"]["zoom_blur"][4] == pytest.approx(tuple(np.arange(1, 1.26, 0.01)))


@pytest.mark.parametrize("name", ALL)
def test_contract_gray_and_rgb(name: str, gray: torch.Tensor, rgb: torch.Tensor) -> None:
    cls = CORRUPTIONS.get(name)
    for images in (gray, rgb):
        before = images.clone()
        out = cls(severity=5, seed=3)(images)
        assert torch.equal(images, before)
        assert out.shape == images.shape and out.dtype == images.dtype
        assert float(out.min()) >= 0 and float(out.max()) <= 1
        assert torch.equal(out, cls(severity=5, seed=3)(images))
        if name != "saturate" or images.shape[1] == 3:
            assert not torch.allclose(out, images), f"{name} left the images unchanged"
    if name in RANDOM:
        assert not torch.equal(cls(severity=3, seed=0)(rgb), cls(severity=3, seed=1)(rgb))


@pytest.mark.parametrize("name", ALL)
def test_dtypes_and_other_channel_counts(name: str, rgb: torch.Tensor) -> None:
    cls = CORRUPTIONS.get(name)
    half = cls(severity=2)(rgb.double())
    assert half.dtype == torch.float64
    two = torch.cat([rgb[:, :2]], 1)
    out = cls(severity=2)(two)
    assert out.shape == two.shape and float(out.min()) >= 0 and float(out.max()) <= 1


def test_severity_increases_the_damage(gray: torch.Tensor, rgb: torch.Tensor) -> None:
    """Mean absolute change from the clean image grows from severity 1 to 5 (elastic is
    excluded: the published CIFAR table trades affine for elastic strength across levels)."""
    for name in ALL:
        if name in ("elastic_transform", "saturate"):
            continue
        cls = CORRUPTIONS.get(name)
        mild = (cls(severity=1, seed=0)(rgb) - rgb).abs().mean()
        strong = (cls(severity=5, seed=0)(rgb) - rgb).abs().mean()
        assert strong > mild, name


def test_bad_input_gets_one_line_errors(rgb: torch.Tensor) -> None:
    for severity in (0, 6, 2.5, True):
        with pytest.raises(InvalidParameterError, match=r"`severity` of Fog must be an integer in 1..5"):
            CORRUPTIONS.get("fog")(severity=severity)
    with pytest.raises(UnknownMethodError, match="Did you mean 'fog'"):
        CORRUPTIONS.get("fgo")
    with pytest.raises(InvalidInputError, match="floating"):
        CORRUPTIONS.get("fog")()((rgb * 255).to(torch.uint8))
    with pytest.raises(InvalidInputError, match="divide by 255"):
        CORRUPTIONS.get("contrast")()(rgb * 255)
    with pytest.raises(ShapeError):
        CORRUPTIONS.get("contrast")()(rgb[0])
    with pytest.raises(InvalidParameterError, match="resolution"):
        CORRUPTIONS.get("snow")(resolution="cifar10")
    message = ""
    try:
        CORRUPTIONS.get("fog")(severity=6)
    except InvalidParameterError as error:
        message = str(error)
    assert "\n" not in message


def test_hand_checked_cases() -> None:
    x = torch.full((1, 3, 32, 32), 0.5)
    x[..., :16] = 0.2
    # contrast: (x - mean) * c + mean with the CIFAR table's c = 0.4 at severity 3
    out = CORRUPTIONS.get("contrast")(severity=3)(x)
    assert torch.allclose(out, (x - 0.35) * 0.4 + 0.35, atol=1e-6)
    # brightness of a gray pixel adds c to every channel
    out = CORRUPTIONS.get("brightness")(severity=5)(x)
    assert torch.allclose(out, x + 0.3, atol=1e-6)
    # zoom blur of a constant image is the same constant; pixelate keeps constants too
    flat = torch.full((2, 1, 30, 30), 0.7)
    for name in ("zoom_blur", "pixelate", "defocus_blur", "gaussian_blur", "glass_blur", "motion_blur"):
        out = CORRUPTIONS.get(name)(severity=5)(flat)
        assert torch.allclose(out, flat, atol=1.5 / 255), name
    # impulse noise replaces about c of the values by 0 or 1 (CIFAR severity 5: 7%)
    big = torch.full((8, 1, 32, 32), 0.5)
    out = CORRUPTIONS.get("impulse_noise")(severity=5, seed=0)(big)
    assert abs(float((out != 0.5).float().mean()) - 0.07) < 0.01


def test_seed_none_draws_fresh_noise(rgb: torch.Tensor) -> None:
    noise = CORRUPTIONS.get("gaussian_noise")(seed=None)
    assert not torch.equal(noise(rgb), noise(rgb))


def test_evaluate_corruptions(tiny_classifier, digits_splits) -> None:
    data = digits_splits["test"].head(120, seed=0)
    result = evaluate_corruptions(tiny_classifier, data, ["gaussian_noise", "contrast"], (1, 5), seed=0,
                                  batch_size=50)
    assert set(result.accuracy) == {"gaussian_noise", "contrast"}
    assert result.matrix().shape == (2, 2)
    assert result.clean_accuracy > 0.8
    assert result.accuracy["contrast"][1] < result.accuracy["contrast"][0] <= result.clean_accuracy + 0.05
    again = evaluate_corruptions(tiny_classifier, data, ["gaussian_noise"], (1, 5), seed=0, batch_size=50)
    assert np.array_equal(again.accuracy["gaussian_noise"], result.accuracy["gaussian_noise"])
    with pytest.raises(InvalidParameterError, match="severities"):
        evaluate_corruptions(tiny_classifier, data, ["fog"], (0,))
