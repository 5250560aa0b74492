"""Spatial attacks: the warp against exact rotations and shifts, strength against budget, errors."""

from __future__ import annotations

import pytest
import torch

from mlsafety.exceptions import InvalidParameterError, MLSafetyError
from mlsafety.robustness.attacks.spatial import Spatial, rotate_translate


def test_warp_matches_exact_rotations_and_shifts() -> None:
    x = torch.rand(2, 1, 9, 9, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(rotate_translate(x, torch.zeros(2, 3), 30, 0.1), x, atol=1e-5)
    quarter = rotate_translate(x, torch.tensor([[1.0, 0, 0]] * 2), 90, 0.1)
    assert any(torch.allclose(quarter, torch.rot90(x, k, (2, 3)), atol=1e-4) for k in (1, -1))
    # a shift by one third of 9 px = 3 px, zero-filled
    shifted = rotate_translate(x, torch.tensor([[0.0, 0, 1]] * 2), 0, 1 / 3)
    assert torch.allclose(shifted[..., 3:], x[..., :-3], atol=1e-5)
    assert float(shifted[..., :3].abs().max()) < 1e-6


@pytest.fixture(scope="module")
def spatial_results(tiny_classifier, batch) -> dict[str, float]:
    x, y = batch[0][:48], batch[1][:48]

    def accuracy(attack: Spatial) -> float:
        adversarial = attack(x, y, tiny_classifier)
        assert adversarial.shape == x.shape and float(adversarial.min()) >= 0 and float(adversarial.max()) <= 1
        return float((tiny_classifier.predict(adversarial) == y).float().mean())

    small = {"max_rotation": 3.0, "max_translation": 0.02}
    return {
        "clean": float((tiny_classifier.predict(x) == y).float().mean()),
        "grid_small": accuracy(Spatial(method="grid", n_rotations=7, n_translations=3, **small)),
        "grid": accuracy(Spatial(method="grid", n_rotations=7, n_translations=3)),
        "worst_of_k": accuracy(Spatial(method="worst_of_k", n_samples=10)),
        "gradient": accuracy(Spatial(method="gradient", n_steps=5)),
    }


def test_success_rises_with_budget(spatial_results) -> None:
    r = spatial_results
    assert r["grid"] < r["grid_small"] - 0.1
    assert r["grid"] < r["clean"] - 0.2
    for method in ("worst_of_k", "gradient"):
        assert r[method] < r["clean"] - 0.05, method


def test_seeded_and_misclassified_left_alone(tiny_classifier, batch) -> None:
    x, y = batch[0][:8], batch[1][:8]
    for method in ("worst_of_k", "gradient"):
        first = Spatial(method=method, n_steps=2, seed=1)(x, y, tiny_classifier)
        assert torch.equal(first, Spatial(method=method, n_steps=2, seed=1)(x, y, tiny_classifier))
    wrong = (y + 1) % 10
    assert torch.equal(Spatial(n_samples=3)(x, wrong, tiny_classifier), x)


@pytest.mark.parametrize("kwargs", [{"max_rotation": 200}, {"max_translation": 0.7}, {"method": "random"},
                                    {"max_rotation": 0, "max_translation": 0}, {"n_samples": 0}])
def test_bad_parameters_raise_one_line_errors(kwargs, tiny_classifier, batch) -> None:
    with pytest.raises(InvalidParameterError) as info:
        Spatial(**kwargs)(batch[0][:2], batch[1][:2], tiny_classifier)
    assert isinstance(info.value, MLSafetyError) and "\n" not in str(info.value)
