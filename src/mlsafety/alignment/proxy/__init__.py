"""Proxy gaming: environments with proxy and true rewards, optimisation-power sweeps,
a detector of gamed policies, and reward-model overoptimisation (Goodhart's law).
"""

from mlsafety.alignment.proxy._tabular import TabularEnv, TabularMDP
from mlsafety.alignment.proxy.boat_race import BoatRace
from mlsafety.alignment.proxy.lagoon import Lagoon
from mlsafety.alignment.proxy.pandemic import Pandemic
from mlsafety.alignment.proxy.planning import (
    aggregate_policy,
    backward_induction,
    boltzmann_policy,
    evaluate_policy,
    greedy_policy,
    observation_noise_policy,
    occupancy,
    q_learning,
    q_values,
    state_distributions,
)
from mlsafety.alignment.proxy.tomato_watering import TomatoWatering

__all__ = [
    "BoatRace",
    "Lagoon",
    "Pandemic",
    "TabularEnv",
    "TabularMDP",
    "TomatoWatering",
    "aggregate_policy",
    "backward_induction",
    "boltzmann_policy",
    "evaluate_policy",
    "greedy_policy",
    "observation_noise_policy",
    "occupancy",
    "q_learning",
    "q_values",
    "state_distributions",
]
