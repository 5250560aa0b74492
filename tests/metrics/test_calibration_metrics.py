"""Calibration metrics: hand-computed cases, the anchors (netcal, torchmetrics), bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mlsafety.exceptions import InvalidInputError, InvalidParameterError, ShapeError
from mlsafety.metrics.calibration import (
    METRIC_NAMES,
    adaptive_calibration_error,
    brier_score,
    calibration_bins,
    calibration_metrics,
    classwise_calibration_error,
    expected_calibration_error,
    maximum_calibration_error,
    negative_log_likelihood,
    rms_calibration_error,
)

# four binary predictions, no confidence on a bin edge (hand-computed below)
HAND_PROBS = torch.tensor([[0.90, 0.10], [0.25, 0.75], [0.35, 0.65], [0.45, 0.55]], dtype=torch.float64)
HAND_LABELS = torch.tensor([0, 0, 1, 0])


def _random_logits(n: int = 1500, k: int = 10, seed: int = 0, scale: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % k
    logits = torch.randn(n, k, generator=generator, dtype=torch.float64)
    logits[torch.arange(n), labels] += 1.5
    return logits * scale, labels


def test_hand_computed_binned_errors() -> None:
    # 5 bins: 0.9 -> (0.8, 1] correct; 0.75, 0.65 -> (0.6, 0.8] one right; 0.55 -> (0.4, 0.6] wrong
    kwargs = {"n_bins": 5, "from_logits": False}
    assert expected_calibration_error(HAND_PROBS, HAND_LABELS, **kwargs) == pytest.approx(
        0.25 * 0.1 + 0.5 * 0.2 + 0.25 * 0.55, abs=1e-12)
    assert maximum_calibration_error(HAND_PROBS, HAND_LABELS, **kwargs) == pytest.approx(0.55, abs=1e-12)
    assert rms_calibration_error(HAND_PROBS, HAND_LABELS, **kwargs) == pytest.approx(
        math.sqrt(0.25 * 0.01 + 0.5 * 0.04 + 0.25 * 0.3025), abs=1e-12)
    # equal mass, 2 bins: {0.55 wrong, 0.65 right} and {0.75 wrong, 0.9 right}
    assert adaptive_calibration_error(HAND_PROBS, HAND_LABELS, n_bins=2, from_logits=False) == pytest.approx(
        0.5 * 0.1 + 0.5 * 0.325, abs=1e-12)
    bins = calibration_bins(HAND_PROBS, HAND_LABELS, **kwargs)
    np.testing.assert_array_equal(bins.counts, [0, 0, 1, 2, 1])
    np.testing.assert_allclose(bins.accuracy[2:], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(bins.confidence[2:], [0.55, 0.70, 0.90])


def test_hand_computed_scores() -> None:
    assert brier_score(HAND_PROBS, HAND_LABELS, from_logits=False) == pytest.approx(
        (0.02 + 1.125 + 0.245 + 0.605) / 4, abs=1e-12)
    assert negative_log_likelihood(HAND_PROBS, HAND_LABELS, from_logits=False) == pytest.approx(
        -(math.log(0.9) + math.log(0.25) + math.log(0.65) + math.log(0.45)) / 4, abs=1e-12)
    # the same predictions as logits give the same values
    logits = HAND_PROBS.log()
    assert brier_score(logits, HAND_LABELS) == pytest.approx(0.49875, abs=1e-12)
    assert expected_calibration_error(logits, HAND_LABELS, n_bins=5) == pytest.approx(0.2625, abs=1e-12)


def test_classwise_matches_a_per_class_loop() -> None:
    logits, labels = _random_logits(n=300, k=4, seed=1)
    probabilities = torch.softmax(logits, 1)
    n_bins = 7
    total = 0.0
    for k in range(4):
        p = probabilities[:, k].numpy()
        hit = (labels == k).numpy().astype(float)
        for m in range(n_bins):
            inside = (p > m / n_bins) & (p <= (m + 1) / n_bins) if m else (p <= 1 / n_bins)
            if inside.any():
                total += inside.sum() / len(p) * abs(hit[inside].mean() - p[inside].mean())
    assert classwise_calibration_error(logits, labels, n_bins=n_bins) == pytest.approx(total / 4, abs=1e-12)


def test_confidence_one_lands_in_last_bin() -> None:
    probabilities = torch.tensor([[1.0, 0.0, 0.0], [0.05, 0.95, 0.0]], dtype=torch.float64)
    labels = torch.tensor([1, 1])  # the fully confident prediction is wrong, the 0.95 one right
    bins = calibration_bins(probabilities, labels, n_bins=10, from_logits=False)
    assert bins.counts.tolist() == [0] * 9 + [2]
    assert expected_calibration_error(probabilities, labels, n_bins=10, from_logits=False) == pytest.approx(
        abs(0.5 - 0.975))
    assert maximum_calibration_error(probabilities[:1], labels[:1], n_bins=10, from_logits=False) == 1.0


def test_equal_mass_bins_have_equal_counts() -> None:
    logits, labels = _random_logits(n=1003)
    bins = calibration_bins(logits, labels, n_bins=10, strategy="quantile")
    assert bins.counts.sum() == 1003
    assert bins.counts.max() - bins.counts.min() <= 1
    assert len(bins.edges) == 11 and np.all(np.diff(bins.edges) >= 0)
    few = calibration_bins(HAND_PROBS[:3], HAND_LABELS[:3], n_bins=5, strategy="quantile", from_logits=False)
    assert few.counts.tolist() == [1, 1, 0, 1, 0]  # ranks 0, 1, 2 -> bins floor(5 r / 3)
    np.testing.assert_allclose(few.edges, [0.65, 0.65, 0.75, 0.75, 0.9, 0.9])


def test_perfectly_calibrated_predictions_have_small_ece() -> None:
    # labels drawn from the predicted distribution: ECE is only sampling noise
    logits, _ = _random_logits(n=20000, seed=2, scale=1.0)
    generator = torch.Generator().manual_seed(3)
    labels = torch.multinomial(torch.softmax(logits, 1), 1, generator=generator).squeeze(1)
    assert expected_calibration_error(logits, labels) < 0.015
    assert expected_calibration_error(logits * 3, labels) > 0.1  # sharpened: over-confident


def test_calibration_metrics_agree_with_single_functions() -> None:
    logits, labels = _random_logits()
    everything = calibration_metrics(logits, labels, n_bins=12)
    assert set(everything) == set(METRIC_NAMES)
    assert everything["ece"] == expected_calibration_error(logits, labels, n_bins=12)
    assert everything["adaptive_ece"] == adaptive_calibration_error(logits, labels, n_bins=12)
    assert everything["mce"] == maximum_calibration_error(logits, labels, n_bins=12)
    assert everything["classwise_ece"] == classwise_calibration_error(logits, labels, n_bins=12)
    assert everything["nll"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, labels)), abs=1e-12)
    assert everything["accuracy"] == float((logits.argmax(1) == labels).double().mean())
    from_probabilities = calibration_metrics(torch.softmax(logits, 1), labels, n_bins=12, from_logits=False)
    for key, value in everything.items():
        assert from_probabilities[key] == pytest.approx(value, abs=1e-9), key


def test_bootstrap_interval_brackets_the_estimate_and_is_seeded() -> None:
    logits, labels = _random_logits(n=400)
    first = calibration_metrics(logits, labels, metrics=("ece", "nll"), n_resamples=100, seed=1)
    again = calibration_metrics(logits, labels, metrics=("ece", "nll"), n_resamples=100, seed=1)
    assert first == again
    for name in ("ece", "nll"):
        assert first[f"{name}_low"] < first[name] < first[f"{name}_high"]
    large = calibration_metrics(*_random_logits(n=4000), metrics=("ece",), n_resamples=100, seed=1)
    assert large["ece_high"] - large["ece_low"] < first["ece_high"] - first["ece_low"]


# -- bad input: one-line errors --------------------------------------------------------------
def test_probabilities_passed_as_logits_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="looks like probabilities"):
        expected_calibration_error(HAND_PROBS, HAND_LABELS)


def test_logits_passed_as_probabilities_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="from_logits=True"):
        expected_calibration_error(HAND_PROBS.log(), HAND_LABELS, from_logits=False)


@pytest.mark.parametrize(
    ("scores", "labels", "error", "message"),
    [
        (torch.tensor([[0.0, float("nan")]]), torch.tensor([0]), InvalidInputError, "NaN"),
        (torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), ShapeError, "empty"),
        (torch.zeros(2, 1), torch.tensor([0, 0]), ShapeError, "at least 2 columns"),
        (torch.zeros(2, 3) + torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0, 3]), InvalidInputError, "label 3"),
        (torch.zeros(2, 3) + torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0]), ShapeError, "1 labels"),
    ],
)
def test_bad_input_gets_one_line_error(scores: torch.Tensor, labels: torch.Tensor, error: type,
                                       message: str) -> None:
    with pytest.raises(error, match=message) as info:
        expected_calibration_error(scores, labels)
    assert "\n" not in str(info.value)


def test_bad_parameters() -> None:
    logits, labels = _random_logits(n=20)
    with pytest.raises(InvalidParameterError, match="n_bins"):
        expected_calibration_error(logits, labels, n_bins=0)
    with pytest.raises(InvalidParameterError, match="strategy"):
        calibration_bins(logits, labels, strategy="equal")
    with pytest.raises(InvalidParameterError, match="metrics"):
        calibration_metrics(logits, labels, metrics=("ace",))


# -- anchors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("n_bins", [10, 15])
def test_agrees_with_torchmetrics(n_bins: int) -> None:
    functional = pytest.importorskip("torchmetrics.functional.classification")
    logits, labels = _random_logits()
    probabilities = torch.softmax(logits, 1)
    for norm, ours in (("l1", expected_calibration_error), ("max", maximum_calibration_error),
                       ("l2", rms_calibration_error)):
        theirs = functional.multiclass_calibration_error(probabilities, labels, 10, n_bins=n_bins, norm=norm)
        # torchmetrics computes in float32
        assert ours(logits, labels, n_bins=n_bins) == pytest.approx(float(theirs), abs=1e-6), norm


def test_torchmetrics_puts_confidence_one_in_an_extra_bin() -> None:
    # the documented difference: torchmetrics bins are [lo, hi) plus a phantom bin for 1.0
    functional = pytest.importorskip("torchmetrics.functional.classification")
    probabilities = torch.tensor([[1.0, 0.0, 0.0], [0.05, 0.95, 0.0]], dtype=torch.float64)
    labels = torch.tensor([1, 1])
    theirs = float(functional.multiclass_calibration_error(probabilities, labels, 3, n_bins=10))
    assert theirs == pytest.approx(0.5 * 1.0 + 0.5 * 0.05)
    assert expected_calibration_error(probabilities, labels, n_bins=10, from_logits=False) == pytest.approx(0.475)


@pytest.mark.parametrize("n_bins", [10, 15])
def test_agrees_with_netcal(n_bins: int) -> None:
    metrics = pytest.importorskip("netcal.metrics")
    logits, labels = _random_logits()
    probabilities = torch.softmax(logits, 1).numpy()
    assert expected_calibration_error(logits, labels, n_bins=n_bins) == pytest.approx(
        metrics.ECE(n_bins).measure(probabilities, labels.numpy()), abs=1e-9)
    assert maximum_calibration_error(logits, labels, n_bins=n_bins) == pytest.approx(
        metrics.MCE(n_bins).measure(probabilities, labels.numpy()), abs=1e-9)
    # netcal's equal-frequency ECE uses np.quantile edges: the same bins when M divides N
    assert adaptive_calibration_error(logits, labels, n_bins=n_bins) == pytest.approx(
        metrics.ECE(n_bins, equal_intervals=False).measure(probabilities, labels.numpy()), abs=1e-9)
