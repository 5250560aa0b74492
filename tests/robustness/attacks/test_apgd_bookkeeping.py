"""APGD's bookkeeping shortcuts (row selection without a broadcast ``where``, no gradient at
the last iterate, the oscillation count over slices, shared storage) give exactly the
adversarial examples of the plain formulation."""

from __future__ import annotations

import pytest
import torch

from mlsafety.robustness.attacks._common import (
    _view,
    cross_entropy,
    dlr_loss,
    linf_box,
    make_forward,
    project,
    select_rows,
)
from mlsafety.robustness.attacks.apgd import apgd


def _plain_apgd(forward, x, y, loss, epsilon, norm, n_steps, generator, rho=0.75):
    """APGD as first written: a gradient at every iterate, broadcast ``where`` for every
    selection, and the oscillation window gathered with ``arange``."""
    n = x.shape[0]
    result, success = x.clone(), torch.zeros(n, dtype=torch.bool)
    length, decrement, minimum = max(int(0.22 * n_steps), 1), max(int(0.03 * n_steps), 1), max(int(0.06 * n_steps), 1)
    if norm == "Linf":
        noise = 2 * torch.rand(x.shape, generator=generator) - 1
        noise = noise / _view(noise.flatten(1).abs().amax(1), x)
    else:
        noise = torch.randn(x.shape, generator=generator)
        noise = noise / _view(noise.flatten(1).norm(dim=1) + 1e-12, x)
    x_adv = (x + epsilon * noise).clamp(0.0, 1.0)

    def evaluate(points, rows):
        points = points.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = forward(points)
            values = loss(logits, rows)
            (g,) = torch.autograd.grad(values.sum(), points)
        return logits.detach(), values.detach(), g

    rows = torch.arange(n)
    logits, loss_value, grad = evaluate(x_adv, rows)
    state = {"rows": rows, "origin": x, "labels": y, "x_adv": x_adv, "x_previous": x_adv.clone(), "grad": grad,
             "step_size": torch.full((n,), 2.0 * epsilon), "x_best": x_adv.clone(), "grad_best": grad.clone(),
             "loss_best": loss_value.clone(), "loss_best_last_check": loss_value.clone(),
             "reduced_last_check": torch.ones(n, dtype=torch.bool)}
    loss_steps = torch.zeros(n_steps, n)

    def record(logits, points):
        nonlocal loss_steps
        fooled = logits.argmax(1) != state["labels"]
        if bool(fooled.any()):
            result[state["rows"][fooled]] = points[fooled]
            success[state["rows"][fooled]] = True
            for key in state:
                state[key] = state[key][~fooled]
            loss_steps = loss_steps[:, ~fooled]

    record(logits, x_adv)
    until_check, since_check = length, 0
    for i in range(n_steps):
        if state["rows"].numel() == 0:
            break
        s = state
        momentum = 0.75 if i > 0 else 1.0
        size = _view(s["step_size"], s["x_adv"])
        if norm == "Linf":
            direction = s["grad"].sign()
        else:
            direction = s["grad"] / _view(s["grad"].flatten(1).norm(dim=1) + 1e-12, s["grad"])
        if norm == "Linf":
            lower, upper = linf_box(s["origin"], epsilon)
            z = (s["x_adv"] + size * direction).clamp(lower, upper)
            z = (z - s["x_adv"]) * momentum + s["x_adv"]
            if momentum != 1.0:
                z = z.add(s["x_adv"] - s["x_previous"], alpha=1 - momentum)
            s["x_previous"], s["x_adv"] = s["x_adv"], z.clamp(lower, upper)
        else:
            z = project(s["x_adv"] + size * direction, s["origin"], epsilon, norm)
            difference = s["x_adv"] - s["x_previous"]
            s["x_previous"] = s["x_adv"]
            s["x_adv"] = project(s["x_adv"] + momentum * (z - s["x_adv"]) + (1 - momentum) * difference,
                                 s["origin"], epsilon, norm)
        logits, loss_value, s["grad"] = evaluate(s["x_adv"], s["rows"])
        evaluated = s["x_adv"]
        loss_steps[i] = loss_value
        improved = loss_value > s["loss_best"]
        mask = _view(improved, s["x_adv"])
        s["x_best"], s["grad_best"] = torch.where(mask, s["x_adv"], s["x_best"]), torch.where(mask, s["grad"],
                                                                                           s["grad_best"])
        s["loss_best"] = torch.where(improved, loss_value, s["loss_best"])
        since_check += 1
        if since_check == until_check:
            window = torch.arange(i, i - until_check, -1)
            oscillating = (loss_steps[window] > loss_steps[window - 1]).float().sum(0) <= until_check * rho
            reduce = oscillating | (~s["reduced_last_check"] & (s["loss_best_last_check"] >= s["loss_best"]))
            s["reduced_last_check"], s["loss_best_last_check"] = reduce.clone(), s["loss_best"].clone()
            if bool(reduce.any()):
                s["step_size"] = torch.where(reduce, s["step_size"] / 2.0, s["step_size"])
                s["x_adv"] = torch.where(_view(reduce, s["x_adv"]), s["x_best"], s["x_adv"])
                s["grad"] = torch.where(_view(reduce, s["grad"]), s["grad_best"], s["grad"])
            until_check, since_check = max(until_check - decrement, minimum), 0
        record(logits, evaluated)
    return result, success


@pytest.mark.parametrize(("norm", "epsilon", "objective"),
                         [("Linf", 0.03, cross_entropy), ("Linf", 0.05, dlr_loss), ("L2", 0.5, cross_entropy)])
def test_apgd_equals_the_plain_formulation(norm, epsilon, objective, tiny_classifier, batch) -> None:
    x, y = batch[0][:48], batch[1][:48]
    forward = make_forward(tiny_classifier)
    for n_steps in (1, 3, 12):
        with tiny_classifier.evaluating():
            ours, ours_success = apgd(forward, x, y, lambda z, rows: objective(z, y[rows]), epsilon=epsilon,
                                      norm=norm, n_steps=n_steps, generator=torch.Generator().manual_seed(2))
            plain, plain_success = _plain_apgd(forward, x, y, lambda z, rows: objective(z, y[rows]), epsilon, norm,
                                               n_steps, torch.Generator().manual_seed(2))
        assert torch.equal(ours_success, plain_success)
        assert torch.equal(ours, plain)
        # a success is an image the model gets wrong: the returned image is the iterate that was
        # classified, not one a checkpoint reset to the best-loss iterate afterwards
        with torch.no_grad():
            assert bool((forward(ours[ours_success]).argmax(1) != y[ours_success]).all())
        if n_steps == 12:
            assert 0 < int(ours_success.sum()) < len(x), "the check needs samples that break and samples that stay"


def test_select_rows_equals_a_broadcast_where() -> None:
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 2, 3, 3, generator=generator), torch.randn(6, 2, 3, 3, generator=generator)
    a[0, 0, 0, 0], b[1, 0, 0, 0], a[2, 1, 1, 1] = -0.0, float("nan"), float("inf")
    for bits in ([1] * 6, [0] * 6, [1, 0, 1, 1, 1, 0], [0, 1, 0, 0, 0, 1], [1, 0, 1, 0, 1, 0]):
        mask = torch.tensor(bits, dtype=torch.bool)
        expected = torch.where(_view(mask, a), a, b)
        got = select_rows(mask, a, b)
        # bit for bit, signed zeros and NaNs included
        assert torch.equal(got.view(torch.int32), expected.view(torch.int32))
    assert select_rows(torch.ones(6, dtype=torch.bool), a, b) is a
    assert select_rows(torch.zeros(6, dtype=torch.bool), a, b) is b


def test_every_apgd_success_is_misclassified_on_the_default_model(default_classifier) -> None:
    """A checkpoint may reset an image's iterate to its best-loss point after the iterate it
    was fooled by was classified; the image returned must be the one that fooled the model.
    (Before the fix, this case, at AVX-512 kernels, flagged one image whose returned point the
    model still classified correctly.)"""
    from mlsafety.data import default_splits

    data = default_splits()["test"].head(512, seed=0)
    x, y = data.images, data.labels
    forward = make_forward(default_classifier)
    with default_classifier.evaluating():
        adversarial, success = apgd(forward, x, y, lambda z, rows: cross_entropy(z, y[rows]), epsilon=0.01,
                                    norm="Linf", n_steps=20, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            predicted = forward(adversarial).argmax(1)
    assert 0 < int(success.sum()) < len(x)
    assert bool((predicted[success] != y[success]).all())
