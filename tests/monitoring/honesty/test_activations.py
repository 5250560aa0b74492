"""Activation extraction: batched equals one at a time; the cache is keyed by model and data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from honesty_tiny_lm import train_tiny_lm

from mlsafety.exceptions import InvalidInputError, InvalidParameterError
from mlsafety.monitoring.honesty.activations import activation_key, extract_activations
from mlsafety.monitoring.honesty.lm import load_language_model
from mlsafety.monitoring.honesty.prompts import answer_ids, prompt_ids


def _alone(lm, ids):
    with torch.no_grad():
        output = lm.model(torch.tensor([ids]), output_hidden_states=True)
    return torch.stack([h[0, -1] for h in output.hidden_states]), torch.stack(
        [h[0].mean(0) for h in output.hidden_states]), output.logits[0, -1].log_softmax(-1)


def test_batched_extraction_matches_one_at_a_time(tiny_lm, planted):
    data = planted.subset(np.arange(6))
    data.texts[0] = "e1 is very good indeed"  # a longer row, so the batch is padded
    statement = extract_activations(tiny_lm, data, "statement", batch_size=4, cache=False)
    honest = extract_activations(tiny_lm, data, "honest", batch_size=4, cache=False)
    assert statement.features["last"].shape == (3, 6, 32)
    true_id, false_id = answer_ids(tiny_lm.tokenizer)
    for i in range(6):
        last, mean, _ = _alone(tiny_lm, tiny_lm.tokenizer(data.texts[i])["input_ids"])
        torch.testing.assert_close(statement.features["last"][:, i].float(), last, atol=2e-2, rtol=1e-2)
        torch.testing.assert_close(statement.features["mean"][:, i].float(), mean, atol=2e-2, rtol=1e-2)
        prompt = prompt_ids(tiny_lm.tokenizer, data.texts[i], "honest")
        last, _, logprobs = _alone(tiny_lm, prompt)
        torch.testing.assert_close(honest.features["prompt"][:, i].float(), last, atol=2e-2, rtol=1e-2)
        torch.testing.assert_close(honest.logprobs[i], logprobs[[true_id, false_id]], atol=1e-4, rtol=1e-4)
        for name, token in (("pos", true_id), ("neg", false_id)):
            last, _, _ = _alone(tiny_lm, [*prompt, token])
            torch.testing.assert_close(honest.features[name][:, i].float(), last, atol=2e-2, rtol=1e-2)


def test_cache_is_keyed_by_model_and_data(tiny_lm, planted, tmp_path):
    first = extract_activations(tiny_lm, planted, "statement", cache=tmp_path)
    assert first.seconds > 0 and len(list(tmp_path.glob("*.safetensors"))) == 1
    again = extract_activations(tiny_lm, planted, "statement", cache=tmp_path)
    assert again.seconds == 0
    torch.testing.assert_close(again.features["last"], first.features["last"])
    other_data = planted.subset(np.arange(10))
    other_model = train_tiny_lm(n_steps=2)
    keys = {activation_key(tiny_lm, planted, "statement"), activation_key(tiny_lm, other_data, "statement"),
            activation_key(other_model, planted, "statement"), activation_key(tiny_lm, planted, "honest")}
    assert len(keys) == 4
    extract_activations(other_model, planted, "statement", cache=tmp_path)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2


def test_bad_view(tiny_lm, planted):
    with pytest.raises(InvalidParameterError, match="view"):
        extract_activations(tiny_lm, planted, "dream", cache=False)


def test_folder_that_is_not_a_causal_lm(tmp_path):
    (tmp_path / "config.json").write_text('{"architectures": ["BertForSequenceClassification"]}')
    with pytest.raises(InvalidInputError, match="not a causal language model"):
        load_language_model(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInputError, match=r"no config\.json"):
        load_language_model(empty)
