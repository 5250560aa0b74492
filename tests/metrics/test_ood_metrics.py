"""OOD metrics against scikit-learn, hand-computed cases and pytorch-ood's conventions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from mlsafety.exceptions import InvalidInputError, InvalidParameterError, ShapeError
from mlsafety.metrics.ood import (
    _fast_auroc,
    _fast_fpr_at_tpr,
    aupr_in,
    aupr_out,
    auroc,
    detection_error,
    fpr_at_95_tpr,
    fpr_at_tpr,
    ood_metrics,
)

RNG = np.random.default_rng(0)
SCORES_IN = RNG.normal(0.0, 1.0, 400)
SCORES_OUT = RNG.normal(1.5, 1.0, 300)


def test_auroc_and_aupr_match_sklearn() -> None:
    labels = np.r_[np.zeros(400), np.ones(300)]
    scores = np.r_[SCORES_IN, SCORES_OUT]
    assert auroc(SCORES_IN, SCORES_OUT) == pytest.approx(roc_auc_score(labels, scores))
    assert aupr_out(SCORES_IN, SCORES_OUT) == pytest.approx(average_precision_score(labels, scores))
    assert aupr_in(SCORES_IN, SCORES_OUT) == pytest.approx(average_precision_score(1 - labels, -scores))
    assert auroc(torch.tensor(SCORES_IN), torch.tensor(SCORES_OUT)) == pytest.approx(auroc(SCORES_IN, SCORES_OUT))


def test_hand_computed_case() -> None:
    scores_in = [0.1, 0.2, 0.3, 0.4]
    scores_out = [0.35, 0.5, 0.6, 0.7]
    assert auroc(scores_in, scores_out) == pytest.approx(15 / 16)  # one discordant pair (0.35 < 0.4)
    # positive="ood": flag 95% of OOD -> threshold 0.35 -> 1 of 4 ID flagged
    assert fpr_at_95_tpr(scores_in, scores_out, positive="ood") == pytest.approx(0.25)
    # positive="in": accept 95% of ID -> threshold 0.4 -> OOD 0.35 accepted -> 1 of 4
    assert fpr_at_95_tpr(scores_in, scores_out, positive="in") == pytest.approx(0.25)
    assert fpr_at_tpr(scores_in, scores_out, 0.5, positive="ood") == pytest.approx(0.0)
    # an OOD sample scoring below every ID sample: accepted by "in" (1 of 4), while "ood" must
    # flag it too and so flags every ID sample
    assert fpr_at_tpr(scores_in, [0.0, 0.5, 0.6, 0.7], 0.95, positive="in") == pytest.approx(0.25)
    assert fpr_at_tpr(scores_in, [0.0, 0.5, 0.6, 0.7], 0.95, positive="ood") == pytest.approx(1.0)
    assert detection_error(scores_in, scores_out) == pytest.approx(0.125)
    assert auroc([0.0, 0.0], [0.0, 0.0]) == pytest.approx(0.5)


def test_perfect_and_inverted_detectors() -> None:
    assert auroc([0, 1], [2, 3]) == 1.0 and auroc([2, 3], [0, 1]) == 0.0
    assert fpr_at_95_tpr([0, 1], [2, 3]) == 0.0 and detection_error([0, 1], [2, 3]) == 0.0
    assert aupr_in([0, 1], [2, 3]) == 1.0 and aupr_out([0, 1], [2, 3]) == 1.0


def test_fast_bootstrap_metrics_equal_the_sklearn_ones() -> None:
    labels = np.r_[np.zeros(400), np.ones(300)]
    scores = np.round(np.r_[SCORES_IN, SCORES_OUT], 1)  # ties
    assert _fast_auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    for tpr in (0.5, 0.9, 0.95, 0.99):
        for positive, oriented_labels, oriented in (("ood", labels, scores), ("in", 1 - labels, -scores)):
            expected = fpr_at_tpr(scores[:400], scores[400:], tpr, positive=positive)
            assert _fast_fpr_at_tpr(oriented_labels, oriented, tpr) == pytest.approx(expected)


def test_bootstrap_intervals_bracket_the_estimate() -> None:
    result = ood_metrics(SCORES_IN, SCORES_OUT, intervals=True, n_resamples=300)
    low, high = result["auroc_ci"]
    assert low < result["auroc"] < high and high - low < 0.1
    low, high = result["fpr95_ci"]
    assert low <= result["fpr95"] <= high
    assert result["positive"] == "in"


def test_bad_input_gets_one_line_errors() -> None:
    with pytest.raises(ShapeError, match="empty"):
        auroc([], [1.0])
    with pytest.raises(InvalidInputError, match="NaN"):
        auroc([np.nan, 1.0], [1.0])
    with pytest.raises(InvalidParameterError, match="`positive` of OOD metrics must be one of"):
        fpr_at_95_tpr([0.0], [1.0], positive="id")
    with pytest.raises(ShapeError, match="1-D"):
        auroc(np.zeros((3, 3)), [1.0])
