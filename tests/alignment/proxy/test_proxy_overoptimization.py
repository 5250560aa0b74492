"""Reward-model overoptimisation: estimators, exact KL, fits, and the Gao et al. evidence."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mlsafety.alignment.proxy.overoptimization import (
    BradleyTerryRewardModel,
    GoldReward,
    best_of_n,
    best_of_n_kl,
    best_of_n_weights,
    fit_functional_form,
    overoptimization_experiment,
    overoptimization_sweep,
    sample_comparisons,
    softmax_policy,
)
from mlsafety.exceptions import InvalidParameterError, NotFittedError


def test_best_of_n_kl_formula_and_exact_pool_kl() -> None:
    assert best_of_n_kl(1) == 0.0
    assert best_of_n_kl(4) == pytest.approx(np.log(4) - 0.75)
    # best-of-n over a large uniform pool: exact discrete KL tends to the continuous formula
    scores = np.random.default_rng(0).random(50000)
    weights = best_of_n_weights(scores, 4, method="pool")
    exact = float(weights @ np.log(weights * scores.size))
    assert exact == pytest.approx(best_of_n_kl(4), abs=2e-3)
    with pytest.raises(InvalidParameterError, match="`n` of best_of_n_kl must be an integer >= 1"):
        best_of_n_kl(0)


def test_unbiased_best_of_n_estimator_edge_cases_and_simulation() -> None:
    rng = np.random.default_rng(1)
    scores, values = rng.normal(size=60), rng.normal(size=60)
    assert best_of_n(scores, values, 1) == pytest.approx(values.mean())
    assert best_of_n(scores, values, 60) == pytest.approx(values[np.argmax(scores)])
    # n = 3 without replacement, by Monte Carlo
    picks = [values[i][np.argmax(scores[i])] for i in (rng.choice(60, 3, replace=False) for _ in range(40000))]
    assert best_of_n(scores, values, 3) == pytest.approx(np.mean(picks), abs=0.02)
    with pytest.raises(InvalidParameterError):
        best_of_n(scores, values, 61)


def test_softmax_policy_kl_is_exact() -> None:
    scores = np.array([0.0, 1.0, 2.0])
    policy, kl = softmax_policy(scores, 1.0)
    expected = np.exp(scores) / np.exp(scores).sum()
    assert np.allclose(policy, expected)
    assert kl == pytest.approx(float(np.sum(expected * np.log(expected * 3))))
    assert softmax_policy(scores, 0.0)[1] == pytest.approx(0.0)


def test_functional_forms_recover_known_coefficients() -> None:
    d = np.linspace(0.1, 3, 20)
    bon = fit_functional_form(d, d * (1.5 - 0.4 * d), "bon")
    rl = fit_functional_form(d, d * (1.2 - 0.3 * np.log(d)), "rl")
    assert (bon.alpha, bon.beta) == pytest.approx((1.5, 0.4))
    assert (rl.alpha, rl.beta) == pytest.approx((1.2, 0.3))
    assert bon.r_squared == pytest.approx(1.0)


def test_bradley_terry_matches_scikit_learn_logistic_regression() -> None:
    gold = GoldReward(n_features=4, n_relevant=2)
    a, b, preferred = sample_comparisons(gold, 400, label_noise=0.1, seed=3)
    model = BradleyTerryRewardModel(capacity=None, regularization=2.0).fit(a, b, preferred)
    reference = LogisticRegression(C=0.5, fit_intercept=False, tol=1e-10, max_iter=10000)
    reference.fit(model.features(a) - model.features(b), preferred)
    assert np.allclose(model.coef_, reference.coef_[0], atol=1e-4)
    with pytest.raises(NotFittedError):
        BradleyTerryRewardModel().predict(a)


def test_gold_peaks_then_falls_while_the_proxy_keeps_rising() -> None:
    result = overoptimization_experiment(n_comparisons=30, seed=0)
    assert np.all(np.diff(result.bon_proxy) > 0)
    peak = int(np.argmax(result.bon_gold))
    assert 0 < peak < len(result.bon_gold) - 1
    assert result.bon_gold[-1] < result.bon_gold[peak] - 0.5
    assert result.bon_fit.beta > 0


def test_beta_shrinks_as_the_number_of_comparisons_grows() -> None:
    rows = overoptimization_sweep("n_comparisons", [30, 3000], seeds=3, n_values=(1, 2, 4, 8, 16, 64, 256, 1000))
    assert rows[0]["bon_beta"] > rows[1]["bon_beta"] + 0.1
    assert rows[1]["bon_peak_gold"] > rows[0]["bon_peak_gold"]


def test_conservative_ensembles_are_reported() -> None:
    result = overoptimization_experiment(n_comparisons=50, n_ensemble=3, n_values=(1, 4, 64, 1000), seed=2)
    assert set(result.ensembles) == {"single", "ensemble_mean", "ensemble_worst_case",
                                     "ensemble_uncertainty_weighted"}
    assert all(len(c["gold"]) == 4 and c["gold"][0] == pytest.approx(0.0, abs=1e-9)
               for c in result.ensembles.values())
    with pytest.raises(InvalidParameterError, match="parameter"):
        overoptimization_sweep("depth", [1])
