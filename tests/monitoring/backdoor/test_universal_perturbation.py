"""Targeted universal perturbations and class-conditional calibration (planted trigger, hand-computed scores)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlsafety.exceptions import InvalidInputError, InvalidParameterError
from mlsafety.monitoring.backdoor import UniversalPerturbation, calibrated_decision
from mlsafety.monitoring.backdoor.calibration import class_conditional_scores


def test_planted_target_is_the_easiest_class_and_model_is_unchanged(backdoored, tiny_classifier,
                                                                    digits_splits) -> None:
    reference = digits_splits["validation"]
    model = backdoored[0]
    state = {k: v.clone() for k, v in model.module.state_dict().items()}
    uap = UniversalPerturbation(seed=0).fit(model, reference)
    assert uap.perturbations_.shape == (10, 1, 16, 16)
    assert float(uap.perturbations_.abs().max()) <= uap.epsilon + 1e-6
    # a white-patch backdoor makes class 0 reachable from almost every image (chance: 1 in 10)
    assert uap.target_ == 0 and int(uap.log_probabilities_.argmax()) == 0
    clean = UniversalPerturbation(seed=0).fit(tiny_classifier, reference)
    assert uap.success_[0] > clean.success_[0] + 0.2
    for key, value in model.module.state_dict().items():
        assert torch.equal(value, state[key])
    first, again = (UniversalPerturbation(seed=0, steps=5).fit(model, reference) for _ in range(2))
    assert torch.equal(again.perturbations_, first.perturbations_)
    with pytest.raises(InvalidParameterError, match="epsilon"):
        UniversalPerturbation(epsilon=0).fit(model, reference)


def test_class_conditional_scores_hand_computed() -> None:
    # class 0 is naturally high in every model; model 3 is high in class 1 only
    table = np.array([[5.0, 0.0], [6.0, 1.0], [7.0, 2.0], [5.0, 9.0], [6.0, 0.0]])
    scores, classes = class_conditional_scores(table)
    # model 3 vs others: class 1 others [0, 1, 2, 0] median 0.5, MAD median(|.| = .5 .5 1.5 .5) = 0.5
    assert classes[3] == 1 and scores[3] == pytest.approx((9 - 0.5) / (1.4826 * 0.5))
    # model 2 vs others: class 0 others [5, 6, 5, 6] median 5.5, MAD 0.5 -> z 2.02; class 1 [0, 1, 9, 0] -> 2.02
    assert scores[2] == pytest.approx(1.5 / (1.4826 * 0.5))
    assert int(np.argmax(scores)) == 3
    with pytest.raises(InvalidInputError):
        class_conditional_scores(np.ones((2, 4)))


def test_class_conditional_decision_keeps_its_level_and_flags_a_planted_class() -> None:
    """Clean models whose classes differ in level (an easy class), exchangeable with 26 shadows:
    the rule flags about 1/27 of them; a model with one class far beyond the shadows is flagged."""
    rng = np.random.default_rng(0)
    levels = np.linspace(0, 3, 10)
    flagged = []
    for _ in range(300):
        values = levels + rng.normal(size=(27, 10))
        decision = calibrated_decision({"v": values[26]}, {"v": values[:26]}, alpha=0.05)
        flagged.append(decision.is_backdoored)
    assert np.mean(flagged) <= 0.07
    planted = levels + rng.normal(size=10)
    planted[4] += 8  # a mid-level class becomes far easier than in any shadow
    decision = calibrated_decision({"v": planted}, {"v": levels + rng.normal(size=(26, 10))}, alpha=0.05)
    assert decision.is_backdoored and decision.classes == {"v": 4}
    assert decision.p_values["v"] == pytest.approx(1 / 27)
    with pytest.raises(InvalidInputError, match="table"):
        calibrated_decision({"v": planted}, {"v": np.ones((26, 3))})
