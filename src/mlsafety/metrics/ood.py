"""Out-of-distribution detection metrics, built on scikit-learn's ranking metrics.

Every function takes anomaly scores of in-distribution (ID) and out-of-distribution (OOD)
samples, **higher = more anomalous** (the convention of every mlsafety detector).

Which class is "positive" matters only for FPR at 95% TPR, and the literature disagrees:

* ``positive="ood"`` -- OpenOOD and pytorch-ood: the threshold flags 95% of the OOD samples
  (TPR on OOD = 0.95) and the metric is the fraction of ID samples wrongly flagged.
* ``positive="in"`` -- the ODIN (Liang et al., 2018) and Energy (Liu et al., 2020) papers:
  the threshold accepts 95% of the ID samples and the metric is the fraction of OOD
  samples wrongly accepted.

mlsafety defaults to ``positive="in"``: a monitor is deployed with a threshold that keeps
95% of normal traffic, and the question is how much OOD traffic then slips through.
AUROC and detection error do not depend on the choice; AUPR-In and AUPR-Out name their
positive class explicitly.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from mlsafety._validation import check_fraction, check_in
from mlsafety.exceptions import InvalidInputError, ShapeError
from mlsafety.metrics.bootstrap import bootstrap_interval

Positive = Literal["in", "ood"]
DEFAULT_POSITIVE: Positive = "in"


def _as_scores(values: Any, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        array = array.reshape(-1) if array.ndim == 2 and 1 in array.shape else array
    if array.ndim != 1:
        raise ShapeError(f"`{name}` must be a 1-D array of scores; got shape {array.shape}.")
    if array.size == 0:
        raise ShapeError(f"`{name}` is empty; an OOD metric needs at least one {name.split('_')[-1]} score.")
    if not np.isfinite(array).all():
        raise InvalidInputError(
            f"`{name}` contains {int((~np.isfinite(array)).sum())} NaN or infinite scores; "
            "check the detector's inputs (features, logits) for NaN."
        )
    return array


def _labelled(scores_in: Any, scores_out: Any, positive: str) -> tuple[np.ndarray, np.ndarray]:
    """Labels (1 = positive class) and scores oriented so that higher = more positive."""
    check_in(positive, {"in", "ood"}, "positive", "OOD metrics")
    s_in, s_out = _as_scores(scores_in, "scores_in"), _as_scores(scores_out, "scores_out")
    is_ood = np.concatenate([np.zeros(len(s_in)), np.ones(len(s_out))])
    scores = np.concatenate([s_in, s_out])
    if positive == "ood":
        return is_ood, scores
    return 1.0 - is_ood, -scores


def auroc(scores_in: Any, scores_out: Any) -> float:
    """Area under the ROC curve for separating OOD from ID (0.5 = chance, 1 = perfect).

    The probability that a random OOD sample scores higher than a random ID sample
    (ties count one half); symmetric in the choice of positive class.
    """
    labels, scores = _labelled(scores_in, scores_out, "ood")
    return float(roc_auc_score(labels, scores))


def aupr_in(scores_in: Any, scores_out: Any) -> float:
    """Average precision with in-distribution as the positive class (scores negated)."""
    labels, scores = _labelled(scores_in, scores_out, "in")
    return float(average_precision_score(labels, scores))


def aupr_out(scores_in: Any, scores_out: Any) -> float:
    """Average precision with OOD as the positive class."""
    labels, scores = _labelled(scores_in, scores_out, "ood")
    return float(average_precision_score(labels, scores))


def fpr_at_tpr(scores_in: Any, scores_out: Any, tpr: float = 0.95,
               positive: Positive = DEFAULT_POSITIVE) -> float:
    """False-positive rate at the first ROC threshold whose true-positive rate reaches ``tpr``.

    ``positive="in"`` (default): the fraction of OOD samples accepted when ``tpr`` of ID
    samples are accepted. ``positive="ood"``: the fraction of ID samples flagged when
    ``tpr`` of OOD samples are flagged (OpenOOD, pytorch-ood).
    """
    check_fraction(tpr, "tpr", "fpr_at_tpr", high_inclusive=True)
    labels, scores = _labelled(scores_in, scores_out, positive)
    fpr, true_positive_rate, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(fpr[np.searchsorted(true_positive_rate, tpr, side="left")])


def fpr_at_95_tpr(scores_in: Any, scores_out: Any, positive: Positive = DEFAULT_POSITIVE) -> float:
    """:func:`fpr_at_tpr` at 95% TPR (FPR@95)."""
    return fpr_at_tpr(scores_in, scores_out, 0.95, positive)


def detection_error(scores_in: Any, scores_out: Any) -> float:
    """Minimum over thresholds of ``0.5 (1 - TPR) + 0.5 FPR`` (Liang et al., 2018): the
    misclassification rate of the best threshold when ID and OOD are equally likely."""
    labels, scores = _labelled(scores_in, scores_out, "ood")
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(np.min(0.5 * (1.0 - tpr) + 0.5 * fpr))


METRICS = {
    "auroc": auroc,
    "aupr_in": aupr_in,
    "aupr_out": aupr_out,
    "fpr95": fpr_at_95_tpr,
    "detection_error": detection_error,
}


def _fast_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney AUROC, ties counted one half (equal to roc_auc_score; used inside the
    bootstrap, where a sort and two binary searches beat building a full ROC curve)."""
    positive = scores[labels == 1]
    negative = np.sort(scores[labels == 0])
    if positive.size == 0 or negative.size == 0:
        return float("nan")
    below = np.searchsorted(negative, positive, side="left")
    not_above = np.searchsorted(negative, positive, side="right")
    return float((below.sum() + 0.5 * (not_above - below).sum()) / (positive.size * negative.size))


def _fast_fpr_at_tpr(labels: np.ndarray, scores: np.ndarray, tpr: float = 0.95) -> float:
    """FPR at the largest threshold whose TPR reaches ``tpr`` (equal to :func:`fpr_at_tpr`
    on oriented scores; a sort instead of a full ROC curve, for the bootstrap)."""
    positive = np.sort(scores[labels == 1])[::-1]
    negative = scores[labels == 0]
    if positive.size == 0 or negative.size == 0:
        return float("nan")
    k = max(1, int(np.ceil(tpr * positive.size - 1e-9)))
    return float(np.mean(negative >= positive[k - 1]))


def _fast_fpr95(labels: np.ndarray, scores: np.ndarray) -> float:
    return _fast_fpr_at_tpr(labels, scores, 0.95)


def ood_metrics(scores_in: Any, scores_out: Any, *, positive: Positive = DEFAULT_POSITIVE,
                intervals: bool = False, n_resamples: int = 1000, confidence: float = 0.95,
                seed: int = 0) -> dict[str, Any]:
    """All five metrics as a dict; with ``intervals``, also stratified percentile bootstrap
    intervals (ID and OOD resampled separately) under ``"<metric>_ci"`` for AUROC and FPR@95.

    Returns
    -------
    dict with keys ``auroc``, ``aupr_in``, ``aupr_out``, ``fpr95``, ``detection_error``,
    ``positive`` and, with ``intervals``, ``auroc_ci`` and ``fpr95_ci`` as (low, high).
    """
    result: dict[str, Any] = {
        "auroc": auroc(scores_in, scores_out),
        "aupr_in": aupr_in(scores_in, scores_out),
        "aupr_out": aupr_out(scores_in, scores_out),
        "fpr95": fpr_at_95_tpr(scores_in, scores_out, positive),
        "detection_error": detection_error(scores_in, scores_out),
        "positive": positive,
    }
    if intervals:
        labels, scores = _labelled(scores_in, scores_out, "ood")
        result["auroc_ci"] = bootstrap_interval(_fast_auroc, labels, scores, n_resamples=n_resamples,
                                                confidence=confidence, seed=seed, stratify=labels)
        oriented_labels, oriented = _labelled(scores_in, scores_out, positive)

        result["fpr95_ci"] = bootstrap_interval(_fast_fpr95, oriented_labels, oriented, n_resamples=n_resamples,
                                                confidence=confidence, seed=seed, stratify=oriented_labels)
    return result
