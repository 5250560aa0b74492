"""The tuning protocol: hyperparameters are chosen on validation data only.

OpenOOD v1.5 (Zhang et al., 2023, "OpenOOD v1.5: Enhanced Benchmark for
Out-of-Distribution Detection") fixes the protocol this module follows:

* statistics (class means, KNN banks, clipping thresholds) come from in-distribution
  *fit* data (the training split when available);
* hyperparameters (ODIN temperature and noise, ReAct and ASH percentiles, KNN k, GEN γ) are
  chosen to maximise the mean AUROC between an in-distribution *validation* split and
  *validation OOD* sets that share no image with the *test* OOD sets;
* the test OOD sets are used once, for reporting.

:func:`tune_features` searches a grid on cached features (one forward pass for every
grid point); :func:`tune_inputs` does the same for detectors that perturb inputs (ODIN).
Both return the refitted best detector and a :class:`TuningResult` that records what data
tuned what.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import ParameterGrid

from mlsafety.data.dataset import ImageDataset
from mlsafety.exceptions import InvalidInputError, InvalidParameterError
from mlsafety.metrics.ood import auroc
from mlsafety.models.classifier import Classifier
from mlsafety.monitoring.ood.base import Head, OODDetector


@dataclass
class FeatureSet:
    """Cached (features, logits, labels) of one data set, from ``Classifier.features``."""

    features: torch.Tensor | None
    logits: torch.Tensor
    labels: torch.Tensor | None = None
    name: str = ""

    @classmethod
    def compute(cls, classifier: Classifier, data: ImageDataset) -> FeatureSet:
        features, logits = classifier.features(data.images)
        return cls(features, logits, data.labels, data.name)


@dataclass
class TuningResult:
    """The grid searched, the validation score of every point, and the data used."""

    detector: str
    best_params: dict[str, Any]
    best_score: float
    grid: list[dict[str, Any]] = field(default_factory=list)
    fit_data: str = ""
    validation_in: str = ""
    validation_ood: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line for reports: what was tuned, on what, and the result."""
        if not self.grid:
            return f"{self.detector}: no hyperparameters tuned; statistics fitted on {self.fit_data}."
        params = ", ".join(f"{k}={v}" for k, v in self.best_params.items())
        return (f"{self.detector}: {params} chosen from {len(self.grid)} settings by mean AUROC "
                f"{self.best_score:.3f} on {self.validation_in} vs {', '.join(self.validation_ood)}; "
                f"statistics fitted on {self.fit_data}.")


def clone(detector: OODDetector, **params: Any) -> OODDetector:
    """A new, unfitted detector with the same parameters, updated by ``params``."""
    return type(detector)(**{**detector.get_params(), **params})


def _grid(detector: OODDetector, grid: Mapping[str, list[Any]] | None, n_fit: int) -> list[dict[str, Any]]:
    grid = dict(detector.tunable if grid is None else grid)
    unknown = set(grid) - set(detector.get_params())
    if unknown:
        raise InvalidParameterError(
            f"`grid` names {sorted(unknown)}, which {type(detector).__name__} does not have; "
            f"its parameters are {sorted(detector.get_params())}."
        )
    if "k" in grid:  # a k-th neighbour needs k fit samples
        grid["k"] = [k for k in grid["k"] if k <= n_fit] or [min(grid["k"])]
    return list(ParameterGrid(grid)) if grid else []


def _mean_auroc(scores_in: torch.Tensor, scores_out: list[torch.Tensor]) -> float:
    return float(np.mean([auroc(scores_in, s) for s in scores_out]))


def tune_features(
    detector: OODDetector,
    fit: FeatureSet,
    validation_in: FeatureSet,
    validation_ood: Mapping[str, FeatureSet],
    *,
    head: Head | None = None,
    grid: Mapping[str, list[Any]] | None = None,
) -> tuple[OODDetector, TuningResult]:
    """Grid-search ``detector`` on cached features; return the best one, fitted on ``fit``.

    Parameters
    ----------
    detector : the detector whose other parameters are kept.
    fit : in-distribution data whose statistics the detector learns.
    validation_in, validation_ood : the tuning data (never the test sets).
    head : the classification head, for detectors with ``needs_head``.
    grid : ``{param: values}``; defaults to ``detector.tunable`` (no search when empty).
    """
    if not validation_ood:
        raise InvalidInputError("tuning needs at least one validation OOD set; pass validation_ood={name: ...}.")
    points = _grid(detector, grid, len(fit.logits))
    result = TuningResult(type(detector).__name__, {}, float("nan"), [], fit.name, validation_in.name,
                          list(validation_ood))
    best: OODDetector | None = None
    for params in points or [{}]:
        candidate = clone(detector, **params).fit_features(fit.features, fit.logits, fit.labels, head=head)
        scores_in = candidate.score_features(validation_in.features, validation_in.logits)
        value = _mean_auroc(scores_in, [candidate.score_features(s.features, s.logits)
                                        for s in validation_ood.values()])
        if points:
            result.grid.append({**params, "auroc": value})
        if best is None or value > result.best_score:
            best, result.best_params, result.best_score = candidate, dict(params), value
    return best, result  # type: ignore[return-value]


def tune_inputs(
    detector: OODDetector,
    classifier: Classifier,
    fit: ImageDataset,
    validation_in: ImageDataset,
    validation_ood: Mapping[str, ImageDataset],
    *,
    grid: Mapping[str, list[Any]] | None = None,
) -> tuple[OODDetector, TuningResult]:
    """:func:`tune_features` for detectors that score images through the model (ODIN)."""
    if not validation_ood:
        raise InvalidInputError("tuning needs at least one validation OOD set; pass validation_ood={name: ...}.")
    points = _grid(detector, grid, len(fit))
    result = TuningResult(type(detector).__name__, {}, float("nan"), [], fit.name, validation_in.name,
                          list(validation_ood))
    best: OODDetector | None = None
    for params in points or [{}]:
        candidate = clone(detector, **params).fit(classifier, fit)
        value = _mean_auroc(candidate.score(validation_in.images),
                            [candidate.score(d.images) for d in validation_ood.values()])
        if points:
            result.grid.append({**params, "auroc": value})
        if best is None or value > result.best_score:
            best, result.best_params, result.best_score = candidate, dict(params), value
    return best, result  # type: ignore[return-value]
