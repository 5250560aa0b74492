from __future__ import annotations

import dataclasses

import pytest

from mlsafety.audit.base import AuditContext
from mlsafety.audit.checks.backdoor import BackdoorCheck
from mlsafety.models import build_architecture
from mlsafety.registry import CHECKS


def test_backdoor_check_runs_and_reports_triggers(backdoored, digits_splits, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLSAFETY_CACHE", str(tmp_path))  # no zoo: uncalibrated
    classifier, poisoned, _ = backdoored
    assert CHECKS.get("backdoor") is BackdoorCheck
    context = AuditContext(classifier=classifier, data=digits_splits["test"], validation=digits_splits["validation"],
                           train=poisoned, quick=True)
    result = BackdoorCheck().run(context)
    # no zoo: no threshold has a known false-positive rate, so "info" (never pass or warn) in both modes
    assert result.verdict == "info" and result.summary.startswith("Uncalibrated, no verdict")
    assert result.figures and result.figures[0].png_base64
    assert len(result.tables[0].rows) == 10
    assert 0 <= result.metrics["strip_flagged_fraction"] <= 1
    assert result.metrics["anomaly_index"] == max(row[2] for row in result.tables[0].rows)
    # the target's trigger is the smallest, and its class the easiest to reach with a universal perturbation
    assert min(range(10), key=lambda k: result.tables[0].rows[k][1]) == 0
    assert max(range(10), key=lambda k: result.tables[0].rows[k][6]) == 0
    assert any("same model-level settings" in note for note in result.notes)
    assert result.metrics["calibrated"] == 0 and result.notes[0].startswith("UNCALIBRATED")
    assert "mlsafety backdoor zoo build --architecture tiny_backdoored --data digits" in result.notes[0]
    assert result.data_note.startswith("a seeded subset of") or result.data_note.startswith("all ")
    assert "mlsafety backdoor zoo build" in result.next_step
    # full mode adds the Spectral Signatures table on the training data, and agrees on the verdict
    full = BackdoorCheck().run(dataclasses.replace(context, quick=False))
    assert any(table.title.startswith("Spectral") for table in full.tables)
    assert full.verdict == result.verdict and full.metrics["anomaly_index"] == result.metrics["anomaly_index"]


def test_backdoor_check_not_applicable_to_two_classes(tiny_classifier, digits_splits) -> None:
    data = digits_splits["test"]
    two = data.subset((data.labels < 2).nonzero().flatten())
    two.class_names = ["0", "1"]
    context = AuditContext(classifier=tiny_classifier, data=two)
    assert "at least 3 classes" in BackdoorCheck().not_applicable(context)


def test_backdoor_check_is_calibrated_against_a_zoo(tiny_zoo, backdoored, digits_splits, monkeypatch) -> None:
    from mlsafety.models import Classifier
    from mlsafety.monitoring.backdoor import model_level

    monkeypatch.setenv("MLSAFETY_CACHE", str(tiny_zoo.folder.parent.parent))
    # 6 clean shadows: 2 train the meta-detectors, 4 calibrate (too few to flag at 0.05, which the notes say)
    monkeypatch.setattr(model_level, "MIN_CALIBRATION_SHADOWS", 4)
    model = backdoored[0]
    classifier = Classifier(model.module, mean=[0.3], std=[0.4], class_names=model.class_names,
                            input_shape=(1, 16, 16), name="small_cnn")
    context = AuditContext(classifier=classifier, data=digits_splits["test"], validation=digits_splits["validation"],
                           quick=True)
    result = BackdoorCheck().run(context)
    assert result.metrics["calibrated"] == 1 and result.metrics["zoo_mismatch"] == 0
    calibration = result.details["calibration"]
    assert set(calibration["statistics"]) == {"neural_cleanse_class", "universal_perturbation_class"}
    assert calibration["n_clean_shadows"] == 4 and calibration["zoo"] == tiny_zoo.config.identity
    # the planted target is the most deviant reversed-trigger class, more extreme than in every shadow;
    # 4 shadows cannot reach p <= 0.05
    assert calibration["classes"]["neural_cleanse_class"] == 0
    assert calibration["p_values"]["neural_cleanse_class"] == pytest.approx(1 / 5)
    assert result.verdict == "pass" and any("only 4 clean shadows" in note for note in result.notes)
    assert result.tables[0].title.startswith("Calibrated model-level statistics")
    # a model of another width is calibrated with a warning
    wide = Classifier(build_architecture("small_cnn", in_channels=1, n_classes=10, width=12).eval(),
                      input_shape=(1, 16, 16), name="small_cnn")
    assert "differ from this model" in model_level.zoo_mismatch(wide, tiny_zoo)
    assert model_level.zoo_mismatch(classifier, tiny_zoo) is None
