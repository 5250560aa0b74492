"""The Polynaut-style gamed-policy detector, its evaluation, and the mitigations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from sklearn.metrics import roc_auc_score

from mlsafety.alignment.proxy import Lagoon, evaluate_policy, greedy_policy, q_values
from mlsafety.alignment.proxy.detection import auroc, evaluate_detection, gamed_labels, max_f1, trusted_policy
from mlsafety.alignment.proxy.detector import PolicyDivergenceDetector, hellinger, jensen_shannon
from mlsafety.alignment.proxy.mitigations import (
    early_stop,
    kl_regularized_policy,
    occupancy_regularized_policy,
)
from mlsafety.base import Detector
from mlsafety.exceptions import InvalidParameterError, NotFittedError, ShapeError
from mlsafety.registry import BACKDOOR_DETECTORS, OOD_DETECTORS


def test_divergences_match_scipy_and_hand_computation() -> None:
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(4), size=6), rng.dirichlet(np.ones(4), size=6)
    # scipy returns the Jensen-Shannon *distance*, the square root of the divergence
    assert np.allclose(jensen_shannon(p, q), jensenshannon(p, q, base=2, axis=1) ** 2)
    assert jensen_shannon(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)
    # Hellinger of (1/2, 1/2) vs (1, 0): sqrt(1 - sqrt(1/2))
    assert hellinger(np.array([0.5, 0.5]), np.array([1.0, 0.0])) == pytest.approx(np.sqrt(1 - np.sqrt(0.5)))


@pytest.fixture(scope="module")
def lagoon_policies() -> dict[str, np.ndarray]:
    mdp = Lagoon().mdp()
    return {"trusted": trusted_policy(mdp), "finish": greedy_policy(q_values(mdp, "proxy", 10)),
            "loop": greedy_policy(q_values(mdp, "proxy", 30))}


@pytest.mark.parametrize("metric", ["jensen_shannon", "hellinger", "occupancy"])
def test_detector_scores_the_lagoon_looper_above_the_finisher(metric: str, lagoon_policies) -> None:
    detector = PolicyDivergenceDetector(metric)
    with pytest.raises(NotFittedError):
        detector.score(lagoon_policies["loop"])
    assert detector.fit(Lagoon(), lagoon_policies["trusted"]) is detector
    scores = detector.score(np.stack([lagoon_policies["trusted"], lagoon_policies["finish"], lagoon_policies["loop"]]))
    assert isinstance(scores, torch.Tensor) and scores.shape == (3,)
    assert scores[0] == pytest.approx(0.0, abs=1e-9)
    assert scores[2] > scores[1] + 0.05
    detector.fit_threshold(scores[:2], false_positive_rate=0.5)
    assert bool(detector.predict(lagoon_policies["loop"])[0])


def test_detector_is_a_detector_but_not_an_image_detector() -> None:
    assert issubclass(PolicyDivergenceDetector, Detector)
    assert PolicyDivergenceDetector not in [OOD_DETECTORS.get(n) for n in OOD_DETECTORS.names()]
    assert PolicyDivergenceDetector not in [BACKDOOR_DETECTORS.get(n) for n in BACKDOOR_DETECTORS.names()]
    with pytest.raises(InvalidParameterError, match="metric"):
        PolicyDivergenceDetector("kl").fit(Lagoon(), np.full((21, 2), 0.5))
    detector = PolicyDivergenceDetector().fit(Lagoon(), np.full((21, 2), 0.5))
    with pytest.raises(ShapeError):
        detector.score(np.full((5, 2), 0.5))


def test_auroc_and_max_f1_against_references() -> None:
    rng = np.random.default_rng(1)
    labels = rng.random(200) < 0.3
    scores = labels + rng.normal(size=200)
    assert auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    assert max_f1(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == pytest.approx(1.0)
    assert gamed_labels(np.array([10.0, 7.0, 9.5]), 10.0, 0.0, margin=0.2).tolist() == [False, True, False]


def test_detection_evaluation_on_a_small_grid() -> None:
    result = evaluate_detection(["lagoon"], ["horizon", "boltzmann"], seeds=2, n_resamples=50)
    overall = {r["metric"]: r for r in result.summary if r["subset"] == "all" and r["group"] == "all"}
    assert set(overall) == {"jensen_shannon", "hellinger", "occupancy"}
    for row in overall.values():
        assert 0 < row["n_gamed"] < row["n"]
        assert row["auroc_low"] <= row["auroc"] <= row["auroc_high"]
    # the occupancy distance separates loopers from finishers better than chance
    assert overall["occupancy"]["auroc_low"] > 0.5
    assert any(r["hard"] for r in result.records)
    assert all("true_return" in r and "occupancy" in r for r in result.records)


def test_kl_regularisation_interpolates_between_trusted_and_proxy_optimal(lagoon_policies) -> None:
    mdp = Lagoon().mdp()
    trusted = lagoon_policies["trusted"]
    strong = kl_regularized_policy(mdp, trusted, 1e4)
    assert np.allclose(strong, trusted[None], atol=1e-3)
    weak = kl_regularized_policy(mdp, np.full_like(trusted, 0.5), 1e-3)
    optimum = q_values(mdp, "proxy")[0].max()
    assert evaluate_policy(mdp, weak, "proxy") == pytest.approx(optimum, rel=1e-3)
    assert optimum > evaluate_policy(mdp, trusted, "proxy")


def test_occupancy_regularisation_without_penalty_is_discounted_optimal(lagoon_policies) -> None:
    mdp = Lagoon(slip=0.0).mdp()
    policy = occupancy_regularized_policy(mdp, lagoon_policies["trusted"], 0.0, discount=0.95)
    value = np.zeros(mdp.n_states)
    for _ in range(2000):
        value = (mdp.proxy_rewards + 0.95 * mdp.transitions @ value).max(1)
    p_pi = np.einsum("sa,sap->sp", policy, mdp.transitions)
    r_pi = (policy * mdp.proxy_rewards).sum(1)
    policy_value = np.linalg.solve(np.eye(mdp.n_states) - 0.95 * p_pi, r_pi)
    assert policy_value[0] == pytest.approx(value[0], rel=1e-6)
    strong = occupancy_regularized_policy(mdp, lagoon_policies["trusted"], 100.0)
    assert evaluate_policy(mdp, strong, "true") == pytest.approx(evaluate_policy(mdp, lagoon_policies["trusted"],
                                                                                 "true"), rel=0.05)


def test_early_stop_picks_the_level_before_the_first_alarm() -> None:
    scores = np.array([[0.0, 0.05, 0.2, 0.01], [0.3, 0.3, 0.3, 0.3], [0.0, 0.0, 0.0, 0.0]])
    assert early_stop(scores, 0.1).tolist() == [1, 0, 3]


def test_kl_regularised_sweep_removes_the_lagoon_transition() -> None:
    from mlsafety.alignment.proxy.mitigations import regularized_sweep
    from mlsafety.alignment.proxy.sweep import sweep

    result = sweep("lagoon", "horizon", values=[5, 15, 25, 40], seeds=2)
    assert result.true_returns[:, -1].max() < 0
    regularised = regularized_sweep(result, "kl", 0.3)
    assert regularised["true"].shape == (2, 4)
    assert regularised["true"].min() == pytest.approx(22.0, abs=0.5)
    with pytest.raises(InvalidParameterError, match="method"):
        regularized_sweep(result, "occupancy", 0.3)


def test_batched_scores_equal_the_per_policy_definitions() -> None:
    from mlsafety.alignment.proxy import TomatoWatering, boltzmann_policy, occupancy, state_distributions
    from mlsafety.alignment.proxy.detector import total_variation

    mdp = TomatoWatering().mdp()
    trusted = trusted_policy(mdp)
    rng = np.random.default_rng(0)
    candidates = np.stack([boltzmann_policy(rng.normal(size=(mdp.n_states, mdp.n_actions)), b) for b in (0.5, 3.0)])
    for metric, distance in (("jensen_shannon", jensen_shannon), ("hellinger", hellinger)):
        scores = PolicyDivergenceDetector(metric).fit(mdp, trusted).score_policies(candidates)
        expected = [state_distributions(mdp, c).mean(0) @ distance(c, trusted) for c in candidates]
        assert np.allclose(scores, expected)
    scores = PolicyDivergenceDetector("occupancy").fit(mdp, trusted).score_policies(candidates)
    expected = [total_variation(occupancy(mdp, c), occupancy(mdp, trusted)) for c in candidates]
    assert np.allclose(scores, expected)
