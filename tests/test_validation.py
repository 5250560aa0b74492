"""Shared input validation: each bad input gets a one-line error that names the fix."""

from __future__ import annotations

import pytest
import torch

from mlsafety._validation import (
    check_fraction,
    check_images,
    check_is_fitted,
    check_labels,
    check_logits,
    check_positive,
    make_generator,
)
from mlsafety.exceptions import InvalidInputError, InvalidParameterError, NotFittedError, ShapeError


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (torch.rand(3, 8, 8), ShapeError, r"unsqueeze\(0\)"),
        (torch.rand(2, 1, 8, 8) * 255, InvalidInputError, "divide by 255"),
        (torch.rand(2, 1, 8, 8) - 0.5, InvalidInputError, "normalised"),
        (torch.full((2, 1, 8, 8), float("nan")), InvalidInputError, "NaN"),
        (torch.zeros(2, 1, 8, 8, dtype=torch.uint8), InvalidInputError, "floating"),
        (torch.zeros(0, 1, 8, 8), ShapeError, "empty"),
    ],
)
def test_bad_images(x, error, match) -> None:
    with pytest.raises(error, match=match) as info:
        check_images(x)
    assert "\n" not in str(info.value)


def test_labels() -> None:
    assert check_labels(torch.tensor([0.0, 2.0]), 2, 3).dtype == torch.long
    with pytest.raises(InvalidInputError, match=r"valid labels are 0\.\.2"):
        check_labels(torch.tensor([0, 3]), n_classes=3)
    with pytest.raises(InvalidInputError, match="negative"):
        check_labels(torch.tensor([-1, 0]))
    with pytest.raises(ShapeError, match="one-hot"):
        check_labels(torch.eye(3))


def test_probabilities_passed_as_logits() -> None:
    logits = torch.randn(5, 4)
    assert torch.equal(check_logits(logits), logits)
    with pytest.raises(InvalidInputError, match="looks like probabilities"):
        check_logits(logits.softmax(1))
    with pytest.raises(InvalidInputError, match="NaN"):
        check_logits(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ShapeError):
        check_logits(torch.randn(5))


def test_parameters_and_fitted() -> None:
    with pytest.raises(InvalidParameterError, match=r"`rate` of Owner must be a number in \(0, 1\); got 1.5"):
        check_fraction(1.5, "rate", "Owner")
    with pytest.raises(InvalidParameterError, match="integer > 0"):
        check_positive(0, "n", "Owner", integer=True)

    class Estimator:
        mean_ = None

    with pytest.raises(NotFittedError, match="call fit"):
        check_is_fitted(Estimator(), "mean_")


def test_generator_is_seeded() -> None:
    a = torch.rand(3, generator=make_generator(5))
    b = torch.rand(3, generator=make_generator(5))
    assert torch.equal(a, b)
