"""Out-of-distribution detection: post-hoc detectors on a classifier's features and logits,
Outlier Exposure training, and the tuning protocol.

Every detector is registered in :data:`mlsafety.registry.OOD_DETECTORS` and shares the API
of :class:`OODDetector`: ``fit(classifier, data)`` / ``score(x)`` or, with one shared
forward pass, ``fit_features(features, logits, labels, head=...)`` /
``score_features(features, logits)``. Higher scores mean more anomalous.
"""

from mlsafety.monitoring.ood.ash import ASH
from mlsafety.monitoring.ood.base import OODDetector, energy_score
from mlsafety.monitoring.ood.energy import Energy
from mlsafety.monitoring.ood.entropy import Entropy
from mlsafety.monitoring.ood.gen import GEN
from mlsafety.monitoring.ood.gradnorm import GradNorm, gradnorm_score
from mlsafety.monitoring.ood.kl_matching import KLMatching
from mlsafety.monitoring.ood.knn import KNN
from mlsafety.monitoring.ood.mahalanobis import Mahalanobis
from mlsafety.monitoring.ood.max_logit import MaxLogit
from mlsafety.monitoring.ood.msp import MSP, msp_score
from mlsafety.monitoring.ood.odin import ODIN
from mlsafety.monitoring.ood.outlier_exposure import (
    OutlierExposureLoss,
    outlier_exposure_finetune,
    uniform_cross_entropy,
)
from mlsafety.monitoring.ood.pyod_adapter import PyODAdapter
from mlsafety.monitoring.ood.react import ReAct
from mlsafety.monitoring.ood.relative_mahalanobis import RelativeMahalanobis
from mlsafety.monitoring.ood.tuning import FeatureSet, TuningResult, tune_features, tune_inputs
from mlsafety.monitoring.ood.vim import ViM

__all__ = [
    "ASH",
    "GEN",
    "KNN",
    "MSP",
    "ODIN",
    "Energy",
    "Entropy",
    "FeatureSet",
    "GradNorm",
    "KLMatching",
    "Mahalanobis",
    "MaxLogit",
    "OODDetector",
    "OutlierExposureLoss",
    "PyODAdapter",
    "ReAct",
    "RelativeMahalanobis",
    "TuningResult",
    "ViM",
    "energy_score",
    "gradnorm_score",
    "msp_score",
    "outlier_exposure_finetune",
    "tune_features",
    "tune_inputs",
    "uniform_cross_entropy",
]
