"""The shared base of the proxy-gaming environments: a finite MDP with two reward arrays.

Every environment is a :class:`gymnasium.Env` whose step reward is the *proxy* reward (what
an optimiser sees) and whose ``info`` also carries the *true* reward (what we want). Its
exact dynamics are exposed as arrays, so policies can be computed by dynamic programming
and evaluated without sampling:

* ``transitions`` -- shape (S, A, S), ``P[s, a, s']``;
* ``proxy_rewards`` / ``true_rewards`` -- shape (S, A, S), the reward of the transition;
* ``initial_distribution`` -- shape (S,);
* ``terminal_states`` -- shape (S,), bool; terminal states are absorbing and pay nothing.

:meth:`TabularEnv.mdp` collapses them into a :class:`TabularMDP` with expected rewards of
shape (S, A), which is what the planners in :mod:`mlsafety.alignment.proxy.planning` use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from mlsafety._validation import check_positive
from mlsafety.base import ParamsMixin
from mlsafety.exceptions import InvalidInputError, ShapeError, parameter_error


@dataclass(frozen=True)
class TabularMDP:
    """A finite-horizon MDP with a proxy and a true reward (expected rewards, shape (S, A)).

    Attributes
    ----------
    transitions : ndarray, shape (S, A, S)
    proxy_rewards, true_rewards : ndarray, shape (S, A)
        Expected reward of taking action a in state s.
    initial_distribution : ndarray, shape (S,)
    horizon : int
        Episode length T (the environment's ``max_episode_steps``).
    name : str
    terminal_states : ndarray of bool, shape (S,)
        Absorbing states that end an episode (they pay nothing).
    """

    transitions: np.ndarray
    proxy_rewards: np.ndarray
    true_rewards: np.ndarray
    initial_distribution: np.ndarray
    horizon: int
    name: str = "mdp"
    terminal_states: np.ndarray | None = None

    @property
    def n_states(self) -> int:
        return int(self.transitions.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.transitions.shape[1])

    def reward(self, which: str | np.ndarray) -> np.ndarray:
        """``"proxy"``, ``"true"`` or an explicit (S, A) array."""
        if isinstance(which, str):
            if which == "proxy":
                return self.proxy_rewards
            if which == "true":
                return self.true_rewards
            raise parameter_error("reward", "TabularMDP", "'proxy', 'true' or an (S, A) array", which)
        reward = np.asarray(which, dtype=float)
        if reward.shape != (self.n_states, self.n_actions):
            raise ShapeError(
                f"`reward` must have shape (S, A) = {(self.n_states, self.n_actions)}; got {reward.shape}."
            )
        return reward

    @classmethod
    def from_arrays(
        cls,
        transitions: np.ndarray,
        proxy_rewards: np.ndarray,
        true_rewards: np.ndarray,
        initial_distribution: np.ndarray,
        horizon: int,
        name: str = "mdp",
        terminal_states: np.ndarray | None = None,
    ) -> TabularMDP:
        """Validate arrays (rewards may be (S, A) or (S, A, S)) and build the MDP."""
        transitions = np.asarray(transitions, dtype=float)
        if transitions.ndim != 3 or transitions.shape[0] != transitions.shape[2]:
            raise ShapeError(f"`transitions` must have shape (S, A, S); got {transitions.shape}.")
        if (transitions < -1e-12).any() or not np.allclose(transitions.sum(-1), 1.0, atol=1e-8):
            raise InvalidInputError("`transitions` rows must be probability distributions (non-negative, sum 1).")
        n_states, n_actions, _ = transitions.shape
        expected = []
        for label, reward in (("proxy_rewards", proxy_rewards), ("true_rewards", true_rewards)):
            reward = np.asarray(reward, dtype=float)
            if reward.shape == transitions.shape:
                reward = (transitions * reward).sum(-1)
            if reward.shape != (n_states, n_actions):
                raise ShapeError(f"`{label}` must have shape (S, A) or (S, A, S); got {reward.shape}.")
            expected.append(reward)
        initial = np.asarray(initial_distribution, dtype=float)
        if initial.shape != (n_states,) or not np.isclose(initial.sum(), 1.0) or (initial < 0).any():
            raise InvalidInputError("`initial_distribution` must be a probability vector of length S.")
        check_positive(horizon, "horizon", "TabularMDP", integer=True)
        terminal = np.zeros(n_states, dtype=bool) if terminal_states is None else np.asarray(terminal_states, bool)
        return cls(transitions, expected[0], expected[1], initial, int(horizon), name, terminal)


class TabularEnv(gym.Env, ParamsMixin):
    """A gymnasium environment backed by exact tabular dynamics with proxy and true rewards.

    Subclasses implement :meth:`_build` (returning the arrays described in the module
    docstring) and :meth:`describe_state`, and call :meth:`_setup` at the end of
    ``__init__``. The step reward is the proxy; ``info["true_reward"]`` is the true one.
    Observations are state indices (``Discrete(S)``).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"]}
    registry_name: ClassVar[str] = ""
    action_names: ClassVar[tuple[str, ...]] = ()

    def _setup(self, max_episode_steps: int, render_mode: str | None) -> None:
        name = type(self).__name__
        check_positive(max_episode_steps, "max_episode_steps", name, integer=True)
        if render_mode not in (None, "ansi"):
            raise parameter_error("render_mode", name, "None or 'ansi'", render_mode)
        self.render_mode = render_mode
        transitions, proxy, true, initial, terminal = self._build()
        self.transitions = np.asarray(transitions, dtype=float)
        self.proxy_rewards = np.asarray(proxy, dtype=float)
        self.true_rewards = np.asarray(true, dtype=float)
        self.initial_distribution = np.asarray(initial, dtype=float)
        self.terminal_states = np.asarray(terminal, dtype=bool)
        n_states, n_actions, _ = self.transitions.shape
        # terminal states are absorbing and pay nothing, so DP needs no special case
        for s in np.flatnonzero(self.terminal_states):
            self.transitions[s] = 0.0
            self.transitions[s, :, s] = 1.0
            self.proxy_rewards[s] = 0.0
            self.true_rewards[s] = 0.0
        self._mdp = TabularMDP.from_arrays(
            self.transitions, self.proxy_rewards, self.true_rewards, self.initial_distribution,
            max_episode_steps, name=self.registry_name or name, terminal_states=self.terminal_states,
        )
        self.observation_space = gym.spaces.Discrete(n_states)
        self.action_space = gym.spaces.Discrete(n_actions)
        self._state: int | None = None
        self._elapsed = 0
        self._cumulative_transitions = np.cumsum(self.transitions, axis=-1)

    def _build(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    # gymnasium's Env defines its own __str__; show the constructor arguments instead
    __repr__ = ParamsMixin.__repr__
    __str__ = ParamsMixin.__repr__

    def describe_state(self, state: int) -> str:
        """A short human-readable description of a state index."""
        return f"state {state}"

    # ----------------------------------------------------------------------- exact view
    @property
    def n_states(self) -> int:
        return int(self.transitions.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.transitions.shape[1])

    def mdp(self) -> TabularMDP:
        """The exact MDP (expected rewards, shape (S, A)) with the episode length as horizon."""
        return self._mdp

    # ----------------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.int64, dict]:
        super().reset(seed=seed)
        self._state = int(self.np_random.choice(self.n_states, p=self.initial_distribution))
        self._elapsed = 0
        return np.int64(self._state), {"state": self.describe_state(self._state)}

    def step(self, action: Any) -> tuple[np.int64, float, bool, bool, dict[str, Any]]:
        if self._state is None:
            raise InvalidInputError(f"call reset() before step() on {type(self).__name__}.")
        if not self.action_space.contains(action):
            raise parameter_error(
                "action", type(self).__name__, f"an integer in [0, {self.n_actions})", action
            )
        state, action = self._state, int(action)
        u = self.np_random.random()
        following = int(np.searchsorted(self._cumulative_transitions[state, action], u, side="right"))
        following = min(following, self.n_states - 1)
        proxy = float(self.proxy_rewards[state, action, following])
        true = float(self.true_rewards[state, action, following])
        self._state = following
        self._elapsed += 1
        terminated = bool(self.terminal_states[following])
        truncated = self._elapsed >= self._mdp.horizon and not terminated
        info = {"proxy_reward": proxy, "true_reward": true, "state": self.describe_state(following)}
        return np.int64(following), proxy, terminated, truncated, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        if self._state is None:
            return "(not reset)"
        return self.describe_state(self._state)


def grid_cells(layout: list[str], wall: str = "#") -> tuple[list[tuple[int, int]], dict[tuple[int, int], int]]:
    """Free cells of a text grid in reading order, and their indices."""
    cells = [(r, c) for r, row in enumerate(layout) for c, ch in enumerate(row) if ch != wall]
    return cells, {cell: i for i, cell in enumerate(cells)}


MOVES: tuple[tuple[int, int], ...] = ((-1, 0), (0, 1), (1, 0), (0, -1), (0, 0))
"""Row/column offsets of the actions up, right, down, left, stay."""
