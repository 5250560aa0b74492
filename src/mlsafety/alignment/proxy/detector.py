"""A Polynaut-style detector of gamed policies: distance to a trusted policy's behaviour."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mlsafety._validation import check_in, check_is_fitted
from mlsafety.alignment.proxy._tabular import TabularMDP
from mlsafety.alignment.proxy.planning import _as_mdp, check_policy, occupancy
from mlsafety.base import Detector
from mlsafety.exceptions import InvalidInputError, ShapeError

METRICS = ("jensen_shannon", "hellinger", "occupancy")


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence in bits between distributions along the last axis (0..1).

    ``JS(p, q) = KL(p || m) / 2 + KL(q || m) / 2`` with ``m = (p + q) / 2`` (Lin 1991).
    """
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(a > 0, a * np.log2(np.where(a > 0, a, 1) / np.where(m > 0, m, 1)), 0.0)
        return terms.sum(-1)

    return np.clip((kl(p) + kl(q)) / 2, 0.0, 1.0)


def hellinger(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Hellinger distance ``sqrt(1 - sum_i sqrt(p_i q_i))`` along the last axis (0..1)."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    affinity = np.sqrt(np.clip(p, 0, None) * np.clip(q, 0, None)).sum(-1)
    return np.sqrt(np.clip(1.0 - affinity, 0.0, 1.0))


def total_variation(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Total-variation distance ``sum_i |p_i - q_i| / 2`` over the last two axes' flattening."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    return 0.5 * np.abs(p - q).reshape(*p.shape[:-2], -1).sum(-1)


def _batched_visits(mdp: TabularMDP, policies: np.ndarray) -> np.ndarray:
    """Average state distribution over the episode for a batch of stationary policies, shape (N, S)."""
    d = np.broadcast_to(mdp.initial_distribution, (policies.shape[0], mdp.n_states)).copy()
    total = d.copy()
    # P_pi[n, s, s'] = sum_a pi_n(a|s) P(s'|s, a), one matrix product per step for the whole batch
    p_pi = np.einsum("nsa,sap->nsp", policies, mdp.transitions)
    for _ in range(1, mdp.horizon):
        d = np.einsum("ns,nsp->np", d, p_pi)
        total += d
    return total / mdp.horizon


class PolicyDivergenceDetector(Detector):
    """Flags policies that behave unlike a trusted policy (higher score = more likely gamed).

    Pan, Bhatia & Steinhardt (2022), *The Effects of Reward Misspecification* (the
    Polynaut benchmark): a policy optimised against a misspecified proxy is detected by how
    far its action distributions are from those of a trusted policy, on the states the
    candidate visits. With ``d_pi(s)`` the candidate's average state distribution over an
    episode,

    * ``jensen_shannon``: ``sum_s d_pi(s) JS(pi(.|s), pi_T(.|s))`` (bits, 0..1);
    * ``hellinger``: ``sum_s d_pi(s) H(pi(.|s), pi_T(.|s))`` (0..1);
    * ``occupancy``: total-variation distance between the state-action occupancy measures
      ``rho_pi`` and ``rho_T`` (Laidlaw, Singhal & Dragan 2024 argue this catches reward
      hacking that per-state action divergences miss).

    The scores use only the dynamics and the two policies: they never see the true reward.
    Distances are exact (no rollouts). This detector does not follow the image-classifier
    ``fit(classifier, data)`` contract and is not in an image-detector registry.

    Parameters
    ----------
    metric : {"jensen_shannon", "hellinger", "occupancy"}, default "jensen_shannon"

    Example
    -------
    >>> detector = PolicyDivergenceDetector().fit(env, trusted_policy)
    >>> scores = detector.score(candidate_policies)  # (N,) torch tensor
    """

    def __init__(self, metric: str = "jensen_shannon") -> None:
        self.metric = metric

    def fit(self, mdp: TabularMDP | Any, trusted_policy: np.ndarray) -> PolicyDivergenceDetector:
        """Store the dynamics and the trusted policy (shape (S, A)); return ``self``."""
        check_in(self.metric, METRICS, "metric", type(self).__name__)
        self.mdp_ = _as_mdp(mdp)
        self.trusted_policy_ = check_policy(trusted_policy, self.mdp_, "trusted_policy")
        if self.trusted_policy_.ndim != 2:
            raise ShapeError("`trusted_policy` must be stationary, shape (S, A).")
        self.trusted_occupancy_ = occupancy(self.mdp_, self.trusted_policy_)
        return self

    def score_policies(self, policies: np.ndarray) -> np.ndarray:
        """Scores as a numpy array, shape (N,), for policies of shape (N, S, A) or (S, A)."""
        check_is_fitted(self, "trusted_policy_")
        policies = np.asarray(policies, dtype=float)
        single = policies.ndim == 2
        batch = policies[None] if single else policies
        shape = self.trusted_policy_.shape
        if batch.ndim != 3 or batch.shape[1:] != shape:
            raise ShapeError(f"`policies` must have shape (N, S, A) with (S, A) = {shape}; got {policies.shape}.")
        if (batch < -1e-9).any() or not np.allclose(batch.sum(-1), 1.0, atol=1e-6):
            raise InvalidInputError("`policies` rows must be action distributions (non-negative, summing to 1).")
        visits = _batched_visits(self.mdp_, np.clip(batch, 0.0, None))  # (N, S)
        if self.metric == "occupancy":
            return total_variation(visits[:, :, None] * batch, self.trusted_occupancy_[None])
        distance = jensen_shannon if self.metric == "jensen_shannon" else hellinger
        return (visits * distance(batch, self.trusted_policy_[None])).sum(1)

    def score(self, policies: np.ndarray) -> torch.Tensor:
        """Scores (N,), higher = further from the trusted policy = more likely gamed."""
        return torch.as_tensor(self.score_policies(policies), dtype=torch.float64)
