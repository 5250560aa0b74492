"""Proxy gaming: environments with proxy and true rewards, optimisation-power sweeps,
a detector of gamed policies, and reward-model overoptimisation (Goodhart's law).
"""

from mlsafety.alignment.proxy._tabular import TabularEnv, TabularMDP
from mlsafety.alignment.proxy.boat_race import BoatRace
from mlsafety.alignment.proxy.detection import evaluate_detection, trusted_policy
from mlsafety.alignment.proxy.detector import PolicyDivergenceDetector
from mlsafety.alignment.proxy.lagoon import Lagoon
from mlsafety.alignment.proxy.mitigations import (
    early_stop,
    kl_regularized_policy,
    occupancy_regularized_policy,
    regularized_sweep,
)
from mlsafety.alignment.proxy.overoptimization import (
    BradleyTerryRewardModel,
    GoldReward,
    best_of_n,
    best_of_n_kl,
    fit_functional_form,
    overoptimization_experiment,
    overoptimization_sweep,
)
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
from mlsafety.alignment.proxy.sweep import KNOBS, find_phase_transition, sweep
from mlsafety.alignment.proxy.tomato_watering import TomatoWatering

__all__ = [
    "KNOBS",
    "BoatRace",
    "BradleyTerryRewardModel",
    "GoldReward",
    "Lagoon",
    "Pandemic",
    "PolicyDivergenceDetector",
    "TabularEnv",
    "TabularMDP",
    "TomatoWatering",
    "aggregate_policy",
    "backward_induction",
    "best_of_n",
    "best_of_n_kl",
    "boltzmann_policy",
    "early_stop",
    "evaluate_detection",
    "evaluate_policy",
    "find_phase_transition",
    "fit_functional_form",
    "greedy_policy",
    "kl_regularized_policy",
    "observation_noise_policy",
    "occupancy",
    "occupancy_regularized_policy",
    "overoptimization_experiment",
    "overoptimization_sweep",
    "q_learning",
    "q_values",
    "regularized_sweep",
    "state_distributions",
    "sweep",
    "trusted_policy",
]
