from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mlsafety.alignment.values import (
    UtilityEnsemble,
    UtilityModel,
    bradley_terry_loss,
    make_synthetic_preferences,
    pairwise_accuracy,
)
from mlsafety.exceptions import InvalidInputError, InvalidParameterError, NotFittedError, ShapeError


def test_bradley_terry_loss_hand_computed() -> None:
    # -log sigma(1) = log(1 + e^-1)
    loss = bradley_terry_loss(torch.tensor([2.0]), torch.tensor([1.0]))
    assert float(loss) == pytest.approx(math.log1p(math.exp(-1.0)), abs=1e-6)
    # the wrong order costs more; equal utilities cost log 2
    assert float(bradley_terry_loss(torch.tensor([1.0]), torch.tensor([2.0]))) > float(loss)
    assert float(bradley_terry_loss(torch.tensor([0.5]), torch.tensor([0.5]))) == pytest.approx(math.log(2))


def test_swapped_pair_augmentation_is_the_same_loss_for_the_difference_model() -> None:
    """BCE(d, t) = BCE(-d, 1 - t): for U(a) - U(b) models swapping pairs changes nothing, for
    hard or soft targets -- the property that makes the augmentation safe to leave on."""
    d = torch.randn(50)
    t = torch.rand(50)
    plain = bradley_terry_loss(d, torch.zeros(50), t)
    swapped = bradley_terry_loss(-d, torch.zeros(50), 1 - t)
    torch.testing.assert_close(plain, swapped)
    data = make_synthetic_preferences(200, dim=8, seed=1)
    with_swap = UtilityModel(swap_augment=True).fit_pairs(data.better, data.worse)
    without = UtilityModel(swap_augment=False).fit_pairs(data.better, data.worse)
    torch.testing.assert_close(with_swap.utility(data.items), without.utility(data.items), atol=2e-3, rtol=0)


def _accuracy(n_pairs: int, flip_rate: float = 0.0, seed: int = 0) -> float:
    data = make_synthetic_preferences(n_pairs, dim=32, flip_rate=flip_rate, n_items=4000, seed=seed)
    model = UtilityModel(weight_decay=1e-2).fit_pairs(data.better, data.worse)
    # accuracy against the hidden utility on fresh item pairs
    test = make_synthetic_preferences(3000, dim=32, n_items=4000, seed=seed)
    u = model.utility(test.items)
    true = test.true_utility
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4000, (2, 5000))
    better = np.where(true[a] > true[b], a, b)
    worse = np.where(true[a] > true[b], b, a)
    return pairwise_accuracy(u[better], u[worse])


def test_accuracy_rises_with_pairs_and_falls_with_label_noise() -> None:
    few, many = _accuracy(30), _accuracy(2000)
    assert many > few + 0.05, (few, many)
    assert many > 0.93
    noisy = _accuracy(2000, flip_rate=0.35)
    assert noisy < many - 0.02, (many, noisy)
    assert noisy > 0.6  # still learns something from 65 % correct labels


def test_linear_utility_recovers_the_hidden_direction() -> None:
    data = make_synthetic_preferences(3000, dim=16, temperature=0.3, seed=2)
    model = UtilityModel(weight_decay=1e-3).fit_pairs(data.better, data.worse)
    w = model.head_.weight.detach().flatten() / model.scale_
    cosine = float(torch.nn.functional.cosine_similarity(w, data.weights, dim=0))
    assert cosine > 0.97


def test_regression_and_mlp_heads_fit_ratings() -> None:
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.standard_normal((600, 8)), dtype=torch.float32)
    ratings = x[:, 0] - x[:, 1] ** 2
    for head in ("linear", "mlp"):
        model = UtilityModel(head=head, n_steps=300, learning_rate=1e-2, weight_decay=1e-4).fit_ratings(x[:400],
                                                                                                       ratings[:400])
        u = model.utility(x[400:])
        corr = float(np.corrcoef(u, ratings[400:])[0, 1])
        assert corr > (0.45 if head == "linear" else 0.8), (head, corr)


def test_texts_go_through_the_encoder_and_save_load_round_trips(tmp_path, corpus) -> None:
    model = UtilityModel(encoder="hashing", head="mlp", n_steps=50).fit_ratings(corpus.texts, corpus.ratings)
    path = model.save(tmp_path / "u.safetensors", extra={"data": "test"})
    loaded = UtilityModel.load(path)
    torch.testing.assert_close(loaded.score_texts(corpus.texts[:20]), model.score_texts(corpus.texts[:20]))
    assert loaded.metadata_ == {"data": "test"} and loaded.head == "mlp"
    u = model.score_texts(["a wonderful lovely day", "an awful terrible day"])
    assert float(u[0]) > float(u[1])


def test_errors() -> None:
    with pytest.raises(NotFittedError):
        UtilityModel().utility(torch.zeros(2, 3))
    with pytest.raises(InvalidParameterError, match="head"):
        UtilityModel(head="transformer").fit_pairs(torch.zeros(2, 3), torch.ones(2, 3))
    with pytest.raises(InvalidInputError, match="encoder"):
        UtilityModel().fit_pairs(["a"], ["b"])
    with pytest.raises(ShapeError):
        UtilityModel().fit_pairs(torch.zeros(2, 3), torch.ones(3, 3))
    model = UtilityModel().fit_pairs(torch.randn(5, 3), torch.randn(5, 3))
    with pytest.raises(ShapeError, match="same encoder"):
        model.utility(torch.zeros(2, 4))
    with pytest.raises(InvalidInputError, match="NaN"):
        UtilityModel().fit_pairs(torch.full((2, 3), float("nan")), torch.ones(2, 3))


def test_conservative_ensemble_is_below_the_mean_and_members_differ() -> None:
    data = make_synthetic_preferences(300, dim=16, seed=3)
    low = UtilityEnsemble(n_members=4, aggregate="min").fit_pairs(data.better, data.worse)
    members = low.member_utilities(data.items)
    assert members.shape == (4, len(data.items))
    assert not torch.allclose(members[0], members[1])
    mean = UtilityEnsemble(n_members=4, aggregate="mean").fit_pairs(data.better, data.worse).utility(data.items)
    assert bool((low.utility(data.items) <= mean + 1e-6).all())
    assert float(np.corrcoef(mean, data.true_utility)[0, 1]) > 0.9


def test_linear_bradley_terry_matches_scikit_learn_logistic_regression_on_differences() -> None:
    """Anchor: a linear Bradley–Terry utility is L2 logistic regression without intercept on
    x_a - x_b (both orders). With our penalty wd/2 ||w||^2 on the *mean* loss over the 2P
    augmented rows, scikit-learn's C is 1 / (wd * 2P)."""
    from sklearn.linear_model import LogisticRegression

    data = make_synthetic_preferences(400, dim=10, temperature=0.5, seed=4)
    weight_decay = 1e-2
    model = UtilityModel(weight_decay=weight_decay, n_steps=500).fit_pairs(data.better, data.worse)
    ours = (model.head_.weight.detach().flatten() / model.scale_).numpy()
    scale = model.scale_.numpy()
    d = ((data.better - data.worse).numpy()) / scale  # the standardised differences our head sees
    x = np.concatenate([d, -d])
    y = np.concatenate([np.ones(len(d)), np.zeros(len(d))])
    reference = LogisticRegression(C=1 / (weight_decay * len(x)), fit_intercept=False, tol=1e-10, max_iter=10000)
    theirs = reference.fit(x, y).coef_.ravel() / scale
    np.testing.assert_allclose(ours, theirs, rtol=2e-3, atol=2e-4)
