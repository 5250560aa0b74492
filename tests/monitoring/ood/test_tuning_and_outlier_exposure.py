"""The validation-only tuning protocol and Outlier Exposure."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from mlsafety.data.ood import auxiliary_outliers
from mlsafety.exceptions import InvalidInputError, InvalidParameterError, ShapeError
from mlsafety.metrics.ood import auroc
from mlsafety.monitoring.ood import KNN, MSP, ODIN, OutlierExposureLoss, outlier_exposure_finetune
from mlsafety.monitoring.ood.outlier_exposure import uniform_cross_entropy
from mlsafety.monitoring.ood.tuning import tune_features, tune_inputs


def test_tuning_picks_the_best_validation_setting(cached) -> None:
    validation_ood = {"photos": cached["photos"]}
    best, result = tune_features(KNN(), cached["fit"], cached["test"], validation_ood, grid={"k": [1, 5, 50]})
    assert [row["k"] for row in result.grid] == [1, 5, 50]
    top = max(result.grid, key=lambda row: row["auroc"])
    assert result.best_params == {"k": top["k"]} and best.k == top["k"]
    assert result.best_score == pytest.approx(top["auroc"])
    assert best.n_features_in_ == 128, "the returned detector is fitted"
    assert result.validation_ood == ["photos"] and "chosen from 3 settings" in result.describe()
    _, untuned = tune_features(MSP(), cached["fit"], cached["test"], validation_ood)
    assert untuned.grid == [] and "no hyperparameters tuned" in untuned.describe()


def test_tuning_refuses_bad_grids_and_missing_ood(cached) -> None:
    with pytest.raises(InvalidParameterError, match="does not have"):
        tune_features(KNN(), cached["fit"], cached["test"], {"photos": cached["photos"]}, grid={"kk": [1]})
    with pytest.raises(InvalidInputError, match="at least one validation OOD set"):
        tune_features(KNN(), cached["fit"], cached["test"], {})


def test_tune_inputs_for_odin(default_classifier, fashion_small, ood_sets) -> None:
    validation_in = fashion_small["validation"].head(100)
    best, result = tune_inputs(ODIN(), default_classifier, fashion_small["validation"], validation_in,
                               {"digits": ood_sets["digits"].head(100)}, grid={"noise": [0.0, 0.002]})
    assert len(result.grid) == 2 and best.noise in (0.0, 0.002)


def test_outlier_exposure_loss_matches_its_formula(default_classifier, fashion_small) -> None:
    assert float(uniform_cross_entropy(torch.zeros(3, 4))) == pytest.approx(math.log(4))
    outliers = auxiliary_outliers((1, 28, 28), 50)
    x, y = fashion_small["validation"].images[:8], fashion_small["validation"].labels[:8]
    loss = OutlierExposureLoss(outliers, weight=0.5, seed=0)
    index = torch.randint(0, 50, (8,), generator=torch.Generator().manual_seed(0))
    with default_classifier.evaluating(), torch.no_grad():
        value = loss(default_classifier, x, y)
        logits_in, logits_out = default_classifier(x), default_classifier(outliers.images[index])
    expected = F.cross_entropy(logits_in, y) - 0.5 * logits_out.log_softmax(1).mean()
    assert float(value) == pytest.approx(float(expected), rel=1e-5)
    with pytest.raises(ShapeError, match="auxiliary_outliers"):
        OutlierExposureLoss(torch.rand(4, 1, 16, 16))(default_classifier, x, y)


def test_outlier_exposure_raises_the_auroc_on_unseen_photographs(default_classifier, fashion_small, ood_sets) -> None:
    classifier = copy.deepcopy(default_classifier)
    before = auroc(MSP().fit(classifier, fashion_small["validation"]).score(fashion_small["test"].images),
                   MSP().fit(classifier, fashion_small["validation"]).score(ood_sets["photos"].images))
    outlier_exposure_finetune(classifier, fashion_small["validation"], auxiliary_outliers((1, 28, 28), 500),
                              epochs=2, learning_rate=1e-3, seed=0)
    detector = MSP().fit(classifier, fashion_small["validation"])
    after = auroc(detector.score(fashion_small["test"].images), detector.score(ood_sets["photos"].images))
    assert after > before + 0.05, f"MSP AUROC on test photographs {before:.3f} -> {after:.3f}"
    assert default_classifier.module.classifier.weight.grad is None, "the session model must be untouched"
