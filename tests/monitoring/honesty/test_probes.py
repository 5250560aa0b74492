"""Every registered probe: the common contract, recovery of the planted truth, and save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlsafety.exceptions import InvalidInputError, NotFittedError, ShapeError
from mlsafety.monitoring.honesty.activations import extract_activations
from mlsafety.monitoring.honesty.datasets.base import Statements
from mlsafety.monitoring.honesty.probes import PROBES, load_probe

FAST = {"ccs": {"n_epochs": 200, "n_restarts": 4}}


@pytest.fixture(scope="module")
def features(tiny_lm, planted):
    """Statement features (L, N, d) and contrast pairs (L, N, 2, d) of the planted statements."""
    last = extract_activations(tiny_lm, planted, "statement", cache=False).features["last"].float()
    sides = []
    for answer in ("True", "False"):
        texts = [f"{text} {answer}" for text in planted.texts]
        data = Statements(texts, planted.labels, planted.entities, name=f"planted-{answer}")
        sides.append(extract_activations(tiny_lm, data, "statement", cache=False).features["last"].float())
    train, test = planted.split(0.5, seed=0)
    train_index = np.array([planted.texts.index(t) for t in train.texts])
    test_index = np.array([planted.texts.index(t) for t in test.texts])
    return {"last": last, "pairs": torch.stack(sides, dim=2), "train": train_index, "test": test_index,
            "y": planted.labels}


def _x(features, probe, layer, index):
    return (features["pairs"] if probe.pairs else features["last"])[layer, index]


@pytest.mark.parametrize("name", PROBES.names())
def test_common_contract(name, features):
    probe = PROBES.create(name, **FAST.get(name, {}))
    x = _x(features, probe, 1, features["train"])
    with pytest.raises(NotFittedError):
        probe.score(x)
    assert probe.fit(x, features["y"][features["train"]]) is probe
    scores = probe.score(_x(features, probe, 1, features["test"]))
    assert scores.shape == (len(features["test"]),)
    assert set(probe.predict(x).unique().tolist()) <= {0, 1}
    # normalisation comes from the training statements only
    reference = x.mean(0) if not probe.pairs else x.mean(0, keepdim=True)
    torch.testing.assert_close(probe.mean_, reference)


@pytest.mark.parametrize("name", PROBES.names())
def test_recovers_the_planted_truth_on_held_out_entities(name, features):
    probe = PROBES.create(name, **FAST.get(name, {}))
    y = features["y"]
    for layer in (1, 2):
        probe.fit(_x(features, probe, layer, features["train"]), y[features["train"]])
        predicted = probe.predict(_x(features, probe, layer, features["test"])).numpy()
        assert (predicted == y[features["test"]]).mean() >= 0.9, (name, layer)


def test_ccs_finds_the_truth_without_labels_but_not_in_the_embeddings(features):
    y = features["y"][features["test"]]
    for layer, should_find in ((0, False), (1, True), (2, True)):
        probe = PROBES.create("ccs", **FAST["ccs"]).fit(features["pairs"][layer, features["train"]])
        accuracy = (probe.predict(features["pairs"][layer, features["test"]]).numpy() == y).mean()
        # without labels the sign is arbitrary: either orientation counts as finding the truth
        found = max(accuracy, 1 - accuracy) >= 0.9
        assert found == should_find, (layer, accuracy)


def test_save_load_round_trip(features, tmp_path):
    for name in PROBES.names():
        probe = PROBES.create(name, **FAST.get(name, {}))
        x = _x(features, probe, 2, features["train"])
        probe.fit(x, features["y"][features["train"]])
        weights, config = probe.save(tmp_path / name)
        assert weights.suffix == ".safetensors" and config.suffix == ".json"
        loaded = load_probe(tmp_path / f"{name}.json")
        torch.testing.assert_close(loaded.score(x), probe.score(x))
        assert loaded.threshold_ == probe.threshold_


def test_mass_mean_direction_is_the_difference_of_means():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(400, 3, generator=generator)
    y = np.repeat([1, 0], 200)
    x[:200, 0] += 3.0
    probe = PROBES.create("mass_mean").fit(x, y)
    z = (x - x.mean(0)) / x.std(0)
    torch.testing.assert_close(probe.direction_, z[:200].mean(0) - z[200:].mean(0))
    assert (probe.predict(x).numpy() == y).mean() > 0.9


def test_input_errors(features):
    x = features["last"][1]
    with pytest.raises(ShapeError, match=r"\(N, 2, d\)"):
        PROBES.create("ccs").fit(x)
    with pytest.raises(InvalidInputError, match="supervised"):
        PROBES.create("logistic").fit(x)
    with pytest.raises(InvalidInputError, match="both classes"):
        PROBES.create("logistic").fit(x, np.ones(len(x)))
    with pytest.raises(ShapeError, match="features"):
        PROBES.create("mass_mean").fit(x, features["y"]).score(x[:, :5])
