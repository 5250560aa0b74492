"""Adversarial patches: exact placement, the patch budget, success against size and a random
patch, fitting, and errors for images too small for a patch."""

from __future__ import annotations

import pytest
import torch

from mlsafety.exceptions import InvalidParameterError, NotFittedError, ShapeError
from mlsafety.robustness.attacks.patch import Patch, UniversalPatch, apply_patch, patch_success_curve


def test_apply_patch_places_the_patch_exactly() -> None:
    x = torch.zeros(2, 1, 6, 7)
    patch = torch.arange(4.0).view(1, 2, 2) / 4
    out = apply_patch(x, patch, torch.tensor([[1, 2], [4, 5]]))
    assert torch.equal(out[0, 0, 1:3, 2:4], patch[0]) and torch.equal(out[1, 0, 4:6, 5:7], patch[0])
    assert float(out.sum()) == pytest.approx(2 * float(patch.sum()))
    per_image = torch.rand(2, 1, 2, 2)
    out = apply_patch(x, per_image, torch.tensor([[0, 0], [3, 3]]))
    assert torch.equal(out[1, 0, 3:5, 3:5], per_image[1, 0])


def test_patch_changes_only_a_square_and_success_rises_with_size(tiny_classifier, batch) -> None:
    x, y = batch[0][:32], batch[1][:32]
    accuracies = {}
    for size in (0.125, 0.5):
        attack = Patch(size=size, n_locations=2, n_steps=5, seed=0)
        adversarial = attack(x, y, tiny_classifier)
        assert float(adversarial.min()) >= 0 and float(adversarial.max()) <= 1
        side = round(size * 16)
        changed = (adversarial != x).any(1)  # (N, H, W)
        rows, cols = changed.any(2), changed.any(1)
        for i in range(x.shape[0]):  # the changed pixels fit in one side x side square
            if rows[i].any():
                r, c = rows[i].nonzero().squeeze(1), cols[i].nonzero().squeeze(1)
                assert int(r.max() - r.min()) < side and int(c.max() - c.min()) < side
        accuracies[size] = float((tiny_classifier.predict(adversarial) == y).float().mean())
        assert torch.equal(adversarial, Patch(size=size, n_locations=2, n_steps=5, seed=0)(x, y, tiny_classifier))
    assert accuracies[0.5] < accuracies[0.125] - 0.2


def test_universal_patch_beats_a_random_patch(tiny_classifier, digits_splits, batch) -> None:
    train = digits_splits["train"]
    x, y = batch
    curve = patch_success_curve(tiny_classifier, train.images[:256], train.labels[:256], x, y, sizes=(0.1875, 0.3125),
                                n_epochs=3, step_size=0.1)
    assert curve["success_rate"][1] > curve["success_rate"][0] + 0.1
    fitted = UniversalPatch(size=0.25, n_epochs=3, step_size=0.1).fit(tiny_classifier, train.images[:256],
                                                                     train.labels[:256])
    random = UniversalPatch(size=0.25)  # the chance baseline: a random patch of the same size
    random.patch_ = torch.rand(fitted.patch_.shape, generator=torch.Generator().manual_seed(0))
    assert fitted.success_rate(tiny_classifier, x, y) > random.success_rate(tiny_classifier, x, y) + 0.15


def test_errors(tiny_classifier, batch) -> None:
    x, y = batch[0][:2], batch[1][:2]
    with pytest.raises(ShapeError, match="too small for a patch") as info:
        Patch(size=0.05)(x, y, tiny_classifier)
    assert "\n" not in str(info.value)
    with pytest.raises(ShapeError, match="too small"):
        UniversalPatch(size=0.05).fit(tiny_classifier, x, y)
    for size in (0, 1.5, "big"):
        with pytest.raises(InvalidParameterError):
            Patch(size=size)(x, y, tiny_classifier)
    with pytest.raises(NotFittedError):
        UniversalPatch().perturb(x)
    with pytest.raises(InvalidParameterError):
        UniversalPatch(target=12).fit(tiny_classifier, x, y)
