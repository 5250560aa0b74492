"""Agreement with the anchor libraries: the reference AutoAttack (pyautoattack) and torchattacks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mlsafety.robustness.attacks import PGD, AutoAttack


def _module(classifier) -> nn.Module:
    return nn.Sequential(classifier.normalize, classifier.module).eval()


def test_robust_accuracy_within_half_a_point_of_reference_autoattack(tiny_classifier, digits_splits) -> None:
    reference = pytest.importorskip("pyautoattack")
    test = digits_splits["test"]
    x, y = test.images[:200], test.labels[:200]
    epsilon, steps, targets = 0.03, 10, 2
    ref = reference.AutoAttack(_module(tiny_classifier), attacks=["apgd-ce", "apgd-t"], eps=epsilon, norm="Linf",
                               version="custom", seed=0)
    ref.verbose = False
    for attack in (ref.apgd, ref.apgd_targeted):
        # the reference derives its checkpoints from n_iter in __init__, so set them as it would
        attack.n_iter, attack.n_restarts = steps, 1
        attack.n_iter_2, attack.n_iter_min, attack.size_decr = max(int(0.22 * steps), 1), 1, 1
    ref.apgd_targeted.n_target_classes = targets
    output = ref.run_standard_evaluation(x, y, batch_size=200)
    x_ref = output[0] if isinstance(output, tuple) else output
    reference_accuracy = float((tiny_classifier.predict(x_ref) == y).float().mean())
    ours = AutoAttack(epsilon=epsilon, attacks=("apgd-ce", "apgd-t"), n_steps=steps, n_target_classes=targets,
                      seed=0).evaluate(x, y, tiny_classifier)
    clean = ours.clean_accuracy
    assert reference_accuracy < clean - 0.2, "the test needs an epsilon at which the attacks matter"
    assert abs(ours.robust_accuracy - reference_accuracy) <= 0.005 + 1e-9


def test_pgd_follows_the_same_path_as_torchattacks(tiny_classifier, digits_splits) -> None:
    torchattacks = pytest.importorskip("torchattacks")
    test = digits_splits["test"]
    x, y = test.images[:64], test.labels[:64]
    epsilon, step, steps = 0.03, 0.01, 10
    theirs = torchattacks.PGD(_module(tiny_classifier), eps=epsilon, alpha=step, steps=steps,
                              random_start=False)(x, y)
    ours = PGD(epsilon=epsilon, step_size=step, n_steps=steps, random_start=False)(x, y, tiny_classifier)
    survived = tiny_classifier.predict(ours) == y
    # never fooled: our final iterate is theirs; fooled: we stop at the first success (same or better)
    assert survived.any() and (~survived).any()
    assert torch.allclose(ours[survived], theirs[survived], atol=1e-5)
    assert bool((tiny_classifier.predict(theirs) == y)[~survived].float().mean() <= 1.0)
    assert float((tiny_classifier.predict(theirs) == y).float().mean()) >= float(survived.float().mean())
