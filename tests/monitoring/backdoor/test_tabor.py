"""TABOR: Neural Cleanse's search plus regularisers (hand-computed TV, reduction to NC, a planted trigger)."""

from __future__ import annotations

import pytest
import torch

from mlsafety.exceptions import InvalidParameterError
from mlsafety.monitoring.backdoor import NeuralCleanse
from mlsafety.monitoring.backdoor.tabor import TABOR, total_variation


def test_total_variation_hand_computed() -> None:
    image = torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]])  # (1, 1, 2, 2)
    # horizontal |1-0| + |1-1| = 1, vertical |1-0| + |1-1| = 1
    assert total_variation(image).tolist() == [2.0]
    assert total_variation(torch.ones(3, 2, 4, 4)).tolist() == [0.0, 0.0, 0.0]


def test_tabor_without_regularisers_is_neural_cleanse(tiny_classifier, digits_splits) -> None:
    settings = {"steps": 10, "batch_size": 4, "n_samples": 50, "seed": 0}
    tabor = TABOR(outside_weight=0, smoothness_weight=0, overlay_weight=0, essential_weight=0, **settings)
    tabor.fit(tiny_classifier, digits_splits["validation"])
    cleanse = NeuralCleanse(**settings).fit(tiny_classifier, digits_splits["validation"])
    assert torch.allclose(tabor.masks_, cleanse.masks_, atol=1e-5)
    assert torch.allclose(tabor.l1_norms_, cleanse.l1_norms_, atol=1e-3)


def test_tabor_recovers_planted_trigger_and_leaves_model_unchanged(backdoored, digits_splits) -> None:
    classifier = backdoored[0]
    state = {k: v.clone() for k, v in classifier.module.state_dict().items()}
    tabor = TABOR(steps=60, batch_size=8, n_samples=200, seed=0).fit(classifier, digits_splits["validation"])
    # target 0's reversed trigger is the smallest, by a margin (chance: 1 in 10)
    assert int(tabor.l1_norms_.argmin()) == 0
    assert tabor.norm_ratio_ > 2
    assert tabor.masks_.shape == (10, 1, 16, 16) and float(tabor.masks_.max()) <= 1
    for key, value in classifier.module.state_dict().items():
        assert torch.equal(value, state[key])
    with pytest.raises(InvalidParameterError, match="overlay_weight"):
        TABOR(overlay_weight=-1).fit(classifier, digits_splits["validation"])
