"""Backdoors (trojans): simulate them, detect them in data, inputs and models, remove them.

Attacks (:data:`~mlsafety.registry.BACKDOOR_ATTACKS`): ``badnets``, ``blended``, ``wanet``,
``sig``. Detectors (:data:`~mlsafety.registry.BACKDOOR_DETECTORS`):
``spectral_signatures`` and ``activation_clustering`` (training data), ``strip`` (inputs
at run time). Model level: :class:`NeuralCleanse`. Mitigation: :class:`FinePruning`,
:class:`TriggerUnlearning`.
"""

from mlsafety.monitoring.backdoor._attack import BackdoorAttack, poison_dataset, triggered_test_set
from mlsafety.monitoring.backdoor.activation_clustering import ActivationClustering
from mlsafety.monitoring.backdoor.badnets import BadNets
from mlsafety.monitoring.backdoor.blended import Blended
from mlsafety.monitoring.backdoor.evaluation import attack_success_rate, backdoor_metrics
from mlsafety.monitoring.backdoor.fine_pruning import FinePruning
from mlsafety.monitoring.backdoor.neural_cleanse import NeuralCleanse, mad_anomaly_index
from mlsafety.monitoring.backdoor.sig import SIG
from mlsafety.monitoring.backdoor.spectral_signatures import SpectralSignatures
from mlsafety.monitoring.backdoor.strip import STRIP
from mlsafety.monitoring.backdoor.training import train_backdoored_classifier
from mlsafety.monitoring.backdoor.unlearning import TriggerUnlearning
from mlsafety.monitoring.backdoor.wanet import WaNet

__all__ = [
    "SIG",
    "STRIP",
    "ActivationClustering",
    "BackdoorAttack",
    "BadNets",
    "Blended",
    "FinePruning",
    "NeuralCleanse",
    "SpectralSignatures",
    "TriggerUnlearning",
    "WaNet",
    "attack_success_rate",
    "backdoor_metrics",
    "mad_anomaly_index",
    "poison_dataset",
    "train_backdoored_classifier",
    "triggered_test_set",
]
