"""PixMix and its procedural fractal mixing set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlsafety.exceptions import InvalidInputError, InvalidParameterError
from mlsafety.models import Classifier, build_architecture, train_classifier
from mlsafety.robustness.training.fractals import random_ifs, render_fractals
from mlsafety.robustness.training.pixmix import PixMix, mix_add, mix_multiply, mixing_exponents


def test_ifs_maps_contract() -> None:
    matrices, offsets, probabilities = random_ifs(50, 4, torch.Generator().manual_seed(0))
    singular = torch.linalg.svdvals(matrices)
    assert float(singular.max()) < 0.86 and float(singular.min()) > 0.24
    assert torch.allclose(probabilities.sum(-1), torch.ones(50))
    assert offsets.abs().max() <= 1


def test_fractals_are_structured_pictures() -> None:
    pictures = render_fractals(12, 32, seed=0)
    assert pictures.shape == (12, 3, 32, 32)
    assert float(pictures.min()) >= 0 and float(pictures.max()) <= 1
    covered = (pictures.amax(1) > 0.05).float().mean((1, 2))
    assert float(covered.min()) > 0.002 and float(covered.max()) < 0.95
    assert torch.equal(pictures, render_fractals(12, 32, seed=0))
    assert not torch.equal(pictures, render_fractals(12, 32, seed=1))
    gray = render_fractals(3, 16, channels=1, seed=0)
    assert gray.shape == (3, 1, 16, 16)


def test_mixing_formulas_by_hand() -> None:
    x, y = torch.tensor([0.25]), torch.tensor([0.75])
    a, b = torch.tensor([0.6]), torch.tensor([0.3])
    # additive: ((0.6 * -0.5 + 0.3 * 0.5) + 1) / 2
    assert float(mix_add(x, y, a, b)) == pytest.approx((0.6 * -0.5 + 0.3 * 0.5 + 1) / 2)
    # multiplicative: 0.5^0.6 * 1.5^0.3 / 2
    assert float(mix_multiply(x, y, a, b)) == pytest.approx(0.5**0.6 * 1.5**0.3 / 2)
    a, b = mixing_exponents(10000, 3.0, np.random.default_rng(0))
    interpolate = b > 0
    assert 0.45 < interpolate.mean() < 0.55
    assert np.all((a[interpolate] > 0) & (a[interpolate] < 1)) and np.all(a[~interpolate] > 1)
    assert np.all(b[~interpolate] < 0)
    # E[Beta(3, 1)] = 3/4
    assert a[interpolate].mean() == pytest.approx(0.75, abs=0.02)


def test_pixmix_outputs(digits_splits) -> None:
    x = digits_splits["test"].images[:40]
    pixmix = PixMix(n_pictures=16, seed=0)
    out = pixmix(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert torch.equal(out, PixMix(n_pictures=16, seed=0)(x))
    changed = (out - x).abs().flatten(1).amax(1) > 1e-6
    assert 0.5 < float(changed.float().mean()) < 1.0  # some images draw zero mixing rounds and no augmentation
    rgb = PixMix(n_pictures=8, seed=0)(torch.rand(5, 3, 20, 24))
    assert rgb.shape == (5, 3, 20, 24)
    own = PixMix(mixing_set=torch.rand(4, 1, 8, 8), seed=0)(x[:5])
    assert own.shape == x[:5].shape
    with pytest.raises(InvalidParameterError, match="operations"):
        PixMix(operations=[])
    with pytest.raises(InvalidInputError, match="channels"):
        PixMix(mixing_set=torch.rand(2, 2, 20, 20))(torch.rand(2, 3, 16, 16))


def test_pixmix_as_training_augmentation(digits_splits) -> None:
    torch.manual_seed(0)
    module = build_architecture("small_cnn", in_channels=1, n_classes=10, width=8).eval()
    classifier = Classifier(module, mean=[0.3], std=[0.4], input_shape=(1, 16, 16))
    history = train_classifier(classifier, digits_splits["train"], epochs=3, batch_size=64, learning_rate=1e-2,
                               augment=PixMix(n_pictures=16, seed=0), progress=False, seed=0)
    assert history.train_loss[-1] < history.train_loss[0]
    test = digits_splits["test"]
    assert float((classifier.predict(test.images) == test.labels).float().mean()) > 0.6
