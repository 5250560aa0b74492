"""Exact planning, evaluation and the optimisation-power sweeps."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mlsafety.alignment.proxy import (
    Lagoon,
    TabularMDP,
    backward_induction,
    boltzmann_policy,
    evaluate_policy,
    greedy_policy,
    observation_noise_policy,
    occupancy,
    q_learning,
    q_values,
)
from mlsafety.alignment.proxy.sweep import KNOBS, find_phase_transition, sweep
from mlsafety.exceptions import InvalidParameterError, UnknownMethodError


def random_mdp(seed: int = 0, n_states: int = 3, n_actions: int = 2, horizon: int = 3) -> TabularMDP:
    rng = np.random.default_rng(seed)
    transitions = rng.dirichlet(np.ones(n_states), size=(n_states, n_actions))
    proxy = rng.normal(size=(n_states, n_actions))
    true = rng.normal(size=(n_states, n_actions))
    initial = np.eye(n_states)[0]
    return TabularMDP.from_arrays(transitions, proxy, true, initial, horizon)


def test_backward_induction_matches_brute_force_over_all_deterministic_policies() -> None:
    mdp = random_mdp()
    best = -np.inf
    # every time-dependent deterministic policy: A^(S*T) = 2^9 of them
    for choice in itertools.product(range(2), repeat=9):
        policy = np.zeros((3, 3, 2))
        for index, action in enumerate(choice):
            policy[index // 3, index % 3, action] = 1.0
        best = max(best, evaluate_policy(mdp, policy, "proxy"))
    q = backward_induction(mdp, "proxy")
    assert q[-1][0].max() == pytest.approx(best)
    # the greedy time-dependent policy attains it
    greedy = np.stack([greedy_policy(q[mdp.horizon - 1 - t]) for t in range(mdp.horizon)])
    assert evaluate_policy(mdp, greedy, "proxy") == pytest.approx(best)


def test_exact_evaluation_agrees_with_gymnasium_rollouts() -> None:
    env = Lagoon(slip=0.3)
    mdp = env.mdp()
    policy = boltzmann_policy(q_values(mdp, "proxy", 20), 1.0)
    rng = np.random.default_rng(0)
    totals = []
    for episode in range(600):
        state, _ = env.reset(seed=episode)
        total, done = np.zeros(2), False
        while not done:
            action = rng.choice(2, p=policy[state])
            state, reward, terminated, truncated, info = env.step(action)
            total += [reward, info["true_reward"]]
            done = terminated or truncated
        totals.append(total)
    mean, sem = np.mean(totals, 0), np.std(totals, 0) / np.sqrt(len(totals))
    exact = np.array([evaluate_policy(mdp, policy, "proxy"), evaluate_policy(mdp, policy, "true")])
    assert np.all(np.abs(mean - exact) < 4 * sem + 1e-9)


def test_boltzmann_limits_and_occupancy_normalisation() -> None:
    q = np.array([[1.0, 2.0, 2.0], [0.0, -1.0, 3.0]])
    assert np.allclose(boltzmann_policy(q, 0.0), 1 / 3)
    assert np.allclose(boltzmann_policy(q, 1e4), greedy_policy(q))
    assert np.allclose(greedy_policy(q)[0], [0, 0.5, 0.5])
    mdp = random_mdp(1)
    rho = occupancy(mdp, boltzmann_policy(mdp.proxy_rewards, 1.0))
    assert rho.sum() == pytest.approx(1.0)
    noisy = observation_noise_policy(greedy_policy(q), 1.0)
    assert np.allclose(noisy[0], noisy[1])


def test_q_learning_converges_on_a_small_mdp() -> None:
    mdp = random_mdp(2, horizon=50)
    q = q_learning(mdp, 30000, discount=0.5, learning_rate=0.05, epsilon=0.5, seed=0)
    reference = np.zeros_like(mdp.proxy_rewards)
    for _ in range(200):  # discounted value iteration
        reference = mdp.proxy_rewards + 0.5 * mdp.transitions @ reference.max(1)
    assert np.abs(q - reference).max() < 0.15
    snapshots = q_learning(mdp, [0, 10, 100], seed=0)
    assert snapshots.shape == (3, 3, 2) and np.all(snapshots[0] == 0)


def test_negative_horizon_and_bad_discount_are_refused() -> None:
    mdp = random_mdp()
    with pytest.raises(InvalidParameterError, match="`horizon` of backward_induction must be an integer >= 1"):
        q_values(mdp, "proxy", -2)
    with pytest.raises(InvalidParameterError, match="discount"):
        q_values(mdp, "proxy", 2, discount=1.5)
    with pytest.raises(InvalidParameterError, match="horizon"):
        sweep("lagoon", "horizon", values=[-1, 2], seeds=1)


def test_lagoon_horizon_sweep_shows_a_phase_transition() -> None:
    result = sweep("lagoon", "horizon", seeds=3)
    t = result.transition
    assert t.flagged
    # the lagoon pays off once the planner sees past the 6-cell channel enough laps to beat
    # the finish (5 targets + 10): 2 * (1 + (H - 7) / 2) > 14 -> H >= 20
    assert t.value_before < 20 <= t.value_after
    before, after = result.true_returns[:, t.index], result.true_returns[:, t.index + 1]
    assert np.all(after < before)
    assert np.all(result.proxy_returns[:, t.index + 1] > result.proxy_returns[:, t.index])
    assert result.policies.shape == (3, result.values.size, 21, 2)


def test_sweeps_are_reproducible_and_noise_knob_is_ordered_by_power() -> None:
    a = sweep("boat_race", "q_learning", values=[0, 200, 1000], seeds=[3, 4])
    b = sweep("boat_race", "q_learning", values=[0, 200, 1000], seeds=[3, 4])
    assert np.array_equal(a.true_returns, b.true_returns)
    noise = sweep("tomato_watering", "observation_noise", values=[0.0, 0.5, 1.0], seeds=2)
    assert noise.values.tolist() == [1.0, 0.5, 0.0]
    assert set(KNOBS) == {"horizon", "discount", "boltzmann", "q_learning", "capacity", "observation_noise"}
    with pytest.raises(UnknownMethodError, match="Did you mean 'horizon'"):
        sweep("lagoon", "horizn")


def test_phase_transition_not_flagged_on_noise_or_gradual_decline() -> None:
    rng = np.random.default_rng(0)
    assert not find_phase_transition(np.arange(8), rng.normal(size=(5, 8))).flagged
    gradual = np.tile(-np.arange(10.0), (4, 1)) + rng.normal(scale=0.01, size=(4, 10))
    assert not find_phase_transition(np.arange(10), gradual).flagged
    step = np.tile(np.r_[np.zeros(5), -np.ones(5)], (4, 1)) + rng.normal(scale=0.01, size=(4, 10))
    flagged = find_phase_transition(np.arange(10), step)
    assert flagged.flagged and flagged.index == 4
