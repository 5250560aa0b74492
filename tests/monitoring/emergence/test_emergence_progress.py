"""Nanda et al.'s progress measures on planted Fourier logits, and a short grokking run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mlsafety.exceptions import InvalidParameterError
from mlsafety.monitoring.emergence.testbeds.grokking import onset_epoch, train_grokking
from mlsafety.monitoring.emergence.testbeds.progress import embedding_gini, gini, key_frequencies, split_logits

P = 23


def test_gini() -> None:
    assert gini(np.ones(10)) == pytest.approx(0.0)
    assert gini(np.eye(10)[0]) == pytest.approx(0.9)


def _planted_logits(frequencies: list[int], amplitude: float = 8.0, noise: float = 0.5) -> torch.Tensor:
    a, b = np.meshgrid(np.arange(P), np.arange(P), indexing="ij")
    total = (a + b).reshape(-1, 1)
    c = np.arange(P)[None, :]
    logits = sum(amplitude * np.cos(2 * np.pi * k * (total - c) / P) for k in frequencies)
    logits = logits + np.random.default_rng(0).normal(0, noise, logits.shape)
    return torch.tensor(logits)


def test_key_frequencies_and_restricted_excluded_losses() -> None:
    logits = _planted_logits([3, 7])
    assert key_frequencies(logits, P, 2) == [3, 7]
    restricted, excluded = split_logits(logits, P, [3, 7])
    target = torch.tensor([(a + b) % P for a in range(P) for b in range(P)])
    full_loss = torch.nn.functional.cross_entropy(logits, target)
    # keeping the key frequencies keeps the algorithm; removing them leaves chance (log p)
    assert torch.nn.functional.cross_entropy(restricted, target) <= full_loss + 0.05
    assert torch.nn.functional.cross_entropy(excluded, target) > 0.9 * math.log(P)
    assert full_loss < 0.5 * math.log(P)


def test_embedding_gini_separates_fourier_and_random_embeddings() -> None:
    a = torch.arange(P, dtype=torch.float64)[:, None]
    fourier = torch.cat([torch.cos(2 * math.pi * 5 * a / P), torch.sin(2 * math.pi * 5 * a / P)], 1)
    random = torch.randn(P, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert embedding_gini(fourier, P) > 0.9 > 0.5 > embedding_gini(random, P)


def test_onset_epoch() -> None:
    assert onset_epoch([0, 1, 2, 3], [0.0, 0.05, 0.5, 1.0]) == 2
    assert onset_epoch([0, 1, 2, 3], [4.0, 3.9, 1.0, 0.0]) == 2
    assert onset_epoch([0, 1], [1.0, 1.0]) is None


@pytest.fixture(scope="module")
def short_run():
    torch.set_num_threads(1)
    return train_grokking(P, n_epochs=300, eval_every=50, train_fraction=0.5, d_model=32, n_heads=4, d_mlp=64,
                          learning_rate=3e-3, n_key_frequencies=3)


def test_short_grokking_run(short_run) -> None:
    r = short_run
    assert r.epochs == list(range(0, 301, 50))
    assert {"restricted_loss", "excluded_loss", "gini_embedding", "key_fourier_fraction"} <= set(r.curves)
    assert all(len(v) == len(r.epochs) for v in r.curves.values())
    assert r.curves["train_loss"][-1] < 0.1 * r.curves["train_loss"][0]  # it memorises
    assert len(r.key_frequencies) == 3 and all(1 <= k <= (P - 1) // 2 for k in r.key_frequencies)
    assert r.milestones["train_loss_below_0.01"] is None or r.milestones["train_loss_below_0.01"] <= 300
    with pytest.raises(InvalidParameterError):
        train_grokking(4)
