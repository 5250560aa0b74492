"""Clean accuracy (C-Acc) and attack success rate (ASR) of a possibly backdoored model."""

from __future__ import annotations

from mlsafety.data.dataset import ImageDataset
from mlsafety.models.classifier import Classifier
from mlsafety.models.training import accuracy
from mlsafety.monitoring.backdoor._attack import BackdoorAttack, triggered_test_set


def attack_success_rate(classifier: Classifier, attack: BackdoorAttack, data: ImageDataset) -> float:
    """Fraction of triggered test inputs classified as the adversary's target.

    ``ASR = mean_i [f(T(x_i)) = t(y_i)]`` over test samples whose true label is not
    already the target (all-to-one) or over all samples (all-to-all), where ``T`` stamps
    the trigger and ``t`` is the target mapping.
    """
    triggered = triggered_test_set(data, attack)
    return accuracy(classifier, triggered)


def backdoor_metrics(classifier: Classifier, attack: BackdoorAttack, data: ImageDataset) -> dict[str, float]:
    """``{"clean_accuracy": C-Acc, "attack_success_rate": ASR}`` on clean test ``data``."""
    return {"clean_accuracy": accuracy(classifier, data),
            "attack_success_rate": attack_success_rate(classifier, attack, data)}
