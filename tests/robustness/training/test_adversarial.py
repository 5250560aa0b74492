"""Adversarial training objectives: contracts, a hand-checked identity, and a robustness gain."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mlsafety.exceptions import InvalidParameterError
from mlsafety.models import Classifier, build_architecture, train_classifier
from mlsafety.robustness.attacks import PGD, robust_accuracy
from mlsafety.robustness.training.adversarial import FastFGSMLoss, PGDAdversarialLoss, TRADESLoss

LOSSES = [PGDAdversarialLoss(epsilon=0.1, n_steps=3), TRADESLoss(epsilon=0.1, n_steps=3), FastFGSMLoss(epsilon=0.1)]


@pytest.mark.parametrize("loss", LOSSES, ids=lambda loss: type(loss).__name__)
def test_loss_is_a_differentiable_scalar_and_keeps_train_mode(loss, tiny_classifier, digits_splits) -> None:
    x, y = digits_splits["train"].images[:32], digits_splits["train"].labels[:32]
    module = tiny_classifier.module
    module.train()
    try:
        value = loss(tiny_classifier, x, y)
        assert module.training
        assert value.ndim == 0 and torch.isfinite(value)
        grads = torch.autograd.grad(value, [p for p in module.parameters() if p.requires_grad])
        assert any(float(g.abs().sum()) > 0 for g in grads)
    finally:
        module.eval()


def test_trades_with_zero_beta_is_clean_cross_entropy(tiny_classifier, digits_splits) -> None:
    x, y = digits_splits["train"].images[:32], digits_splits["train"].labels[:32]
    with torch.no_grad():
        expected = F.cross_entropy(tiny_classifier(x), y)
        value = TRADESLoss(beta=0.0, n_steps=2)(tiny_classifier, x, y)
    assert float(value) == pytest.approx(float(expected), rel=1e-5)


def test_adversarial_loss_exceeds_clean_loss(tiny_classifier, digits_splits) -> None:
    x, y = digits_splits["train"].images[:64], digits_splits["train"].labels[:64]
    with torch.no_grad():
        clean = F.cross_entropy(tiny_classifier(x), y)
        adversarial = PGDAdversarialLoss(epsilon=0.05, n_steps=5)(tiny_classifier, x, y)
    assert float(adversarial) > float(clean)


def test_bad_parameters_are_refused(tiny_classifier, digits_splits) -> None:
    x, y = digits_splits["train"].images[:4], digits_splits["train"].labels[:4]
    with pytest.raises(InvalidParameterError, match="epsilon"):
        PGDAdversarialLoss(epsilon=8)(tiny_classifier, x, y)
    with pytest.raises(InvalidParameterError, match="norm"):
        FastFGSMLoss(norm="l3")(tiny_classifier, x, y)


def test_fast_adversarial_training_beats_standard_training_under_attack(tiny_classifier, digits_splits) -> None:
    # same architecture, data, epochs, learning rate and seed as the session's standard tiny_classifier
    train, test = digits_splits["train"], digits_splits["test"]
    torch.manual_seed(0)
    module = build_architecture("small_cnn", in_channels=1, n_classes=10, width=8).eval()
    robust = Classifier(module, mean=[0.3], std=[0.4], class_names=train.class_names, input_shape=(1, 16, 16))
    train_classifier(robust, train, epochs=8, batch_size=64, learning_rate=1e-2, progress=False, seed=0,
                     loss_fn=FastFGSMLoss(epsilon=0.1))
    attack = PGD(epsilon=0.1, n_steps=10)
    x, y = test.images[:160], test.labels[:160]
    standard_accuracy = robust_accuracy(attack, x, y, tiny_classifier)
    robust_accuracy_ = robust_accuracy(attack, x, y, robust)
    assert robust_accuracy_ > standard_accuracy + 0.2, (standard_accuracy, robust_accuracy_)
