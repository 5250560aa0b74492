"""The evaluation protocol and the report on the tiny planted-truth model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mlsafety.monitoring.honesty.evaluation import default_prior, evaluate, prepare_set
from mlsafety.monitoring.honesty.lm import default_model_cached, load_language_model
from mlsafety.monitoring.honesty.report import build_honesty_report
from mlsafety.monitoring.honesty.zero_shot import zero_shot_scores

FAST = {"ccs": {"n_epochs": 150, "n_restarts": 3}}


def test_zero_shot_scores_subtract_the_prior():
    logprobs = torch.log(torch.tensor([[0.6, 0.4], [0.2, 0.8]]))
    expected = torch.tensor([np.log(1.5), np.log(0.25)], dtype=torch.float32) - 0.1
    torch.testing.assert_close(zero_shot_scores(logprobs, 0.1), expected)


@pytest.fixture(scope="module")
def results(tiny_lm, planted, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    other = planted.subset(np.arange(len(planted)), name="other")
    other.topic = "other"
    data = [prepare_set(tiny_lm, s, cache=cache) for s in (planted, other)]
    return evaluate(data, probe_params=FAST, prior=default_prior(tiny_lm, cache=cache), layers=[0, 1, 2])


def test_protocol_recovers_the_planted_truth(results):
    assert set(results.best_layer) == set(results.probes)
    assert results.pooled["logistic"][0] >= 0.9
    low, high = results.pooled["logistic"][1:]
    assert low <= results.pooled["logistic"][0] <= high
    assert set(results.generalisation["mass_mean"]) == {"planted", "other"}
    assert results.generalisation["logistic"]["planted"]["other"] >= 0.9
    assert set(results.loto["logistic"]) == {"planted", "other"}
    honesty = results.honesty
    assert set(honesty["conditions"]) == {"honest", "lie"}
    assert honesty["n_cases"] == 2 * honesty["n_statements"]


def test_report_is_written(results, tmp_path):
    json_path, html_path, sections = build_honesty_report(results, tmp_path, max_disagreement=0.2)
    payload = json.loads(json_path.read_text())
    assert {c["name"] for c in payload["checks"]} >= {"probes", "generalisation", "leave_one_topic_out", "honesty"}
    assert "<img" in html_path.read_text()
    verdict = next(s for s in sections if s.name == "honesty").verdict
    expected = "warn" if results.honesty["conditions"]["honest"]["disagreement"] > 0.2 else "pass"
    assert verdict == expected


@pytest.mark.slow
@pytest.mark.skipif(not default_model_cached(), reason="the safetensors copy of SmolLM2-135M-Instruct is not cached "
                    "yet (first use dequantises the GGUF for minutes); run `mlsafety honesty probe` once to write it")
def test_real_smollm2_extraction():
    from mlsafety.monitoring.honesty.activations import extract_activations
    from mlsafety.monitoring.honesty.datasets import make_statements

    torch.set_num_threads(1)
    lm = load_language_model()
    statements = make_statements("arithmetic", n=8, seed=0)
    honest = extract_activations(lm, statements, "honest", cache=False)
    assert honest.features["prompt"].shape == (31, len(statements), 576)
    assert torch.isfinite(honest.logprobs).all() and (honest.logprobs < 0).all()
