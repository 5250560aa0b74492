"""Reliability diagrams and calibration under shift (with a corruption defined here)."""

from __future__ import annotations

import io

import pytest
import torch
from matplotlib.figure import Figure

from mlsafety.base import Perturbation
from mlsafety.data import ImageDataset
from mlsafety.exceptions import InvalidInputError, InvalidParameterError
from mlsafety.metrics.calibration import calibration_bins
from mlsafety.monitoring.calibration import TemperatureScaling
from mlsafety.monitoring.calibration.plots import compare_reliability, reliability_diagram
from mlsafety.monitoring.calibration.shift import (
    ShiftResult,
    calibration_under_shift,
    corrupt,
    evaluate_shift,
    plot_shift,
)


class AdditiveNoise(Perturbation):
    """Gaussian pixel noise with standard deviation 0.12 * severity (a test-only corruption)."""

    def __init__(self, severity: int = 1, seed: int | None = 0) -> None:
        self.severity = severity
        self.seed = seed

    def perturb(self, x, y=None, classifier=None):
        noise = torch.randn(x.shape, generator=self._generator(x.device), device=x.device, dtype=x.dtype)
        return (x + 0.12 * self.severity * noise).clamp(0, 1)


class Darken(Perturbation):
    """Scale the pixels down by 0.18 per severity level."""

    def __init__(self, severity: int = 1, seed: int | None = 0) -> None:
        self.severity = severity
        self.seed = seed

    def perturb(self, x, y=None, classifier=None):
        return x * (1 - 0.18 * self.severity)


def _png_bytes(figure: Figure) -> int:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=50)
    return len(buffer.getvalue())


def test_reliability_diagram_draws_gap_bars_and_histogram(overconfident) -> None:
    logits, labels = overconfident["test"]
    figure = reliability_diagram(logits, labels, n_bins=10)
    assert isinstance(figure, Figure)
    top, bottom = figure.axes
    filled = int((calibration_bins(logits, labels, n_bins=10).counts > 0).sum())
    assert len(top.patches) == 2 * filled  # an accuracy bar and a gap bar per non-empty bin
    assert len(bottom.patches) == 10  # the confidence histogram
    heights = sorted(p.get_height() for p in bottom.patches)
    assert sum(heights) == pytest.approx(1.0)
    assert "ECE" in top.get_title()
    assert _png_bytes(figure) > 1000


def test_compare_reliability_puts_panels_side_by_side(overconfident) -> None:
    logits, labels = overconfident["test"]
    calibrated = TemperatureScaling().fit(*overconfident["validation"]).transform(logits)
    figure = compare_reliability({"before": logits, "after": calibrated}, labels,
                                 from_logits={"before": True, "after": False}, strategy="quantile")
    assert len(figure.axes) == 4
    with pytest.raises(InvalidInputError, match="looks like probabilities"):
        compare_reliability({"after": calibrated}, labels)


def test_calibration_under_shift_degrades_with_severity(tiny_classifier, digits_splits) -> None:
    test = digits_splits["test"]
    validation = digits_splits["validation"]
    scaler = TemperatureScaling().fit(tiny_classifier.predict_logits(validation.images), validation.labels)
    result = calibration_under_shift(tiny_classifier, test, {"noise": AdditiveNoise, "dark": Darken}, (1, 3, 5),
                                     calibrator=scaler, seed=0)
    assert len(result.rows) == 1 + 2 * 3
    assert result.corruptions == ["noise", "dark"]
    summary = result.by_severity()
    assert [s["severity"] for s in summary] == [0, 1, 3, 5]
    assert summary[-1]["accuracy"] < summary[0]["accuracy"] - 0.1
    for row in result.rows:
        assert 0 <= row["ece"] <= 1 and 0 <= row["ece_calibrated"] <= 1
    again = calibration_under_shift(tiny_classifier, test, {"noise": AdditiveNoise}, (3,), seed=0)
    same = next(r for r in result.rows if r["corruption"] == "noise" and r["severity"] == 3)
    assert again.rows[1]["ece"] == pytest.approx(same["ece"])  # seeded corruptions
    assert isinstance(plot_shift(result), Figure)


def test_unregistered_corruption_is_skipped_with_a_note(tiny_classifier, digits_splits) -> None:
    result = calibration_under_shift(tiny_classifier, digits_splits["test"].head(50), ["no_such_corruption"], (1,))
    assert [r["severity"] for r in result.rows] == [0]
    assert "no_such_corruption" in result.skipped[0]


def test_evaluate_shift_on_user_corrupted_data(tiny_classifier, digits_splits) -> None:
    test = digits_splits["test"].head(100)
    shifted = {"noise": {2: corrupt(test, AdditiveNoise, 2), 4: corrupt(test, AdditiveNoise, 4)}}
    result = evaluate_shift(tiny_classifier, shifted, clean=test)
    assert [(r["corruption"], r["severity"]) for r in result.rows] == [("clean", 0), ("noise", 2), ("noise", 4)]
    assert "ece_calibrated" not in result.rows[0]
    with pytest.raises(InvalidParameterError, match="severities >= 1"):
        evaluate_shift(tiny_classifier, {"noise": {0: test}})


def test_bad_shift_arguments(tiny_classifier, digits_splits) -> None:
    with pytest.raises(InvalidParameterError, match="severities"):
        calibration_under_shift(tiny_classifier, digits_splits["test"], {"noise": AdditiveNoise}, (0,))
    with pytest.raises(InvalidInputError, match="no rows"):
        plot_shift(ShiftResult())

    class Crop(Perturbation):
        def __init__(self, severity: int = 1, seed: int | None = 0) -> None:
            self.severity, self.seed = severity, seed

        def perturb(self, x, y=None, classifier=None):
            return x[..., 1:, 1:]

    with pytest.raises(InvalidInputError, match="changed the image shape"):
        corrupt(ImageDataset(torch.rand(2, 1, 8, 8), torch.tensor([0, 1]), ["a", "b"]), Crop, 1)
