"""The ``corruptions`` audit check on a tiny model (gray) and on random RGB data."""

from __future__ import annotations

import numpy as np
import torch

from mlsafety.audit.base import AuditContext
from mlsafety.data import ImageDataset
from mlsafety.models import Classifier, build_architecture
from mlsafety.registry import CHECKS


def test_check_reports_heatmap_curves_and_worst(tiny_classifier, digits_splits) -> None:
    data = digits_splits["test"]
    # a baseline that errs 50% everywhere: mCE is then twice the model's mean corruption error
    baseline = {name: [0.5, 0.5] for name in ("fog", "contrast", "gaussian_noise")}
    options = {"corruptions": {"n_images": 60, "severities": [1, 5], "baseline_errors": baseline,
                               "baseline_clean_error": 0.1}}
    context = AuditContext(tiny_classifier, data, quick=True, options=options)
    result = CHECKS.create("corruptions").run(context)
    assert result.verdict in ("info", "warn")
    assert len(result.tables[0].rows) == 15
    assert result.tables[0].columns[1:3] == ["severity 1", "severity 5"]
    assert len(result.figures) == 3 and all(f.png_base64 for f in result.figures)
    metrics = result.metrics
    assert 0 <= metrics["worst_corruption_accuracy"] <= metrics["mean_corruption_accuracy"] <= 1
    assert metrics["n_images"] == 60
    worst = result.details["worst"][0]
    assert worst in result.summary
    assert any("quick mode" in note for note in result.notes)
    accuracy = result.details["accuracy"]
    expected = sum((1 - sum(accuracy[n]) / 2) / 0.5 for n in baseline) / 3
    assert abs(metrics["mCE"] - expected) < 1e-9
    clean_error = 1 - metrics["clean_accuracy"]
    expected_relative = sum((2 - sum(accuracy[n]) - 2 * clean_error) / 0.8 for n in baseline) / 3
    assert abs(metrics["relative_mCE"] - expected_relative) < 1e-9
    # bootstrap intervals over images: around the means, and no wider than the bound that holds for
    # any correlation between cells (sd of a mean of correlated proportions <= mean of their sds)
    intervals = result.details["intervals"]
    for name, (low, high) in intervals["corruption_means"].items():
        assert 0 <= low <= sum(accuracy[name]) / 2 <= high <= 1, name
    low, high = intervals["mean_corruption_accuracy"]
    assert metrics["mean_corruption_accuracy_low"] == low and metrics["mean_corruption_accuracy_high"] == high
    assert low < metrics["mean_corruption_accuracy"] < high
    cells = np.array([a for values in accuracy.values() for a in values])
    bound = 2 * 1.96 * np.sqrt(cells * (1 - cells) / 60).mean()
    assert 0 < high - low <= 1.15 * bound
    relative_low, relative_high = intervals["relative_accuracy"]
    assert relative_low <= metrics["relative_accuracy"] <= relative_high
    assert "mean: 95% interval" in result.tables[0].columns


def test_hits_survive_the_shard_store_text() -> None:
    from mlsafety.audit.checks.corruptions import _pack, _unpack

    hits = np.random.default_rng(0).random(61) < 0.5  # not a multiple of 8
    assert np.array_equal(_unpack(_pack(hits), 61), hits)


def test_check_runs_on_rgb_and_skips_tiny_images() -> None:
    torch.manual_seed(0)
    module = build_architecture("small_cnn", in_channels=3, n_classes=3, width=4).eval()
    classifier = Classifier(module, input_shape=(3, 20, 20))
    data = ImageDataset(torch.rand(30, 3, 20, 20), torch.arange(30) % 3, ["a", "b", "c"])
    context = AuditContext(classifier, data, quick=True, options={"corruptions": {"severities": [3]}})
    check = CHECKS.create("corruptions")
    assert check.not_applicable(context) is None
    result = check.run(context)
    assert result.metrics["n_images"] == 30
    small = ImageDataset(torch.rand(4, 3, 6, 6), torch.arange(4) % 3, ["a", "b", "c"])
    assert "too small" in check.not_applicable(AuditContext(classifier, small, quick=True))
