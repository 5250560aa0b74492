"""Synthetic preferences with a known hidden utility, for tests and sanity checks.

Items are Gaussian embeddings ``x ~ N(0, I_D)``; the hidden utility is ``U*(x) = w . x``
with a random unit vector ``w``. A labeller prefers a over b with probability
``sigma((U*(a) - U*(b)) / temperature)`` (Bradley–Terry), and a fraction ``flip_rate``
of labels is then flipped at random (annotator error). More pairs should raise the
learned utility's accuracy against U*; more noise should lower it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class SyntheticPreferences:
    """``better[i]``/``worse[i]`` (P, D) as labelled; ``items`` (N, D) and their true utilities."""

    better: torch.Tensor
    worse: torch.Tensor
    items: torch.Tensor
    true_utility: torch.Tensor
    weights: torch.Tensor


def make_synthetic_preferences(n_pairs: int = 1000, dim: int = 32, temperature: float = 0.0,
                               flip_rate: float = 0.0, n_items: int | None = None,
                               seed: int = 0) -> SyntheticPreferences:
    """Sample labelled pairs from a hidden linear utility (see the module docstring).

    ``temperature = 0`` gives noiseless labels (the truly better item always wins).
    """
    rng = np.random.default_rng(seed)
    n_items = n_items or 2 * n_pairs
    w = rng.standard_normal(dim)
    w /= np.linalg.norm(w)
    items = rng.standard_normal((n_items, dim))
    utility = items @ w
    a = rng.integers(0, n_items, n_pairs)
    b = (a + rng.integers(1, n_items, n_pairs)) % n_items
    d = utility[a] - utility[b]
    first = d > 0 if temperature == 0 else rng.random(n_pairs) < 1 / (1 + np.exp(-d / temperature))
    first ^= rng.random(n_pairs) < flip_rate
    better = np.where(first, a, b)
    worse = np.where(first, b, a)
    as_tensor = lambda v: torch.as_tensor(v, dtype=torch.float32)
    return SyntheticPreferences(as_tensor(items[better]), as_tensor(items[worse]), as_tensor(items),
                                as_tensor(utility), as_tensor(w))
