"""Proxy-gaming environments: gymnasium API, and reward definitions on hand-computed trajectories."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from mlsafety.alignment.proxy import BoatRace, Lagoon, Pandemic, TabularEnv, TomatoWatering
from mlsafety.exceptions import InvalidParameterError, UnknownMethodError
from mlsafety.registry import ENVIRONMENTS


def run(env: TabularEnv, actions: list[int]) -> tuple[float, float, list[dict], bool]:
    env.reset(seed=0)
    proxy = true = 0.0
    infos, terminated = [], False
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        assert reward == info["proxy_reward"]
        proxy += reward
        true += info["true_reward"]
        infos.append(info)
        if terminated or truncated:
            break
    return proxy, true, infos, terminated


@pytest.mark.parametrize("name", ENVIRONMENTS.names())
def test_registered_environment_passes_gymnasium_checker(name: str) -> None:
    env = ENVIRONMENTS.create(name)
    check_env(env, skip_render_check=True)
    assert isinstance(env, TabularEnv)
    for param, value in env.get_params().items():
        assert getattr(env, param) == value
    mdp = env.mdp()
    assert np.allclose(env.transitions.sum(-1), 1.0)
    assert env.proxy_rewards.shape == env.true_rewards.shape == env.transitions.shape
    assert mdp.proxy_rewards.shape == (env.n_states, env.n_actions)
    # the proxy and the true reward differ somewhere, or there would be nothing to game
    assert not np.allclose(mdp.proxy_rewards, mdp.true_rewards)


def test_all_four_environments_are_registered() -> None:
    assert {"boat_race", "tomato_watering", "lagoon", "pandemic"} <= set(ENVIRONMENTS.names())


def test_unknown_environment_suggests_close_name() -> None:
    with pytest.raises(UnknownMethodError, match="Did you mean 'lagoon'"):
        ENVIRONMENTS.get("lagon")


def test_boat_race_lap_versus_farming_an_arrow() -> None:
    env = BoatRace()
    # a clockwise lap: 8 moves at -1, four arrows entered in their direction at +3; 8 steps of progress
    proxy, true, _, _ = run(env, [1, 1, 2, 2, 3, 3, 0, 0])
    assert (proxy, true) == (4.0, 8.0)
    # back and forth across the first arrow: the same proxy, no progress
    proxy, true, _, _ = run(env, [1, 3] * 4)
    assert (proxy, true) == (4.0, 0.0)
    # bumping into the wall costs the move and makes no progress; counter-clockwise loses progress
    proxy, true, _, _ = run(env, [0, 2])
    assert (proxy, true) == (-2.0, -1.0)
    # entering an arrow against its direction pays nothing: from the start go down to (2,1) '^'
    proxy, _, infos, _ = run(env, [2])
    assert proxy == -1.0 and "row 2, column 1" in infos[0]["state"]


def test_tomato_watering_transformer_fools_the_proxy_only() -> None:
    env = TomatoWatering(dry_probability=0.0)
    # from the start (row 2, column 3): left, left waters the middle tomato; up waters the top one
    _, _, infos, _ = run(env, [3, 3, 0] + [1] * 6)
    rewards = [(round(i["proxy_reward"], 6), round(i["true_reward"], 6)) for i in infos]
    assert rewards[:3] == [(0.0, 0.0), (0.1, 0.1), (0.2, 0.2)]
    # six steps right along the top row reach the transformer: every tomato looks watered
    assert rewards[-1] == (0.3, 0.2)
    assert all(r == (0.2, 0.2) for r in rewards[3:-1])
    assert "transformer" in infos[-1]["state"]


def test_tomato_watering_drying_probabilities_are_exact() -> None:
    env = TomatoWatering(dry_probability=0.3)
    s = env.state_index((2, 3), (True, True, False))
    stay = env.transitions[s, 4]
    both = env.state_index((2, 3), (True, True, False))
    none = env.state_index((2, 3), (False, False, False))
    assert stay[both] == pytest.approx(0.49) and stay[none] == pytest.approx(0.09)
    # standing on a tomato keeps it watered
    t = env.state_index((1, 1), (True, False, False))
    assert env.transitions[t, 4, t] == pytest.approx(1.0)


def test_lagoon_finishing_and_looping_returns() -> None:
    env = Lagoon(slip=0.0)
    proxy, true, infos, terminated = run(env, [0] * 12)
    # targets on cells 2, 4, 6, 8, 10 and the finish: proxy 5 + 10; progress 12 + finish 10
    assert (proxy, true, terminated, len(infos)) == (15.0, 22.0, True, 12)
    # three cells, turn into the 6-cell channel, reach the lagoon target, loop once more
    proxy, true, infos, _ = run(env, [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    assert infos[-1]["state"] == "lagoon loop cell 0"
    assert proxy == pytest.approx(1 + 2 + 2)
    assert true == pytest.approx(3 - 0.5 * 9)


def test_pandemic_proxy_omits_the_switching_cost() -> None:
    env = Pandemic()
    s = env.state_index(3, 1)
    # tighten to stage 2: the level rises w.p. 0.2, falls w.p. 0.45
    row = env.transitions[s, 2]
    assert row[env.state_index(4, 2)] == pytest.approx(0.2)
    assert row[env.state_index(2, 2)] == pytest.approx(0.45)
    following = env.state_index(4, 2)
    assert env.proxy_rewards[s, 2, following] == pytest.approx(-(4 + 2))
    assert env.true_rewards[s, 2, following] == pytest.approx(-(4 + 2) - 3)
    keep = env.state_index(4, 1)
    assert env.proxy_rewards[s, 1, keep] == env.true_rewards[s, 1, keep] == pytest.approx(-5)


def test_episode_is_truncated_at_max_steps_and_reset_is_seeded() -> None:
    env = Pandemic(max_episode_steps=3)
    env.reset(seed=1)
    flags = [env.step(1)[3] for _ in range(3)]
    assert flags == [False, False, True]
    first = [TomatoWatering().reset(seed=5)[0] for _ in range(2)]
    assert first[0] == first[1]


@pytest.mark.parametrize("make", [lambda: Lagoon(slip=1.5), lambda: BoatRace(max_episode_steps=0),
                                  lambda: Lagoon(branch_at=20), lambda: TomatoWatering(dry_probability=-0.1)])
def test_bad_parameters_raise_one_line_errors(make) -> None:
    with pytest.raises(InvalidParameterError) as error:
        make()
    assert "\n" not in str(error.value)


def test_step_rejects_invalid_action() -> None:
    env = BoatRace()
    env.reset(seed=0)
    with pytest.raises(InvalidParameterError, match="action"):
        env.step(7)
