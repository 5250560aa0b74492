"""Attacks: threat-model bounds, strength ordering, targeted success, reference properties, errors."""

from __future__ import annotations

import pytest
import torch

from mlsafety.exceptions import InvalidInputError, InvalidParameterError
from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks import APGD, APGDT, CW, FAB, FGSM, PGD, Square, evaluate_attack
from mlsafety.robustness.attacks._common import lp_norm
from mlsafety.robustness.attacks.apgd import checkpoints
from mlsafety.robustness.attacks.fab import project_onto_hyperplane_box

FAST = {
    "fgsm": {}, "pgd": {"n_steps": 10}, "apgd": {"n_steps": 20}, "apgd_t": {"n_steps": 10, "n_target_classes": 3},
    "fab": {"n_steps": 5, "n_target_classes": 2}, "square": {"n_queries": 30},
    "cw": {"n_steps": 10, "binary_search_steps": 2, "norm": "L2"},
    "autoattack": {"n_steps": 5, "n_queries": 20, "n_target_classes": 2},
}


def test_registry_lists_every_attack() -> None:
    assert set(FAST) <= set(ATTACKS.names())
    for name in ATTACKS.names():
        assert ATTACKS.get(name).requires_classifier


@pytest.mark.parametrize("name", sorted(FAST))
@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_output_in_ball_box_and_seeded(name, norm, tiny_classifier, batch) -> None:
    if name == "cw" and norm == "Linf":
        pytest.skip("CW is an L2 attack")
    x, y = batch[0][:16], batch[1][:16]
    epsilon = 0.1 if norm == "Linf" else 1.0
    kwargs = {**FAST[name], "norm": norm, "epsilon": epsilon, "seed": 3}
    module = tiny_classifier.module
    module.train()
    try:
        before = {k: v.clone() for k, v in module.state_dict().items()}
        first = ATTACKS.create(name, **kwargs)(x, y, tiny_classifier)
        assert module.training, "the attack must restore train mode"
        for key, value in module.state_dict().items():
            assert torch.equal(value, before[key]), key
    finally:
        module.eval()
    second = ATTACKS.create(name, **kwargs)(x, y, tiny_classifier)
    assert torch.equal(first, second)
    assert first.shape == x.shape and float(first.min()) >= 0 and float(first.max()) <= 1
    assert float(lp_norm(first - x, norm).max()) <= epsilon * (1 + 1e-5) + 1e-6


def test_strength_ordering_linf(tiny_classifier, batch) -> None:
    x, y = batch
    clean = evaluate_attack(FGSM(epsilon=0.1), x, y, tiny_classifier)
    fgsm = clean.robust_accuracy
    pgd = evaluate_attack(PGD(epsilon=0.1, n_steps=20), x, y, tiny_classifier).robust_accuracy
    apgd = evaluate_attack(APGD(epsilon=0.1, n_steps=50), x, y, tiny_classifier).robust_accuracy
    assert clean.clean_accuracy > 0.85
    assert pgd <= fgsm < clean.clean_accuracy
    assert apgd <= pgd + 1 / 64
    assert apgd < 0.5 * clean.clean_accuracy


def test_misclassified_samples_are_left_alone(tiny_classifier, batch) -> None:
    x, y = batch
    wrong = (y + 1) % 10  # every sample "misclassified" with respect to these labels
    for attack in (PGD(epsilon=0.1, n_steps=5), APGD(epsilon=0.1, n_steps=5), Square(epsilon=0.1, n_queries=5)):
        assert torch.equal(attack(x[:8], wrong[:8], tiny_classifier), x[:8])


def test_targeted_pgd_reaches_targets(tiny_classifier, batch) -> None:
    x, y = batch[0][:32], batch[1][:32]
    target = (y + 3) % 10
    adv = PGD(epsilon=0.3, n_steps=40, step_size=0.02, targeted=True)(x, target, tiny_classifier)
    reached = (tiny_classifier.predict(adv) == target).float().mean()
    assert reached > 0.8


def test_apgd_checkpoints_match_the_paper() -> None:
    # p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 (Croce & Hein 2020, Sec. 3.2)
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


def test_targeted_apgd_and_fab_are_at_least_as_strong_as_apgd_ce_alone(tiny_classifier, batch) -> None:
    x, y = batch[0][:32], batch[1][:32]
    ce = evaluate_attack(APGD(epsilon=0.05, n_steps=10), x, y, tiny_classifier)
    targeted = evaluate_attack(APGDT(epsilon=0.05, n_steps=10, n_target_classes=2), x, y, tiny_classifier)
    fab = evaluate_attack(FAB(epsilon=0.05, n_steps=10, n_target_classes=2), x, y, tiny_classifier)
    assert targeted.robust_accuracy < ce.clean_accuracy and fab.robust_accuracy < ce.clean_accuracy


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_fab_projection_is_the_exact_minimum(norm) -> None:
    scipy_optimize = pytest.importorskip("scipy.optimize")
    generator = torch.Generator().manual_seed(0)
    points = torch.rand(6, 5, generator=generator, dtype=torch.float64)
    w = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    c = torch.randn(6, generator=generator, dtype=torch.float64) * 0.3
    step = project_onto_hyperplane_box(points, w, c, norm)
    assert torch.allclose((w * step).sum(1), c, atol=1e-9)
    assert bool(((points + step) >= -1e-12).all()) and bool(((points + step) <= 1 + 1e-12).all())
    for i in range(6):
        bounds = [(-p, 1 - p) for p in points[i].tolist()]
        if norm == "Linf":  # min t s.t. |d_j| <= t, w.d = c, box: a linear program in (d, t)
            n = 5
            objective = [0.0] * n + [1.0]
            upper = [[(1 if j == k else 0) for k in range(n)] + [-1] for j in range(n)]
            lower = [[(-1 if j == k else 0) for k in range(n)] + [-1] for j in range(n)]
            solution = scipy_optimize.linprog(objective, A_ub=upper + lower, b_ub=[0] * (2 * n),
                                              A_eq=[[*w[i].tolist(), 0]], b_eq=[float(c[i])],
                                              bounds=[*bounds, (0, None)])
            optimum = solution.fun
        else:  # convex: optimal iff KKT holds, i.e. d = clip(lambda * w, box) for one lambda
            inside = (step[i].abs() > 1e-9) & (points[i] + step[i] > 1e-9) & (points[i] + step[i] < 1 - 1e-9)
            assert bool(inside.any())
            lam = float((step[i][inside] / w[i][inside])[0])
            clipped = torch.minimum(torch.maximum(lam * w[i], -points[i]), 1 - points[i])
            assert torch.allclose(step[i], clipped, atol=1e-9)
            continue
        assert solution.success
        assert float(lp_norm(step[i:i + 1], norm)) == pytest.approx(optimum, rel=1e-5, abs=1e-8)


def test_fab_unbounded_finds_small_adversarial_examples(tiny_classifier, batch) -> None:
    x, y = batch[0][:8], batch[1][:8]
    adv = FAB(epsilon=None, n_steps=15, targeted=False)(x, y, tiny_classifier)
    changed = (adv != x).flatten(1).any(1)
    assert changed.float().mean() > 0.8
    assert bool((tiny_classifier.predict(adv[changed]) != y[changed]).all())


def test_cw_finds_adversarial_examples_with_small_l2(tiny_classifier, batch) -> None:
    x, y = batch[0][:8], batch[1][:8]
    adv = CW(n_steps=30, binary_search_steps=2, step_size=0.05)(x, y, tiny_classifier)
    fooled = tiny_classifier.predict(adv) != y
    assert fooled.float().mean() > 0.8
    apgd = APGD(epsilon=float(lp_norm(adv - x, "L2")[fooled].max()) * 1.01, norm="L2", n_steps=10)
    assert evaluate_attack(apgd, x, y, tiny_classifier).robust_accuracy <= 0.25


def test_square_is_black_box_and_runs_without_gradients(tiny_classifier, batch) -> None:
    x, y = batch[0][:16], batch[1][:16]
    scripted = torch.jit.trace(torch.nn.Sequential(tiny_classifier.normalize, tiny_classifier.module).eval(),
                               x[:2])
    from mlsafety.models import Classifier

    black_box = Classifier(scripted, class_names=tiny_classifier.class_names, input_shape=(1, 16, 16))
    with torch.no_grad():
        result = evaluate_attack(Square(epsilon=0.1, n_queries=100), x, y, black_box)
    assert result.robust_accuracy < result.clean_accuracy - 0.3


@pytest.mark.parametrize("attack", [PGD(epsilon=0.05, n_steps=10), APGD(epsilon=0.05, n_steps=20)])
def test_bf16_path_matches_fp32(attack, tiny_classifier, batch) -> None:
    x, y = batch
    fp32 = evaluate_attack(attack, x, y, tiny_classifier).robust_accuracy
    attack_bf16 = type(attack)(**{**attack.get_params(), "precision": "bf16"})
    bf16 = evaluate_attack(attack_bf16, x, y, tiny_classifier).robust_accuracy
    assert abs(fp32 - bf16) <= 3 / 64  # robust accuracy is always verified in fp32


def test_linf_box_is_the_projection() -> None:
    from mlsafety.robustness.attacks._common import linf_box, project

    generator = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 5, 5, generator=generator)
    x[0, 0, 0, :2] = torch.tensor([0.0, 1.0])  # on the box's faces
    points = x + 0.3 * (2 * torch.rand(x.shape, generator=generator) - 1)
    lower, upper = linf_box(x, 0.1)
    torch.testing.assert_close(points.clamp(lower, upper), project(points, x, 0.1, "Linf"), atol=1e-7, rtol=0)


def test_fast_pgd_steps_equal_the_plain_update(tiny_classifier, batch) -> None:
    """The in-place Linf step (sign, add, clamp to precomputed bounds) is the textbook
    x <- P(x + alpha sign(grad)) from the same random start."""
    from mlsafety.robustness.attacks._common import input_gradient, make_forward, project, random_in_ball
    from mlsafety.robustness.attacks.pgd import attack_loss, pgd

    x, y = batch[0][:32], batch[1][:32]
    forward = make_forward(tiny_classifier)
    with tiny_classifier.evaluating():
        ours = pgd(forward, x, y, epsilon=0.05, norm="Linf", n_steps=7, step_size=0.01, early_stop=False,
                   generator=torch.Generator().manual_seed(4))
        current = random_in_ball(x, 0.05, "Linf", torch.Generator().manual_seed(4))
        objective = attack_loss("ce", False)
        for _ in range(7):
            _, _, grad = input_gradient(forward, current, lambda z: objective(z, y))
            current = project(current + 0.01 * grad.sign(), x, 0.05, "Linf")
    torch.testing.assert_close(ours, current, atol=1e-6, rtol=0)


def test_bad_inputs_get_clear_errors(tiny_classifier, batch) -> None:
    x, y = batch[0][:4], batch[1][:4]
    with pytest.raises(InvalidParameterError, match="8/255"):
        PGD(epsilon=8)(x, y, tiny_classifier)
    with pytest.raises(InvalidParameterError, match="norm='Linf'"):
        PGD(norm="linf")(x, y, tiny_classifier)
    with pytest.raises(InvalidParameterError, match="L2"):
        CW(norm="Linf")(x, y, tiny_classifier)
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        PGD()(x * 255, y, tiny_classifier)
    with pytest.raises(InvalidInputError, match="target"):
        PGD(targeted=True)(x, None, tiny_classifier)
    with pytest.raises(InvalidInputError, match="Classifier"):
        APGD()(x, y, tiny_classifier.module)
