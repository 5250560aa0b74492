"""The `calibration` audit check on small models and data."""

from __future__ import annotations

import pytest
from test_calibration_plots_and_shift import AdditiveNoise

from mlsafety.audit.base import AuditContext
from mlsafety.monitoring.calibration.shift import corrupt
from mlsafety.registry import CHECKS, CORRUPTIONS


def test_check_reports_before_and_after_with_diagram(tiny_classifier, digits_splits) -> None:
    context = AuditContext(classifier=tiny_classifier, data=digits_splits["test"],
                           validation=digits_splits["validation"], quick=True,
                           options={"calibration": {"corruptions": ["gaussian_noise", "not_a_corruption"],
                                                    "n_resamples": 50}})
    check = CHECKS.create("calibration")
    assert check.not_applicable(context) is None
    result = check.run(context)
    assert result.verdict in ("pass", "warn")
    for key in ("ece", "ece_low", "ece_high", "mce", "brier", "nll", "ece_recalibrated", "temperature"):
        assert key in result.metrics
    assert result.metrics["ece_low"] <= result.metrics["ece"] <= result.metrics["ece_high"]
    assert "Reliability diagram" in [f.title for f in result.figures]
    assert any("not_a_corruption" in note for note in result.notes)
    assert not any("before its fit converged" in note for note in result.notes)
    methods = [row[0] for row in result.tables[1].rows]
    assert "temperature_scaling" in methods and "uncalibrated" in methods
    if "gaussian_noise" in CORRUPTIONS:
        assert result.metrics["shift_severity"] == 5
    else:
        assert "shift_ece" not in result.metrics


def test_check_uses_user_corrupted_data_and_needs_validation(tiny_classifier, digits_splits) -> None:
    test = digits_splits["test"]
    shifted = {"noise": {s: corrupt(test.head(80), AdditiveNoise, s) for s in (1, 4)}}
    context = AuditContext(classifier=tiny_classifier, data=test, validation=digits_splits["validation"],
                           quick=True, options={"calibration": {"corrupted_data": shifted, "compare": False,
                                                                "n_resamples": 20}})
    check = CHECKS.create("calibration")
    result = check.run(context)
    assert result.metrics["shift_severity"] == 4
    assert "Calibration under shift" in [f.title for f in result.figures]
    assert isinstance(check.config(context)["options"]["corrupted_data"]["noise"]["1"], str)
    no_validation = AuditContext(classifier=tiny_classifier, data=test)
    assert "validation" in check.not_applicable(no_validation)


@pytest.mark.slow
def test_check_on_the_default_model(default_classifier, fashion_small) -> None:
    context = AuditContext(classifier=default_classifier, data=fashion_small["test"],
                           validation=fashion_small["validation"], quick=True,
                           options={"calibration": {"compare": False, "n_resamples": 50, "severities": [5]}})
    result = CHECKS.create("calibration").run(context)
    assert result.verdict in ("pass", "warn")
    assert result.metrics["ece"] < 0.1


def test_comparison_table_says_when_a_fit_did_not_converge(monkeypatch) -> None:
    import torch
    from calibration_synthetic import synthetic

    from mlsafety.monitoring.calibration import MatrixScaling

    # 25 classes take the L-BFGS path; two iterations cannot converge
    monkeypatch.setattr(MatrixScaling.__init__, "__defaults__", (2, 1e-2, 1e-2))
    logits, labels = synthetic(400, 25, seed=3)
    notes: list[str] = []
    table = CHECKS.create("calibration")._compare(logits[:200].float(), labels[:200], logits[200:].float(),
                                                  labels[200:], 15, notes)
    assert "matrix_scaling" in [row[0] for row in table.rows]
    assert any(note.startswith("matrix_scaling stopped after") and "before its fit converged" in note for note in notes)
    assert torch.isfinite(torch.tensor([row[1] for row in table.rows])).all()
