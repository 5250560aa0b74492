from __future__ import annotations

import pytest
import torch

from mlsafety.exceptions import InvalidParameterError, NotFittedError
from mlsafety.monitoring.backdoor import (
    FinePruning,
    NeuralCleanse,
    TriggerUnlearning,
    attack_success_rate,
    backdoor_metrics,
    mad_anomaly_index,
)
from mlsafety.monitoring.backdoor.fine_pruning import last_conv_and_norm


def test_mad_anomaly_index_hand_computed() -> None:
    values = torch.tensor([1.0, 10.0, 11.0, 12.0, 13.0])
    # median 11, |v - 11| = [10, 1, 0, 1, 2] -> MAD 1, scaled 1.4826
    expected = (11 - values) / 1.4826
    assert torch.allclose(mad_anomaly_index(values), expected.double())
    assert mad_anomaly_index(values)[0] > 2


def test_mad_anomaly_index_even_count_uses_mean_of_middle_values() -> None:
    # Wang et al.'s reference uses np.median: for [1, 10, 11, 12] the median is 10.5 (not 10),
    # |v - 10.5| = [9.5, 0.5, 0.5, 1.5] has median (0.5 + 1.5) / 2 = 1.0, so index(1) = 9.5 / 1.4826
    values = torch.tensor([1.0, 10.0, 11.0, 12.0])
    expected = torch.tensor([9.5, 0.5, -0.5, -1.5], dtype=torch.float64) / 1.4826
    assert torch.allclose(mad_anomaly_index(values), expected)
    # torch.median (lower middle) would give median 10, MAD 1 and index 9 / 1.4826 = 6.07 for the first value
    assert float(mad_anomaly_index(values)[0]) == pytest.approx(6.4077, abs=1e-3)
    # np.median: median 14.5, MAD 1.5, index 2.02; the lower-median definition would give 2.70
    norms = torch.tensor([10.0, 13.0, 14.0, 15.0, 16.0, 20.0])
    assert float(mad_anomaly_index(norms)[0]) == pytest.approx(4.5 / (1.4826 * 1.5), abs=1e-4)


def test_neural_cleanse_recovers_badnets_trigger(backdoored, badnets_attack, digits_splits) -> None:
    classifier, _, _ = backdoored
    state = {k: v.clone() for k, v in classifier.module.state_dict().items()}
    cleanse = NeuralCleanse(steps=60, n_samples=200, seed=0).fit(classifier, digits_splits["validation"])
    assert cleanse.masks_.shape == (10, 1, 16, 16) and cleanse.patterns_.shape == (10, 1, 16, 16)
    assert float(cleanse.masks_.min()) >= 0 and float(cleanse.masks_.max()) <= 1
    # the target's reversed trigger is the smallest, well under half the median class's
    assert int(cleanse.l1_norms_.argmin()) == 0
    assert float(cleanse.l1_norms_[0]) < 0.5 * float(cleanse.l1_norms_.median())
    assert cleanse.success_[0] > 0.9
    assert cleanse.anomaly_indices_[0] == pytest.approx(float(cleanse.anomaly_indices_.max()))
    for key, value in classifier.module.state_dict().items():
        assert torch.equal(value, state[key])
    assert not classifier.module.training
    with pytest.raises(InvalidParameterError, match="`steps` of NeuralCleanse"):
        NeuralCleanse(steps=0).fit(classifier, digits_splits["validation"])


def test_fine_pruning_copies_and_prunes(backdoored, badnets_attack, digits_splits) -> None:
    classifier, _, _ = backdoored
    state = {k: v.clone() for k, v in classifier.module.state_dict().items()}
    defence = FinePruning(max_accuracy_drop=0.1, fine_tune_epochs=1)
    pruned = defence.apply(classifier, digits_splits["validation"])
    for key, value in classifier.module.state_dict().items():
        assert torch.equal(value, state[key])
    assert len(defence.pruned_channels_) > 0
    conv, norm = last_conv_and_norm(pruned.module)
    channels = torch.tensor(defence.pruned_channels_)
    # pruned channels stay exactly zero through fine-tuning
    assert float(conv.weight[channels].detach().abs().sum()) == 0
    assert float(norm.weight[channels].detach().abs().sum()) == 0
    after = backdoor_metrics(pruned, badnets_attack, digits_splits["test"])
    assert after["clean_accuracy"] > 0.8
    assert after["attack_success_rate"] <= attack_success_rate(classifier, badnets_attack, digits_splits["test"])


def test_unlearning_with_true_trigger_removes_backdoor(backdoored, badnets_attack, digits_splits) -> None:
    classifier, _, _ = backdoored
    mask, pattern = badnets_attack.trigger((1, 16, 16))
    defence = TriggerUnlearning(epochs=2, batch_size=16)
    unlearned = defence.apply(classifier, digits_splits["validation"], mask[0], pattern[0])
    after = backdoor_metrics(unlearned, badnets_attack, digits_splits["test"])
    assert after["attack_success_rate"] < 0.3
    assert after["clean_accuracy"] > 0.85
    assert attack_success_rate(classifier, badnets_attack, digits_splits["test"]) > 0.9


def test_neural_cleanse_needs_fit_and_classes(tiny_classifier) -> None:
    cleanse = NeuralCleanse()
    with pytest.raises(NotFittedError):
        TriggerUnlearning().apply_from(tiny_classifier, None, cleanse)  # type: ignore[arg-type]
