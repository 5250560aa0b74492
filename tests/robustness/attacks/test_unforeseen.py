"""Unforeseen (UA2-style) attacks: budgets, range, seeding, strength against budget and a random
baseline, gradient-masking detection, reference properties and one-line errors."""

from __future__ import annotations

import pytest
import torch

from mlsafety.exceptions import InvalidParameterError, MLSafetyError, ShapeError, UnknownMethodError
from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks._common import make_forward
from mlsafety.robustness.attacks.unforeseen import (
    JPEG,
    UA2_CORE,
    Fog,
    evaluate_unforeseen,
    unforeseen_names,
)
from mlsafety.robustness.attacks.unforeseen.jpeg import dct_matrix

NAMES = unforeseen_names()


def test_registry_holds_at_least_eight_attacks_including_the_ua2_core() -> None:
    assert len(NAMES) >= 8
    assert set(UA2_CORE) <= set(NAMES)
    for name in NAMES:
        cls = ATTACKS.get(name)
        assert set(cls.levels) == {"low", "medium", "high"}
        assert cls.levels["low"] < cls.levels["medium"] < cls.levels["high"] <= cls.max_epsilon


@pytest.mark.parametrize("name", NAMES)
def test_budget_range_and_seed(name, tiny_classifier, batch) -> None:
    x, y = batch[0][:16], batch[1][:16]
    attack = ATTACKS.create(name, level="high", n_steps=2, seed=5)
    generator = torch.Generator().manual_seed(5)
    with tiny_classifier.evaluating():
        adversarial, latent = attack.attack_batch(make_forward(tiny_classifier), x, y, generator)
    lower, upper = attack.latent_bounds(attack.budget)
    assert float(latent.min()) >= lower - 1e-6 and float(latent.max()) <= upper + 1e-6
    assert adversarial.shape == x.shape
    assert float(adversarial.min()) >= 0.0 and float(adversarial.max()) <= 1.0
    first = attack(x, y, tiny_classifier)
    if attack.pixel_bounded:
        assert float((first - x).abs().max()) <= attack.budget + 1e-5
    assert torch.equal(first, ATTACKS.create(name, level="high", n_steps=2, seed=5)(x, y, tiny_classifier))
    assert not torch.equal(first, x)


@pytest.fixture(scope="module")
def budget_sweep(tiny_classifier, batch) -> dict[str, dict[str, float]]:
    x, y = batch[0][:40], batch[1][:40]
    report = evaluate_unforeseen(tiny_classifier, x, y, levels=("low", "high"), n_steps=3, seed=0)
    return {"report": report}


def test_success_rises_with_budget_and_beats_random(budget_sweep) -> None:
    report = budget_sweep["report"]
    low = {n: report.accuracy[n]["low"] for n in NAMES}
    high = {n: report.accuracy[n]["high"] for n in NAMES}
    for name in NAMES:
        assert high[name] <= low[name] + 2 / 40, name
    mean_low, mean_high = sum(low.values()) / len(low), sum(high.values()) / len(high)
    assert mean_high < mean_low - 0.1
    assert mean_high < report.clean_accuracy - 0.3
    # optimising the latent must beat a random distortion of the same budget (the chance baseline)
    random = sum(report.random_accuracy.values()) / len(NAMES)
    optimised = sum(report.accuracy[n][report.reference_level] for n in NAMES) / len(NAMES)
    assert optimised < random - 0.1
    assert all(f.passed for f in report.findings)


def test_ua2_is_the_mean_of_the_core_attacks_at_medium(tiny_classifier, batch) -> None:
    x, y = batch[0][:16], batch[1][:16]
    report = evaluate_unforeseen(tiny_classifier, x, y, levels=("medium",), n_steps=1, random_baseline=False)
    expected = sum(report.accuracy[n]["medium"] for n in UA2_CORE) / len(UA2_CORE)
    assert report.ua2 == pytest.approx(expected)
    assert report.worst[1] == min(a["medium"] for a in report.accuracy.values())


def test_gradient_masking_is_not_mistaken_for_robustness(masked_classifier, batch) -> None:
    x, y = batch[0][:32], batch[1][:32]
    report = evaluate_unforeseen(masked_classifier, x, y, attacks=["jpeg", "gabor", "prison"], levels=("medium",),
                                 n_steps=3)
    failed = {f.name for f in report.findings if not f.passed}
    assert {"gradients", "optimisation_beats_random"} <= failed


def test_jpeg_with_zero_offsets_is_the_identity_and_the_dct_is_orthonormal(batch) -> None:
    d = dct_matrix(8)
    assert torch.allclose(d @ d.T, torch.eye(8), atol=1e-5)
    x = batch[0][:4]
    attack = JPEG()
    state = attack.setup(x, torch.Generator().manual_seed(0))
    assert torch.allclose(attack.render(x, torch.zeros(attack.latent_shape(x)), state, 0.25), x, atol=1e-5)


def test_fog_at_full_budget_can_reach_white(batch) -> None:
    x = batch[0][:2]
    attack = Fog(epsilon=1.0)
    latent = torch.ones(attack.latent_shape(x))
    assert torch.allclose(attack.render(x, latent, {}, 1.0), torch.ones_like(x))


@pytest.mark.parametrize(("make", "error"), [
    (lambda: ATTACKS.create("fogg"), UnknownMethodError),
    (lambda: JPEG(epsilon=100.0), InvalidParameterError),
    (lambda: JPEG(epsilon=-1.0), InvalidParameterError),
    (lambda: Fog(level="extreme"), InvalidParameterError),
    (lambda: Fog(n_steps=-1), InvalidParameterError),
])
def test_bad_parameters_raise_one_line_errors(make, error, tiny_classifier, batch) -> None:
    with pytest.raises(error) as info:
        make()(batch[0][:2], batch[1][:2], tiny_classifier)
    assert isinstance(info.value, MLSafetyError) and "\n" not in str(info.value)


def test_bad_inputs_raise_one_line_errors(tiny_classifier, batch) -> None:
    with pytest.raises(ShapeError, match="at least 8x8") as info:
        Fog()(torch.rand(2, 1, 4, 4), torch.zeros(2, dtype=torch.long), tiny_classifier)
    assert "\n" not in str(info.value)
    for attacks in (["pgd"], ["not_an_attack"]):
        with pytest.raises(UnknownMethodError) as info:
            evaluate_unforeseen(tiny_classifier, batch[0][:2], batch[1][:2], attacks=attacks)
        assert "\n" not in str(info.value)
    with pytest.raises(InvalidParameterError):
        evaluate_unforeseen(tiny_classifier, batch[0][:2], batch[1][:2], levels=("extreme",))
