"""Mitigations of proxy gaming, each computed exactly on the tabular MDPs.

* :func:`kl_regularized_policy` -- maximise ``E[sum_t r_proxy] - strength * E[sum_t KL(pi(.|s_t) || pi_T(.|s_t))]``
  by soft backward induction (Todorov 2007; Ziebart 2010; the KL penalty of RLHF).
* :func:`occupancy_regularized_policy` -- maximise the discounted proxy minus
  ``strength * |rho - rho_T|_1`` over occupancy measures, a linear program (Laidlaw, Singhal
  & Dragan 2024, *Preventing Reward Hacking with Occupancy Measure Regularization*, with
  the total-variation distance).
* :func:`early_stop` -- walk up the power knob and stop before the detector's score
  crosses a threshold.
* Conservative reward-model ensembles live in
  :func:`mlsafety.alignment.proxy.overoptimization.overoptimization_experiment` (``n_ensemble``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse
from scipy.optimize import linprog
from scipy.special import logsumexp

from mlsafety._validation import check_fraction, check_positive
from mlsafety.alignment.proxy._tabular import TabularMDP
from mlsafety.alignment.proxy.planning import _as_mdp, _check_horizon, check_policy, evaluate_policy
from mlsafety.alignment.proxy.sweep import SweepResult
from mlsafety.exceptions import MLSafetyError, parameter_error


def kl_regularized_policy(mdp: TabularMDP | Any, trusted_policy: np.ndarray, strength: float,
                          reward: str | np.ndarray = "proxy", horizon: int | None = None,
                          discount: float = 1.0) -> np.ndarray:
    """The optimal time-dependent policy of the KL-regularised proxy objective, shape (T, S, A).

    With ``lambda = strength``: ``Q_t = r + discount * P V_{t+1}``,
    ``V_t(s) = lambda log sum_a pi_T(a|s) exp(Q_t(s, a) / lambda)`` and
    ``pi_t(a|s) ∝ pi_T(a|s) exp(Q_t(s, a) / lambda)``. Large strength returns the trusted
    policy; strength -> 0 returns a proxy-optimal policy.
    """
    mdp = _as_mdp(mdp)
    check_positive(strength, "strength", "kl_regularized_policy")
    trusted = check_policy(trusted_policy, mdp, "trusted_policy")
    horizon = mdp.horizon if horizon is None else _check_horizon(horizon, "kl_regularized_policy")
    discount = check_fraction(discount, "discount", "kl_regularized_policy", high_inclusive=True)
    r = mdp.reward(reward)
    with np.errstate(divide="ignore"):
        log_prior = np.log(trusted)
    value = np.zeros(mdp.n_states)
    policy = np.empty((horizon, mdp.n_states, mdp.n_actions))
    for t in reversed(range(horizon)):
        q = r + discount * mdp.transitions @ value
        logits = log_prior + q / strength
        normaliser = logsumexp(logits, axis=1, keepdims=True)
        policy[t] = np.exp(logits - normaliser)
        value = strength * normaliser[:, 0]
    return policy


def occupancy_regularized_policy(mdp: TabularMDP | Any, trusted_policy: np.ndarray, strength: float,
                                 discount: float = 0.95, reward: str | np.ndarray = "proxy") -> np.ndarray:
    """Maximise ``sum rho r_proxy - strength * |rho - rho_T|_1`` over discounted occupancy measures.

    Variables ``rho(s, a) >= 0`` with the Bellman flow constraints
    ``sum_a rho(s', a) = (1 - gamma) mu_0(s') + gamma sum_{s,a} P(s'|s, a) rho(s, a)`` and
    slacks ``u >= |rho - rho_T|``; solved exactly by HiGHS (scipy.optimize.linprog). The
    stationary policy is ``rho(s, a) / sum_a rho(s, a)`` (the trusted policy where
    ``rho(s) = 0``).
    """
    mdp = _as_mdp(mdp)
    check_positive(strength, "strength", "occupancy_regularized_policy", allow_zero=True)
    check_fraction(discount, "discount", "occupancy_regularized_policy")
    trusted = check_policy(trusted_policy, mdp, "trusted_policy")
    if trusted.ndim != 2:
        trusted = trusted[0]
    n_states, n_actions = mdp.n_states, mdp.n_actions
    size = n_states * n_actions
    r = mdp.reward(reward).reshape(-1)
    trusted_rho = _discounted_occupancy(mdp, trusted, discount).reshape(-1)
    # flow constraints: E rho = (1 - gamma) mu0 with E[s', (s, a)] = 1[s = s'] - gamma P(s'|s, a)
    flow = np.repeat(np.eye(n_states), n_actions, axis=1) - discount * mdp.transitions.reshape(size, n_states).T
    a_eq = sparse.hstack([sparse.csr_matrix(flow), sparse.csr_matrix((n_states, size))]).tocsr()
    b_eq = (1 - discount) * mdp.initial_distribution
    identity = sparse.identity(size, format="csr")
    a_ub = sparse.vstack([sparse.hstack([identity, -identity]), sparse.hstack([-identity, -identity])]).tocsr()
    b_ub = np.concatenate([trusted_rho, -trusted_rho])
    cost = np.concatenate([-r, strength * np.ones(size)])
    solution = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    if not solution.success:
        raise MLSafetyError(f"the occupancy-measure linear program failed: {solution.message}")
    rho = np.clip(solution.x[:size].reshape(n_states, n_actions), 0.0, None)
    mass = rho.sum(1, keepdims=True)
    return np.where(mass > 1e-12, rho / np.where(mass > 1e-12, mass, 1.0), trusted)


def _discounted_occupancy(mdp: TabularMDP, policy: np.ndarray, discount: float) -> np.ndarray:
    """``(1 - gamma) sum_t gamma^t Pr(s_t = s, a_t = a)`` of a stationary policy, shape (S, A)."""
    p_pi = np.einsum("sa,sap->sp", policy, mdp.transitions)
    states = np.linalg.solve(np.eye(mdp.n_states) - discount * p_pi.T, (1 - discount) * mdp.initial_distribution)
    return states[:, None] * policy


def regularization_curve(mdp: TabularMDP | Any, trusted_policy: np.ndarray, strengths: list[float],
                         method: str = "kl") -> dict[str, list[float]]:
    """Exact proxy and true return of the regularised policy at each strength (``"kl"`` or ``"occupancy"``)."""
    mdp = _as_mdp(mdp)
    proxy, true = [], []
    for strength in strengths:
        if method == "kl":
            policy = kl_regularized_policy(mdp, trusted_policy, strength)
        else:
            policy = occupancy_regularized_policy(mdp, trusted_policy, strength)
        proxy.append(evaluate_policy(mdp, policy, "proxy"))
        true.append(evaluate_policy(mdp, policy, "true"))
    return {"strength": [float(s) for s in strengths], "proxy": proxy, "true": true}


def regularized_sweep(result: SweepResult, method: str = "kl", strength: float = 1.0,
                      trusted_policy: np.ndarray | None = None) -> dict[str, Any]:
    """Repeat a horizon or discount sweep with a regulariser toward the trusted policy.

    Each seed plans on the same noisy proxy as in ``result``; ``strength`` is in units of the
    proxy reward's standard deviation. ``method="kl"`` works for both knobs (receding-horizon
    soft planning for ``horizon``: the stationary policy with H steps to go; time-dependent for
    ``discount``); ``method="occupancy"`` works for ``discount`` (the LP, with gamma capped at
    0.999). Returns exact ``proxy`` and ``true`` returns of shape (n_seeds, K).
    """
    from mlsafety.alignment.proxy.detection import trusted_policy as default_trusted
    from mlsafety.alignment.proxy.sweep import make_environment, noisy_proxy

    supported = {("kl", "horizon"), ("kl", "discount"), ("occupancy", "discount")}
    if (method, result.knob) not in supported:
        raise parameter_error("method", "regularized_sweep",
                              f"one of {sorted(supported)} as (method, knob)", (method, result.knob))
    check_positive(strength, "strength", "regularized_sweep")
    mdp = _as_mdp(make_environment(result.environment))
    trusted = default_trusted(mdp) if trusted_policy is None else check_policy(trusted_policy, mdp, "trusted_policy")
    scale = float(np.std(mdp.proxy_rewards)) or 1.0
    noise = float(result.settings.get("proxy_noise", 0.0))
    proxy = np.empty(result.true_returns.shape)
    true = np.empty_like(proxy)
    for i, seed in enumerate(result.seeds):
        reward = noisy_proxy(mdp, noise, seed)
        for k, value in enumerate(result.values):
            if result.knob == "horizon":
                policy = kl_regularized_policy(mdp, trusted, strength * scale, reward, horizon=int(value))[0]
            elif method == "kl":
                policy = kl_regularized_policy(mdp, trusted, strength * scale, reward, discount=float(value))
            else:
                policy = occupancy_regularized_policy(mdp, trusted, strength * scale, min(float(value), 0.999), reward)
            proxy[i, k] = evaluate_policy(mdp, policy, "proxy")
            true[i, k] = evaluate_policy(mdp, policy, "true")
    return {"method": method, "strength": strength, "proxy": proxy, "true": true}


def early_stop(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Index of the last power level before the detector score first exceeds ``threshold``.

    Parameters
    ----------
    scores : ndarray, shape (n_seeds, K)
        Detector scores along a sweep ordered by increasing power.

    Returns
    -------
    ndarray of int, shape (n_seeds,)
        The chosen level per seed (0 when even the weakest optimiser is flagged).
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    over = scores > threshold
    first = np.where(over.any(1), over.argmax(1), scores.shape[1])
    return np.maximum(first - 1, 0)
