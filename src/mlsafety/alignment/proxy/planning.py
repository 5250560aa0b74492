"""Exact planning and evaluation on a :class:`TabularMDP`, and the optimisation-power knobs.

Policies are arrays of action probabilities, shape (S, A) (stationary) or (T, S, A)
(time-dependent). Returns are exact expectations over the episode (forward propagation of
the state distribution), never Monte Carlo estimates.

Optimisation power enters through: the planning horizon and discount of the proxy
Q-values (:func:`q_values`), Boltzmann rationality (:func:`boltzmann_policy`), the number
of Q-learning steps (:func:`q_learning`), policy capacity (:func:`aggregate_policy`) and
observation noise (:func:`observation_noise_policy`).
"""

from __future__ import annotations

import numbers

import numpy as np

from mlsafety._validation import check_fraction, check_positive
from mlsafety.alignment.proxy._tabular import TabularMDP
from mlsafety.exceptions import InvalidInputError, ShapeError, parameter_error


def _as_mdp(mdp: object) -> TabularMDP:
    if isinstance(mdp, TabularMDP):
        return mdp
    getter = getattr(mdp, "mdp", None)
    if callable(getter):
        return getter()
    raise InvalidInputError(f"expected a TabularMDP or a proxy-gaming environment; got {type(mdp).__name__}.")


def _check_horizon(horizon: object, owner: str) -> int:
    if not isinstance(horizon, numbers.Integral) or isinstance(horizon, bool) or horizon < 1:
        raise parameter_error("horizon", owner, "an integer >= 1", horizon, "Pass the number of steps to plan ahead.")
    return int(horizon)


def _check_discount(discount: object, owner: str) -> float:
    return check_fraction(discount, "discount", owner, high_inclusive=True)


def check_policy(policy: object, mdp: TabularMDP, name: str = "policy") -> np.ndarray:
    """Validate a stationary (S, A) or time-dependent (T, S, A) policy."""
    policy = np.asarray(policy, dtype=float)
    shape = (mdp.n_states, mdp.n_actions)
    if policy.shape[-2:] != shape or policy.ndim not in (2, 3):
        raise ShapeError(f"`{name}` must have shape (S, A) = {shape} or (T, S, A); got {policy.shape}.")
    if (policy < -1e-9).any() or not np.allclose(policy.sum(-1), 1.0, atol=1e-6):
        raise InvalidInputError(f"`{name}` rows must be action distributions (non-negative, summing to 1).")
    return np.clip(policy, 0.0, None)


def _policy_at(policy: np.ndarray, t: int) -> np.ndarray:
    return policy if policy.ndim == 2 else policy[min(t, policy.shape[0] - 1)]


def backward_induction(mdp: TabularMDP | object, reward: str | np.ndarray = "proxy", horizon: int | None = None,
                       discount: float = 1.0) -> np.ndarray:
    """Optimal finite-horizon Q-values ``Q_k`` for k = 1..H steps to go, shape (H, S, A).

    Bellman (1957): ``Q_1 = r``, ``Q_k(s, a) = r(s, a) + discount * sum_s' P(s'|s, a) max_a' Q_{k-1}(s', a')``.
    ``Q[k - 1]`` is the value with ``k`` steps left.
    """
    mdp = _as_mdp(mdp)
    horizon = mdp.horizon if horizon is None else _check_horizon(horizon, "backward_induction")
    discount = _check_discount(discount, "backward_induction")
    r = mdp.reward(reward)
    q = np.empty((horizon, mdp.n_states, mdp.n_actions))
    q[0] = r
    for k in range(1, horizon):
        q[k] = r + discount * mdp.transitions @ q[k - 1].max(1)
    return q


def q_values(mdp: TabularMDP | object, reward: str | np.ndarray = "proxy", horizon: int | None = None,
             discount: float = 1.0) -> np.ndarray:
    """Receding-horizon Q-values: the optimal ``horizon``-step lookahead value, shape (S, A).

    An agent that always plans ``horizon`` steps ahead and acts greedily on these values is
    the stationary "planning horizon" knob of optimisation power (Pan et al. 2022 vary
    the analogous training horizon and discount).
    """
    return backward_induction(mdp, reward, horizon, discount)[-1]


def greedy_policy(q: np.ndarray, tolerance: float = 1e-9) -> np.ndarray:
    """Uniform over the (near-)maximising actions of each row of ``q`` (S, A) -> (S, A)."""
    q = np.asarray(q, dtype=float)
    best = q >= q.max(-1, keepdims=True) - tolerance
    return best / best.sum(-1, keepdims=True)


def boltzmann_policy(q: np.ndarray, beta: float) -> np.ndarray:
    """Boltzmann-rational policy ``pi(a|s) ∝ exp(beta * Q(s, a))`` (Luce 1959; Ziebart et al. 2008).

    ``beta = 0`` is uniformly random; ``beta -> inf`` approaches :func:`greedy_policy`.
    """
    check_positive(beta, "beta", "boltzmann_policy", allow_zero=True)
    q = np.asarray(q, dtype=float)
    logits = beta * (q - q.max(-1, keepdims=True))
    weights = np.exp(logits)
    return weights / weights.sum(-1, keepdims=True)


def state_distributions(mdp: TabularMDP | object, policy: np.ndarray, horizon: int | None = None) -> np.ndarray:
    """Exact state distributions ``d_t`` for t = 0..T-1 under ``policy``, shape (T, S)."""
    mdp = _as_mdp(mdp)
    policy = check_policy(policy, mdp)
    horizon = mdp.horizon if horizon is None else _check_horizon(horizon, "state_distributions")
    d = np.empty((horizon, mdp.n_states))
    d[0] = mdp.initial_distribution
    for t in range(1, horizon):
        pi = _policy_at(policy, t - 1)
        d[t] = np.einsum("s,sa,sap->p", d[t - 1], pi, mdp.transitions)
    return d


def evaluate_policy(mdp: TabularMDP | object, policy: np.ndarray, reward: str | np.ndarray = "true",
                    horizon: int | None = None) -> float:
    """Exact expected (undiscounted) return of ``policy`` over the episode, ``sum_t E[r(s_t, a_t)]``."""
    mdp = _as_mdp(mdp)
    policy = check_policy(policy, mdp)
    d = state_distributions(mdp, policy, horizon)
    r = mdp.reward(reward)
    if policy.ndim == 2:
        return float(np.einsum("ts,sa,sa->", d, policy, r))
    return float(sum(d[t] @ (_policy_at(policy, t) * r).sum(1) for t in range(d.shape[0])))


def occupancy(mdp: TabularMDP | object, policy: np.ndarray, horizon: int | None = None) -> np.ndarray:
    """Normalised state-action occupancy measure ``rho(s, a) = mean_t d_t(s) pi_t(a|s)``, shape (S, A)."""
    mdp = _as_mdp(mdp)
    policy = check_policy(policy, mdp)
    d = state_distributions(mdp, policy, horizon)
    if policy.ndim == 2:
        return d.mean(0)[:, None] * policy
    return np.mean([d[t][:, None] * _policy_at(policy, t) for t in range(d.shape[0])], axis=0)


def q_learning(mdp: TabularMDP | object, n_steps: int | list[int], reward: str | np.ndarray = "proxy",
               learning_rate: float = 0.2, epsilon: float = 0.2, discount: float = 0.95,
               seed: int | None = 0) -> np.ndarray:
    """Tabular Q-learning (Watkins & Dayan 1992) on sampled episodes of the exact MDP.

    ``Q(s, a) += learning_rate * (r(s, a) + discount * max_a' Q(s', a') - Q(s, a))`` with
    epsilon-greedy exploration; episodes restart after ``mdp.horizon`` steps or at a
    terminal state. The reward is the expected reward of (s, a).

    Parameters
    ----------
    n_steps : int or list of int
        Number of environment steps; a list returns a snapshot after each count.

    Returns
    -------
    ndarray, shape (S, A), or (len(n_steps), S, A) for a list.
    """
    mdp = _as_mdp(mdp)
    single = isinstance(n_steps, numbers.Integral)
    checkpoints = [n_steps] if single else list(n_steps)
    for value in checkpoints:
        check_positive(value, "n_steps", "q_learning", integer=True, allow_zero=True)
    check_fraction(learning_rate, "learning_rate", "q_learning", high_inclusive=True)
    check_fraction(epsilon, "epsilon", "q_learning", low_inclusive=True, high_inclusive=True)
    discount = _check_discount(discount, "q_learning")
    r = mdp.reward(reward)
    rng = np.random.default_rng(seed)
    total = max(checkpoints, default=0)
    cumulative = np.cumsum(mdp.transitions, axis=-1)
    start_cumulative = np.cumsum(mdp.initial_distribution)
    terminal = mdp.terminal_states if mdp.terminal_states is not None else np.zeros(mdp.n_states, bool)
    uniforms = rng.random((total, 3))
    random_actions = rng.integers(0, mdp.n_actions, size=total)
    q = np.zeros((mdp.n_states, mdp.n_actions))
    snapshots: dict[int, np.ndarray] = {0: q.copy()}
    wanted = set(checkpoints)
    state = int(np.searchsorted(start_cumulative, rng.random(), side="right"))
    t = 0
    for step in range(total):
        if uniforms[step, 0] < epsilon:
            action = int(random_actions[step])
        else:
            row = q[state]
            best = np.flatnonzero(row >= row.max() - 1e-12)
            action = int(best[int(uniforms[step, 2] * len(best))])
        following = min(int(np.searchsorted(cumulative[state, action], uniforms[step, 1], side="right")),
                        mdp.n_states - 1)
        done = bool(terminal[following])
        target = r[state, action] + (0.0 if done else discount * q[following].max())
        q[state, action] += learning_rate * (target - q[state, action])
        t += 1
        if done or t >= mdp.horizon:
            state, t = int(np.searchsorted(start_cumulative, rng.random(), side="right")), 0
        else:
            state = following
        if step + 1 in wanted:
            snapshots[step + 1] = q.copy()
    result = np.stack([snapshots[c] for c in checkpoints])
    return result[0] if single else result


def observation_noise_policy(policy: np.ndarray, noise: float) -> np.ndarray:
    """The policy of an agent that sees a uniformly random state with probability ``noise``.

    ``pi_noisy(a|s) = (1 - noise) * pi(a|s) + noise * mean_s' pi(a|s')`` -- exact for an
    observation channel that replaces the state by a uniform draw.
    """
    check_fraction(noise, "noise", "observation_noise_policy", low_inclusive=True, high_inclusive=True)
    policy = np.asarray(policy, dtype=float)
    return (1 - noise) * policy + noise * policy.mean(-2, keepdims=True)


def aggregate_policy(mdp: TabularMDP | object, q: np.ndarray, n_groups: int, seed: int | None = 0,
                     weights: np.ndarray | None = None) -> np.ndarray:
    """A capacity-limited greedy policy: one action distribution per group of states.

    States are split into ``n_groups`` groups by a seeded random partition (a policy of
    limited capacity cannot tell the states of a group apart); each group acts greedily on
    the ``weights``-weighted mean of its states' Q-values (default: occupancy of the
    uniform policy). ``n_groups >= S`` gives the unrestricted greedy policy.
    """
    mdp = _as_mdp(mdp)
    check_positive(n_groups, "n_groups", "aggregate_policy", integer=True)
    q = np.asarray(q, dtype=float)
    n_states = mdp.n_states
    if n_groups >= n_states:
        return greedy_policy(q)
    rng = np.random.default_rng(seed)
    groups = np.empty(n_states, dtype=int)
    order = rng.permutation(n_states)
    groups[order] = np.arange(n_states) % n_groups
    if weights is None:
        uniform = np.full((n_states, mdp.n_actions), 1.0 / mdp.n_actions)
        weights = occupancy(mdp, uniform).sum(1)
    weights = np.asarray(weights, dtype=float) + 1e-6
    grouped = np.zeros((n_groups, mdp.n_actions))
    np.add.at(grouped, groups, weights[:, None] * q)
    group_policy = greedy_policy(grouped)
    return group_policy[groups]
