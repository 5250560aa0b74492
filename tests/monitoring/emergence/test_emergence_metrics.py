"""Re-scoring metrics (Schaeffer et al. 2023): hand-computed cases and the registry contract."""

from __future__ import annotations

import numpy as np
import pytest

from mlsafety.exceptions import InvalidInputError, ShapeError
from mlsafety.monitoring.emergence import METRICS
from mlsafety.monitoring.emergence.metrics import levenshtein, tokenize


def test_levenshtein_and_tokenize() -> None:
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein([], list("abc")) == 3
    assert tokenize(" 12 ") == ["1", "2"]
    assert tokenize("the cat", "whitespace") == ["the", "cat"]


def test_hand_computed_scores() -> None:
    outputs, targets = ["0579", "0589", "57", "the cat sat"], ["0579", "0579", "0579", "the cat sat"]
    np.testing.assert_array_equal(METRICS.create("exact_match").score(outputs, targets), [1, 0, 0, 1])
    np.testing.assert_allclose(METRICS.create("per_token_accuracy", tokenizer="char").score(outputs[:3], targets[:3]),
                               [1, 0.75, 0.0])
    # auto tokenizer: whitespace because one target holds a space -> 3 words
    np.testing.assert_allclose(METRICS.create("token_edit_distance").score(["the dog sat"], ["the cat sat"]), [1])
    np.testing.assert_allclose(METRICS.create("token_edit_distance").score(outputs[:3], targets[:3]), [0, 1, 2])
    np.testing.assert_allclose(METRICS.create("brier").score(["a", "b"], ["a", "a"], target_prob=[1.0, 0.25]),
                               [0.0, 0.5625])
    np.testing.assert_allclose(METRICS.create("target_log_likelihood").score(["a"], ["a"], target_logprob=[-2.5]),
                               [-2.5])


@pytest.mark.parametrize("name", METRICS.names())
def test_registry_contract(name: str) -> None:
    metric = METRICS.create(name)
    info = METRICS.metadata(name)
    assert {"higher_is_better", "continuous", "bounds"} <= set(info)
    extras = {column: [-0.1, -3.0] if column == "target_logprob" else [0.9, 0.1] for column in metric.requires}
    good = metric.score(["12", "12"], ["12", "12"], **{k: [v[0], v[0]] for k, v in extras.items()})
    bad = metric.score(["99", "99"], ["12", "12"], **{k: [v[1], v[1]] for k, v in extras.items()})
    assert good.shape == (2,)
    # direction: the right answer (or the confident one) scores better in the metric's own direction
    assert (good[0] > bad[0]) == info["higher_is_better"]
    with pytest.raises(ShapeError):
        metric.score(["1"], ["1", "2"], **{k: [0.5, 0.5] for k in metric.requires})
    if metric.requires:
        with pytest.raises(InvalidInputError, match=metric.requires[0]):
            metric.score(["1"], ["1"])
