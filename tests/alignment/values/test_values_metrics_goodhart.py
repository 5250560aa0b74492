"""Metrics, the ETHICS classifier, and the Goodhart optimiser."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mlsafety.alignment.values import (
    EthicsClassifier,
    GreedyTextOptimizer,
    evaluate_pairs,
    lexicon_judge,
    pair_calibration,
    pairwise_accuracy,
    rank_correlations,
    vocabulary_from_texts,
)
from mlsafety.exceptions import InvalidInputError, ShapeError


def test_pairwise_accuracy_counts_ties_as_half() -> None:
    assert pairwise_accuracy([2.0, 1.0, 0.5, 3.0], [1.0, 2.0, 0.5, 0.0]) == pytest.approx(0.625)
    with pytest.raises(ShapeError):
        pairwise_accuracy([1.0], [1.0, 2.0])
    with pytest.raises(InvalidInputError):
        pairwise_accuracy([float("nan")], [1.0])


def test_rank_correlations_hand_cases() -> None:
    assert rank_correlations([1, 2, 3, 4], [10, 20, 30, 40]) == {"spearman": 1.0, "kendall": 1.0}
    # one swapped adjacent pair among 4 items: tau = (5 - 1) / 6
    out = rank_correlations([1, 2, 4, 3], [1, 2, 3, 4])
    assert out["kendall"] == pytest.approx(4 / 6)
    assert out["spearman"] == pytest.approx(1 - 6 * 2 / (4 * 15))


def test_pair_calibration_of_a_calibrated_model_is_small() -> None:
    # outcomes drawn from sigma(d): the model sigma(d) is calibrated by construction
    rng = np.random.default_rng(0)
    d = rng.normal(0, 2, 20000)
    first = rng.random(20000) < 1 / (1 + np.exp(-d))
    better = np.where(first, d, 0.0)
    worse = np.where(first, 0.0, d)
    assert pair_calibration(better, worse)["ece"] < 0.02
    # ten times too confident is badly calibrated
    assert pair_calibration(10 * better, 10 * worse)["ece"] > 0.1
    # a single pair with margin 0 -> p = 0.5 both ways, ECE 0
    assert pair_calibration([1.0], [1.0])["ece"] == pytest.approx(0.0)


def test_evaluate_pairs_hard_subset() -> None:
    u = np.array([3.0, 2.0, 1.0, 0.0])
    out = evaluate_pairs(u, np.array([0, 1, 3]), np.array([3, 2, 2]), hard=np.array([False, True, True]))
    assert out["pairwise_accuracy"] == pytest.approx(2 / 3)
    assert out["hard_pairwise_accuracy"] == pytest.approx(0.5)


def test_ethics_classifier_accuracy_and_exact_match(corpus) -> None:
    keep = np.flatnonzero(np.abs(corpus.ratings) > 0.5)  # texts with a sentiment word
    texts = [corpus.texts[i] for i in keep]
    labels = (corpus.ratings[keep] > 0).astype(int)
    groups = np.arange(len(keep)) // 4
    model = EthicsClassifier(encoder="hashing", weight_decay=1e-1).fit(texts[:160], labels[:160])
    out = model.evaluate(texts[160:], labels[160:], groups[160:])
    assert out["accuracy"] > 0.8
    assert out["exact_match"] <= out["accuracy"]
    assert 0 <= float(model.predict_proba(corpus.texts[:3]).min()) <= 1


def test_lexicon_judge_matches_the_formula() -> None:
    judge = lexicon_judge({"good": 2.0, "bad": -1.0})
    s = judge(["good good bad", "nothing here"])
    assert float(s[0]) == pytest.approx(3.0 / math.sqrt(9.0 + 15.0), rel=1e-6)
    assert float(s[1]) == 0.0


def test_greedy_optimizer_raises_the_proxy_and_never_shows_gold_the_candidates() -> None:
    proxy_calls, gold_calls = [], []

    def proxy(texts):  # counts the word "zap": an exploitable proxy
        proxy_calls.append(len(texts))
        return torch.tensor([t.split().count("zap") - 0.01 * len(t.split()) for t in texts], dtype=torch.float32)

    def gold(texts):
        gold_calls.append(list(texts))
        return torch.tensor([t.split().count("good") for t in texts], dtype=torch.float32)

    starts = ["the day was fine", "a movie about a dog"]
    optimizer = GreedyTextOptimizer(["zap", "good", "the"], n_steps=5, n_candidates=12, seed=0)
    trace = optimizer.optimize(starts, proxy, {"gold": gold})
    assert trace.proxy.shape == (6, 2) and trace.gold["gold"].shape == (6, 2)
    assert np.all(np.diff(trace.proxy, axis=0) >= 0)  # greedy: never goes down
    assert trace.proxy[-1].min() >= 3  # found and repeated the exploit
    assert all(len(call) == 2 for call in gold_calls) and len(gold_calls) == 6  # accepted texts only
    assert proxy_calls[1:] == [24] * 5
    assert trace.texts[0] == starts
    # the proxy is gamed: gold did not rise with it
    curves = trace.standardized({})
    assert curves["proxy"][-1] > curves["gold"][-1]
    again = GreedyTextOptimizer(["zap", "good", "the"], n_steps=5, n_candidates=12, seed=0).optimize(
        starts, proxy, {"gold": gold})
    assert again.texts == trace.texts
    with pytest.raises(InvalidInputError, match="vocabulary"):
        GreedyTextOptimizer().optimize(starts, proxy)


def test_vocabulary_from_texts_is_by_frequency() -> None:
    assert vocabulary_from_texts(["bb aa bb", "cc bb aa", "aa dd x"], size=2) == ["aa", "bb"]
