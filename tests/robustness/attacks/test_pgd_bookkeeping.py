"""PGD's early exit drops finished samples after the (elementwise) Linf step instead of before
it: the adversarial examples are exactly those of the plain formulation, which drops them from
every tensor first. The single-batch path returns a fresh tensor, never the caller's. With
``y`` omitted no clean forward pass runs."""

from __future__ import annotations

import pytest
import torch

from mlsafety.robustness.attacks import APGD, PGD
from mlsafety.robustness.attacks._common import input_gradient, linf_box, make_forward, random_in_ball
from mlsafety.robustness.attacks.pgd import attack_loss, is_success, pgd


def _plain_pgd(forward, x, y, epsilon, n_steps, step_size, n_restarts, generator, done):
    """PGD with early exit as first written: finished samples leave every tensor before the step."""
    objective = attack_loss("ce", False)
    result, fooled = x.clone(), done.clone()
    for restart in range(n_restarts):
        ids = (~fooled).nonzero().squeeze(1)
        if ids.numel() == 0:
            break
        origin, labels = x[ids], y[ids]
        lower, upper = linf_box(origin, epsilon)
        current = random_in_ball(origin, epsilon, "Linf", generator)
        last = restart == n_restarts - 1
        for step in range(n_steps + 1):
            if step < n_steps:
                logits, _, grad = input_gradient(forward, current, lambda z, t=labels: objective(z, t))
            elif last:
                break
            else:
                with torch.no_grad():
                    logits = forward(current)
            success = is_success(logits, labels, False)
            if bool(success.any()):
                result[ids[success]] = current[success]
                fooled[ids[success]] = True
                keep = ~success
                ids, labels, current, grad = ids[keep], labels[keep], current[keep], grad[keep]
                lower, upper = lower[keep], upper[keep]
            if step == n_steps or ids.numel() == 0:
                break
            current = torch.clamp(current + step_size * grad.sign(), lower, upper)
        if ids.numel():
            result[ids] = current
    return result


def test_linf_early_exit_equals_the_plain_formulation(tiny_classifier, batch) -> None:
    x, y = batch[0][:48], batch[1][:48]
    forward = make_forward(tiny_classifier)
    with tiny_classifier.evaluating(), torch.no_grad():
        done = is_success(forward(x), y, False)
    for epsilon, n_restarts in ((0.02, 1), (0.03, 3)):
        with tiny_classifier.evaluating():
            ours = pgd(forward, x, y, epsilon=epsilon, norm="Linf", n_steps=6, step_size=epsilon / 3,
                       n_restarts=n_restarts, generator=torch.Generator().manual_seed(1), done=done)
            plain = _plain_pgd(forward, x, y, epsilon, 6, epsilon / 3, n_restarts,
                               torch.Generator().manual_seed(1), done)
        broken = int(is_success(tiny_classifier.forward(ours), y, False).sum())
        assert 0 < broken < len(x), "the check needs samples that leave the batch and samples that stay"
        assert torch.equal(ours, plain)


def test_single_batch_result_is_a_fresh_tensor(tiny_classifier, batch) -> None:
    x = batch[0][:8].clone()
    wrong = (tiny_classifier.predict(x) + 1) % 10  # every sample already "fooled": returned unchanged
    out = PGD(epsilon=0.05, n_steps=2)(x, wrong, tiny_classifier)
    assert torch.equal(out, x)
    out.add_(1)
    assert float(x.max()) <= 1  # the caller's tensor is untouched


@pytest.mark.parametrize(("attack", "passes"), [(PGD(epsilon=0.002, n_steps=3), 3),
                                                (APGD(epsilon=0.002, n_steps=4), 5),
                                                (APGD(epsilon=0.002, n_steps=4, loss="dlr"), 5)])
def test_omitted_labels_skip_the_clean_pass(attack, passes, tiny_classifier, batch) -> None:
    """With ``y`` omitted the labels are the model's predictions, so no sample is misclassified
    at the start: the attack runs no clean forward pass of its own, and returns what it returns
    when given those predictions."""
    x = batch[0][:16]
    calls = []
    handle = tiny_classifier.module.register_forward_hook(lambda *_: calls.append(1))
    try:
        predictions = tiny_classifier.predict(x)
        calls.clear()
        omitted = attack(x, None, tiny_classifier)
        assert len(calls) == 1 + passes  # the prediction, then the attack's own passes
        calls.clear()
        given = attack(x, predictions, tiny_classifier)
        assert len(calls) == 1 + passes  # the clean pass, then the same passes
    finally:
        handle.remove()
    assert bool((tiny_classifier.predict(omitted) == predictions).any()), "the check needs samples that survive"
    assert torch.equal(omitted, given)
