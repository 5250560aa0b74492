"""The `ood` audit check on small configurations (the default model, digits, RGB)."""

from __future__ import annotations

import torch

from mlsafety.audit.base import AuditContext
from mlsafety.data import ImageDataset
from mlsafety.models import Classifier, build_architecture
from mlsafety.registry import CHECKS

SMALL = {"fit": 300, "evaluation": 200, "ood": 80, "validation": 120, "validation_ood": 60, "resamples": 30}


def test_check_on_the_default_model(default_classifier, fashion_small) -> None:
    context = AuditContext(default_classifier, fashion_small["test"], validation=fashion_small["validation"],
                           quick=True, is_default=True, options={"ood": {"sizes": SMALL}})
    result = CHECKS.create("ood").run(context)
    assert result.verdict in ("pass", "warn")
    auroc_table, fpr_table, tuning_table = result.tables
    assert fpr_table.title.startswith("FPR at 95% TPR (positive = in-distribution)")
    assert auroc_table.columns[1:-1] == ["digits", "photos", "textures", "gaussian-noise", "uniform-noise", "blobs"]
    detectors = [row[0] for row in auroc_table.rows]
    assert "odin" not in detectors and any("odin" in note for note in result.notes), "ODIN is skipped in quick mode"
    assert len(detectors) >= 13
    recommended = result.details["recommended"]
    tuning = result.details["tuning"]
    assert recommended == max(tuning, key=lambda n: tuning[n]["best_score"]), "chosen on validation data only"
    assert result.metrics["auroc_mean"] > 0.9 > result.metrics["msp_auroc_mean"]
    assert "[" in auroc_table.rows[0][1], "AUROC cells carry bootstrap intervals"
    assert len(result.figures) == 3
    assert any("tuned on" in note for note in result.notes)
    assert all(row[4].endswith("photos, noise") or row[4] == "not tuned" for row in tuning_table.rows)


def test_check_on_digits_leaves_digits_out(tiny_classifier, digits_splits) -> None:
    context = AuditContext(tiny_classifier, digits_splits["test"], validation=digits_splits["validation"],
                           quick=True, options={"ood": {"sizes": SMALL, "detectors": ["msp", "knn", "vim", "odin"],
                                                        "odin": True}})
    result = CHECKS.create("ood").run(context)
    columns = result.tables[0].columns
    assert "digits" not in columns and "photos" in columns
    assert {row[0] for row in result.tables[0].rows} == {"msp", "knn", "vim", "odin"}
    assert any("60% of" in row[3] for row in result.tables[2].rows), "no train split: fitted on validation"


def test_check_on_rgb_with_three_classes_and_a_user_ood_set() -> None:
    torch.manual_seed(0)
    module = build_architecture("small_cnn", in_channels=3, n_classes=3, width=4).eval()
    classifier = Classifier(module, class_names=["a", "b", "c"], input_shape=(3, 20, 20))
    images = torch.rand(160, 3, 20, 20)
    labels = torch.arange(160) % 3
    data = ImageDataset(images, labels, ["a", "b", "c"], "rgb")
    wrong_shape = ImageDataset(torch.rand(10, 1, 20, 20), torch.zeros(10, dtype=torch.long), ["x"], "gray")
    right_shape = ImageDataset(torch.rand(30, 3, 20, 20) * 0.2, torch.zeros(30, dtype=torch.long), ["x"], "dark")
    context = AuditContext(classifier, data, validation=None, ood={"gray": wrong_shape, "dark": right_shape},
                           quick=True, options={"ood": {"sizes": SMALL, "detectors": ["energy", "mahalanobis"]}})
    result = CHECKS.create("ood").run(context)
    assert "dark" in result.tables[0].columns and "gray" not in result.tables[0].columns
    assert any("'gray'" in w for w in result.warnings)
    assert any("no validation split" in w for w in result.warnings)
    assert result.verdict in ("pass", "warn", "fail")
