"""Optimisation-power sweeps: proxy and true return against power, over seeds.

Pan, Bhatia & Steinhardt (2022), *The Effects of Reward Misspecification: Mapping and
Mitigating Misaligned Models*: as an agent's optimisation power grows (model size,
training steps, action resolution, observation fidelity), proxy return rises while true
return can fall -- sometimes abruptly, in a *phase transition*. Here power is an explicit
knob of an exact tabular optimiser (see :data:`KNOBS`) and every return is computed
exactly, so the seed-to-seed spread comes only from the optimiser's randomness: each seed
plans on its own noisy copy of the proxy (a learned reward model is never exact; noise of
``proxy_noise`` times the proxy's standard deviation) and Q-learning explores with it.

A phase transition is flagged at the largest drop in mean true return between
consecutive power levels when that drop exceeds ``min_ratio`` times the seed-to-seed
spread there and ``min_fraction`` of the range of the mean curve.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlsafety._validation import check_positive
from mlsafety.alignment.proxy._tabular import TabularMDP
from mlsafety.alignment.proxy.planning import (
    _as_mdp,
    aggregate_policy,
    backward_induction,
    boltzmann_policy,
    evaluate_policy,
    greedy_policy,
    observation_noise_policy,
    q_learning,
    q_values,
)
from mlsafety.exceptions import InvalidParameterError, UnknownMethodError, parameter_error
from mlsafety.registry import ENVIRONMENTS


@dataclass(frozen=True)
class Knob:
    """One dial of optimisation power.

    ``policies(mdp, proxy, values, seed)`` returns one policy per value, shape (K, S, A);
    ``increasing`` says whether power grows with the value (observation noise: it falls).
    """

    name: str
    description: str
    default_values: Callable[[TabularMDP], list[float]]
    policies: Callable[[TabularMDP, np.ndarray, Sequence[float], int], np.ndarray]
    increasing: bool = True


def _scale(reward: np.ndarray) -> float:
    spread = float(np.std(reward))
    return spread if spread > 0 else 1.0


def _horizon_policies(mdp: TabularMDP, proxy: np.ndarray, values: Sequence[float], seed: int) -> np.ndarray:
    for value in values:
        if not float(value).is_integer() or value < 1:
            raise parameter_error("horizon", "sweep", "an integer >= 1", value,
                                  "Pass planning horizons such as 1, 2, 4.")
    # one backward induction to the longest horizon holds every shorter lookahead too
    q = backward_induction(mdp, proxy, int(max(values)))
    return np.stack([greedy_policy(q[int(h) - 1]) for h in values])


def _discount_policies(mdp: TabularMDP, proxy: np.ndarray, values: Sequence[float], seed: int) -> np.ndarray:
    return np.stack([greedy_policy(q_values(mdp, proxy, mdp.horizon, float(g))) for g in values])


def _boltzmann_policies(mdp: TabularMDP, proxy: np.ndarray, values: Sequence[float], seed: int) -> np.ndarray:
    q = q_values(mdp, proxy, mdp.horizon)
    scale = _scale(q)
    return np.stack([boltzmann_policy(q / scale, float(beta)) for beta in values])


def _q_learning_policies(mdp: TabularMDP, proxy: np.ndarray, values: Sequence[float], seed: int) -> np.ndarray:
    steps = [int(v) for v in values]
    for value in values:
        if not float(value).is_integer() or value < 0:
            raise parameter_error("n_steps", "sweep", "an integer >= 0", value)
    tables = q_learning(mdp, steps, reward=proxy, seed=seed)
    return np.stack([greedy_policy(q) for q in tables])


def _capacity_policies(mdp: TabularMDP, proxy: np.ndarray, values: Sequence[float], seed: int) -> np.ndarray:
    q = q_values(mdp, proxy, mdp.horizon)
    return np.stack([aggregate_policy(mdp, q, int(k), seed=seed) for k in values])


def _noise_policies(mdp: TabularMDP, proxy: np.ndarray, values: Sequence[float], seed: int) -> np.ndarray:
    policy = greedy_policy(q_values(mdp, proxy, mdp.horizon))
    return np.stack([observation_noise_policy(policy, float(noise)) for noise in values])


def _horizon_values(mdp: TabularMDP) -> list[float]:
    grid = sorted({round(float(h)) for h in np.geomspace(1, mdp.horizon, 14)})
    return [float(h) for h in grid]


KNOBS: dict[str, Knob] = {
    "horizon": Knob("horizon", "planning horizon of a greedy receding-horizon planner on the proxy",
                    _horizon_values, _horizon_policies),
    "discount": Knob("discount", "discount factor of the proxy planner (full episode horizon)",
                     lambda mdp: [0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.99, 1.0], _discount_policies),
    "boltzmann": Knob("boltzmann", "Boltzmann rationality beta over proxy Q-values (in units of their std)",
                      lambda mdp: [float(b) for b in np.geomspace(0.1, 300, 12)], _boltzmann_policies),
    "q_learning": Knob("q_learning", "number of tabular Q-learning steps on the proxy",
                       lambda mdp: [0.0, 100.0, 300.0, 1000.0, 3000.0, 6000.0, 10000.0, 20000.0], _q_learning_policies),
    "capacity": Knob("capacity", "number of state groups the policy can tell apart",
                     lambda mdp: sorted({float(min(2**k, mdp.n_states)) for k in range(0, 12)}), _capacity_policies),
    "observation_noise": Knob("observation_noise", "probability of observing a uniformly random state",
                              lambda mdp: [1.0, 0.8, 0.6, 0.4, 0.3, 0.2, 0.1, 0.05, 0.0], _noise_policies,
                              increasing=False),
}


def get_knob(name: str) -> Knob:
    """Look up a knob; unknown names get close-match suggestions."""
    if name not in KNOBS:
        close = difflib.get_close_matches(name, list(KNOBS), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownMethodError(f"unknown optimisation-power knob {name!r}.{hint} Known: {', '.join(KNOBS)}.")
    return KNOBS[name]


def make_environment(env: Any) -> Any:
    """An environment from a registered name (close-match suggestions on typos) or as given."""
    if isinstance(env, str):
        return ENVIRONMENTS.create(env)
    return env


@dataclass
class PhaseTransition:
    """The largest drop in mean true return between consecutive power levels."""

    index: int
    value_before: float
    value_after: float
    drop: float
    spread: float
    ratio: float
    fraction_of_range: float
    flagged: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def find_phase_transition(values: Sequence[float], true_returns: np.ndarray, min_ratio: float = 3.0,
                          min_fraction: float = 0.3) -> PhaseTransition:
    """Flag the largest drop of the mean true return against the seed-to-seed spread.

    Parameters
    ----------
    values : sequence of float, length K
        Power levels, ordered by increasing power.
    true_returns : ndarray, shape (n_seeds, K)
    min_ratio : float
        The drop must exceed ``min_ratio`` times the pooled standard deviation over seeds
        at the two levels (a floor of 1e-6 of the range keeps deterministic sweeps finite).
    min_fraction : float
        ... and ``min_fraction`` of the range (max - min) of the mean curve.
    """
    true_returns = np.atleast_2d(np.asarray(true_returns, dtype=float))
    if true_returns.shape[1] != len(values) or len(values) < 2:
        raise InvalidParameterError(
            f"`true_returns` must have shape (n_seeds, K) with K = len(values) >= 2; got {true_returns.shape} "
            f"for {len(values)} values."
        )
    mean = true_returns.mean(0)
    std = true_returns.std(0, ddof=1) if true_returns.shape[0] > 1 else np.zeros_like(mean)
    value_range = float(mean.max() - mean.min())
    drops = mean[:-1] - mean[1:]
    spread = np.sqrt((std[:-1] ** 2 + std[1:] ** 2) / 2)
    floor = max(1e-6 * value_range, 1e-12)
    k = int(np.argmax(drops))
    ratio = float(drops[k] / max(spread[k], floor))
    fraction = float(drops[k] / value_range) if value_range > 0 else 0.0
    flagged = bool(drops[k] > 0 and ratio >= min_ratio and fraction >= min_fraction)
    return PhaseTransition(k, float(values[k]), float(values[k + 1]), float(drops[k]), float(spread[k]), ratio,
                           fraction, flagged)


@dataclass
class SweepResult:
    """Proxy and true returns of one environment over power levels and seeds.

    Attributes
    ----------
    proxy_returns, true_returns : ndarray, shape (n_seeds, K)
        Exact expected returns under the environment's (noise-free) proxy and true reward.
    policies : ndarray, shape (n_seeds, K, S, A)
    values : ndarray, shape (K,), ordered by increasing power.
    """

    environment: str
    knob: str
    values: np.ndarray
    seeds: list[int]
    proxy_returns: np.ndarray
    true_returns: np.ndarray
    policies: np.ndarray
    transition: PhaseTransition
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, include_policies: bool = False) -> dict[str, Any]:
        data = {
            "environment": self.environment, "knob": self.knob, "values": self.values.tolist(),
            "seeds": list(self.seeds), "proxy_returns": self.proxy_returns.tolist(),
            "true_returns": self.true_returns.tolist(), "transition": self.transition.to_dict(),
            "settings": dict(self.settings),
        }
        if include_policies:
            data["policies"] = self.policies.tolist()
        return data


def noisy_proxy(mdp: TabularMDP, proxy_noise: float, seed: int) -> np.ndarray:
    """The proxy an optimiser with seed ``seed`` sees: the proxy plus Gaussian noise of
    ``proxy_noise`` times the proxy's standard deviation, independently per (s, a)."""
    check_positive(proxy_noise, "proxy_noise", "sweep", allow_zero=True)
    rng = np.random.default_rng(seed)
    return mdp.proxy_rewards + proxy_noise * _scale(mdp.proxy_rewards) * rng.standard_normal(mdp.proxy_rewards.shape)


def sweep_seed(shard: Any, shared: tuple[TabularMDP, Knob, list[float], float]) -> dict[str, Any]:
    """One seed of a sweep (a shard): the optimiser's policies at every power level and their
    exact proxy and true returns. The seed is the shard's own (``shard.params["seed"]``)."""
    mdp, spec, grid, proxy_noise = shared
    seed = int(shard.params["seed"])
    policies = spec.policies(mdp, noisy_proxy(mdp, proxy_noise, seed), grid, seed)
    return {"policies": policies,
            "proxy": [evaluate_policy(mdp, policies[k], "proxy") for k in range(len(grid))],
            "true": [evaluate_policy(mdp, policies[k], "true") for k in range(len(grid))]}


def sweep(env: Any, knob: str = "horizon", values: Sequence[float] | None = None, seeds: int | Sequence[int] = 5,
          proxy_noise: float = 0.05, min_ratio: float = 3.0, min_fraction: float = 0.3,
          executor: Any = None) -> SweepResult:
    """Optimise the proxy at each power level for each seed; evaluate proxy and true return exactly.

    Parameters
    ----------
    env : str or environment
        A name registered in ``ENVIRONMENTS`` (``"lagoon"``) or an environment instance.
    knob : str
        One of :data:`KNOBS`: horizon, discount, boltzmann, q_learning, capacity, observation_noise.
    values : sequence of float, optional
        Power levels (default: the knob's grid for this environment). They are reordered by
        increasing power.
    seeds : int or sequence of int
        Number of seeds (0..n-1) or explicit seeds.
    proxy_noise : float
        Per-seed noise on the proxy, in units of the proxy's standard deviation.
    executor : mlsafety.execution.Executor, optional
        Runs the seeds as shards (default: one after the other in this process); the
        result does not depend on it.

    Returns
    -------
    SweepResult

    Example
    -------
    >>> result = sweep("lagoon", "horizon", seeds=3)
    >>> result.transition.flagged
    True
    """
    environment = make_environment(env)
    mdp = _as_mdp(environment)
    spec = get_knob(knob)
    seed_list = list(range(check_positive(seeds, "seeds", "sweep", integer=True))) if isinstance(seeds, int) \
        else [int(s) for s in seeds]
    if not seed_list:
        raise parameter_error("seeds", "sweep", "a positive count or a non-empty list", seeds)
    grid = np.asarray(spec.default_values(mdp) if values is None else list(values), dtype=float)
    if grid.ndim != 1 or grid.size < 2:
        raise parameter_error("values", "sweep", "at least two power levels", values)
    grid = np.sort(grid) if spec.increasing else np.sort(grid)[::-1]
    check_positive(proxy_noise, "proxy_noise", "sweep", allow_zero=True)
    from mlsafety.execution import LocalExecutor, Shard

    shards = [Shard(f"seed-{i}", {"seed": seed}, seed) for i, seed in enumerate(seed_list)]
    runs = (executor or LocalExecutor()).map(sweep_seed, shards, shared=(mdp, spec, grid.tolist(), proxy_noise))
    policies = np.stack([np.asarray(run["policies"], dtype=float) for run in runs])
    proxy_returns = np.asarray([run["proxy"] for run in runs], dtype=float)
    true_returns = np.asarray([run["true"] for run in runs], dtype=float)
    transition = find_phase_transition(grid, true_returns, min_ratio, min_fraction)
    return SweepResult(mdp.name, knob, grid, seed_list, proxy_returns, true_returns, policies, transition,
                       {"proxy_noise": proxy_noise, "min_ratio": min_ratio, "min_fraction": min_fraction,
                        "description": spec.description, "power_increases_with_value": spec.increasing})
