"""Gradient-masking sanity checks fire on a masked model and stay quiet on a normal one; evaluation helpers."""

from __future__ import annotations

import itertools

import torch

from mlsafety.models import Classifier
from mlsafety.robustness.attacks import APGD, accuracy_vs_epsilon, evaluate_attack, minimal_perturbation
from mlsafety.robustness.attacks.sanity import (
    check_monotone_in_epsilon,
    check_outputs_are_logits,
    run_sanity_checks,
)


def _failed(findings) -> set[str]:
    return {f.name for f in findings if not f.passed}


def test_sanity_checks_fire_on_a_gradient_masked_model(masked_classifier, batch) -> None:
    x, y = batch[0][:16], batch[1][:16]
    findings = run_sanity_checks(masked_classifier, x, y, epsilon=0.1, n_queries=60)
    failed = _failed(findings)
    assert {"gradients", "large_epsilon", "black_box_not_stronger"} <= failed
    for finding in findings:
        if not finding.passed:
            assert "overestimate robustness" in finding.message


def test_sanity_checks_pass_on_a_normal_model(tiny_classifier, batch) -> None:
    x, y = batch[0][:32], batch[1][:32]
    curve = accuracy_vs_epsilon(tiny_classifier, x, y, [0.02, 0.05, 0.1], APGD(n_steps=10))
    findings = run_sanity_checks(tiny_classifier, x, y, epsilon=0.05, curve=curve, n_queries=100)
    assert _failed(findings) == set(), [f.message for f in findings if not f.passed]


def test_probability_outputs_are_detected(tiny_classifier, batch) -> None:
    module = torch.nn.Sequential(tiny_classifier.normalize, tiny_classifier.module, torch.nn.Softmax(1)).eval()
    probabilities = Classifier(module, class_names=tiny_classifier.class_names)
    finding = check_outputs_are_logits(probabilities, batch[0])
    assert not finding.passed and "softmax" in finding.message


def test_non_monotone_curve_is_reported() -> None:
    finding = check_monotone_in_epsilon([0.1, 0.2, 0.3], [0.5, 0.3, 0.45])
    assert not finding.passed and finding.value == 0.45 - 0.3
    assert check_monotone_in_epsilon([0.1, 0.2], [0.5, 0.3]).passed


def test_accuracy_vs_epsilon_and_minimal_perturbation_agree(tiny_classifier, batch) -> None:
    x, y = batch[0][:16], batch[1][:16]
    curve = accuracy_vs_epsilon(tiny_classifier, x, y, [0.02, 0.05, 0.1, 0.2], APGD(n_steps=10))
    accuracies = curve["robust_accuracy"]
    assert all(b <= a + 1 / 16 for a, b in itertools.pairwise(accuracies))
    assert accuracies[-1] <= 0.1
    norms = minimal_perturbation(tiny_classifier, x, y, norm="Linf", n_steps=20, targeted=True, n_target_classes=2)
    correct = tiny_classifier.predict(x) == y
    assert bool((norms[~correct] == 0).all()) and bool((norms[correct] > 0).all())
    assert float(torch.isfinite(norms).float().mean()) >= 0.8
    first = curve["first_broken_epsilon"]
    assert bool((first[~correct] == 0).all()) and bool((first[correct] > 0).all())


def test_success_rate_and_clean_accuracy(tiny_classifier, batch) -> None:
    x, y = batch
    result = evaluate_attack("apgd", x[:32], y[:32], tiny_classifier, epsilon=0.1, n_steps=10)
    n_correct = int(result.clean_correct.sum())
    assert result.success_rate == float((result.clean_correct & ~result.robust).sum()) / n_correct
    assert result.robust_accuracy <= result.clean_accuracy
