"""Run any PyOD detector on penultimate features."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from mlsafety.exceptions import InvalidParameterError
from mlsafety.monitoring.ood.base import OODDetector
from mlsafety.registry import OOD_DETECTORS


def _default_estimator() -> Any:
    try:
        from pyod.models.iforest import IForest
    except ImportError as error:  # pyod is optional
        raise ImportError(
            "PyODAdapter needs PyOD for its default estimator: pip install pyod "
            "(or pass estimator=<any object with fit(X) and decision_function(X)>)."
        ) from error
    return IForest(random_state=0)


@OOD_DETECTORS.register("pyod", inputs="features")
class PyODAdapter(OODDetector):
    """Fit a PyOD (or PyOD-compatible) outlier detector on in-distribution penultimate
    features and use its ``decision_function`` as the score.

    Zhao, Nasrullah & Li (2019), "PyOD: A Python Toolbox for Scalable Outlier Detection",
    JMLR 20(96). PyOD's convention already matches mlsafety's: higher = more anomalous.
    scikit-learn's outlier detectors use the opposite sign; wrap them with ``negate=True``.

    Parameters
    ----------
    estimator : object or None
        An *unfitted* estimator with ``fit(X)`` and ``decision_function(X)`` (it is
        deep-copied at fit, so the argument stays unfitted). None uses PyOD's isolation
        forest with ``random_state=0`` (Liu, Ting & Zhou, 2008, "Isolation Forest", ICDM).
        Avoid ECOD/COPOD for batch scoring: their ``decision_function`` re-estimates the
        empirical CDFs on the scored batch together with the training data, so a batch made
        only of OOD samples shifts its own reference.
    negate : bool
        Negate the decision function (for scikit-learn detectors, where higher = more normal).

    Examples
    --------
    >>> from pyod.models.iforest import IForest
    >>> scores = PyODAdapter(IForest(random_state=0)).fit(classifier, train).score(images)
    """

    uses_features = True

    def __init__(self, estimator: Any = None, negate: bool = False) -> None:
        self.estimator = estimator
        self.negate = negate

    def _validate_params(self) -> None:
        if self.estimator is not None and not (hasattr(self.estimator, "fit")
                                               and hasattr(self.estimator, "decision_function")):
            raise InvalidParameterError(
                f"`estimator` of PyODAdapter must have fit(X) and decision_function(X); got "
                f"{type(self.estimator).__name__}. Pass a PyOD detector such as pyod.models.knn.KNN()."
            )

    def _fit(self, features, logits, labels, head) -> None:  # type: ignore[no-untyped-def]
        estimator = _default_estimator() if self.estimator is None else copy.deepcopy(self.estimator)
        estimator.fit(features.detach().cpu().double().numpy())
        self.estimator_ = estimator

    def _score(self, features: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        values = np.asarray(self.estimator_.decision_function(features.detach().cpu().double().numpy()),  # type: ignore[union-attr]
                            dtype=np.float64)
        scores = torch.from_numpy(-values if self.negate else values).to(logits.device)
        return scores.float()
