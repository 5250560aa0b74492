"""Backdoors (trojans): simulate them, detect them in data, inputs and models, remove them.

Attacks (:data:`~mlsafety.registry.BACKDOOR_ATTACKS`): ``badnets``, ``blended``, ``wanet``,
``sig``. Detectors (:data:`~mlsafety.registry.BACKDOOR_DETECTORS`):
``spectral_signatures`` and ``activation_clustering`` (training data), ``strip`` (inputs
at run time). Model level: :class:`NeuralCleanse` and :class:`TABOR` (trigger reverse-engineering, all
classes batched), :class:`UniversalPerturbation` (per-class targeted universal perturbations),
and the meta-detectors :class:`MNTD` and
:class:`ULP` (registry ``BACKDOOR_MODEL_DETECTORS``) trained on a shadow-model :class:`Zoo`;
:func:`calibrated_decision` turns model-level statistics into empirical p-values against the
zoo's clean models. Mitigation: :class:`FinePruning`, :class:`TriggerUnlearning`.
"""

from mlsafety.monitoring.backdoor._attack import BackdoorAttack, poison_dataset, triggered_test_set
from mlsafety.monitoring.backdoor._model_detector import BACKDOOR_MODEL_DETECTORS
from mlsafety.monitoring.backdoor.activation_clustering import ActivationClustering
from mlsafety.monitoring.backdoor.badnets import BadNets
from mlsafety.monitoring.backdoor.blended import Blended
from mlsafety.monitoring.backdoor.calibration import CalibratedDecision, calibrated_decision, empirical_p_value
from mlsafety.monitoring.backdoor.evaluation import attack_success_rate, backdoor_metrics
from mlsafety.monitoring.backdoor.fine_pruning import FinePruning
from mlsafety.monitoring.backdoor.mntd import MNTD
from mlsafety.monitoring.backdoor.neural_cleanse import NeuralCleanse, mad_anomaly_index
from mlsafety.monitoring.backdoor.sig import SIG
from mlsafety.monitoring.backdoor.spectral_signatures import SpectralSignatures
from mlsafety.monitoring.backdoor.strip import STRIP
from mlsafety.monitoring.backdoor.tabor import TABOR
from mlsafety.monitoring.backdoor.training import train_backdoored_classifier
from mlsafety.monitoring.backdoor.ulp import ULP
from mlsafety.monitoring.backdoor.universal_perturbation import UniversalPerturbation
from mlsafety.monitoring.backdoor.unlearning import TriggerUnlearning
from mlsafety.monitoring.backdoor.wanet import WaNet
from mlsafety.monitoring.backdoor.zoo import Zoo, ZooConfig

__all__ = [
    "BACKDOOR_MODEL_DETECTORS",
    "MNTD",
    "SIG",
    "STRIP",
    "TABOR",
    "ULP",
    "ActivationClustering",
    "BackdoorAttack",
    "BadNets",
    "Blended",
    "CalibratedDecision",
    "FinePruning",
    "NeuralCleanse",
    "SpectralSignatures",
    "TriggerUnlearning",
    "UniversalPerturbation",
    "WaNet",
    "Zoo",
    "ZooConfig",
    "attack_success_rate",
    "backdoor_metrics",
    "calibrated_decision",
    "empirical_p_value",
    "mad_anomaly_index",
    "poison_dataset",
    "train_backdoored_classifier",
    "triggered_test_set",
]
