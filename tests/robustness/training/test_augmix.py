"""AugMix: operations against PIL, mixing, the Jensen-Shannon loss, and a short training run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from mlsafety.exceptions import InvalidInputError, InvalidParameterError
from mlsafety.models import Classifier, build_architecture, train_classifier
from mlsafety.robustness.training.augmix import (
    OPERATIONS,
    AugMix,
    AugMixLoss,
    apply_operation_chains,
    jensen_shannon,
)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 8, 8, generator=generator)
    x = F.interpolate(x, size=(24, 24), mode="bilinear", align_corners=False)
    return (x * 200 + 20).round() / 255  # 8-bit values, not the full range


def _pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def _back(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255


def test_pointwise_operations_match_pil(images: torch.Tensor) -> None:
    generator = torch.Generator().manual_seed(0)
    level = torch.full((len(images),), 3.0)
    # equalize and autocontrast per channel as PIL does
    ours = OPERATIONS["equalize"](images, level, generator)
    for i, image in enumerate(images):
        assert torch.allclose(ours[i], _back(ImageOps.equalize(_pil(image))), atol=1e-6)
    ours = OPERATIONS["autocontrast"](images, level, generator)
    for i, image in enumerate(images):
        assert torch.allclose(ours[i], _back(ImageOps.autocontrast(_pil(image))), atol=1.01 / 255)
    # posterize to 4 - int(3 * 4 / 10) = 3 bits, solarize at 256 - int(3 * 256 / 10) = 180
    ours = OPERATIONS["posterize"](images, level, generator)
    for i, image in enumerate(images):
        assert torch.allclose(ours[i], _back(ImageOps.posterize(_pil(image), 3)), atol=1e-6)
    ours = OPERATIONS["solarize"](images, level, generator)
    for i, image in enumerate(images):
        assert torch.allclose(ours[i], _back(ImageOps.solarize(_pil(image), 180)), atol=1e-6)


def test_geometric_operations_move_content(images: torch.Tensor) -> None:
    level = torch.full((len(images),), 3.0)
    for name in ("rotate", "shear_x", "shear_y", "translate_x", "translate_y"):
        out = OPERATIONS[name](images, level, torch.Generator().manual_seed(0))
        assert out.shape == images.shape
        assert not torch.allclose(out, images), name
    # translate by int(3 * 24 / 3 / 10) = 2 pixels exactly
    out = OPERATIONS["translate_x"](images, level, torch.Generator().manual_seed(0))
    shifted_right = torch.allclose(out[0, :, :, 2:], images[0, :, :, :-2], atol=1e-5)
    shifted_left = torch.allclose(out[0, :, :, :-2], images[0, :, :, 2:], atol=1e-5)
    assert shifted_right or shifted_left


def test_augmix_mixture(images: torch.Tensor) -> None:
    augmix = AugMix(seed=0)
    out = augmix(images)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert torch.equal(out, AugMix(seed=0)(images))
    assert not torch.equal(out, AugMix(seed=1)(images))
    assert not torch.allclose(out, images)
    # chains of depth 1 with one operation: exactly that operation (autocontrast is deterministic)
    chains = apply_operation_chains(images, 2, 1, 3.0, ["autocontrast"], torch.Generator().manual_seed(0))
    expected = OPERATIONS["autocontrast"](images, torch.ones(len(images)), torch.Generator())
    assert torch.allclose(chains[0], expected) and torch.allclose(chains[1], expected)
    # the mixture of identical chains and the skip connection stays between image and chain
    mixed = AugMix(width=2, depth=1, operations=["autocontrast"], seed=0)(images)
    low, high = torch.minimum(images, expected), torch.maximum(images, expected)
    assert bool(((mixed >= low - 1e-6) & (mixed <= high + 1e-6)).all())
    # dirichlet weights sum to one, beta weights in [0, 1]
    weights, skip = augmix.mixing_weights(100, torch.Generator().manual_seed(0))
    assert np.allclose(weights.sum(1), 1) and skip.min() >= 0 and skip.max() <= 1


def test_augmix_bad_parameters(images: torch.Tensor) -> None:
    with pytest.raises(InvalidParameterError, match="operations"):
        AugMix(operations=["contrast"])
    with pytest.raises(InvalidParameterError, match="depth"):
        AugMix(depth=0)
    with pytest.raises(InvalidParameterError, match="width"):
        AugMix(width=0)
    with pytest.raises(InvalidInputError):
        AugMix()(images * 255)


def test_jensen_shannon_properties() -> None:
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 4, generator=generator), torch.randn(5, 4, generator=generator)
    assert float(jensen_shannon([a, a, a])) == pytest.approx(0.0, abs=1e-6)
    assert float(jensen_shannon([a, b])) == pytest.approx(float(jensen_shannon([b, a])), abs=1e-6)
    # hand-computed: two point masses on different classes have JS = log 2
    sharp = torch.tensor([[50.0, 0.0]]), torch.tensor([[0.0, 50.0]])
    assert float(jensen_shannon(list(sharp))) == pytest.approx(math.log(2), abs=1e-4)
    three = [torch.tensor([[50.0, 0, 0]]), torch.tensor([[0, 50.0, 0]]), torch.tensor([[0, 0, 50.0]])]
    assert float(jensen_shannon(three)) == pytest.approx(math.log(3), abs=1e-4)


def test_augmix_loss_trains(digits_splits) -> None:
    torch.manual_seed(0)
    train = digits_splits["train"]
    module = build_architecture("small_cnn", in_channels=1, n_classes=10, width=8).eval()
    classifier = Classifier(module, mean=[0.3], std=[0.4], input_shape=(1, 16, 16))
    x, y = train.images[:32], train.labels[:32]
    plain = AugMixLoss(jsd_weight=0.0)
    with torch.no_grad():  # eval mode: batch norm does not mix the three views' statistics
        assert float(plain(classifier, x, y)) == pytest.approx(float(F.cross_entropy(classifier(x), y)), rel=1e-5)
    loss = AugMixLoss(AugMix(seed=0), seed=0)
    history = train_classifier(classifier, train, epochs=3, batch_size=64, learning_rate=1e-2,
                               loss_fn=loss, progress=False, seed=0)
    assert history.train_loss[-1] < history.train_loss[0]
    accuracy = float((classifier.predict(digits_splits["test"].images) == digits_splits["test"].labels).float().mean())
    assert accuracy > 0.6
